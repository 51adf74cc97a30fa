"""Rules of the runtime without Airflow: tags, environment names, cnvrg's paths, workspaces, import."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from flow_airflow.runtime import workspace
from flow_airflow.runtime.environment import env_name, experiment_env
from flow_airflow.runtime.paths import local_paths, map_command, map_path, plan_notes
from flow_airflow.runtime.tags import MAX_TAGS, TagLog, parse_tag

# --- tags ----------------------------------------------------------------------------------------------


def test_parse_tag() -> None:
    assert parse_tag("cnvrg_tag_model accuracy: 0.93") == ("model accuracy", "0.93")
    assert parse_tag("  cnvrg_tag_ t : 12:30 ") == ("t", "12:30")
    assert parse_tag("cnvrg_tag_a=b: 1") == ("a=b", "1")
    assert parse_tag("cnvrg_tag_empty:") == ("empty", "")
    assert parse_tag("cnvrg_tag_nocolon") is None and parse_tag("cnvrg_tag_ : x") is None
    assert parse_tag("print cnvrg_tag_a: 1") is None


@pytest.mark.parametrize(
    "line",
    [
        "cnvrg_tag_" + " " * 60_000 + "x",  # no colon after a long key
        "cnvrg_tag_k:" + " " * 60_000 + "x",
        "cnvrg_tag_" + "a " * 30_000,
        "cnvrg_tag_k: " + "v " * 30_000 + " " * 30_000,
    ],
)
def test_tag_parsing_is_linear(line: str) -> None:
    start = time.perf_counter()
    for _ in range(100):
        parse_tag(line)
    assert time.perf_counter() - start < 0.5  # 100 lines of 60 KB


def test_tags_that_cannot_be_environment_variables_are_refused_with_a_warning() -> None:
    warnings: list[str] = []
    log = TagLog(warnings.append, "Emit")
    for line in ["cnvrg_tag_nul: a\0b", "cnvrg_tag_n\0ul: 1", "cnvrg_tag_big: " + "x" * 10_000_000,
                 "cnvrg_tag_" + "k" * 2000 + ": 1", "cnvrg_tag_ok: 1", "cnvrg_tag_a=b: 2"]:
        log.line(line)
    log.finish()
    assert log.tags == {"ok": "1", "a=b": "2"}
    assert warnings[:4] == [
        "tag 'nul' not kept: it holds a NUL byte, which no environment variable can",
        "tag 'n\\0ul' not kept: it holds a NUL byte, which no environment variable can",
        "tag 'big' not kept: its value is 10,000,000 bytes, over the 32,768 an environment variable may take here",
        f"tag '{'k' * 79}…' not kept: its key is longer than 1024 bytes",
    ]
    assert warnings[4] == "tag 'a=b' reaches the next tasks as CNVRG_EMIT_AB: variable names hold only A-Z, 0-9, _"


def test_a_hundred_thousand_tags_keep_a_bounded_record_and_log() -> None:
    warnings: list[str] = []
    log = TagLog(warnings.append)
    start = time.perf_counter()
    for i in range(100_000):
        log.line(f"cnvrg_tag_t{i}: {i}")
    log.line("cnvrg_tag_t5: updated")  # a kept tag can still change
    log.finish()
    assert time.perf_counter() - start < 2
    assert len(log.tags) == MAX_TAGS and log.tags["t5"] == "updated"
    assert len(warnings) == 11 and warnings[-1].startswith("99000 tags were not kept in all")


def test_tags_over_the_total_size_are_refused() -> None:
    log = TagLog(lambda message: None)
    for i in range(20):
        log.line(f"cnvrg_tag_t{i}: " + "x" * 30_000)
    assert len(log.tags) == 8  # 8 x 30 KB within 256 KiB
    assert log.refused == 12


# --- environment ---------------------------------------------------------------------------------------


def test_env_names_hold_only_capitals_digits_and_underscores() -> None:
    assert env_name("CNVRG", "Task A", "model accuracy") == "CNVRG_TASK_A_MODEL_ACCURACY"
    assert env_name("CNVRG", "Emit", "a=b") == "CNVRG_EMIT_AB"
    assert env_name("CNVRG", "Modèle", "précision (%)") == "CNVRG_MODELE_PRECISION_"
    for key in ["a=b", "x\0y", "ü-ö", "$(rm)", "a.b", "名前", "tab\there"]:
        assert re.fullmatch("[A-Z0-9_]+", env_name("CNVRG", "T", key))


def env(upstream: dict, params: list[list[str]] | None = None, **kwargs: object) -> tuple[dict, list[str]]:
    warnings: list[str] = []
    result = experiment_env(params=params or [], upstream=upstream, inputs={}, passed_condition=[],
                            workdir=Path("/w"), output_dir=Path("/w/output"), base={}, warn=warnings.append,
                            **kwargs)  # type: ignore[arg-type]
    return result, warnings


def test_reserved_names_win_and_the_log_says_which_variable_was_not_set() -> None:
    upstream = {
        "Output": {"params": {}, "tags": {"dir": "/elsewhere"}},
        "Tag": {"params": {"lr": "9"}, "tags": {}},
        "Train": {"params": {"lr": "0.1"}, "tags": {"acc": "0.9", "lr": "0.2"}},  # its tag overrides its param
    }
    result, warnings = env(upstream, params=[["lr", "0.5"]])
    assert result["CNVRG_OUTPUT_DIR"] == "/w/output" and result["CNVRG_TAG_LR"] == "0.5"
    assert result["CNVRG_TRAIN_ACC"] == "0.9" and result["CNVRG_TRAIN_LR"] == "0.2"
    assert warnings == [
        "CNVRG_OUTPUT_DIR (from 'Output'.'dir') is not set: the name is cnvrg's own variable, which keeps its value",
        "CNVRG_TAG_LR (from 'Tag'.'lr') is not set: the name is cnvrg's own variable, which keeps its value",
    ]


def test_two_pairs_giving_one_name_set_neither() -> None:
    result, warnings = env({"A B": {"params": {}, "tags": {"C": "1"}}, "A": {"params": {}, "tags": {"b c": "2"}},
                            "X": {"params": {}, "tags": {"===": "3", "nul": "a\0b"}}})
    assert not [n for n in result if n.startswith("CNVRG_A") or n.startswith("CNVRG_X")]
    assert warnings == [
        "CNVRG_A_B_C is not set: 'A B'.'C' and 'A'.'b c' all give this name; use {{ Task.tag }} to tell them apart",
        "'X'.'===' gives no variable name: its name has no letter or digit A-Z, 0-9",
        "CNVRG_X_NUL is not set: 'X'.'nul' holds a NUL byte",
    ]


def test_the_environment_stays_within_its_budget() -> None:
    upstream = {f"T{i}": {"params": {}, "tags": {f"t{j}": "x" * 30_000 for j in range(8)}} for i in range(10)}
    result, warnings = env(upstream)
    assert sum(len(k) + len(v) for k, v in result.items()) < 1.1 * 1024 * 1024
    assert len(warnings) == 1 and "CNVRG_<TASK>_<TAG> variables are not set" in warnings[0]


# --- cnvrg's absolute paths ---------------------------------------------------------------------------


PATHS = local_paths(Path("/ws/t/0"), Path("/ws/t/0/.cnvrg_data"))


def test_map_path() -> None:
    assert map_path("/input/prepare/a.csv", PATHS) == "/ws/t/0/input/prepare/a.csv"
    assert map_path("/cnvrg", PATHS) == "/ws/t/0"
    assert map_path("/data/iris/x", PATHS) == "/ws/t/0/.cnvrg_data/iris/x"
    for value in ["/inputs/a", "input/a", "x/input/a", "/database", "0.1", ""]:
        assert map_path(value, PATHS) == value


def test_map_command() -> None:
    line = "python3 /cnvrg/t.py --f=/input/a/x '/input/b' \"/data/iris\" /inputs/c a/input/d /database;cat /input/e"
    assert map_command(line, PATHS) == (
        "python3 /ws/t/0/t.py --f=/ws/t/0/input/a/x '/ws/t/0/input/b' \"/ws/t/0/.cnvrg_data/iris\" /inputs/c "
        "a/input/d /database;cat /ws/t/0/input/e"
    )
    assert map_command("cat /input/a", local_paths(Path("/my ws"), Path("/d"))) is None  # would need quoting


def test_plan_notes() -> None:
    assert plan_notes("python3 x.py", ["/input/train/m", "/input/train_2/m"], ["train"], False) == []
    assert plan_notes("cat /input/prep/x", [], ["train"], False) == [
        "it names /input/prep, which no parent task fills (its inputs: /input/train)"
    ]
    assert plan_notes("true", ["/input/train/m"], ["train"], True) == [
        "it names /input/train, but a task in single mode receives no inputs"
    ]
    assert plan_notes("cat /data/iris/x", ["/data/wine"], [], False, ["iris"]) == [
        "it names /data/wine, which no data task before it gives (its datasets: /data/iris)"
    ]
    assert plan_notes("cat /data/iris/x", [], [], True, ["iris"]) == [
        "it names /data/iris, which no data task before it gives (its datasets: none)"
    ]


# --- workspaces ---------------------------------------------------------------------------------------


def make_project(root: Path) -> Path:
    for rel in ["input/x", "output/x", ".venv/x", "__pycache__/x", ".git/x", "data/input/train.csv",
                "src/output/helper.txt", "lib/.venv/cfg", "pkg/__pycache__/m.pyc", "keep.py"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / "link_in").symlink_to("keep.py")
    (root / "link_out").symlink_to("/etc")
    return root


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_workspace_leaves_out_only_top_level_folders(tmp_path: Path) -> None:
    root = workspace.create(tmp_path / "ws", make_project(tmp_path / "project"))
    assert files_under(root) == {"data/input/train.csv", "src/output/helper.txt", "lib/.venv/cfg",
                                 "pkg/__pycache__/m.pyc", "keep.py", "link_in", "link_out"}
    assert os.readlink(root / "link_out") == "/etc"  # a link stays a link


def test_end_state_holds_what_changed_with_paths_kept(tmp_path: Path) -> None:
    root = workspace.create(tmp_path / "ws", make_project(tmp_path / "project"))
    baseline = workspace.snapshot(root)
    (root / "input" / "parent").mkdir(parents=True)
    (root / "input" / "parent" / "staged.txt").write_text("from before")
    (root / "output").mkdir()
    (root / "output" / "model.json").write_text("{}")
    (root / "data" / "input" / "train.csv").write_text("changed")
    (root / "new" / "deep").mkdir(parents=True)
    (root / "new" / "deep" / "link_up").symlink_to("../../keep.py")
    (root / "new" / "abs_in").symlink_to(root / "keep.py")
    (root / "new" / "away").symlink_to(tmp_path)
    (root / "output" / "deep").mkdir()
    (root / "output" / "deep" / "away").symlink_to("/etc/passwd")
    os.mkfifo(root / "new" / "pipe")
    (root / "new" / "loop").symlink_to("loop")
    warnings: list[str] = []
    workspace.save_end_state(root, tmp_path / "kept", baseline=baseline, only=None, warn=warnings.append)
    kept = tmp_path / "kept"
    assert files_under(kept) == {"output/model.json", "data/input/train.csv", "new/deep/link_up", "new/abs_in"}
    assert os.readlink(kept / "new" / "abs_in") == "../keep.py"  # made relative: it points into the copy
    assert sorted(warnings) == [
        "'new/away' is a link to " + str(tmp_path) + ", outside the working directory: not passed on",
        "'new/loop' is a link that leads nowhere (a loop): not passed on",
        "'new/pipe' is not a file, a folder or a link: not passed on",
        "'output/deep/away' is a link to /etc/passwd, outside the working directory: not passed on",
    ]


def test_end_state_with_git_is_the_output_folder_only(tmp_path: Path) -> None:
    root = workspace.create(tmp_path / "ws", make_project(tmp_path / "project"))
    (root / "results" / "final").mkdir(parents=True)
    (root / "results" / "final" / "m.txt").write_text("m")
    (root / "results" / "other.txt").write_text("o")
    (root / "model.json").write_text("{}")
    workspace.save_end_state(root, tmp_path / "kept", baseline=None, only="results/final", warn=print)
    assert files_under(tmp_path / "kept") == {"results/final/m.txt"}


def test_an_output_folder_that_is_a_link_passes_nothing(tmp_path: Path) -> None:
    root = workspace.create(tmp_path / "ws", tmp_path / "none")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("s")
    (root / "output").symlink_to(outside)
    warnings: list[str] = []
    workspace.save_end_state(root, tmp_path / "git", baseline=None, only="output", warn=warnings.append)
    workspace.save_end_state(root, tmp_path / "all", baseline={}, only=None, warn=warnings.append)
    assert files_under(tmp_path / "git") == set() and files_under(tmp_path / "all") == set()
    assert warnings[0].startswith("the output folder 'output' is a link")
    assert warnings[1].startswith("'output' is a link to ")


# --- flow-airflow import ------------------------------------------------------------------------------

FLOW = "flow: Linked\ntasks:\n  - {title: A, type: exec, input: 'true', computes: [local]}\nrelations: []\n"


def test_import_copies_links_as_links_and_survives_a_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flow_airflow.cli import main
    from flow_airflow.shares import share_files

    project = tmp_path / "project"
    project.mkdir()
    (project / "flow.yaml").write_text(FLOW)
    (project / "sub").mkdir()
    (project / "sub" / "loop").symlink_to("..")  # a loop when followed
    (project / "sub" / "out").symlink_to(tmp_path)
    (project / "input").mkdir()
    (project / "sub" / "input").mkdir()
    (project / "sub" / "input" / "f.txt").write_text("nested")
    dags = tmp_path / "dags"
    assert main(["import", str(project / "flow.yaml"), "--dags-folder", str(dags)]) == 0
    target = dags / "linked"
    assert os.readlink(target / "sub" / "loop") == ".." and os.readlink(target / "sub" / "out") == str(tmp_path)
    assert (target / "sub" / "input" / "f.txt").read_text() == "nested" and not (target / "input").exists()
    assert sorted(p.name for p in dags.iterdir()) == [*(f.name for f in share_files(dags)), "linked"]  # the loader
    assert f"note: sub/out -> {tmp_path} in {target} is a link out of the project" in capsys.readouterr().out


def test_a_failed_import_leaves_nothing_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flow_airflow.cli import main
    from flow_airflow.shares import share_files

    project = tmp_path / "project"
    project.mkdir()
    (project / "flow.yaml").write_text(FLOW)
    (project / "a.txt").write_text("a")
    os.mkfifo(project / "pipe")  # cannot be copied
    dags = tmp_path / "dags"
    dags.mkdir()
    assert main(["import", str(project / "flow.yaml"), "--dags-folder", str(dags)]) == 1
    assert "cannot import 'Linked':" in capsys.readouterr().err
    assert list(dags.iterdir()) == []
    # replacing an imported flow with --force: a failure keeps the one imported before
    (project / "pipe").unlink()
    assert main(["import", str(project / "flow.yaml"), "--dags-folder", str(dags)]) == 0
    os.mkfifo(project / "pipe")
    assert main(["import", str(project / "flow.yaml"), "--dags-folder", str(dags), "--force"]) == 1
    assert sorted(p.name for p in dags.iterdir()) == [*(f.name for f in share_files(dags)), "linked"]  # the loader
    assert (dags / "linked" / "a.txt").read_text() == "a"


def test_a_project_that_cannot_be_copied_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    os.mkfifo(tmp_path / "project" / "pipe")
    with pytest.raises(workspace.WorkspaceError, match=r"cannot copy the project folder .*pipe` is a named pipe"):
        workspace.create(tmp_path / "ws", tmp_path / "project")


def test_the_sdk_logs_one_parseable_line_per_tag(capfd: pytest.CaptureFixture[str]) -> None:
    import sys

    from flow_airflow.runtime.environment import SDK_PATH

    sys.path.insert(0, str(SDK_PATH))
    try:
        from cnvrg import Experiment
    finally:
        sys.path.remove(str(SDK_PATH))
    e = Experiment()
    e.log_param("a:b", "x\ny")
    e.log_metric("loss", Ys=[0.5, 0.25])
    out, err = capfd.readouterr()
    assert [parse_tag(line) for line in out.splitlines() if not line.startswith("cnvrg_series_")] == [
        ("a_b", "x y"), ("loss", "0.25")]
    assert out.splitlines()[1] == 'cnvrg_series_loss: {"ys": [0.5, 0.25]}'  # the series, for the experiments page
    assert "tag 'a:b' logged as 'a_b'" in err


def test_periodic_sync_keeps_the_end_state_while_the_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flow_airflow.computes import ComputeChoice
    from flow_airflow.runtime import experiment
    from flow_airflow.runtime.artifacts import ArtifactStore
    from flow_airflow.spec.models import ExecTask

    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ARTIFACTS_FOLDER", str(tmp_path / "store"))
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__WORKSPACES_FOLDER", str(tmp_path / "ws"))
    monkeypatch.setattr(experiment, "SYNC_SECONDS", 0.2)
    kept = ArtifactStore(tmp_path / "store").location("d", "r", "sync", 0)
    (tmp_path / "project").mkdir()
    run = experiment.ExperimentRun(
        spec=ExecTask.model_validate({
            "title": "Sync", "type": "exec", "computes": ["local"], "periodic_sync": True,
            "input": f"echo 1 > output/a.txt; sleep 1; test -f {kept}/output/a.txt && echo 'cnvrg_tag_seen: yes'"}),
        route={"params": [], "parents": {}},
        parents={}, gathered=[], dag_id="d", run_id="r", index=0, project_dir=tmp_path / "project",
        compute=ComputeChoice("local", "local"), base_env=dict(os.environ),
    )
    record = run.run()
    assert record["tags"] == {"seen": "yes"}
    assert record["output"] == str(kept) and (kept / "output" / "a.txt").read_text() == "1\n"


def test_an_endless_output_line_is_cut_and_its_tag_refused(tmp_path: Path) -> None:
    from flow_airflow.computes.base import MAX_LINE, Launch
    from flow_airflow.computes.local.compute import LocalCompute

    lines: list[str] = []
    command = "python3 -c \"import sys; sys.stdout.write('cnvrg_tag_big: ' + 'x' * 3_000_000 + '\\\\nafter\\\\n')\""
    assert LocalCompute().run(Launch.local(command, tmp_path, dict(os.environ)), lines.append) == 0
    assert len(lines) == 2 and lines[1] == "after"
    assert len(lines[0]) < MAX_LINE + 100
    assert lines[0].endswith(f" … [line cut: {3_000_015 - MAX_LINE:,} more characters not shown]")
    log = TagLog(lambda message: None)
    log.line(lines[0])
    assert log.tags == {} and log.refused == 1


def test_plan_says_where_cnvrg_paths_cannot_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flow_airflow.cli import main

    (tmp_path / "flow.yaml").write_text("""\
flow: Paths
tasks:
  - {title: Prepare, type: exec, input: "true", computes: [local]}
  - {title: Use, type: exec, input: "cat /input/prepare/a /input/prep/b", computes: [local]}
  - title: Alone
    type: exec
    input: python3 x.py
    computes: [local]
    single_mode: true
    params: [{key: f, value: /input/prepare/a}, {key: d, value: /data/iris/x.csv}]
relations:
  - {from: Prepare, to: Use}
  - {from: Prepare, to: Alone}
""")
    assert main(["plan", str(tmp_path / "flow.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if "warning" in line] == [
        "      warning: it names /input/prep, which no parent task fills (its inputs: /input/prepare)",
        "      warning: it names /input/prepare, but a task in single mode receives no inputs",
        "      warning: it names /data/iris, which no data task before it gives (its datasets: none)",
    ]


def test_own_params_giving_one_name_set_neither() -> None:
    result, warnings = env({}, params=[["a b", "1"], ["a_b", "2"], ["c", "3"]])
    assert "CNVRG_TAG_A_B" not in result and result["CNVRG_TAG_C"] == "3"
    assert warnings == ["CNVRG_TAG_A_B is not set: the params 'a b', 'a_b' all give this name"]


def test_import_refuses_a_flow_whose_dag_id_another_flow_of_the_dags_folder_has(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found trying ./dev up as a user: importing a copy of an example (same title, another folder
    name) said 'imported', and the dags folder then held two flows of one DAG id (one an import error)."""
    from flow_airflow.cli import main

    dags = tmp_path / "dags"
    (dags / "examples" / "first").mkdir(parents=True)
    (dags / "examples" / "first" / "flow.yaml").write_text(FLOW)
    (dags / "examples" / "broken.yaml").write_text("flow: Broken\ntasks: [{title: A, type: exce}]\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "flow.yaml").write_text(FLOW)
    assert main(["import", str(project / "flow.yaml"), "--dags-folder", str(dags)]) == 1
    err = capsys.readouterr().err
    assert f"its DAG id 'linked' is already used by {dags / 'examples' / 'first' / 'flow.yaml'}" in err, err
    assert not (dags / "linked").exists()
    # the flow's own earlier import is no clash: --force replaces it
    (dags / "examples" / "first" / "flow.yaml").unlink()
    assert main(["import", str(project / "flow.yaml"), "--dags-folder", str(dags)]) == 0
    assert main(["import", str(project / "flow.yaml"), "--dags-folder", str(dags), "--force"]) == 0
    assert (dags / "linked" / "flow.yaml").read_text() == FLOW
