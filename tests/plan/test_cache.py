"""The plan cache (plan/cache.py) keeps what the DAG's operators receive, made once per plan."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flow_airflow.plan import cache
from flow_airflow.render.setups import add_setups

FLOWS = Path(__file__).parents[1] / "flows"


def test_a_kept_plan_keeps_the_setups_made_when_it_was_compiled(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__CACHE_FOLDER", str(tmp_path / "cache"))
    shutil.copytree(FLOWS / "conditions", tmp_path / "conditions")
    file = tmp_path / "conditions" / "flow.yaml"
    text = file.read_text()
    made = []
    first = cache.plan_of(file, text, finish=lambda plan: (made.append(plan), add_setups(plan)))
    assert made == [first] and all(t.setup_json for t in first.tasks)
    assert any(t.planner_json for t in first.tasks)  # its condition task
    kept = cache.plan_of(file, text, finish=made.append)
    assert kept is not first and made == [first]  # kept: not finished again
    assert [(t.setup_json, t.planner_json) for t in kept.tasks] == [(t.setup_json, t.planner_json) for t in first.tasks]
