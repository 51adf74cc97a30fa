"""AI Library components (issue 25, section 1; flow_airflow/spec/library.py): found by the slug of their title,
the highest version unless one is named, merged into the task, their files the working directory's; a name or a
version that is not there is a validate error at its line with the candidates; a plan kept in the plan cache is
made again when a component changes. Then the project of tests/library/components.py run for real, locally."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from flow_airflow.cli import main
from flow_airflow.spec import library
from flow_airflow.spec.errors import FlowError
from flow_airflow.spec.load import load_flow
from tests.library.components import CONNECTOR, CONNECTOR_YAML, FLOW, PREP_YAML, blueprint, write


def test_components_are_found_by_the_slug_of_their_title_highest_version_first(tmp_path: Path) -> None:
    flow = load_flow(blueprint(tmp_path / "p"))
    used = {title: (u.component.slug, u.component.version, u.component.folder.name)
            for title, u in flow.components.items()}
    assert used == {
        "Tiny Connector": ("tiny-connector", "1.0.0", "connector"),
        "Data-Prep": ("churn-prep", "1.2.0", "prep_v2"),  # no library_version: the highest
        "Old Prep": ("churn-prep", "1.0.0", "prep_v1"),
        "Inference": ("tiny-inference", "1.0.0", "serve"),
    }
    connector = flow.task("Tiny Connector")
    # the task's params, as it lists them (values: [] stays unset), never the component's
    assert [(p.key, p.values) for p in connector.params] == [
        ("endpoint", ["http://127.0.0.1:9 download"]), ("bucketname", ["libhub-readme"]), ("prefix", [])]
    assert connector.script == "python3 connector.py" and connector.image == "python:3.11-slim"
    assert connector.resources is not None and connector.resources.cpu == 1
    prep = flow.task("Data-Prep")
    assert [(p.key, p.values) for p in prep.params] == [("rows", ["/input/tiny_connector/rows.csv"]),
                                                         ("label", ["churn flag"])]
    old = flow.task("Old Prep")  # names no params: the component's arguments are its params
    assert [(p.key, p.values) for p in old.params] == [("rows", ["/input/tiny_connector/rows.csv"])]
    inference = flow.task("Inference")
    assert (inference.file_name, inference.function_name, inference.kind) == ("predict.py", "predict", "webservice")
    assert inference.input_example == {"x": 1} and inference.accept_files is False
    assert flow.components["Tiny Connector"].gave == ("command", "image", "language", "requirements")
    assert flow.components["Old Prep"].gave == ("command", "image", "params")


def test_library_folders_come_after_the_flows_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flow_airflow import settings

    shared = write(tmp_path / "shared", {
        "deep/a/b/library.yaml": PREP_YAML.format(version="9.0.0").replace("Churn Prep", "Shared Prep"),
        "deep/a/b/c/library.yaml": PREP_YAML.format(version="1.0.0").replace("Churn Prep", "Too Deep"),
        ".hidden/library.yaml": PREP_YAML.format(version="1.0.0").replace("Churn Prep", "Hidden Prep"),
        "other/library.yaml": PREP_YAML.format(version="9.9.9"),  # churn-prep: the project's own is taken
    })
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__LIBRARY_FOLDERS", json.dumps([str(shared)]))
    settings.reset()
    project = blueprint(tmp_path / "p")
    catalog = library.find(project.parent, settings.library_folders())
    assert catalog.versions("churn-prep") == ["1.0.0", "1.2.0"]
    assert catalog.versions("shared-prep") == ["9.0.0"]
    assert catalog.versions("too-deep") == [] and catalog.versions("hidden-prep") == []
    project.write_text(FLOW.replace("library: churn-prep\n    library_version: 1.0.0", "library: shared-prep"))
    flow = load_flow(project, library_folders=settings.library_folders())
    assert flow.components["Old Prep"].component.folder == (shared / "deep" / "a" / "b").resolve()
    assert flow.components["Data-Prep"].component.folder.name == "prep_v2"


def test_unknown_names_versions_and_kinds_are_validate_errors_with_the_candidates(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = blueprint(tmp_path / "p")
    text = (FLOW.replace("library: tiny-connector\n    library_version: 1.0.0",
                         "library: tiny-conector\n    library_version: 1.0.0")
                .replace("library: churn-prep\n    library_version: 1.0.0", "library: churn-prep\n"
                         "    library_version: 2.0.0")
                .replace("library: tiny-inference", "library: churn-prep"))
    project.write_text(text)
    with pytest.raises(FlowError) as raised:
        load_flow(project)
    lines = text.splitlines()
    at = {word: next(n for n, line in enumerate(lines, 1) if word in line) for word in ("tiny-conector", "2.0.0")}
    found = {(i.line, i.message) for i in raised.value.issues}
    assert (at["tiny-conector"], f"task 'Tiny Connector': no AI Library component 'tiny-conector' (did you mean "
            f"'tiny-connector'?) in {project.parent.resolve()} (a component is a folder with a library.yaml whose "
            "title slugs to its name; more places: [flow_airflow] library_folders)") in found
    assert (at["2.0.0"], "task 'Old Prep': component 'churn-prep' has no version 2.0.0 "
            "(versions here: 1.0.0, 1.2.0)") in found
    [kind] = [m for _, m in found if "Inference" in m and "component" in m]
    assert "'churn-prep'" in kind and "is an exec component: use it in an exec task" in kind
    assert main(["validate", str(project)]) == 1
    said = capsys.readouterr()
    assert f"{project}:{at['2.0.0']}:" in said.err and "Traceback" not in said.err + said.out


def test_a_broken_library_yaml_is_named_when_the_component_is_not_found(tmp_path: Path) -> None:
    project = blueprint(tmp_path / "p")
    (project.parent / "connector" / "library.yaml").write_text("title: [Tiny Connector\n")
    with pytest.raises(FlowError) as raised:
        load_flow(project)
    [issue] = raised.value.issues
    assert "no AI Library component 'tiny-connector'" in issue.message
    assert "connector/library.yaml is not valid YAML (line 2)" in issue.message, issue.message


def test_plan_shows_each_tasks_component(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = blueprint(tmp_path / "p")
    assert main(["plan", str(project)]) == 0
    out = capsys.readouterr().out
    folder = project.parent.resolve()
    assert (f"AI Library component tiny-connector 1.0.0 from {folder / 'connector'}, giving command, image, "
            "language, requirements") in out
    assert f"AI Library component churn-prep 1.0.0 from {folder / 'prep_v1'}, giving command, image, params" in out
    assert f"AI Library component churn-prep 1.2.0 from {folder / 'prep_v2'}, giving command, image" in out
    assert "params without a value, not passed until given one: prefix" in out


def test_a_kept_plan_is_made_again_when_a_component_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    from flow_airflow import settings
    from flow_airflow.plan import cache

    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__CACHE_FOLDER", str(tmp_path / "cache"))
    settings.reset()
    project = blueprint(tmp_path / "p")
    text = project.read_text()
    first = cache.compiled(project, text)
    assert not isinstance(first, str)
    kept = cache.lookup(project, text)
    assert kept is not None and kept[1] is not None  # unchanged: the kept plan
    time.sleep(0.01)
    (project.parent / "connector" / "library.yaml").write_text(CONNECTOR_YAML.replace("python3 connector.py",
                                                                                      "python3 connector2.py"))
    assert cache.lookup(project, text) is None  # its component changed: compiled anew
    second = cache.compiled(project, text)
    assert not isinstance(second, str)
    assert second.plan.flow.task("Tiny Connector").script == "python3 connector2.py"
    write(project.parent, {"more/library.yaml": PREP_YAML.format(version="2.0.0")})  # a higher version appears
    assert cache.lookup(project, text) is None
    assert CONNECTOR  # the script is the component's (copied into the working directory at run time)


@pytest.mark.airflow
def test_a_blueprint_with_components_runs_on_the_local_compute(
        airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flow_airflow.endpoints.rollout import stop_all
    from flow_airflow.endpoints.store import EndpointStore

    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ENDPOINTS_FOLDER", str(tmp_path / "endpoints"))
    try:
        _runs_locally(tmp_path)
    finally:
        stop_all(EndpointStore(tmp_path / "endpoints"), "the test's end")


def _runs_locally(tmp_path: Path) -> None:
    from flow_airflow.endpoints import keys
    from flow_airflow.local_run import run_flow
    from tests.endpoints.test_deploy_local import predict

    result = run_flow(blueprint(tmp_path / "p"))
    assert result.state == "success", [(e.task, e.state, e.record) for e in result.experiments]
    [connector] = result.of("Tiny Connector")
    output = Path(connector.record["output"])
    # argv as cnvrg builds it: each param --key then its words (the subcommand in the endpoint's value), unset ones
    # left out
    [argv] = output.rglob("argv.json")
    assert json.loads(argv.read_text()) == [
        "--endpoint", "http://127.0.0.1:9", "download", "--bucketname", "libhub-readme"]
    [prep] = result.of("Data-Prep")
    assert prep.tags["prep_version"] == "1.2.0" and prep.tags["prerun_ran"] == "True"  # the component's prerun.sh
    assert prep.tags["rows"] == "3" and prep.tags["churned"] == "2"  # both SDKs, on /input/tiny_connector
    assert prep.tags["label"] == "churn+flag"  # a value's words: two arguments
    [old] = result.of("Old Prep")
    assert old.tags["prep_version"] == "1.0.0" and old.tags["prerun_ran"] == "False" and old.tags["rows"] == "3"
    [inference] = result.of("Inference")
    key = keys.get("inference")
    assert predict(inference.tags["endpoint_url"], {"x": 0.9}, key).json()["prediction"] == "churn"
    assert predict(inference.tags["endpoint_url"], {"x": 0.1}, key).json()["prediction"] == "stay"


def test_library_list_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = blueprint(tmp_path / "p")
    (project.parent / "broken").mkdir()
    (project.parent / "broken" / "library.yaml").write_text("version: 1\n")
    assert main(["library", "list", str(project)]) == 0
    said = capsys.readouterr()
    folder = project.parent.resolve()
    assert said.out.splitlines() == [
        f"looked in: {folder}",
        f"churn-prep 1.0.0 [exec] 'Churn Prep' {folder / 'prep_v1'}",
        f"churn-prep 1.2.0 [exec] 'Churn Prep' {folder / 'prep_v2'}",
        f"tiny-connector 1.0.0 [exec] 'Tiny Connector' {folder / 'connector'}",
        f"tiny-inference 1.0.0 [deploy] 'Tiny Inference' {folder / 'serve'}",
    ]
    assert said.err == (f"{folder / 'broken' / 'library.yaml'}: has no 'title': a component is named by the slug "
                        "of its title\n")
    assert main(["library", "show", "tiny-connector", "--folder", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "  command: python3 connector.py\n" in out and "  param bucketname: unset until given\n" in out
    assert '  param endpoint: ["https://s3.amazonaws.com download"]\n' in out
    assert "  files: connector.py, library.yaml\n" in out
    assert main(["library", "show", "churn-prep", "--version", "3.0", "--folder", str(project)]) == 1
    assert capsys.readouterr().err == "no component 'churn-prep' version 3.0 (versions here: 1.0.0, 1.2.0)\n"


def test_a_hostile_library_yaml_is_refused_in_bounded_time(tmp_path: Path) -> None:
    lines = ["title: Bomb", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [*a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}]"
              for n in range(1, 12)]
    lines.append("arguments: *a11")
    write(tmp_path / "p", {"bomb/library.yaml": "\n".join(lines) + "\n"})
    started = time.monotonic()
    catalog = library.find(tmp_path / "p")
    assert time.monotonic() - started < 5
    [broken] = catalog.broken
    assert "is not valid YAML" in broken.problem and "alias" in broken.problem, broken.problem


def test_a_kept_plan_whose_component_was_missing_is_made_again_when_it_appears(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flow_airflow import settings
    from flow_airflow.plan import cache

    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__CACHE_FOLDER", str(tmp_path / "cache"))
    settings.reset()
    project = write(tmp_path / "p", {"flow.yaml": "title: Own\ntasks:\n  - {title: A, type: exec, library: "
                                                  "zebra-thing, command: python3 a.py}\nrelations: []\n"})
    text = (project / "flow.yaml").read_text()
    first = cache.compiled(project / "flow.yaml", text)
    assert not isinstance(first, str) and first.plan.flow.components == {}  # a warning: it runs its own a.py
    assert cache.lookup(project / "flow.yaml", text) is not None
    write(project, {"zebra/library.yaml": "title: Zebra Thing\nversion: 1\ncommand: python3 z.py\n"})
    assert cache.lookup(project / "flow.yaml", text) is None  # the component appeared: compiled anew
    second = cache.compiled(project / "flow.yaml", text)
    assert not isinstance(second, str) and second.plan.flow.components["A"].component.slug == "zebra-thing"
