"""Files exported from cnvrg's flow page (issue 26): each key of the page does what it says or is refused on its
line, and a file that makes one mistake in many places says it once (tests/flows/exports)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flow_airflow.cli import main
from flow_airflow.plan.flow_plan import plan_flow
from flow_airflow.spec.errors import FlowError
from flow_airflow.spec.load import load_flow
from flow_airflow.spec.models import DataTask, DeployTask, ExecTask

EXPORTS = Path(__file__).parents[1] / "flows" / "exports"
EXAMPLES = [EXPORTS / "experiments" / "flow.yaml", EXPORTS / "endpoint_update" / "create.yaml",
            EXPORTS / "endpoint_update" / "flow.yaml"]

TASK = """\
- input: python3 train.py
  params:
  - key: lr
    type: discrete
    min: 0
    max: 0
    scale: linear
    steps: 0
    values: ['0.1', '0.01']
  computes: [local]
  type: exec
  title: {title}
{extra}
"""


def write(tmp_path: Path, extra: str = "", titles: tuple[str, ...] = ("Train",)) -> Path:
    """An exported flow of exec tasks, each with the page's ``extra`` keys (two-space indented lines)."""
    file = tmp_path / "flow.yaml"
    tasks = "".join(TASK.format(title=t, extra=extra) for t in titles)
    file.write_text(f"flow: Export\ntasks:\n{tasks}relations: []\n")
    return file


def errors(file: Path) -> list[str]:
    with pytest.raises(FlowError) as caught:
        load_flow(file)
    return [str(i).split("flow.yaml:")[1] for i in caught.value.summary]


@pytest.mark.parametrize("file", EXAMPLES, ids=lambda f: f"{f.parent.name}/{f.name}")
def test_every_export_example_validates_and_plans(file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(file)]) == 0
    assert main(["plan", str(file)]) == 0


def test_the_plan_of_an_exported_grid(capsys: pytest.CaptureFixture[str]) -> None:
    file = EXAMPLES[0]
    flow = load_flow(file)
    prepare, train, report = flow.spec.tasks
    assert isinstance(train, ExecTask) and isinstance(report, ExecTask) and isinstance(prepare, ExecTask)
    assert (train.parallel_jobs, train.max_jobs) == (2, 8)
    assert (train.algorithm, train.objective_function) == ("GridSearch", "max")
    assert (prepare.parallel_jobs, prepare.max_jobs) == (None, None)  # -1: no limit
    assert (report.single_mode, train.single_mode) == (True, False)  # standalone_mode
    assert (train.revision, train.queue_slug) == (None, "q7ex4mplequeue0slug1")  # git_commit: latest
    plans = {t.title: t for t in plan_flow(flow).tasks}
    assert dict(plans["Train"].params) == {"epochs": ["5", "8", "12", "16"], "lr": ["0.1", "0.01"]}
    assert [plans[t].count for t in ("Prepare", "Train", "Report")] == [1, 8, 1]
    capsys.readouterr()
    main(["plan", str(file)])
    out = capsys.readouterr().out
    for line in ("  Train [exec after Prepare]: 8 routes (4 x 2)",
                 "      epochs: 5, 8, 12, 16 (integer, linear, 4 steps from 5 to 20, 20 not included)",
                 "      at most 2 experiment(s) at once (parallel_jobs: Airflow's max_active_tis_per_dagrun)",
                 "      at most 8 experiment(s) in its grid (max_jobs: a larger grid is refused)",
                 "      cnvrg queue q7ex4mplequeue0slug1 (queue_slug): not used, Airflow's workers take it from the "
                 "default queue",
                 "      single mode: its own grid only, no upstream artifacts"):
        assert line + "\n" in out, out
    assert out.count("at most") == 2  # Prepare and Report have no limit (-1)


def test_parallel_jobs_is_max_active_tis_per_dagrun_of_the_mapped_task() -> None:
    from flow_airflow.render.dag import build_dag

    dag = build_dag(plan_flow(load_flow(EXAMPLES[0])))
    limits = {t: dag.get_task(f"{t}.run").partial_kwargs.get("max_active_tis_per_dagrun")
              for t in ("prepare", "train", "report")}
    assert limits == {"prepare": None, "train": 2, "report": None}


def test_an_exported_update_of_an_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    file = EXAMPLES[2]
    words, _, bot = load_flow(file).spec.tasks
    assert isinstance(words, DataTask) and words.sync_type == "sync_all"
    assert isinstance(bot, DeployTask)
    assert (bot.kind, bot.endpoint_id, bot.endpoint_title) == ("webserver", "xk2d8exampleendpoint", "qa-bot")
    assert not bot.serves_own_code and bot.flask_config == []  # the page's empty {key: '', value: ''} item
    capsys.readouterr()
    main(["plan", str(file)])
    assert ("      updates the existing endpoint 'xk2d8exampleendpoint' or 'qa-bot' (webserver): the code it serves "
            "now, with this run's inputs, on its compute\n") in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    ("  standalone_mode: true\n  single_mode: false",
     "'standalone_mode' (the flow page's name of 'single_mode') and 'single_mode' differ; keep one"),
    ("  parallel_jobs: 0", "'parallel_jobs' must be -1 (no limit) or a number of experiments (at least 1), not 0"),
    ("  max_jobs: -2", "'max_jobs' must be -1 (no limit) or a number of experiments (at least 1), not -2"),
    ("  max_jobs: 1", "task 'Train': its grid has 2 experiments, more than its max_jobs (1): flow-airflow runs every "
                      "route of a grid, never a part of it; raise max_jobs (-1: no limit) or give fewer values"),
    ("  algorithm: BayesianSearch", "algorithm 'BayesianSearch' is not run here: flow-airflow runs every route of a "
                                    "task's grid, as cnvrg's GridSearch does (algorithm: GridSearch)"),
    ("  objective: accuracy", "'objective: accuracy' steers an optimizing search, and a grid search runs every "
                              "route: leave it empty, and to keep the best experiment put a condition after the task"),
    ("  objective_goal: '0.9'", "'objective_goal: 0.9' steers an optimizing search"),
    ("  objective_function: median", "'objective_function' must be 'min' or 'max', not 'median'"),
])
def test_what_an_exported_exec_task_refuses(tmp_path: Path, extra: str, message: str) -> None:
    [error] = errors(write(tmp_path, extra))
    assert message in error, error


def test_max_jobs_at_the_size_of_the_grid_and_no_limit(tmp_path: Path) -> None:
    for limit in ("2", "-1"):
        [train] = plan_flow(load_flow(write(tmp_path, f"  max_jobs: {limit}"))).tasks
        assert train.count == 2


def test_git_commit_latest_is_the_newest_and_a_commit_beside_it_is_kept(tmp_path: Path) -> None:
    [task] = load_flow(write(tmp_path, "  git_commit: latest\n  commit: 472b07b")).spec.tasks
    assert isinstance(task, ExecTask) and task.revision == "472b07b"  # as an empty git_commit
    [task] = load_flow(write(tmp_path, "  git_commit: 9a1b2c3")).spec.tasks
    assert isinstance(task, ExecTask) and task.revision == "9a1b2c3"


DEPLOY = """\
flow: Export
tasks:
- title: Bot
  type: deploy
  computes: [local]
{extra}
relations: []
"""


@pytest.mark.parametrize("extra, message", [
    ("  endpoint_title: bot\n  kafka_brokers: [broker:9092]\n  file_name: p.py\n  function_name: f\n"
     "  min_replica: 1\n  max_replica: 1",
     "7:18: task 'Bot': 'kafka_brokers' is a key of a Kafka stream endpoint, and flow-airflow's endpoints answer HTTP "
     "requests only (kind: webservice): nothing here reads or writes Kafka topics; leave the stream keys empty"),
    ("  endpoint_id: bot\n  nginx_config: [{key: worker_connections, value: '1024'}]",
     "7:17: task 'Bot': 'nginx_config' is a key of a Kafka stream endpoint"),
    ("  min_replica: 1", "3:3: task 'Bot' needs 'file_name' and 'function_name' (the predict function); without them "
                         "it updates an existing endpoint, named by 'endpoint_id' or 'endpoint_title'"),
    ("  endpoint_id: bot\n  file_name: predict.py", "3:3: task 'Bot' needs 'function_name' beside 'file_name'"),
])
def test_what_an_exported_deploy_task_refuses(tmp_path: Path, extra: str, message: str) -> None:
    file = tmp_path / "flow.yaml"
    file.write_text(DEPLOY.format(extra=extra))
    found = errors(file)
    assert any(e.startswith(message) for e in found), found


def test_empty_stream_keys_and_flask_items_load(tmp_path: Path) -> None:
    file = tmp_path / "flow.yaml"
    file.write_text(DEPLOY.format(extra="  endpoint_id: bot\n  kafka_brokers: []\n  kafka_input_topics: []\n"
                                        "  kafka_output_topics: []\n  nginx_config: [{key: '', value: ''}]\n"
                                        "  flask_config: [{key: '', value: ''}, {key: DEBUG, value: 'false'}]"))
    [bot] = load_flow(file).spec.tasks
    assert isinstance(bot, DeployTask) and [(kv.key, kv.value) for kv in bot.flask_config] == [("DEBUG", "false")]


def test_sync_flatten_is_refused_on_its_line(tmp_path: Path) -> None:
    file = tmp_path / "flow.yaml"
    file.write_text("flow: Export\ntasks:\n- title: Words\n  type: data\n  dataset: words\n  sync_type: sync_flatten\n"
                    "relations: []\n")
    assert errors(file) == ["6:14: task 'Words': sync_type 'sync_flatten' (every file at the top of the folder) is "
                            "not done here: a data task gives the dataset version's files as they are in it, in their "
                            "folders (sync_type: sync_all)"]


def test_one_line_per_distinct_mistake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An export of 8 tasks from another cnvrg version, with two keys unknown here in each: 2 lines, not 16."""
    titles = tuple(f"Task {n}" for n in range(8))
    file = write(tmp_path, "  queue_id: q1\n  algorythm: GridSearch", titles)
    text = file.read_text().splitlines()
    at = {key: [n for n, line in enumerate(text, 1) if line.startswith(f"  {key}:")]
          for key in ("queue_id", "algorythm")}
    assert errors(file) == [
        f"{at['queue_id'][0]}:3: task 'Task 0': unknown key 'queue_id' (did you mean 'queue_slug'?) (8 times: also at "
        f"lines {', '.join(map(str, at['queue_id'][1:]))})",
        f"{at['algorythm'][0]}:3: task 'Task 0': unknown key 'algorythm' (did you mean 'algorithm'?) (8 times: also "
        f"at lines {', '.join(map(str, at['algorythm'][1:]))})",
    ]
    capsys.readouterr()
    assert main(["validate", str(file)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 2
    with pytest.raises(FlowError) as caught:
        load_flow(file)
    assert len(caught.value.issues) == 16  # every place is kept, for whoever needs them
