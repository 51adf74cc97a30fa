"""``python -m bench.experiments_page [--routes 10000]``: the experiments page on a big run.

A flow with one two-route task runs once through real Airflow (``dag.test()``) in a fresh
``AIRFLOW_HOME``; its first experiment's rows (the task instance and its record, the XCom) are then
copied to ``--routes`` map indexes in the metadata DB, each with its own params and tags, as a run
of that many routes would leave them. Timed, through the plugin's app (the caller given, as in
tests/experiments): the page's first screen (``GET /flow-airflow/api/experiments/<dag>/<run>?limit=200``),
every page of 1,000 (what the page loads after it), and the HTML shell; then the flow's page across its
runs (``GET /flow-airflow/api/experiments/<dag>?limit=200``: the big run and a second, two-route run).
Target: first screen < 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FLOW = """flow: Page Bench
tasks:
  - title: Train
    type: exec
    input: python3 -c "print('cnvrg_tag_loss: 0.5')"
    computes: [local]
    params:
      - key: lr
        value: [1, 2]
relations: []
"""


def _home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="bench-experiments-"))
    (home / "dags").mkdir()
    os.environ.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                       "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"), "AIRFLOW__CORE__UNIT_TEST_MODE": "False"})
    return home


def _copy_routes(dag_id: str, run_id: str, routes: int) -> None:
    """Copy the run's ``train.run`` map index 0 (task instance and record) to map indexes 2 .. routes - 1."""
    import uuid6
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import insert, select

    with create_session() as session:
        ti = session.scalar(select(TI).where(TI.dag_id == dag_id, TI.run_id == run_id, TI.map_index == 0))
        xcom = session.scalar(select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id,
                                                      XComModel.task_id == "train.run", XComModel.map_index == 0))
        record = XComModel.deserialize_value(xcom)
        ti_row = _row(TI, ti)
        x_row = _row(XComModel, xcom)
        tis, xcoms = [], []
        for i in range(2, routes):
            tis.append({**ti_row, "id": uuid6.uuid7(), "map_index": i, "rendered_map_index": f"lr={i}"})
            value = {**record, "index": i, "label": f"lr={i}", "params": {"lr": str(i)},
                     "tags": {"loss": f"{1 / (1 + i % 97):.4f}"}, "route": {"Train": i}}
            xcoms.append({**x_row, "map_index": i, "value": json.dumps(value)})
        for start in range(0, len(tis), 2000):
            session.execute(insert(TI.__table__), tis[start:start + 2000])
            session.execute(insert(XComModel.__table__), xcoms[start:start + 2000])


def _row(model: Any, obj: Any) -> dict[str, Any]:
    """A mapped object's row: column name -> value."""
    from sqlalchemy import inspect

    return {prop.columns[0].name: getattr(obj, prop.key) for prop in inspect(model).mapper.column_attrs}


def _timed(client: Any, url: str, reps: int) -> tuple[float, Any]:
    times, answer = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        answer = client.get(url)
        times.append(time.perf_counter() - t0)
        assert answer.status_code == 200, answer.text[:500]
    return statistics.median(times), answer


def _profile(dag_id: str, run_id: str) -> None:
    """Where one first screen's ``run_view`` spends its time."""
    import cProfile
    import pstats

    from airflow.utils.session import create_session

    from flow_airflow.experiments import api

    with cProfile.Profile() as profile, create_session() as session:
        api.run_view(session, dag_id, run_id, 0, 200)
    pstats.Stats(profile).sort_stats("cumulative").print_stats(30)


def _measure(client: Any, base: str, routes: int, reps: int) -> float:
    """Time the first screen, every page, the HTML shell; print them as table rows; the first screen's time."""
    from flow_airflow.experiments import api

    first, answer = _timed(client, f"{base}?limit=200", reps)
    total = answer.json()["total"]
    assert total == routes, total
    assert answer.json()["experiments"][5]["params"] == {"lr": "5"}, answer.json()["experiments"][5]
    every = []
    for _ in range(max(1, reps // 2)):
        t0 = time.perf_counter()
        for offset in range(0, total, api.MAX_LIMIT):
            client.get(f"{base}?offset={offset}&limit={api.MAX_LIMIT}")
        every.append(time.perf_counter() - t0)
    shell, _ = _timed(client, base.replace("/api/experiments", "/experiments"), reps)
    what = f"| experiments page, {total} experiments"
    print(f"{what} | first screen (API, 200 rows) | {first:.2f} s |")
    print(f"{what} | every page of {api.MAX_LIMIT} | {statistics.median(every):.2f} s |")
    print(f"{what} | HTML shell | {shell:.3f} s |")
    return first


def _measure_flow(client: Any, dag_id: str, routes: int, reps: int) -> float:
    """Time the flow page's first screen over its last runs (the big one and a small one); print the row."""
    from flow_airflow.web import URL_PREFIX

    first, answer = _timed(client, f"{URL_PREFIX}/api/experiments/{dag_id}?limit=200", reps)
    body = answer.json()
    assert body["total"] == routes + 2 and len(body["runs"]) == 2, (body["total"], body["runs"])
    print(f"| flow page, {len(body['runs'])} runs, {body['total']} experiments | first screen (API, 200 rows) "
          f"| {first:.2f} s |")
    return first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.experiments_page", description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", type=int, default=10_000, help="experiments in the run (10000)")
    parser.add_argument("--reps", type=int, default=5, help="timed requests of each kind; the median counts (5)")
    parser.add_argument("--profile", action="store_true", help="print where one first-screen request spends its time")
    args = parser.parse_args(argv)
    home = _home()
    from airflow.utils.db import upgradedb

    upgradedb()
    from fastapi.testclient import TestClient

    from flow_airflow.experiments import api
    from flow_airflow.local_run import run_flow
    from flow_airflow.web import URL_PREFIX
    from flow_airflow.web.app import create_app
    from flow_airflow.web.auth import Caller, caller

    (home / "flow").mkdir()
    (home / "flow" / "flow.yaml").write_text(FLOW)
    result = run_flow(home / "flow" / "flow.yaml")
    _copy_routes(result.dag_id, result.run_id, args.routes)

    class User:
        def get_name(self) -> str:
            return "bench"

    class Reader(Caller):
        def readable_dag_ids(self, session: Any) -> set[str]:
            return {result.dag_id}

    api.may_edit_runs = lambda user, dag_id: True  # type: ignore[assignment]  # no auth manager here
    app = create_app()
    app.dependency_overrides[caller] = lambda: Reader(User())
    client = TestClient(app, root_path=URL_PREFIX)
    base = f"{URL_PREFIX}/api/experiments/{result.dag_id}/{result.run_id}"
    if args.profile:
        _profile(result.dag_id, result.run_id)
    first = _measure(client, base, args.routes, args.reps)
    assert run_flow(home / "flow" / "flow.yaml").state == "success"  # a second run: the flow page compares both
    across = _measure_flow(client, result.dag_id, args.routes, args.reps)
    shutil.rmtree(home, ignore_errors=True)
    return 0 if max(first, across) < 2 else 1


if __name__ == "__main__":
    sys.exit(main())
