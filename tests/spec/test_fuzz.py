"""Generated and mutated flow files: validate, plan and the loader end in a positioned FlowError or succeed.

1,000 cases by default (CI, ~15 s); 100 in the fast tier (``./dev test --fast``, ~2 s: it builds
Airflow DAGs but needs no metadata DB); ``FLOW_FUZZ_EXAMPLES=20000`` for the long run (bench/RESULTS.md).
Never a traceback of another kind: a RecursionError, a ConstructorError, a pydantic error or an
Airflow error while building the DAG is a bug of the compiler.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("FLOW_FUZZ_EXAMPLES", "1000"))
OUTCOMES: dict[str, int] = {}  # printed at the end (pytest -s): how many cases loaded, how many were refused

TITLES = ["Train", "Test", "Deploy", "A", "train", " Train ", "数据准备", "Шаг 1", "Prévision", "x" * 210, "!!!",
          "2024", "1.10", "T" * 60]
SCALARS = ["{{ Train.acc }}", "{{ Train.acc | hyper }}", "{{ Missing.x }}", "010", "1.10", "yes", "2024-01-15",
           "0.1, 0.01,", "a: b", "", "  ", "=", "~", "-", "*", "&", "!x", "'", '"', "\t", "{{", "}}", "%", "@"]

titles = st.one_of(st.sampled_from(TITLES), st.text(max_size=12))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(), st.sampled_from(SCALARS),
                    st.text(max_size=16), st.dates())
values = st.one_of(scalars, st.lists(scalars, max_size=4))
#: Any value: where a flow wants text, a mapping or a list is a mistake to be said at its place.
anything = st.one_of(values, st.dictionaries(st.sampled_from(["a", "type", "key", "title", ""]), values, max_size=2))


@st.composite
def flows(draw: st.DrawFn) -> dict:
    names = draw(st.lists(titles, min_size=0, max_size=5))
    name_or_any = st.one_of(st.sampled_from(names), titles) if names else titles
    tasks = []
    for name in names:
        kind = st.sampled_from(["exec", "exec", "data", "deploy", "bogus", None])
        task = {"title": draw(st.one_of(st.just(name), anything)) if draw(st.integers(0, 9)) == 0 else name,
                "type": draw(st.one_of(kind, anything)) if draw(st.integers(0, 4)) == 0 else draw(kind)}
        optional = {
            "input": st.one_of(st.just("echo hi"), scalars),
            "computes": st.one_of(st.just(["local"]), values),
            "params": st.lists(st.fixed_dictionaries({"key": st.one_of(st.sampled_from(["lr", "seed"]), scalars)},
                                                     optional={"value": values, "values": values}), max_size=3),
            "conditions": st.lists(st.fixed_dictionaries(
                {"objective": st.sampled_from(["gt", "lt", "eq", "min", "max", "human_validation", "bogus"])},
                optional={"tag_key": scalars, "target": scalars, "task": name_or_any, "approvers": values}),
                max_size=2),
            "restart_if_stuck": scalars, "single_mode": scalars,
            "output_dir": st.sampled_from(["out", "/abs", "../up"]),
            "endpoint_title": scalars, "min_replica": scalars, "max_replica": scalars, "accept_files": scalars,
            "description": scalars, "unknown_key": scalars, "dataset": anything, "query": anything,
            "image": anything, "file_name": anything, "function_name": anything, "requirements": anything,
        }
        for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=6)):
            task[key] = draw(optional[key])
        tasks.append(task)
    doc: dict = {draw(st.sampled_from(["flow", "flow", "title"])): draw(titles), "tasks": tasks}
    if draw(st.booleans()):
        ends = st.one_of(name_or_any, anything)
        doc["relations"] = draw(st.lists(st.fixed_dictionaries({"from": ends, "to": ends}), max_size=6))
    for key in draw(st.lists(st.sampled_from(["schedule", "recurring", "timezone", "version", "tags", "description",
                                              "icon", "relation", "triggers"]), unique=True, max_size=3)):
        doc[key] = draw(anything)
    return doc


names = st.text(st.characters(categories=["L", "N", "Zs", "P"]), min_size=1, max_size=24).filter(str.strip)
grid_values = st.lists(st.one_of(st.integers(0, 100), st.floats(0, 1), st.sampled_from(SCALARS[3:9]),
                                 st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=8)),
                       min_size=1, max_size=3)


@st.composite
def valid_flows(draw: st.DrawFn) -> dict:
    """A flow that should load: unique titles, relations forward only, small grids."""
    from flow_airflow.common.routes import slug

    titles_ = draw(st.lists(st.one_of(st.sampled_from(TITLES[:9]), names), min_size=1, max_size=5,
                            unique_by=lambda t: slug(t) or t).filter(lambda ts: all(slug(t) for t in ts)))
    tasks = []
    for i, title in enumerate(titles_):
        task = {"title": title, "type": "exec", "input": draw(st.sampled_from(["echo hi", "python3 -c 'print(1)'",
                                                                              "echo a: b"])), "computes": ["local"]}
        keys = draw(st.lists(st.sampled_from(["lr", "seed", "depth", "Ключ"]), unique=True, max_size=2))
        if keys:
            task["params"] = [{"key": k, "values": draw(grid_values)} for k in keys]
        if i and draw(st.booleans()):
            task.setdefault("params", []).append({"key": "from_parent", "value": f"{{{{ {titles_[i - 1]}.acc }}}}"})
        if draw(st.booleans()):
            task[draw(st.sampled_from(["single_mode", "restart_if_stuck", "description"]))] = draw(st.booleans())
        tasks.append(task)
    relations = [{"from": titles_[i], "to": titles_[j]} for i in range(len(titles_)) for j in range(i + 1, len(titles_))
                 if draw(st.booleans()) or (j == i + 1 and any("from_parent" in str(t) for t in tasks[j:j + 1]))]
    doc = {"flow": draw(names), "tasks": tasks, "relations": relations}
    if draw(st.booleans()):
        doc["version"] = draw(st.sampled_from(["1.10", "2", "2024-01-15"]))
    return doc


MUTATIONS = ["\n", ": ", "- ", "&a ", "*a", "!foo ", "!!python/object:os.system ", "{", "}", "[", "]", "\t", "\r",
             "\ufeff", "'", '"', "#", "<<: *a\n", "\x85", "\u2028", "\x00", "é", "  ", "|\n", ">-\n", "? ",
             "%YAML 1.1\n", "---\n", "...\n", "\\", ",", "\x07"]


@st.composite
def texts(draw: st.DrawFn) -> str:
    doc = draw(st.one_of(valid_flows(), flows()))
    style = draw(st.sampled_from(["block", "flow", "json"]))
    if style == "json":
        text = json.dumps(doc, default=str, ensure_ascii=draw(st.booleans()))
    else:
        text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, default_flow_style=style == "flow")
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "duplicate line"]))
        if kind == "insert":
            text = text[:at] + draw(st.one_of(st.sampled_from(MUTATIONS), st.text(max_size=3))) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 8)):]
        else:
            lines = text.splitlines(keepends=True) or [""]
            i = at % len(lines)
            text = "".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])
    return text


@pytest.fixture(scope="module")
def no_cache() -> None:
    """Generated flows are not kept in the plan cache."""
    before = os.environ.get("AIRFLOW__FLOW_AIRFLOW__CACHE_FOLDER")
    os.environ["AIRFLOW__FLOW_AIRFLOW__CACHE_FOLDER"] = ""
    yield
    print(f"\nfuzz outcomes: {OUTCOMES}")
    if before is None:
        os.environ.pop("AIRFLOW__FLOW_AIRFLOW__CACHE_FOLDER")
    else:
        os.environ["AIRFLOW__FLOW_AIRFLOW__CACHE_FOLDER"] = before


@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=EXAMPLES <= 1000,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(text=texts())
def test_validate_plan_and_load_end_in_a_positioned_flow_error_or_succeed(
    text: str, tmp_path_factory: pytest.TempPathFactory, no_cache: None
) -> None:
    from flow_airflow.loader import _compile_and_build
    from flow_airflow.plan.flow_plan import plan_flow
    from flow_airflow.spec.errors import FlowError
    from flow_airflow.spec.load import load_flow

    folder = tmp_path_factory.mktemp("fuzz", numbered=True)
    file = folder / "flow.yaml"
    file.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        plan_flow(load_flow(file, text))
    except FlowError as e:
        _positioned(e, file)
    try:
        dag = _compile_and_build(file, None, {}, {}, file.parent)  # what the loader does with it, DAG included
        outcome = "no flow" if dag is None else "DAG"
    except FlowError as e:
        _positioned(e, file)
        outcome = "FlowError"
    OUTCOMES[outcome] = OUTCOMES.get(outcome, 0) + 1


def _positioned(error: object, file: Path) -> None:
    issues = error.issues  # type: ignore[attr-defined]
    assert issues
    for issue in issues:
        assert issue.file == str(file) and issue.message
        assert issue.line >= 1 or issue.message.startswith(("the file", "cannot read")), issue
