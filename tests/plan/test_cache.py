"""The plan cache (plan/cache.py) keeps, beside the plan, what the DAG's operators receive, made once per plan."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flow_airflow.plan import cache
from flow_airflow.render.setups import setups_of

FLOWS = Path(__file__).parents[1] / "flows"


def test_a_kept_plan_keeps_the_setups_made_when_it_was_compiled(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__CACHE_FOLDER", str(tmp_path / "cache"))
    shutil.copytree(FLOWS / "conditions", tmp_path / "conditions")
    file = tmp_path / "conditions" / "flow.yaml"
    text = file.read_text()
    made = []
    first = cache.compiled(file, text, render=lambda plan: (made.append(plan), setups_of(plan))[1])
    assert isinstance(first, cache.Compiled) and made == [first.plan] and first.rendered.runs
    assert first.rendered.planners  # its condition task
    kept = cache.compiled(file, text, render=made.append)
    assert kept is not first and made == [first.plan]  # kept: not rendered again
    assert kept.rendered == first.rendered


def test_a_plan_kept_without_render_output_is_rendered_once_asked(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__CACHE_FOLDER", str(tmp_path / "cache"))
    shutil.copytree(FLOWS / "conditions", tmp_path / "conditions")
    file = tmp_path / "conditions" / "flow.yaml"
    text = file.read_text()
    plan = cache.plan_of(file, text)  # kept without render output (the plan type carries none)
    first = cache.compiled(file, text, render=setups_of)
    assert isinstance(first, cache.Compiled) and first.rendered == setups_of(plan)
    kept = cache.compiled(file, text, render=lambda plan: pytest.fail("rendered again"))
    assert isinstance(kept, cache.Compiled) and kept.rendered == first.rendered
