"""Compiled flow plans kept on disk, so that parsing an unchanged flow file again skips compiling it.

Airflow parses the loader over and over: the DAG processor every ``min_file_process_interval``
(30 s by default), and every task instance once more before it runs. For a flow file that did
not change, reading the YAML, validating it and planning its routes gives the same plan each
time; that is most of a parse. The plan is kept in ``cache_folder`` (``$AIRFLOW_HOME/flow_cache``),
one file per flow file, under a key made of the flow's text and place, flow-airflow's code
(file sizes and times), the Python and pydantic versions and the ``[flow_airflow]`` settings.
Any other key, or an entry that cannot be read, and the flow is compiled anew (and stored).
The DAG is always built from the plan again: only the plan is kept, and beside it what the loader
rendered of it (what the DAG's operators receive, made once; opaque here: :class:`Compiled`).
Entries are pickles: the folder must be as trusted as the dags folder (it is under
``$AIRFLOW_HOME`` by default).
``cache_folder`` set to an empty value turns the cache off.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import pickle
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flow_airflow import settings
from flow_airflow.plan.flow_plan import FlowPlan, plan_flow
from flow_airflow.spec.load import load_flow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Compiled:
    """A flow file compiled: its plan, and what the loader rendered of it to keep beside it (None: nothing)."""

    plan: FlowPlan
    rendered: Any = None  # the loader's: the setups of the DAG's operators (flow_airflow.render.setups.Setups)


def folder() -> Path | None:
    """``cache_folder``: ``$AIRFLOW_HOME/flow_cache`` unless set; None (no cache) when set empty."""
    raw = settings.value("cache_folder")
    raw = str(settings.airflow_home() / "flow_cache") if raw is None else raw
    return Path(raw).expanduser() if raw.strip() else None


def _code() -> str:
    """flow-airflow's code as imported by this process: a change to any module is another key."""
    import pydantic

    package = Path(__file__).resolve().parent.parent
    parts = [sys.version, pydantic.VERSION]
    for path in sorted(package.rglob("*.py")):
        with contextlib.suppress(OSError):
            stat = path.stat()
            parts.append(f"{path.relative_to(package)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


_CODE = _code()


def _settings() -> dict[str, str]:
    """The ``[flow_airflow]`` settings: of airflow.cfg, and of the environment (where Airflow has none)."""
    from airflow.configuration import conf

    options = {k: str(v) for k, v in (conf.getsection(settings.SECTION) or {}).items()}
    prefix = f"AIRFLOW__{settings.SECTION.upper()}__"
    options.update({k.removeprefix(prefix).lower(): v for k, v in os.environ.items() if k.startswith(prefix)})
    return options


def _key(file: Path, text: str) -> str:
    parts = [_CODE, str(file.resolve()), hashlib.sha256(text.encode()).hexdigest(),
             json.dumps(_settings(), sort_keys=True)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _library_read(plan: FlowPlan) -> tuple | None:
    """The places AI Library components were looked for in, and what was found there (None: no task names one; a
    task whose component was not found is stale too once it appears)."""
    flow = plan.flow
    if flow.library_signature is None:
        return None
    from flow_airflow.spec import library

    return tuple(library.places(flow.project_dir, settings.library_folders())), flow.library_signature


def _library_changed(read: tuple) -> bool:
    """Whether a ``library.yaml`` was added, changed or removed where a kept plan's components were found."""
    from flow_airflow.spec import library

    where, signature = read
    return library.signature_of(tuple(where)) != signature


def _entry(file: Path) -> Path | None:
    root = folder()
    if root is None:
        return None
    return root / f"{hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:32]}.pickle"


def lookup(file: Path, text: str, dag_id: str | None = None) -> tuple[str, Compiled | None] | None:
    """``(dag id, compiled)`` of the flow in ``file`` when its plan is kept, else None.

    With ``dag_id`` given, the plan of a flow of another DAG id is not read: ``(its id, None)``.
    """
    entry = _entry(file)
    if entry is None:
        return None
    try:
        with open(entry, "rb") as f:
            head = pickle.load(f)
            if head.get("key") != _key(file, text):
                return None
            if head.get("library") and _library_changed(head["library"]):
                return None
            if dag_id is not None and head["dag_id"] != dag_id:
                return head["dag_id"], None
            # Unpickling makes many objects at once, which sets off the garbage collector over
            # everything the parsing process holds, for nothing: none of them is garbage yet.
            gc.disable()
            try:
                kept = pickle.load(f)
            finally:
                gc.enable()
    except Exception:  # missing, half-written, from another version: compile anew
        return None
    return (kept.plan.dag_id, kept) if isinstance(kept, Compiled) else None


def store(file: Path, text: str, compiled: Compiled) -> None:
    """Keep ``compiled`` for the next parse; quietly not, when the folder cannot be written."""
    entry = _entry(file)
    if entry is None:
        return
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-", suffix=".pickle")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump({"key": _key(file, text), "dag_id": compiled.plan.dag_id,
                             "library": _library_read(compiled.plan)}, f,
                            protocol=pickle.HIGHEST_PROTOCOL)
                pickle.dump(compiled, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, entry)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except Exception as e:  # a read-only folder, say: the next parse compiles again
        log.debug("flow-airflow could not keep the plan of %s in %s: %r", file, entry, e)


def compiled(file: Path, text: str, dag_id: str | None = None,
             render: Callable[[FlowPlan], Any] | None = None) -> Compiled | str:
    """The flow ``text`` of ``file`` compiled: kept, or compiled now and kept.

    Raises :class:`~flow_airflow.spec.errors.FlowError` for a broken flow (never kept). With
    ``dag_id`` given and a kept plan of another DAG id: that id, as a string (the plan unread).
    ``render``: what to make of a plan and keep beside it (the loader's:
    :func:`flow_airflow.render.setups.setups_of`), made now when not kept yet.
    """
    found = lookup(file, text, dag_id)
    if found is not None and found[1] is None:
        return found[0]  # another flow's
    kept = found[1] if found is not None else None
    if kept is not None and (render is None or kept.rendered is not None):
        return kept
    plan = kept.plan if kept is not None else plan_flow(load_flow(file, text, settings.library_folders()))
    made = Compiled(plan, render(plan) if render is not None else None)
    store(file, text, made)
    return made


def plan_of(file: Path, text: str, dag_id: str | None = None) -> FlowPlan | str:
    """The plan of the flow ``text`` of ``file``, as :func:`compiled` gives it (a string: another flow's DAG id)."""
    found = compiled(file, text, dag_id)
    return found if isinstance(found, str) else found.plan
