"""What ``flow-airflow run`` tells its user: a line per experiment as it ends, then a summary.

Airflow's own output (migrations, bundle loading, every task's log) goes to a log file unless
``--verbose``; the lines here go to the terminal. Progress comes from an Airflow listener
(``on_task_instance_success`` / ``on_task_instance_failed``), which ``dag.test()`` calls in
this process as each task instance ends.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from airflow.listeners import hookimpl

from flow_airflow.common.records import flatten
from flow_airflow.run_experiments import shown_label

TAGS_SHOWN = 3  # tags on a progress line; the summary has them all
VALUE_WIDTH = 30


@contextlib.contextmanager
def airflow_output_to(log_file: Path | None) -> Iterator[tuple[IO[str], IO[str]]]:
    """Send everything written to file descriptors 1 and 2 to ``log_file`` while inside.

    Yields the terminal's (stdout, stderr) for the lines meant for the user. With no
    ``log_file`` (``--verbose``) nothing is redirected. Descriptors, not ``sys.stdout``, are
    redirected, so that Airflow's handlers and the experiments' subprocesses follow too.
    """
    if log_file is None:
        yield sys.stdout, sys.stderr
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    out = io.TextIOWrapper(os.fdopen(os.dup(saved[0]), "wb"), line_buffering=True)
    err = io.TextIOWrapper(os.fdopen(os.dup(saved[1]), "wb"), line_buffering=True)
    with open(log_file, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield out, err
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            out.close()
            err.close()


def short_tags(tags: dict[str, Any], limit: int = TAGS_SHOWN) -> str:
    """``accuracy=0.91, loss=0.2`` for the first ``limit`` tags, long values cut."""
    shown = [f"{k}={_cut(str(v))}" for k, v in list(tags.items())[:limit]]
    more = len(tags) - limit
    return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def _cut(text: str) -> str:
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


@dataclass
class Progress:
    """An Airflow listener printing one line per experiment as it ends: ``[3/30] Train  lr=0.1  success  2.1s``.

    :param titles: run task id (``<task slug>.run``) -> flow task title.
    :param planned: flow task title -> its route count when known at compile time (``None``: at run time).
    :param out: where progress lines go; ``err``: where failures' messages go.
    """

    titles: dict[str, str]
    planned: dict[str, int | None]
    out: IO[str]
    err: IO[str]
    done: int = 0
    width: int = field(init=False)
    started: dict[tuple[str, int], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.width = max((len(t) for t in self.titles.values()), default=0)

    @property
    def total(self) -> str:
        known = sum(n for n in self.planned.values() if n is not None)
        return f"{known}+" if any(n is None for n in self.planned.values()) else str(known)

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        self.started[(task_instance.task_id, task_instance.map_index)] = time.monotonic()

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self._ended(task_instance, "success", None)

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        self._ended(task_instance, "skipped", None)

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        self._ended(task_instance, "failed", error)

    def _ended(self, ti: Any, state: str, error: Any) -> None:
        group, _, step = ti.task_id.rpartition(".")
        title = self.titles.get(ti.task_id)
        if title is None:  # a routes or condition step: now the task's route count is known
            if step in ("routes", "condition") and state == "success":
                self._learn(ti, group)
            return
        seconds = time.monotonic() - self.started.get((ti.task_id, ti.map_index), time.monotonic())
        value = _own_result(ti) if state != "failed" else None
        records = flatten(value) or [{}]  # none: the line all the same, without its tags
        for record in records:
            self.done += 1
            label = record.get("label") or shown_label(getattr(ti, "rendered_map_index", None), ti.map_index,
                                                       bool(record))
            tags = short_tags(record.get("tags", {}))
            line = f"[{self.done}/{self.total}] {title:<{self.width}}  {label}  {state}  {seconds:.1f}s"
            print(line + (f"  {tags}" if tags else ""), file=self.out)
        if error is not None:
            print(f"  {title} [{getattr(ti, 'rendered_map_index', None) or ti.map_index}]: {error}", file=self.err)

    def _learn(self, ti: Any, group: str) -> None:
        title = next((t for tid, t in self.titles.items() if tid.rpartition(".")[0] == group), None)
        if title is None or self.planned.get(title) is not None:
            return
        routes = _own_result(ti)
        if isinstance(routes, list):
            self.planned[title] = len(routes)


def _own_result(ti: Any) -> Any:
    """The task instance's own return value (XCom), or None."""
    try:
        return ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index)
    except Exception:  # the line is still worth printing without its tags
        return None


def summary(result: Any, seconds: float, log_file: Path | None) -> list[str]:
    """The closing lines: the run's state and counts, each experiment with all its tags, the log's path."""
    states: dict[str, int] = {}
    for e in result.experiments:
        states[e.state] = states.get(e.state, 0) + 1
    reused = sum(e.reused is not None for e in result.experiments)
    counts = ", ".join([f"{n} {state}" for state, n in sorted(states.items())]
                       + ([f"{reused} of them reused"] if reused else []))
    lines = [f"DAG '{result.dag_id}', run {result.run_id}: {result.state} "
             f"({len(result.experiments)} experiments: {counts or 'none'}) in {seconds:.1f}s"]
    for e in result.experiments:
        tags = ", ".join(f"{k}={v}" for k, v in e.tags.items())
        state = f"{e.state} (reused: {e.reused['run_id']} #{e.reused['index']})" if e.reused else e.state
        lines.append(f"  {e.task} #{e.index} [{e.label or '-'}] {state}" + (f"  tags: {tags}" if tags else ""))
    if log_file is not None:
        lines.append(f"Airflow's log of this run: {log_file}")
    return lines
