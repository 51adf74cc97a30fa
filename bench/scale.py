"""Scale: one task with a grid beyond ``max_map_length`` (1024 by default), on one machine.

Two ways past the limit, both measured on one ``airflow standalone`` (LocalExecutor, SQLite):

- **batched** (flow-airflow's ``[flow_airflow] batch_routes``): ``batch`` routes per task
  instance, so a 10,000-route grid is 100 task instances of 100 routes; the UI shows each
  route's record (XCom) and log section;
- **mapped**: one task instance per route, with ``[core] max_map_length`` raised to the grid
  size; run against the hand-written DAG of the same grid (a static list, which Airflow does not
  hold to ``max_map_length``), so that the per-route cost is a ratio.

During every run a probe calls the REST API and the UI's grid endpoint every ``PROBE_SECONDS``
and records their latency, against the same calls on the idle server before the first run.
The scheduler's own CPU time (its main process) is recorded per task instance.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.env import server_env
from bench.report import Row
from bench.run import tree_cpu_seconds
from bench.server import LOADER, AirflowServer, ServerOptions, median, run_seconds, wait_for_run
from bench.workloads import single_grid

PROBE_SECONDS = 5.0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


@dataclass
class Probe:
    """Calls a few endpoints in a loop on a thread of its own, recording (endpoint, seconds)."""

    server: Any
    dag_id: str
    run_id: str | None = None
    samples: list[tuple[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def calls(self) -> list[tuple[str, str, dict[str, Any]]]:
        api, ui = "/api/v2", "/ui"
        calls = [("health", f"{api}/monitor/health", {}), ("dags list", f"{api}/dags", {"limit": 50})]
        if self.run_id:
            calls += [
                ("run", f"{api}/dags/{self.dag_id}/dagRuns/{self.run_id}", {}),
                ("task instances page", f"{api}/dags/{self.dag_id}/dagRuns/{self.run_id}/taskInstances",
                 {"limit": 50}),
                ("UI grid", f"{ui}/grid/ti_summaries/{self.dag_id}", {"run_ids": self.run_id}),
            ]
        return calls

    def once(self, client: httpx.Client) -> None:
        for name, path, params in self.calls():
            start = time.perf_counter()
            try:
                resp = client.get(path, params=params)
                resp.read()
                if resp.status_code != 200:
                    self.errors.append(f"{name}: HTTP {resp.status_code}")
            except httpx.HTTPError as e:
                self.errors.append(f"{name}: {e!r}")
            self.samples.append((name, time.perf_counter() - start))

    def start(self) -> None:
        token = self.server.token_for(self.server.options.users[0].username)
        client = httpx.Client(base_url=self.server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=120)

        def loop() -> None:
            with client:
                while not self._stop.is_set():
                    started = time.monotonic()
                    self.once(client)
                    self._stop.wait(max(0.0, PROBE_SECONDS - (time.monotonic() - started)))

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=180)

    def latencies(self, name: str | None = None) -> list[float]:
        return [s for n, s in self.samples if name is None or n == name]


def scheduler_cpu_seconds(pgid: int) -> float:
    """CPU time of the scheduler's main process (its executor workers and tasks not included)."""
    ticks = os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if argv[1:3] == [b"scheduler", b""] or argv[-2:] == [b"scheduler", b""] or argv[1:2] == [b"scheduler"]:
                return (int(fields[11]) + int(fields[12])) / ticks
    return float("nan")


@dataclass
class Measured:
    label: str
    routes: int
    task_instances: int
    wall: float
    cpu: float
    scheduler_cpu: float
    probe: Probe


def measure(server: Any, dag_id: str, routes: int, task_instances: int, timeout: float, label: str) -> Measured:
    pgid = server.process.pid
    cpu, sched = tree_cpu_seconds(pgid), scheduler_cpu_seconds(pgid)
    run_id = server.trigger(dag_id)
    probe = Probe(server, dag_id, run_id)
    probe.start()
    try:
        run = wait_for_run(server, dag_id, run_id, timeout, poll=2.0)
    finally:
        probe.stop()
    cpu, sched = tree_cpu_seconds(pgid) - cpu, scheduler_cpu_seconds(pgid) - sched
    if run["state"] != "success":
        raise RuntimeError(f"{dag_id} run {run_id} ended {run['state']}\n{server.log_tail(80)}")
    tis = [t for t in server.task_instances(dag_id, run_id)
           if not t["task_id"].endswith(".routes") and t["task_id"] != "flow-outcome"]
    ran = [t for t in tis if t["state"] == "success"]
    if len(ran) < task_instances:
        raise RuntimeError(f"{dag_id}: {len(ran)} successful task instances, expected {task_instances}")
    if routes > task_instances:  # batched: every route's record is in the XCom of its task instance
        first = ran[0]
        records = server.xcom(dag_id, run_id, first["task_id"], first["map_index"])
        if not (isinstance(records, list) and records and all("tags" in r for r in records)):
            raise RuntimeError(f"{dag_id}: the batch's XCom does not hold a record per route: {str(records)[:300]}")
    return Measured(label, routes, task_instances, run_seconds(run), cpu, sched, probe)


def run(root: Path, routes: int, batch: int, mapped: int, parallelism: int | None = None,
        timeout: float = 7200) -> list[Row]:
    batched = single_grid(routes, title=f"Bench Scale {routes} Batched")
    one_each = single_grid(mapped, title=f"Bench Scale {mapped} Mapped")
    env = {
        **server_env(),
        "AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(1024, mapped)),
        "AIRFLOW__FLOW_AIRFLOW__BATCH_ROUTES": json.dumps({batched.dag_id: batch}),
    }
    if parallelism:
        env["AIRFLOW__CORE__PARALLELISM"] = str(parallelism)
    server = AirflowServer(root, ServerOptions(env=env, startup_timeout=300))
    server.start()
    try:
        hand_id = f"hand_{one_each.dag_id}"
        server.add_file("flows.py", LOADER)
        for w in (batched, one_each):
            w.write_flow(server.dags_folder / "flows" / w.dag_id)
        staging = server.root / "staging" / f"{hand_id}.py"
        one_each.write_hand(staging, hand_id, server.root / "projects" / hand_id)
        server.add_file(f"{hand_id}.py", src=staging)
        server.touch("flows.py")
        for dag_id in (batched.dag_id, one_each.dag_id, hand_id):
            server.wait_for_dag(dag_id, timeout=300)

        idle = Probe(server, one_each.dag_id)
        token = server.token_for(server.options.users[0].username)
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            for _ in range(5):
                idle.once(c)
        results = [
            measure(server, batched.dag_id, routes, math.ceil(routes / batch), timeout,
                    f"flow-airflow, {batch} routes per task instance"),
            measure(server, one_each.dag_id, mapped, mapped, timeout, "flow-airflow, one task instance per route"),
            measure(server, hand_id, mapped, mapped, timeout, "hand-written, one task instance per route"),
        ]
    finally:
        server.stop()
    return rows(results, idle, routes, batch, mapped, parallelism)


def rows(results: list[Measured], idle: Probe, routes: int, batch: int, mapped: int,
         parallelism: int | None = None) -> list[Row]:
    b, m, h = results
    idle_p50 = median(idle.latencies())

    def p95(r: Measured) -> float:
        return percentile(r.probe.latencies(), 95)

    def latency_note(r: Measured) -> str:
        worst = max(((n, percentile(r.probe.latencies(n), 95)) for n, _, _ in r.probe.calls()), key=lambda x: x[1])
        return (f"{len(r.probe.latencies())} calls every {PROBE_SECONDS:g} s (health, DAG list, the run, a page of "
                f"its task instances, the UI grid); max {max(r.probe.latencies(), default=float('nan')):.2f} s, "
                f"slowest endpoint {worst[0]} (p95 {worst[1]:.2f} s); idle p50 {idle_p50 * 1000:.0f} ms"
                + (f"; errors: {'; '.join(r.probe.errors[:3])}" if r.probe.errors else ""))

    return [
        Row("scale", f"{routes:,}-route grid, {batch} routes per task instance ({b.task_instances} task instances): "
                     "total time", b.wall, None,
            note=(f"{b.wall / routes * 1000:.0f} ms of wall time and {b.cpu / routes * 1000:.0f} ms of CPU per route; "
                  f"scheduler CPU {b.scheduler_cpu:.1f} s in all; [core] parallelism {parallelism or '(harness)'}")),
        Row("scale", f"{mapped:,}-route grid, one task instance per route (max_map_length {max(1024, mapped)}): "
                     "total time", m.wall, h.wall,
            note=(f"per route {m.wall / mapped * 1000:.0f} ms vs {h.wall / mapped * 1000:.0f} ms of wall time, "
                  f"{m.cpu / mapped * 1000:.0f} ms vs {h.cpu / mapped * 1000:.0f} ms of CPU")),
        Row("scale", f"scheduler CPU per task instance, one task instance per route ({mapped:,})",
            m.scheduler_cpu / mapped, h.scheduler_cpu / mapped),
        Row("scale", f"per-route cost: batched by {batch} ({routes:,} routes) vs hand-written one task instance "
                     f"per route ({mapped:,})", b.wall / routes, h.wall / mapped, unit="s/route"),
        Row("scale", "API latency p95 during the batched run vs during the hand-written run", p95(b), p95(h),
            note=latency_note(b)),
        Row("scale", "API latency p95 during the one-per-route run vs during the hand-written run", p95(m), p95(h),
            note=latency_note(m) + " / hand-written: " + latency_note(h)),
    ]


if __name__ == "__main__":  # a quick look: python -m bench.scale
    import tempfile

    from bench.report import table

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        print(table(run(Path(tmp), 300, 50, 60)))
