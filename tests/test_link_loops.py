"""A link to a folder above it in the dags folder (issue 29, item 2): import lists it in the project's
``.airflowignore``, the loader and ``validate`` name it and load every other flow, and Airflow's
own DAG processor keeps listing the flows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flow_airflow.cli import LOADER

pytestmark = pytest.mark.airflow

FLOW = "flow: {title}\ntasks:\n  - {{title: A, type: exec, input: 'true', computes: [local]}}\nrelations: []\n"


def project(root: Path, title: str) -> Path:
    """A project folder holding one flow titled ``title``; its flow file."""
    root.mkdir(parents=True)
    (root / "flow.yaml").write_text(FLOW.format(title=title))
    return root / "flow.yaml"


def looped(tmp_path: Path) -> Path:
    """A project with the links that stop Airflow's walk: to its parent's parent, to itself, and to a
    folder of its own (reached twice); and one to a file, which is fine."""
    flow = project(tmp_path / "looped", "Looped")
    (flow.parent / "sub").mkdir()
    (flow.parent / "sub" / "up").symlink_to("../..")
    (flow.parent / "sub" / "self").symlink_to("..")
    (flow.parent / "data").symlink_to("sub")
    (flow.parent / "flow_link.txt").symlink_to("flow.yaml")
    return flow


def airflow_walk(folder: Path) -> list[str]:
    """Airflow's own walk of a dags folder (what its DAG processor lists), relative paths."""
    from airflow._shared.module_loading.file_discovery import find_path_from_directory

    return sorted(os.path.relpath(p, folder) for p in find_path_from_directory(str(folder), ".airflowignore"))


def test_import_lists_folder_links_in_airflowignore_so_airflows_walk_survives(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], airflow_home: Path) -> None:
    from flow_airflow.cli import main

    dags = tmp_path / "dags"
    assert main(["import", str(looped(tmp_path)), "--dags-folder", str(dags)]) == 0
    out = capsys.readouterr().out
    target = dags / "looped"
    for link in ("sub/up -> ../..", "sub/self -> ..", "data -> sub"):
        assert f"note: {link} in {target} is a link to a folder: listed in {target / '.airflowignore'}" in out
    assert "flow_link.txt" not in out
    assert os.readlink(target / "sub" / "up") == "../.."  # the project is whole: links stay
    listed = airflow_walk(dags)  # raised "Detected recursive loop" before
    assert "looped/flow.yaml" in listed and "looped/flow_link.txt" in listed
    assert not [p for p in listed if p.startswith(("looped/sub/", "looped/data/"))]


def test_import_writes_regexp_patterns_when_airflow_reads_them(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               airflow_home: Path) -> None:
    from airflow._shared.module_loading.file_discovery import find_path_from_directory

    from flow_airflow.cli import main

    monkeypatch.setenv("AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX", "regexp")
    dags = tmp_path / "dags"
    flow = looped(tmp_path)
    (flow.parent / "keep.yaml").write_text("a: 1\n")
    (flow.parent / ".airflowignore").write_text("skipped")  # the project's own, kept
    assert main(["import", str(flow), "--dags-folder", str(dags)]) == 0
    lines = (dags / "looped" / ".airflowignore").read_text().splitlines()
    assert lines[0] == "skipped" and r"^looped/sub/up$" in lines
    listed = sorted(os.path.relpath(p, dags) for p in find_path_from_directory(str(dags), ".airflowignore", "regexp"))
    assert "looped/keep.yaml" in listed and not [p for p in listed if "/sub/" in p]


def test_the_loader_names_a_hand_placed_loop_and_loads_every_flow(tmp_path: Path, airflow_home: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    from flow_airflow.loader import load_dags

    dags = tmp_path / "dags"
    project(dags / "good", "Good")
    project(dags / "also", "Also")
    (dags / "also" / "up").symlink_to("..")  # by hand: no .airflowignore
    (dags / "flows.py").write_text(LOADER)
    dags_loaded = load_dags(dags / "flows.py")  # raised RuntimeError("Detected recursive loop ...") before
    assert sorted(dags_loaded) == ["flow__also", "flow__good"]
    assert f"{dags}/also/up: a link to a folder above it ({dags.resolve()}): not followed" in caplog.text


def test_validate_names_a_loop_in_one_line_and_checks_the_rest(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    project(dags / "good", "Good")
    (dags / "good" / "up").symlink_to("..")
    (dags / "twice").symlink_to("good")
    done = subprocess.run([sys.executable, "-m", "flow_airflow.cli", "validate", str(dags)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = done.stderr.splitlines()
    assert f"{dags}/good/up: a link to a folder above it ({dags.resolve()}): not followed; Airflow's own walk " \
           "of the dags folder stops on it ('Detected recursive loop'), list it in .airflowignore " \
           "(flow-airflow import does so for a project's links)" in errors
    assert any(e.startswith(f"{dags}/twice: a second way into a folder the walk goes through anyway") for e in errors)
    assert f"{dags}/good/flow.yaml: OK, flow 'Good'" in done.stdout
    assert "1 flow file, 0 with errors; 2 folder links not followed (see above)" in done.stdout


def test_airflows_dag_processor_lists_every_flow_beside_an_imported_loop(tmp_path: Path) -> None:
    from bench.env import clean_env

    home, dags = tmp_path / "home", tmp_path / "dags"
    home.mkdir()
    env = clean_env(home, dags, AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=600,
                              cwd=home)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    for name in ("first", "second", "third"):
        run("flow_airflow.cli", "import", str(project(tmp_path / name, name.title())), "--dags-folder", str(dags))
    run("flow_airflow.cli", "import", str(looped(tmp_path)), "--dags-folder", str(dags))
    run("airflow", "db", "migrate")
    run("airflow", "dag-processor", "--num-runs", "1")
    query = ("import json; from sqlalchemy import select; from airflow.models.dag import DagModel; "
             "from airflow.models.errors import ParseImportError; from airflow.utils.session import create_session\n"
             "with create_session() as s:\n"
             "    print(json.dumps([sorted(d.dag_id for d in s.scalars(select(DagModel)) if not d.is_stale), "
             "[e.filename for e in s.scalars(select(ParseImportError))]]))")
    query = subprocess.run([sys.executable, "-c", query], env=env, capture_output=True, text=True, check=True)
    listed, errors = json.loads(query.stdout.splitlines()[-1])
    assert listed == ["first", "looped", "second", "third"] and errors == []
