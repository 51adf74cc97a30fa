"""The loader in the dags folder: every flow a DAG, every broken flow an import error of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flow_airflow.cli import LOADER

FLOWS = Path(__file__).parent / "flows"
pytestmark = pytest.mark.airflow


def dags_folder(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "flows.py").write_text(LOADER)
    for name in names:
        shutil.copytree(FLOWS / name, folder / name)
    return folder


def bag(folder: Path):
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="test")


def test_valid_flows_become_dags_and_broken_ones_import_errors_of_their_file(tmp_path: Path,
                                                                             airflow_home: Path) -> None:
    folder = dags_folder(tmp_path, "grid_two", "invalid", "artifacts_tags")
    (folder / "not_a_flow.yaml").write_text("just: some config\n")
    (folder / "ignored").mkdir()
    (folder / "ignored" / "flow.yaml").write_text("flow: Ignored\ntasks: [oops\n")
    (folder / ".airflowignore").write_text("ignored/\n")
    dagbag = bag(folder)
    assert sorted(dagbag.dags) == ["artifacts_and_tags", "two_grid_searches"]
    invalid = sorted(p.name for p in (FLOWS / "invalid").glob("*.yaml"))
    assert sorted(dagbag.import_errors) == [f"invalid/{name}" for name in invalid]
    message = dagbag.import_errors["invalid/cycle.yaml"]
    assert message == "invalid/cycle.yaml:7:5: the relations make a cycle: A -> B -> A"
    assert "Traceback" not in "".join(dagbag.import_errors.values())


def test_import_errors_reach_the_metadata_db_beside_working_dags(tmp_path: Path, airflow_home: Path) -> None:
    from airflow.dag_processing.dagbag import sync_bag_to_db
    from airflow.models import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.errors import ParseImportError
    from airflow.utils.session import create_session
    from sqlalchemy import select

    folder = dags_folder(tmp_path, "grid_three", "invalid")
    with create_session() as session:
        session.merge(DagBundleModel(name="test"))
    sync_bag_to_db(bag(folder), "test", None)
    with create_session() as session:
        errors = {e.filename: e.stacktrace for e in session.scalars(
            select(ParseImportError).where(ParseImportError.bundle_name == "test"))}
        dag = session.scalar(select(DagModel).where(DagModel.dag_id == "three_grid_searches"))
        assert dag is not None and not dag.is_stale and not dag.has_import_errors
        assert dag.relative_fileloc == "flows.py"
    assert "tab character" in errors["invalid/bad_yaml.yaml"]
    assert ":5:19: relation to 'Missing'" in errors["invalid/unknown_task.yaml"]


def test_dag_shape(tmp_path: Path, airflow_home: Path) -> None:
    folder = dags_folder(tmp_path, "grid_three", "conditions", "dynamic_routes")
    dags = bag(folder).dags
    grid = dags["three_grid_searches"]
    assert grid.dag_display_name == "Three Grid Searches"
    assert "cnvrg-flow" in grid.tags and "30 routes (2 x 3 x 5)" in grid.doc_md
    assert set(grid.task_group.children) == {"grid_search_a", "grid_search_b", "grid_search_c", "flow-outcome"}
    c = grid.get_task("grid_search_c.run")
    assert c.task_display_name == "Grid Search C"
    assert sorted(c.upstream_task_ids) == ["grid_search_a.run", "grid_search_b.run"]
    assert len(c.expand_input.value["route"]) == 30  # a static list: known at compile time
    assert c.partial_kwargs["trigger_rule"] == "all_done"  # a failed parent experiment stops only its own routes
    assert grid.get_task("flow-outcome").upstream_task_ids == {"grid_search_c.run"}
    assert set(grid.params) == {"Grid Search A", "Grid Search B", "Grid Search C"}
    conditions = dags["conditions"]
    assert type(conditions.get_task("compare.condition")).__name__ == "ConditionOperator"
    assert conditions.get_task("compare.run").upstream_task_ids == {"compare.condition"}
    dynamic = dags["dynamic_routes"]
    assert dynamic.get_task("dynamic.routes").upstream_task_ids == {"params.run"}


def test_a_worker_parses_only_the_flow_it_runs(tmp_path: Path, airflow_home: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder = dags_folder(tmp_path, "grid_two", "grid_three", "invalid")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "two_grid_searches")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "grid_search_a.run")
    assert sorted(bag(folder).dags) == ["two_grid_searches"]


def test_same_title_twice_is_an_error_of_the_second_file(tmp_path: Path, airflow_home: Path) -> None:
    folder = dags_folder(tmp_path, "grid_two")
    shutil.copytree(FLOWS / "grid_two", folder / "copy")
    dagbag = bag(folder)
    assert list(dagbag.dags) == ["two_grid_searches"]
    assert "gives the DAG id 'two_grid_searches', already used by" in dagbag.import_errors["grid_two/flow.yaml"]


def test_flows_in_symlinked_folders_load_and_their_errors_keep_the_link_path(tmp_path: Path,
                                                                             airflow_home: Path) -> None:
    folder = dags_folder(tmp_path)
    (folder / "examples").mkdir()
    (folder / "examples" / "grid_two").symlink_to(FLOWS / "grid_two", target_is_directory=True)
    (folder / "examples" / "invalid").symlink_to(FLOWS / "invalid", target_is_directory=True)
    dagbag = bag(folder)
    assert "two_grid_searches" in dagbag.dags
    assert dagbag.import_errors["examples/invalid/cycle.yaml"] == (
        "examples/invalid/cycle.yaml:7:5: the relations make a cycle: A -> B -> A")


def test_share_loaders_split_the_flows_each_flow_in_one(tmp_path: Path, airflow_home: Path) -> None:
    from flow_airflow.shares import in_share, share_files

    folder = dags_folder(tmp_path, "grid_two", "grid_three", "conditions", "dynamic_routes", "invalid")
    (folder / "flows.py").unlink()
    loaders = share_files(folder, 4)
    for loader in loaders:
        loader.write_text(LOADER)
    dagbag = bag(folder)
    assert sorted(dagbag.dags) == ["conditions", "dynamic_routes", "three_grid_searches",
                                   "two_grid_searches"]
    owners = {dag_id: dag.relative_fileloc for dag_id, dag in dagbag.dags.items()}
    for dag_id, owner in owners.items():  # each flow in the share its path hashes to
        k = int(owner.split("_")[1])
        yaml = {"conditions": "conditions", "dynamic_routes": "dynamic_routes",
                "three_grid_searches": "grid_three", "two_grid_searches": "grid_two"}[dag_id] + "/flow.yaml"
        assert [s for s in range(1, 5) if in_share(yaml, (s, 4))] == [k]
    assert len(set(owners.values())) > 1  # spread over several loader files
    invalid = sorted(p.name for p in (FLOWS / "invalid").glob("*.yaml"))
    assert sorted(dagbag.import_errors) == [f"invalid/{name}" for name in invalid]  # each once, of its YAML file
    cycle = dagbag.import_errors["invalid/cycle.yaml"]
    assert cycle == "invalid/cycle.yaml:7:5: the relations make a cycle: A -> B -> A"


def test_a_loader_named_for_a_share_that_cannot_be_is_an_import_error(tmp_path: Path, airflow_home: Path) -> None:
    folder = dags_folder(tmp_path, "grid_two")
    (folder / "flows.py").rename(folder / "flows_5_of_3.py")
    dagbag = bag(folder)
    assert dagbag.dags == {}
    assert dagbag.import_errors == {"flows_5_of_3.py": "flows_5_of_3.py: the loader's name says share 5 of 3: "
                                                       "k must be 1 to n"}


def test_same_title_in_two_shares_stays_with_the_first_path(tmp_path: Path, airflow_home: Path) -> None:
    """Each share parses in its own process in the DAG processor: they agree through the index each
    writes (flow_airflow.shares); from the second parse of both on, one DAG and one import error."""
    from flow_airflow.shares import in_share, share_files

    folder = dags_folder(tmp_path)
    (folder / "flows.py").unlink()
    for loader in share_files(folder, 4):
        loader.write_text(LOADER)
    names = [f"copy{i}" for i in range(40)]
    first = names[0]
    share = next(k for k in range(1, 5) if in_share(f"{first}/flow.yaml", (k, 4)))
    second = next(n for n in sorted(names[1:]) if not in_share(f"{n}/flow.yaml", (share, 4)))
    for name in (first, second):
        shutil.copytree(FLOWS / "grid_two", folder / name)
    from flow_airflow.loader import load_dags

    for loader in reversed(share_files(folder, 4)):  # the later path's share parses first, without an index
        load_dags(loader)
    dagbag = bag(folder)
    assert list(dagbag.dags) == ["two_grid_searches"]
    assert dagbag.dags["two_grid_searches"].fileloc == str(folder / share_files(folder, 4)[share - 1].name)
    assert sorted(dagbag.import_errors) == [f"{second}/flow.yaml"]
    assert f"gives the DAG id 'two_grid_searches', already used by {folder / first}/flow.yaml" in (
        dagbag.import_errors[f"{second}/flow.yaml"])
    shutil.rmtree(folder / first)  # the first one gone: the second one is the DAG at its share's next parse
    dagbag = bag(folder)
    assert list(dagbag.dags) == ["two_grid_searches"] and not dagbag.import_errors


def test_loader_files_that_would_load_flows_twice_are_import_errors(tmp_path: Path, airflow_home: Path) -> None:
    from flow_airflow.shares import share_files

    folder = dags_folder(tmp_path, "grid_two", "grid_three")
    for loader in [*share_files(folder, 2), *share_files(folder, 3)[:1]]:  # flows.py, 2 shares and 1 of 3
        loader.write_text(LOADER)
    dagbag = bag(folder)
    assert dagbag.dags == {}
    assert sorted(dagbag.import_errors) == ["flows.py", "flows_1_of_2.py", "flows_1_of_3.py", "flows_2_of_2.py"]
    assert dagbag.import_errors["flows.py"] == (
        "flows.py: the loader files flows.py, flows_*_of_2.py, flows_*_of_3.py would each load the same flows: "
        "keep one set of them (README 'A thousand flows')")


def test_the_flows_of_a_missing_share_file_are_import_errors(tmp_path: Path, airflow_home: Path) -> None:
    from flow_airflow.shares import in_share, share_files

    folder = dags_folder(tmp_path, "grid_two", "grid_three", "conditions", "dynamic_routes")
    (folder / "flows.py").unlink()
    loaders = share_files(folder, 4)
    for loader in loaders:
        loader.write_text(LOADER)
    dagbag = bag(folder)
    gone = next(k for k in range(1, 5) if dagbag.dags and any(
        in_share(f"{name}/flow.yaml", (k, 4)) for name in ("grid_two", "grid_three", "conditions", "dynamic_routes")))
    loaders[gone - 1].unlink()
    lost = sorted(f"{name}/flow.yaml" for name in ("grid_two", "grid_three", "conditions", "dynamic_routes")
                  if in_share(f"{name}/flow.yaml", (gone, 4)))
    dagbag = bag(folder)
    assert len(dagbag.dags) == 4 - len(lost) and sorted(dagbag.import_errors) == lost
    assert dagbag.import_errors[lost[0]] == f"{lost[0]}: not loaded: its loader file flows_{gone}_of_4.py is missing"


def test_a_task_type_given_as_a_mapping_is_an_import_error_with_its_line(tmp_path: Path, airflow_home: Path) -> None:
    """Issue 29, item 9: the loader's import error had no line (a compiler failure, not the user's mistake)."""
    folder = dags_folder(tmp_path, "grid_two")
    (folder / "typed").mkdir()
    (folder / "typed" / "flow.yaml").write_text(
        "flow: Typed\ntasks:\n  - title: A\n    type: {exec: 1}\nrelations: []\n")
    dagbag = bag(folder)
    assert list(dagbag.dags) == ["two_grid_searches"]
    assert dagbag.import_errors["typed/flow.yaml"] == (
        "typed/flow.yaml:4:11: task 'A': 'type' must be exec, data or deploy, not a mapping")
