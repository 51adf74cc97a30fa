"""Find the flow files under a folder and build their DAGs; the code behind the loader files of ``dags/``.

A broken flow must never take the others down: Airflow drops every DAG of a file that
raises, and many flows share one loader file. So each flow is compiled on its own, and its
mistakes are reported as an import error of the *YAML file* (shown in the UI with file,
line and message) while the loader file itself imports cleanly.

A loader named ``<name>_<k>_of_<n>.py`` compiles one share of the flows: see :mod:`flow_airflow.shares`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from flow_airflow.shares import SHARE_NAME, check_siblings, claimed_elsewhere, in_share, record, share_files, share_of
from flow_airflow.spec.errors import FlowError, FlowIssue

log = logging.getLogger(__name__)
SUFFIXES = (".yaml", ".yml")
#: Seconds one flow file may take to compile ([flow_airflow] file_budget_seconds), per BUDGET_UNIT
#: of its size (at least once): the work is linear in the size, a 5,000-task flow (125 KB) gets 10 s.
FILE_BUDGET = 5.0
BUDGET_UNIT = 64 * 1024
#: What the loader leaves of Airflow's import timeout for Airflow's own work after it.
MARGIN = 0.1


IGNORE_FILE = ".airflowignore"


@dataclass(frozen=True)
class Repeat:
    """A folder link the walk did not follow: it leads to ``target``, a folder the walk has been
    through already (a folder above the link: a loop), or will go through by another path."""

    link: Path
    target: Path

    def issue(self) -> FlowIssue:
        """What is wrong with the link, as a mistake of its path (no line: it is no text file)."""
        above = self.link.parent.resolve()
        what = ("a link to a folder above it" if above == self.target or self.target in above.parents
                else "a second way into a folder the walk goes through anyway")
        return FlowIssue(str(self.link), f"{what} ({self.target}): not followed; Airflow's own walk of the "
                                         "dags folder stops on it ('Detected recursive loop'), list it in "
                                         f"{IGNORE_FILE} (flow-airflow import does so for a project's links)")


def walk(folder: Path) -> tuple[list[Path], list[Repeat]]:
    """Every .yaml/.yml file under ``folder`` that ``.airflowignore`` does not exclude, and the folder
    links left out because they lead to a folder seen before.

    Airflow's own walk of the dags folder (``find_path_from_directory``, with its ignore rules):
    symlinked folders are followed, ignore files honoured, in the syntax ``[core]
    dag_ignore_file_syntax`` says. Where Airflow raises on a folder reached twice (a link loop),
    this walk leaves the link out and names it: one such link never costs the other flows.
    """
    from airflow._shared.module_loading.file_discovery import _GlobIgnoreRule, _RegexpIgnoreRule
    from airflow.configuration import conf

    syntax = conf.get_mandatory_value("core", "DAG_IGNORE_FILE_SYNTAX", fallback="glob")
    rule_type: Any = _RegexpIgnoreRule if syntax == "regexp" else _GlobIgnoreRule
    patterns_by_dir: dict[Path, list[Any]] = {Path(os.path.realpath(folder)): []}
    files: list[Path] = []
    repeats: list[Repeat] = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        patterns = patterns_by_dir.get(Path(os.path.realpath(root)), [])
        ignore_file = Path(root) / IGNORE_FILE
        if ignore_file.is_file():
            with open(ignore_file) as f:  # as Airflow reads it
                lines = [re.sub(r"\s*#.*", "", line) for line in f.read().split("\n")]
            patterns += [p for p in (rule_type.compile(line, Path(folder), ignore_file) for line in lines if line)
                         if p is not None]
        kept = []
        for name in sorted(dirs):
            path = Path(root) / name
            if rule_type.match(path, patterns):
                continue
            target = Path(os.path.realpath(path))
            if target in patterns_by_dir:
                repeats.append(Repeat(path, target))
                continue
            patterns_by_dir[target] = patterns.copy()
            kept.append(name)
        dirs[:] = kept
        files += [Path(root) / name for name in names
                  if name.endswith(SUFFIXES) and not rule_type.match(Path(root) / name, patterns)]
    return sorted(files), repeats


def flow_files(folder: Path) -> list[Path]:
    """Every .yaml/.yml file under ``folder`` that ``.airflowignore`` does not exclude (:func:`walk`)."""
    return walk(folder)[0]


def flow_text(file: Path) -> str | None:
    """The text of ``file`` when it may be a flow, None when it is other YAML.

    Raises :class:`FlowError` for a file that looks like a flow but cannot be read: too large,
    or not UTF-8 (Latin-1, UTF-16 without a byte order mark ...). Such a file is never skipped
    silently: it would vanish from Airflow without a word.
    """
    from flow_airflow.spec.source import may_be_flow, read_text

    try:
        text = read_text(file)
    except FlowError:
        try:
            with open(file, "rb") as f:
                head = f.read(1 << 16)
        except OSError:
            raise FlowError.single(file, "cannot read the file") from None
        if may_be_flow(head.replace(b"\0", b"").decode("utf-8", "replace")):
            raise
        return None
    return text if may_be_flow(text) else None


def compile_file(file: Path, only: str | None = None) -> Any:
    """The flow in ``file`` compiled (:class:`~flow_airflow.plan.cache.Compiled`: its plan and the setups
    of its DAG's operators); None when the file is no flow (or, with ``only``, another flow's).

    Raises :class:`FlowError` with the flow's mistakes. Shared by the loader and ``validate``,
    so that both see the same files the same way.
    """
    from flow_airflow.plan import cache
    from flow_airflow.render.setups import setups_of
    from flow_airflow.spec.source import is_flow_document

    text = flow_text(file)
    if text is None:
        return None
    try:
        found = cache.compiled(file, text, only, render=setups_of)
    except FlowError:
        if not is_flow_document(text):
            return None  # YAML with a 'tasks' key somewhere, but no flow
        raise
    if isinstance(found, str) or (only and found.plan.dag_id != only):
        return None  # another flow than the one a worker is parsing for
    return found


class OverBudget(BaseException):
    """A flow file took longer than its time budget (a BaseException: no ``except Exception`` swallows it)."""


def load_dags(dag_file: str | Path, files: list[Path] | None = None) -> dict[str, Any]:
    """One DAG per valid flow file in the folder of ``dag_file`` (the loader) and below, of the
    loader's share (:func:`share_of`) unless ``files`` says which.

    Each file is compiled within its own time budget (:func:`budget`) and all or nothing: a
    flow that fails part-way leaves no DAG behind, only its import error.
    """
    from airflow.sdk import get_parsing_context

    only = get_parsing_context().dag_id  # set when a worker parses the file to run one task
    if only:
        _spare_the_collector()

    dag_file = Path(dag_file).resolve()
    share = (1, 1)
    if files is None:
        files, share = _own_files(dag_file)
    shared = share[1] > 1 and not only  # the other shares' DAG ids count (flow_airflow.shares)
    claims = claimed_elsewhere(dag_file, share) if shared else {}
    dags, sources = _compile_all(dag_file, files, only, claims)
    if shared:
        record(dag_file, share, {dag_id: _relative(file, dag_file.parent) for dag_id, file in sources.items()})
    if dags and os.environ.get("_AIRFLOW_PROCESS_CONTEXT") == "client":
        _spare_the_collector()  # a parsing process: the DAGs live until it ends, after Airflow serializes them
    return dags


def _compile_all(dag_file: Path, files: list[Path], only: str | None,
                 claims: dict[str, str]) -> tuple[dict[str, Any], dict[str, Path]]:
    """The DAGs of ``files`` (``flow__<dag id>`` -> DAG), and each DAG id's file; mistakes reported.

    ``claims``: DAG id -> flow file (relative path) of another share that has it."""
    dags: dict[str, Any] = {}
    sources: dict[str, Path] = {}
    per_file = _file_budget()
    with _deadline() as left:
        for file in files:
            seconds = min(per_file * max(1.0, _size(file) / BUDGET_UNIT), left())
            try:
                if seconds <= 0:
                    raise OverBudget("not compiled: the loader had used the time Airflow gives it "
                                     "([core] dagbag_import_timeout) on the flows before this one")
                with budget(seconds):
                    dag = _compile_and_build(file, only, sources, claims, dag_file.parent)
            except FlowError as e:
                report(dag_file, e)
                continue
            except OverBudget as e:
                report(dag_file, FlowError.single(file, str(e) or (
                    f"not compiled: it took more than {seconds:.1f} s, its budget ([flow_airflow] "
                    "file_budget_seconds, or what was left of Airflow's [core] dagbag_import_timeout)")))
                continue
            except Exception as e:  # our bug, not the user's: still, the other flows must load
                log.exception("flow-airflow could not compile %s", file)
                report(dag_file, FlowError([FlowIssue(str(file), f"flow-airflow failed to compile this flow: {e!r}")]))
                continue
            if dag is not None:
                sources[dag.dag_id] = file
                dags[f"flow__{dag.dag_id}"] = dag
    return dags, sources


def _own_files(dag_file: Path) -> tuple[list[Path], tuple[int, int]]:
    """The flow files of the loader ``dag_file``'s share (every flow file of its folder for ``flows.py``).

    The flows of a share whose loader file is missing are import errors of their YAML files,
    reported by the lowest share present: they never vanish without a word."""
    try:
        share = share_of(dag_file)
        missing = check_siblings(dag_file, share)
    except FlowError as e:
        report(dag_file, e)
        return [], (1, 1)
    folder = dag_file.parent
    files, repeats = walk(folder)
    for repeat in repeats:
        if in_share(_relative(repeat.link, folder), share):  # said once, by the share the link's path is in
            log.warning("%s", repeat.issue())
            report(dag_file, FlowError([repeat.issue()]))
    for k in missing:
        lost = share_files(folder, share[1], SHARE_NAME.fullmatch(dag_file.stem)["name"])[k - 1]
        for file in files:
            if in_share(_relative(file, folder), (k, share[1])):
                report(dag_file, FlowError.single(file, f"not loaded: its loader file {lost.name} is missing"))
    return [f for f in files if in_share(_relative(f, folder), share)], share


def _relative(file: Path, folder: Path) -> str:
    return Path(os.path.relpath(file, folder)).as_posix()


def _compile_and_build(file: Path, only: str | None, sources: dict[str, Path], claims: dict[str, str],
                       folder: Path) -> Any:
    """The DAG of ``file``, or None; a build that fails registers nothing (Airflow's auto-register).

    A DAG id that a file before it has (in this share, or ``claims``: a file of another share,
    relative to ``folder``, whose path sorts first) is an error of this file."""
    found = compile_file(file, only)
    if found is None:
        return None
    plan = found.plan
    first = sources.get(plan.dag_id)
    other = claims.get(plan.dag_id)
    if first is None and other is not None and other < _relative(file, folder):
        first = folder / other
    if first is not None:
        raise FlowError.single(
            file,
            f"the flow title '{plan.flow.spec.name}' gives the DAG id '{plan.dag_id}', already used by {first}",
            1,
            1,
        )
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    from flow_airflow.render.dag import build_dag

    registered = set(DagContext.autoregistered_dags)
    try:
        return build_dag(plan, found.rendered)
    except BaseException:
        # A DAG leaving its ``with`` block registers itself, even on an exception: take it back.
        DagContext.autoregistered_dags.difference_update(set(DagContext.autoregistered_dags) - registered)
        raise


def _size(file: Path) -> int:
    try:
        return file.stat().st_size
    except OSError:
        return 0


def _file_budget() -> float:
    from flow_airflow import settings

    return settings.value("file_budget_seconds")


@contextlib.contextmanager
def _deadline() -> Iterator[Any]:
    """``left()``: seconds left of the import timeout Airflow runs the loader under (its alarm), or of
    ``[core] dagbag_import_timeout`` when no alarm is set; infinite when neither."""
    armed = signal.getitimer(signal.ITIMER_REAL)[0] if hasattr(signal, "getitimer") else 0.0
    if not armed:
        from airflow.configuration import conf

        armed = conf.getfloat("core", "dagbag_import_timeout", fallback=30.0)
    end = time.monotonic() + armed * (1 - MARGIN) if armed > 0 else float("inf")
    yield lambda: end - time.monotonic()


@contextlib.contextmanager
def budget(seconds: float) -> Iterator[None]:
    """Raise :class:`OverBudget` in the code run inside when it takes more than ``seconds``.

    A real-time alarm (SIGALRM), the mechanism of Airflow's own import timeout, which it
    stands in front of: Airflow's alarm is put back, less the time spent, when the block ends.
    The alarm interrupts Python code; the C parts (the YAML parser, regular expressions) are
    bounded in size and linear (see spec/source.py), so they end soon after. Outside the main
    thread, where signals cannot be used, the code runs without an alarm.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    armed = [True]

    def on_alarm(signum: int, frame: Any) -> None:
        if armed[0]:
            raise OverBudget

    handler = signal.signal(signal.SIGALRM, on_alarm)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds, 0.5)  # again every 0.5 s, should one be swallowed
    started = time.monotonic()
    try:
        yield
    finally:
        try:
            armed[0] = False  # an alarm from here on does nothing
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, handler)
            if outer:
                signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.001))


def _spare_the_collector() -> None:
    """In a process that parses once (a task process, or a parsing process of the DAG processor), keep
    what is loaded so far out of full garbage collections.

    A task process holds some 200,000 objects of Airflow's modules by the time it parses the
    loader. Importing the compiler adds enough objects for Python to run a full collection over
    all of them, about 150 ms of CPU in every task instance, for objects that live as long as
    the process anyway. ``gc.freeze()`` moves them to the permanent generation, as Airflow's DAG
    processor does before it forks its parsing processes. In a parsing process (Airflow marks it
    ``_AIRFLOW_PROCESS_CONTEXT=client``) the built DAGs, some 100,000 objects for 100 tasks, stay
    until the process ends: freezing them spares Airflow's serialization of them its collections.
    Never in a long-lived process that parses again (tests, ``flow-airflow run``): there frozen
    DAGs would never be freed.
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
    path = Path(os.path.abspath(error.file))  # not resolve(): a flow in a symlinked folder keeps its place
    file_path = str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)
    first = error.issues[0] if error.issues else None
    result.errors.append(
        DagImportError(
            file_path=file_path,
            message="\n".join(str(replace(issue, file=file_path)) for issue in error.summary),
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
