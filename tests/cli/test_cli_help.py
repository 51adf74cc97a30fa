"""The command line explains itself: every subcommand and argument has a help text; plan says each thing once."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from flow_airflow.cli import main, parser

FLOWS = Path(__file__).parent.parent / "flows"


def subcommands() -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return dict(actions[0].choices)


def test_every_subcommand_and_argument_has_a_help_text(capsys: pytest.CaptureFixture[str]) -> None:
    commands = subcommands()
    assert sorted(commands) == ["dataset", "endpoints", "gc", "import", "library", "plan", "run", "schema", "validate"]
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    top = capsys.readouterr().out
    for name, command in commands.items():
        assert command.description, name
        summary = next(a.help for a in parser()._subparsers._group_actions[0]._choices_actions if a.dest == name)
        row = f"    {name:<8}  {summary[:30]}" if len(name) <= 8 else f"    {name}\n              {summary[:30]}"
        assert summary and row in top, name
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and len(action.help) > 10, f"{name} {action.dest}: no help text"
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = capsys.readouterr().out
        assert command.description.split(".")[0] in " ".join(text.split()), name


def test_run_help_names_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "file the flow YAML file" in text
    assert "--conf JSON the run's conf as JSON" in text
    assert "--verbose, -v show Airflow's own output" in text


def plan_lines(file: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["plan", str(file)]) == 0
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("flow", sorted(p.parent.name for p in FLOWS.glob("*/flow.yaml")))
def test_plan_leaves_out_what_only_repeats_a_default_or_a_line_above(
    flow: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = plan_lines(FLOWS / flow / "flow.yaml", capsys)
    assert not [line for line in lines if line.strip() == "compute: local (local)"]  # the default compute, alone
    for i, line in enumerate(lines):
        if line.strip().startswith("condition: "):
            task = max(j for j in range(i) if not lines[j].startswith("      "))
            assert line.strip().removeprefix("condition: ") not in lines[task], line


def test_plan_shows_a_compute_that_is_not_the_default_or_falls_back_to_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__COMPUTES", '{"medium": {"kind": "local"}}')
    (tmp_path / "flow.yaml").write_text(
        "flow: Computes\ntasks:\n"
        "  - {title: A, type: exec, input: 'true', computes: [local]}\n"
        "  - {title: B, type: exec, input: 'true', computes: [medium]}\n"
        "  - {title: C, type: exec, input: 'true', computes: [gpu]}\n"
        "  - {title: D, type: exec, input: 'true', computes: [gpu]}\n"
        "  - {title: E, type: exec, input: 'true', computes: [medium]}\n"
        "relations:\n  - {from: A, to: B}\n  - {from: A, to: C}\n  - {from: C, to: D}\n  - {from: D, to: E}\n"
    )
    lines = plan_lines(tmp_path / "flow.yaml", capsys)
    assert lines[2:5] == ["  A [exec]: 1 route", "  B [exec after A]: 1 route", "      compute: medium (local)"]
    c = lines.index("  C [exec after A]: 1 route")
    assert lines[c + 1] == "      compute: local (local)"  # the default, but not the one asked for: said, and why
    assert lines[c + 2].startswith("      warning: compute template 'gpu' is not configured here")


def test_plan_says_a_condition_once(capsys: pytest.CaptureFixture[str]) -> None:
    lines = plan_lines(FLOWS / "conditions" / "flow.yaml", capsys)
    publish = next(line for line in lines if line.startswith("  Publish"))
    assert publish.endswith("known at run time: it runs on what passes its condition: 'accuracy' > 0.8 on 'Train'")
    assert lines.count("      condition: 'accuracy' > 0.8 on 'Train'") == 0
