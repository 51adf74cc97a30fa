"""Routes as cnvrg defines them, planned over experiment records (no Airflow needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flow_airflow.common.records import Record, succeeded
from flow_airflow.common.routes import (
    RouteError,
    lineage,
    plan_routes,
    render,
    slug,
    stand_in_records,
    varying,
)
from flow_airflow.plan.flow_plan import plan_flow
from flow_airflow.spec.load import load_flow

FLOWS = Path(__file__).parents[1] / "flows"


def records(
    title: str, params: list[tuple[str, list[str]]], parents: dict[str, list[Record]] | None = None, **kwargs: object
) -> list[Record]:
    routes = plan_routes(params, parents or {}, **kwargs)  # type: ignore[arg-type]
    return stand_in_records(title, routes, parents or {}, varying(params))


def test_chained_grids_multiply() -> None:
    a = records("A", [("lr", ["0.1", "0.01", "0.001"])])
    b = plan_routes([("depth", ["2", "4", "8"])], {"A": a})
    assert len(b) == 9
    assert b[0] == {"params": [["depth", "2"]], "parents": {"A": [0]}, "label": "depth=2 | A: lr=0.1"}


def test_labels_name_the_tasks_before_and_leave_out_params_the_same_on_every_route() -> None:
    a = records("A", [("lr", ["0.1", "0.2"]), ("epochs", ["5"])])
    b = records("B", [("depth", ["4"])], {"A": a})  # nothing of its own varies: A's part tells its routes apart
    c = plan_routes([("seed", ["1", "2"]), ("image", ["x"])], {"B": b})
    assert [r["label"] for r in b] == ["A: lr=0.1", "A: lr=0.2"]
    assert [r["label"] for r in c] == ["seed=1 | A: lr=0.1", "seed=2 | A: lr=0.1", "seed=1 | A: lr=0.2",
                                       "seed=2 | A: lr=0.2"]  # unique: A, two tasks up, is named too
    assert plan_routes([("image", ["x"])], {})[0]["label"] == ""  # shown as "no params"


def test_a_gathered_task_is_one_part_and_ancestors_are_kept_when_its_experiments_agree() -> None:
    data = records("Data", [("size", ["1", "2"])])
    train = records("Train", [("accuracy", ["0.95", "0.85"])], {"Data": data[:1]})
    publish = plan_routes([("where", ["s3"])], {"Train": train}, gathered=["Train"])
    assert [r["label"] for r in publish] == ["Train: accuracy=0.95 / accuracy=0.85 | Data: size=1"]
    mixed = records("Train", [], {"Data": data})
    assert plan_routes([], {"Train": mixed}, gathered=["Train"])[0]["label"] == ""  # they disagree on Data


def test_a_long_label_is_cut_to_airflows_limit_and_stays_unique() -> None:
    from flow_airflow.common.routes import LABEL_LIMIT

    a = records("A", [("text", ["x" * 300 + "1", "x" * 300 + "2"])])
    assert all(len(r["label"]) <= LABEL_LIMIT for r in a)
    assert a[0]["label"] != a[1]["label"] and a[0]["label"][:200] == a[1]["label"][:200]


def test_several_parents_multiply() -> None:
    a, b = records("A", [("a", ["1", "2"])]), records("B", [("b", ["x", "y", "z"])])
    c = plan_routes([("c", ["10", "20", "30", "40", "50"]), ("fixed", ["same"])], {"A": a, "B": b})
    assert len(c) == 30
    assert {(r["parents"]["A"][0], r["parents"]["B"][0]) for r in c} == {(i, j) for i in range(2) for j in range(3)}
    assert all(r["params"][1] == ["fixed", "same"] for r in c)


def test_a_route_never_mixes_experiments_of_one_ancestor() -> None:
    r = records("R", [("r", ["1", "2"])])
    a = records("A", [], {"R": r})
    b = records("B", [], {"R": r})
    c = plan_routes([("c", ["1", "2", "3"])], {"A": a, "B": b})
    assert len(c) == 2 * 3  # 2 experiments of R, each through A and B, times C's own grid; not 4 * 3
    for route in c:
        assert a[route["parents"]["A"][0]]["route"]["R"] == b[route["parents"]["B"][0]]["route"]["R"]


def test_single_mode_runs_only_its_own_grid() -> None:
    a, b = records("A", [("a", ["1", "2"])]), records("B", [("b", ["1", "2", "3"])])
    assert len(plan_routes([], {"A": a, "B": b}, single_mode=True)) == 1
    d = plan_routes([("d", list("12345"))], {"A": a, "B": b}, single_mode=True)
    assert len(d) == 5 and all(r["parents"] == {} for r in d)


def test_hyper_expands_a_tag_of_the_route() -> None:
    params_record = Record(
        task="Params", index=0, params={}, tags={"route": "1, 2,3"}, route={"Params": 0}, upstream={}, label=""
    )
    routes = plan_routes([("route", ["{{ Params.route | hyper }}"]), ("x", ["a", "b"])], {"Params": [params_record]})
    assert [r["params"] for r in routes] == [
        [["route", "1"], ["x", "a"]],
        [["route", "1"], ["x", "b"]],
        [["route", "2"], ["x", "a"]],
        [["route", "2"], ["x", "b"]],
        [["route", "3"], ["x", "a"]],
        [["route", "3"], ["x", "b"]],
    ]


def test_hyper_on_a_missing_tag_says_so() -> None:
    record = Record(task="Params", index=0, params={}, tags={"other": "1"}, route={}, upstream={}, label="")
    with pytest.raises(RouteError, match="'Params' did not log the tag 'route'"):
        plan_routes([("route", ["{{ Params.route | hyper }}"])], {"Params": [record]})


def test_routes_after_a_failed_experiment_are_planned_with_their_lineage() -> None:
    a = records("A", [("a", ["1", "2", "3"])])
    a[1]["failed"] = "failed: 'A' failed: its command exited with code 1"
    assert [r["index"] for r in succeeded(a)] == [0, 2]
    b = plan_routes([("b", ["x"]), ("h", ["{{ A.values | hyper }}"])], {"A": [{**a[0], "tags": {"values": "p,q"}},
                                                                              a[1], {**a[2], "tags": {"values": "r"}}]})
    # the failed route keeps its place (its experiment is marked skipped when it starts), | hyper unexpanded
    assert [(r["parents"]["A"], r["params"]) for r in b] == [
        ([0], [["b", "x"], ["h", "p"]]), ([0], [["b", "x"], ["h", "q"]]),
        ([1], [["b", "x"], ["h", "{{ A.values | hyper }}"]]), ([2], [["b", "x"], ["h", "r"]])]
    assert lineage({"A": [a[2]]}) == {"A": 2} and lineage({"A": [a[2]]}, gathered=["A"]) == {}


def test_tag_templates_render_from_any_task_upstream() -> None:
    upstream = {"Task A": {"params": {"lr": "0.1"}, "tags": {"model accuracy": "0.93"}}}
    assert render("{{ Task A.model accuracy }}", upstream) == "0.93"
    assert render("lr={{Task A.lr}}", upstream) == "lr=0.1"


def test_slug_is_cnvrgs_folder_name() -> None:
    assert slug("Processing the Data") == "processing_the_data"
    assert slug("Dynamic [?]") == "dynamic_"
    assert slug("../../etc/passwd") == "etcpasswd"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("grid_two", {"Grid Search A": "3 routes", "Grid Search B": "9 routes (3 x 3)"}),
        (
            "grid_three",
            {"Grid Search A": "2 routes", "Grid Search B": "3 routes", "Grid Search C": "30 routes (2 x 3 x 5)"},
        ),
        (
            "single_mode",
            {
                "Grid Search A": "2 routes",
                "Grid Search B": "3 routes",
                "Single mode C": "1 route",
                "Single Grid D": "5 routes",
            },
        ),
        (
            "dynamic_routes",
            {
                "Params": "1 route",
                "Dynamic": "known at run time: one route per value of the tag 'route' of 'Params' (param 'route')",
            },
        ),
    ],
)
def test_plan_counts(name: str, expected: dict[str, str]) -> None:
    plan = plan_flow(load_flow(FLOWS / name / "flow.yaml"))
    assert {t.title: t.describe_count() for t in plan.tasks} == expected


def test_big_grids_are_planned_at_run_time(tmp_path: Path) -> None:
    file = tmp_path / "flow.yaml"
    values = ", ".join(str(i) for i in range(10_000))
    file.write_text(
        f"flow: Big\ntasks:\n  - {{title: A, type: exec, input: 'true', computes: [local], "
        f"params: [{{key: i, value: [{values}]}}]}}\nrelations: []\n"
    )
    task = plan_flow(load_flow(file)).tasks[0]
    assert task.count == 10_000 and task.routes is None
    assert "planned at run time" in task.runtime_reason
