"""Run overhead: whole runs of small flows on a real scheduler, against the hand-written DAGs.

One ``airflow standalone`` (LocalExecutor, SQLite: the e2e harness) holds the loader with a
9-route flow and a 30-route flow, and a hand-written DAG file for each: the same tasks, mapped
over the same routes, running the same command. After a warm-up run of each, the pairs are
run in turn, one run at a time, ``reps`` times; a run's wall time is from being queued to its
end, by the scheduler's clock. The CPU time of all Airflow processes during each run is
recorded too: it is steadier than wall time on a busy machine.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from bench.env import server_env
from bench.report import Row
from bench.server import LOADER, AirflowServer, ServerOptions, median, run_seconds, wait_for_run
from bench.workloads import Workload, grid_nine, grid_three


def tree_cpu_seconds(pgid: int) -> float:
    """CPU time of every live process in the process group, with that of the children they reaped."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            # after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
            if int(fields[2]) == pgid:
                total += sum(int(f) for f in fields[11:15])
    return total / ticks


def install(server: Any, workloads: list[Workload]) -> dict[str, str]:
    """The loader with the flows, and the hand-written files; {flow DAG id: hand-written DAG id}."""
    server.add_file("flows.py", LOADER)
    pairs = {}
    for w in workloads:
        w.write_flow(server.dags_folder / "flows" / w.dag_id)
        hand_id = f"hand_{w.dag_id}"
        w.write_hand(server.root / "staging" / f"{hand_id}.py", hand_id, server.root / "projects" / hand_id)
        server.add_file(f"{hand_id}.py", src=server.root / "staging" / f"{hand_id}.py")
        pairs[w.dag_id] = hand_id
    server.touch("flows.py")
    for flow_id, hand_id in pairs.items():
        server.wait_for_dag(flow_id, timeout=180)
        server.wait_for_dag(hand_id, timeout=180)
    return pairs


def one_run(server: Any, dag_id: str, expected_tis: int, timeout: float) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the Airflow processes) of one successful run of ``dag_id``."""
    assert server.process is not None
    cpu = tree_cpu_seconds(server.process.pid)
    run_id = server.trigger(dag_id)
    run = wait_for_run(server, dag_id, run_id, timeout, poll=0.2)
    cpu = tree_cpu_seconds(server.process.pid) - cpu
    if run["state"] != "success":
        raise RuntimeError(f"{dag_id} run {run_id} ended {run['state']}\n{server.log_tail(60)}")
    tis = server.task_instances(dag_id, run_id)
    # experiments only: a flow's run also has its flow-outcome task (timed with the run, not counted here)
    done = [t for t in tis if t["state"] == "success" and t["task_id"] != "flow-outcome"]
    if len(done) != expected_tis:
        raise RuntimeError(f"{dag_id}: {len(done)} successful task instances, expected {expected_tis}")
    return run_seconds(run), cpu


def run(root: Path, reps: int, parallelism: int | None = None, timeout: float = 600) -> list[Row]:
    named = [("9-route flow", grid_nine()), ("30-route flow", grid_three())]
    workloads = [w for _, w in named]
    env = server_env()
    if parallelism:
        env["AIRFLOW__CORE__PARALLELISM"] = str(parallelism)
    server = AirflowServer(root, ServerOptions(env=env))
    server.start()
    try:
        pairs = install(server, workloads)
        tis = {w.dag_id: w.total_routes() for w in workloads}
        for flow_id, hand_id in pairs.items():  # warm-up: first runs pay for one-off work (DB, caches)
            one_run(server, flow_id, tis[flow_id], timeout)
            one_run(server, hand_id, tis[flow_id], timeout)
        samples: dict[str, list[tuple[float, float]]] = {d: [] for pair in pairs.items() for d in pair}
        for rep in range(reps):
            for flow_id, hand_id in pairs.items():
                order = [flow_id, hand_id] if rep % 2 == 0 else [hand_id, flow_id]
                for dag_id in order:
                    samples[dag_id].append(one_run(server, dag_id, tis[flow_id], timeout))
        parse = {d["dag_id"]: d.get("last_parse_duration") for d in server.list_dags()}
    finally:
        server.stop()
    rows = []
    for name, w in named:
        flow, hand = samples[w.dag_id], samples[pairs[w.dag_id]]
        shape = ", ".join(f"{t.title} {n}" for t, n in zip(w.tasks, w.route_counts().values(), strict=True))
        rows.append(Row(
            "run", f"{name} ({shape}: {w.total_routes()} task instances), median of {reps}",
            median([s for s, _ in flow]), median([s for s, _ in hand]), target=1.3,
            note=(f"CPU time of all Airflow processes per run {median([c for _, c in flow]):.1f} s vs "
                  f"{median([c for _, c in hand]):.1f} s; the DAG processor's last parse of the loader took "
                  f"{_ms(parse.get(w.dag_id))}, of the hand-written file {_ms(parse.get(pairs[w.dag_id]))}"),
            samples={"flow": [s for s, _ in flow], "hand": [s for s, _ in hand]}))
    return rows


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


if __name__ == "__main__":  # a quick look: python -m bench.run
    import tempfile

    from bench.report import table

    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        started = time.monotonic()
        print(table(run(Path(tmp), 2)))
        print(f"{time.monotonic() - started:.0f} s")
