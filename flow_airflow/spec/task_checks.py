"""Rules on one task's own keys: its output folder, params, computes and endpoint (cnvrg-flows.md, tasks)."""

from __future__ import annotations

import math
from pathlib import PurePosixPath

from flow_airflow.spec.errors import FlowIssue
from flow_airflow.spec.models import (
    ENDPOINT_TITLE,
    TEMPLATE,
    DeployTask,
    ExecTask,
    Flow,
    RunnableTask,
    Task,
    is_empty,
)
from flow_airflow.spec.source import Source


def task_issues(flow: Flow, task: Task, path: tuple, source: Source) -> list[FlowIssue]:
    """Every mistake in the keys of ``task`` (at ``path`` in the file), in the order of the rules."""
    issues = _output_dir_issues(task, path, source)
    if isinstance(task, ExecTask):
        issues += _duplicate_params(task, path, source) + _max_jobs_issues(task, path, source)
    takes_its_compute = isinstance(task, DeployTask) and not task.serves_own_code  # the endpoint's, as its code
    if isinstance(task, RunnableTask) and not flow.is_blueprint and not task.computes and not takes_its_compute:
        issues.append(
            source.issue(
                path, f"task '{task.title}' needs 'computes': the compute templates to try "
                "(for example 'computes: [local]')"
            )
        )
    if isinstance(task, DeployTask):
        issues += _endpoint_issues(flow, task, path, source)
        issues += _replica_issues(flow, task, path, source)
    return issues


def _output_dir_issues(task: Task, path: tuple, source: Source) -> list[FlowIssue]:
    """``output_dir`` must stay inside the working directory: relative, without ``..``."""
    output_dir = getattr(task, "output_dir", None)
    if not output_dir or not (PurePosixPath(output_dir).is_absolute() or ".." in PurePosixPath(output_dir).parts):
        return []
    return [
        source.issue(
            (*path, "output_dir"),
            f"task '{task.title}': output_dir '{output_dir}' must be a folder "
            "inside the working directory (relative, without '..')",
        )
    ]


def _duplicate_params(task: ExecTask, path: tuple, source: Source) -> list[FlowIssue]:
    """A param key given twice in one task: cnvrg would pass one of them; which is a guess, so refuse."""
    issues = []
    first: dict[str, int] = {}
    for j, param in enumerate(task.params):
        if param.key in first:
            line = source.where((*path, "params", first[param.key], "key"))[0]
            issues.append(source.issue((*path, "params", j, "key"),
                                       f"task '{task.title}': param '{param.key}' is given twice, at lines "
                                       f"{line} and {source.where((*path, 'params', j, 'key'))[0]}; keep one"))
        first.setdefault(param.key, j)
    return issues


def _max_jobs_issues(task: ExecTask, path: tuple, source: Source) -> list[FlowIssue]:
    """``max_jobs`` (cnvrg's flow page) caps the task's own grid: a larger grid is refused, never cut (which
    experiments to leave out is a guess). A grid made at run time (``| hyper``, a run's conf) is checked then."""
    if not task.max_jobs:
        return []
    sizes = [len(p.grid()) for p in task.params if not p.unset]
    if any(TEMPLATE.search(v) and "hyper" in v for p in task.params for v in p.grid()):
        return []  # its size is known when its route is planned
    if (size := math.prod(sizes)) <= task.max_jobs:
        return []
    return [source.issue((*path, "max_jobs"), f"task '{task.title}': its grid has {size} experiments, more than its "
                         f"max_jobs ({task.max_jobs}): flow-airflow runs every route of a grid, never a part of it; "
                         "raise max_jobs (-1: no limit) or give fewer values")]


def _endpoint_issues(flow: Flow, task: DeployTask, path: tuple, source: Source) -> list[FlowIssue]:
    """A deploy task names a new endpoint (a URL-safe ``endpoint_title``) or an existing one, not both."""
    name = f"task '{task.title}'"
    issues = []
    if task.endpoint_title and not ENDPOINT_TITLE.match(task.endpoint_title):
        issues.append(
            source.issue(
                (*path, "endpoint_title"),
                f"{name}: endpoint_title '{task.endpoint_title}' may contain only letters, "
                "digits and hyphens (it becomes part of the endpoint's URL)",
            )
        )
    if not flow.is_blueprint and not (task.endpoint_title or task.endpoint_id):
        issues.append(
            source.issue(path, f"{name} needs 'endpoint_title' (a new endpoint) or 'endpoint_id' (an existing one)")
        )
    for key, other in (("file_name", "function_name"), ("function_name", "file_name")):
        if getattr(task, other) and not getattr(task, key):
            issues.append(source.issue(path, f"{name} needs '{key}' beside '{other}': the predict function"))
    if not task.serves_own_code and not (task.endpoint_title or task.endpoint_id):
        issues.append(source.issue(path, f"{name} needs 'file_name' and 'function_name' (the predict function); "
                                         "without them it updates an existing endpoint, named by 'endpoint_id' "
                                         "or 'endpoint_title', with the code that endpoint serves"))
    for key in STREAM_KEYS:
        if not is_empty(getattr(task, key)):
            issues.append(source.issue((*path, key), f"{name}: '{key}' is a key of a Kafka stream endpoint, and "
                                       "flow-airflow's endpoints answer HTTP requests only (kind: webservice): "
                                       "nothing here reads or writes Kafka topics; leave the stream keys empty"))
    return issues


STREAM_KEYS = ("kafka_brokers", "kafka_input_topics", "kafka_output_topics", "nginx_config")


def _replica_issues(flow: Flow, task: DeployTask, path: tuple, source: Source) -> list[FlowIssue]:
    """``min_replica <= max_replica``, and both are required outside a blueprint (but by an update of an
    existing endpoint with its code: it keeps its replicas)."""
    name = f"task '{task.title}'"
    issues = []
    lo, hi = task.min_replica, task.max_replica
    if lo is not None and hi is not None and lo > hi:
        issues.append(
            source.issue((*path, "min_replica"), f"{name}: min_replica ({lo}) is greater than max_replica ({hi})")
        )
    for key in ("min_replica", "max_replica"):  # an update with the endpoint's code keeps its replicas too
        if not flow.is_blueprint and task.serves_own_code and getattr(task, key) is None:
            issues.append(source.issue(path, f"{name} needs '{key}'"))
    return issues
