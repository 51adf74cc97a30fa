"""``flow-airflow schema``: the JSON Schema editors use, checked with the jsonschema library."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from flow_airflow.cli import main
from flow_airflow.spec.schema import flow_schema
from flow_airflow.spec.source import read_source, yaml_value

FLOWS = Path(__file__).parents[1] / "flows"


def _example_flows() -> list[Path]:
    found = []
    for file in sorted([*FLOWS.rglob("*.yaml"), *FLOWS.rglob("*.yml")]):
        if {"invalid", "hostile"} & set(file.relative_to(FLOWS).parts):
            continue
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # non_utf8_flow_silently_dropped: about reading the file, not its shape
        if re.search(r"^tasks\s*:", text, re.MULTILINE):  # a flow file, even a broken one
            found.append(file)
    return found


EXAMPLES = _example_flows()


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = flow_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _problems(validator: jsonschema.protocols.Validator, data: Any) -> list[str]:
    """Every error, with those inside a oneOf (a task's type) too."""
    found, pending = [], list(validator.iter_errors(data))
    while pending:
        error = pending.pop(0)
        found.append(f"{'/'.join(map(str, error.absolute_path))}: {error.message}")
        pending += error.context or []
    return found


def test_the_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == flow_schema()
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"ExecTask", "DataTask", "DeployTask", "Param", "Condition"} <= set(printed["$defs"])


def test_there_are_examples_of_every_folder() -> None:
    folders = {f.relative_to(FLOWS).parts[0] for f in EXAMPLES}
    assert {"grid_two", "blueprint", "data_and_deploy", "realworld", "regressions", "scheduled"} <= folders
    assert len(EXAMPLES) >= 30


@pytest.mark.parametrize("file", EXAMPLES, ids=[str(f.relative_to(FLOWS)) for f in EXAMPLES])
def test_every_example_flow_fits_the_schema(validator: jsonschema.protocols.Validator, file: Path) -> None:
    # As flow-airflow reads it (every scalar the text written) and as an editor reads it (YAML types).
    as_written = read_source(file).data
    assert _problems(validator, as_written) == []
    assert _problems(validator, yaml_value(as_written)) == []


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("bad_condition.yaml", "'bigger' is not one of"),
        ("bad_endpoint.yaml", "'my endpoint!' does not match"),
        ("schedule_and_recurring.yaml", "should not be valid"),
    ],
)
def test_invalid_examples_fail(validator: jsonschema.protocols.Validator, file: str, expected: str) -> None:
    problems = _problems(validator, read_source(FLOWS / "invalid" / file).data)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("flow", "expected"),
    [
        ({"flow": "F", "relations": [], "tasks": [{"title": "A", "type": "exec", "inptu": "x"}]},
         "'inptu' was unexpected"),
        ({"flow": "F", "relations": [], "tasks": [{"title": "A", "type": "exec", "single_mode": "maybe"}]},
         "'maybe' is not valid"),
        ({"flow": "F", "relations": [], "tasks": [{"title": "A", "type": "exce"}]}, "is not valid"),
        ({"flow": "F", "relations": [], "tasks": [{"type": "exec", "input": "x"}]}, "'title' is a required"),
        ({"flow": "F", "tasks": []}, "is not valid under any of the given schemas"),
        ({"flow": "F", "title": "T", "relations": [], "tasks": []}, "is not valid under any of the given schemas"),
        ({"title": "T", "tasks": [{"title": "D", "type": "deploy", "file_name": "p.py", "function_name": "f",
                                   "min_replica": "two"}]}, "'two' is not valid"),
    ],
)
def test_mistakes_fail(validator: jsonschema.protocols.Validator, flow: dict[str, Any], expected: str) -> None:
    problems = _problems(validator, flow)
    assert any(expected in p for p in problems), problems


def test_what_loads_fits(validator: jsonschema.protocols.Validator) -> None:
    """Blank keys, one-scalar lists, keys of another task type (a warning when loaded)."""
    flow = {
        "title": "T",
        "tasks": [{"title": "A", "type": "exec", "command": "x", "computes": "local", "description": None,
                   "accept_files": False, "single_mode": "yes", "requirements": {"cpu": "1.5"},
                   "params": [{"key": "b", "values": []}, {"key": "e", "values": 3}]}],
    }
    assert _problems(validator, flow) == []
    props = validator.schema["$defs"]["ExecTask"]["properties"]
    assert props["accept_files"]["deprecated"] is True
