"""Find the flow files under a folder and build their DAGs; the code behind ``dags/flows.py``.

A broken flow must never take the others down: Airflow drops every DAG of a file that
raises, and all flows share one loader file. So each flow is compiled on its own, and its
mistakes are reported as an import error of the *YAML file* (shown in the UI with file,
line and message) while the loader file itself imports cleanly.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from flow_airflow.spec.errors import FlowError, FlowIssue

log = logging.getLogger(__name__)
SUFFIXES = (".yaml", ".yml")


def flow_files(folder: Path) -> list[Path]:
    """Every .yaml/.yml file under ``folder`` that ``.airflowignore`` does not exclude."""
    from airflow._shared.module_loading.file_discovery import find_path_from_directory
    from airflow.configuration import conf

    syntax = conf.get_mandatory_value("core", "DAG_IGNORE_FILE_SYNTAX", fallback="glob")
    return sorted(
        Path(p) for p in find_path_from_directory(str(folder), ".airflowignore", syntax) if p.endswith(SUFFIXES)
    )


def load_dags(dag_file: str | Path, files: list[Path] | None = None) -> dict[str, Any]:
    """One DAG per valid flow file in the folder of ``dag_file`` (the loader) and below."""
    from airflow.sdk import get_parsing_context

    only = get_parsing_context().dag_id  # set when a worker parses the file to run one task
    if only:
        _spare_the_collector()

    from flow_airflow.build.dag import build_dag
    from flow_airflow.plan import cache
    from flow_airflow.spec.load import looks_like_flow

    dag_file = Path(dag_file).resolve()
    dags: dict[str, Any] = {}
    sources: dict[str, Path] = {}
    for file in files if files is not None else flow_files(dag_file.parent):
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if not looks_like_flow(text):
            continue
        try:
            plan = cache.plan_of(file, text, only)
            if isinstance(plan, str) or (only and plan.dag_id != only):
                continue  # another flow than the one a worker is parsing for
            if plan.dag_id in sources:
                raise FlowError.single(
                    file,
                    f"the flow title '{plan.flow.spec.name}' gives the DAG id "
                    f"'{plan.dag_id}', already used by {sources[plan.dag_id]}",
                    1,
                    1,
                )
            dag = build_dag(plan)
        except FlowError as e:
            report(dag_file, e)
            continue
        except Exception as e:  # our bug, not the user's: still, the other flows must load
            log.exception("flow-airflow could not compile %s", file)
            report(dag_file, FlowError([FlowIssue(str(file), f"flow-airflow failed to compile this flow: {e!r}")]))
            continue
        sources[plan.dag_id] = file
        dags[f"flow__{plan.dag_id}"] = dag
    return dags


def _spare_the_collector() -> None:
    """In a task process, keep what is loaded so far (Airflow itself) out of full garbage collections.

    A task process holds some 200,000 objects of Airflow's modules by the time it parses the
    loader. Importing the compiler adds enough objects for Python to run a full collection over
    all of them, about 150 ms of CPU in every task instance, for objects that live as long as
    the process anyway. ``gc.freeze()`` moves them to the permanent generation, as Airflow's DAG
    processor does before it forks its parsing processes.
    """
    import gc

    gc.freeze()


def report(dag_file: Path, error: FlowError) -> None:
    """Make a flow's mistakes an import error of its YAML file, where the Airflow UI shows them.

    Airflow records import errors per file only for files that raise, and the loader must
    not raise. Its Python importer fills a ``DagImportResult`` while it runs the loader and
    keys errors by file, relative to the bundle: adding ours to it shows them against the
    YAML file itself. Elsewhere (a plain import, another Airflow version) they are logged.
    """
    result = _current_import_result()
    if result is None:
        log.error("%s", error)
        return
    from airflow.dag_processing.importers.base import DagImportError

    relative = Path(result.file_path)  # the loader, relative to the bundle's root
    root = Path(*dag_file.parts[: -len(relative.parts)]) if not relative.is_absolute() else None
    path = Path(error.file).resolve()
    file_path = str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)
    first = error.issues[0] if error.issues else None
    result.errors.append(
        DagImportError(
            file_path=file_path,
            message="\n".join(str(replace(issue, file=file_path)) for issue in error.issues),
            error_type="flow",
            line_number=first.line if first else None,
            column_number=first.column if first else None,
        )
    )


def _current_import_result() -> Any:
    """The ``DagImportResult`` of the Airflow importer running the loader, if one is."""
    try:
        from airflow.dag_processing.importers.base import DagImportResult
    except ImportError:
        return None
    frame = sys._getframe(1)
    while frame is not None:
        if isinstance(candidate := frame.f_locals.get("result"), DagImportResult):
            return candidate
        frame = frame.f_back
    return None
