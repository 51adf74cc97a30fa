"""Rules on one task's own keys: its output folder, params, computes and endpoint (cnvrg-flows.md, tasks)."""

from __future__ import annotations

from pathlib import PurePosixPath

from flow_airflow.spec.errors import FlowIssue
from flow_airflow.spec.models import ENDPOINT_TITLE, DeployTask, ExecTask, Flow, RunnableTask, Task
from flow_airflow.spec.source import Source


def task_issues(flow: Flow, task: Task, path: tuple, source: Source) -> list[FlowIssue]:
    """Every mistake in the keys of ``task`` (at ``path`` in the file), in the order of the rules."""
    issues = _output_dir_issues(task, path, source)
    if isinstance(task, ExecTask):
        issues += _duplicate_params(task, path, source)
    if isinstance(task, RunnableTask) and not flow.is_blueprint and not task.computes:
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
    if task.endpoint_title and task.endpoint_id:
        issues.append(
            source.issue(
                (*path, "endpoint_id"),
                f"{name}: use either 'endpoint_title' (a new "
                "endpoint) or 'endpoint_id' (an existing one), not both",
            )
        )
    if not flow.is_blueprint and not (task.endpoint_title or task.endpoint_id):
        issues.append(
            source.issue(path, f"{name} needs 'endpoint_title' (a new endpoint) or 'endpoint_id' (an existing one)")
        )
    return issues


def _replica_issues(flow: Flow, task: DeployTask, path: tuple, source: Source) -> list[FlowIssue]:
    """``min_replica <= max_replica``, and both are required outside a blueprint."""
    name = f"task '{task.title}'"
    issues = []
    lo, hi = task.min_replica, task.max_replica
    if lo is not None and hi is not None and lo > hi:
        issues.append(
            source.issue((*path, "min_replica"), f"{name}: min_replica ({lo}) is greater than max_replica ({hi})")
        )
    for key in ("min_replica", "max_replica"):
        if not flow.is_blueprint and getattr(task, key) is None:
            issues.append(source.issue(path, f"{name} needs '{key}'"))
    return issues
