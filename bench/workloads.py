"""The benchmark workloads: a flow YAML and the hand-written Airflow DAG file doing the same work.

A :class:`Workload` is a list of tasks (params grid, parents). From it come

- the flow file (cnvrg YAML) that flow-airflow compiles, and
- a hand-written Airflow DAG file as an Airflow user would write it for the same pipeline:
  one ``BashOperator`` per task, mapped (``.expand``) over the same routes, running the same
  command with the same ``--key value`` arguments in the project folder, with the same
  dependencies.

Routes are computed here on their own, by cnvrg's rule (a task runs once per permutation of
its params times each consistent choice of one experiment per parent), not by flow-airflow:
:func:`bench.parse.check_same_mapping` then checks that the compiled DAG maps the same counts.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

# The experiment every workload runs: it prints its arguments and logs one tag, as cnvrg scripts do.
STEP_PY = '''"""A benchmark experiment: print the arguments, log one tag."""
import sys
print("args:", " ".join(sys.argv[1:]))
print("cnvrg_tag_args:", " ".join(sys.argv[1:]))
'''


@dataclass
class Task:
    title: str
    params: list[tuple[str, list[str]]] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    command: str = "python3 step.py"

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9_]", "", self.title.strip().lower().replace(" ", "_"))


@dataclass
class Workload:
    title: str
    tasks: list[Task]

    @property
    def dag_id(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.title.strip()).strip("_.-").lower()

    # ---- routes ----------------------------------------------------------------------------------
    def routes(self) -> dict[str, list[list[tuple[str, str]]]]:
        """Every task's routes, as the params each route's command gets, in flow-airflow's order."""
        lineages: dict[str, list[dict[str, int]]] = {}
        result: dict[str, list[list[tuple[str, str]]]] = {}
        for task in self.tasks:
            choices: list[dict[str, int]] = [{}]
            for parent in task.parents:
                choices = [
                    {**chosen, **lineage}
                    for chosen in choices
                    for lineage in lineages[parent]
                    if all(chosen.get(k, v) == v for k, v in lineage.items())
                ]
            grid = [list(p) for p in itertools.product(*[[(k, v) for v in values] for k, values in task.params])]
            routes = [(chosen, params) for chosen in choices for params in grid]
            lineages[task.title] = [{**chosen, task.title: i} for i, (chosen, _) in enumerate(routes)]
            result[task.title] = [params for _, params in routes]
        return result

    def route_counts(self) -> dict[str, int]:
        return {title: len(r) for title, r in self.routes().items()}

    def total_routes(self) -> int:
        return sum(self.route_counts().values())

    # ---- the flow file -------------------------------------------------------------------------
    def flow_yaml(self) -> str:
        lines = [f"flow: {self.title}", "tasks:"]
        for task in self.tasks:
            lines += [f"  - title: {task.title}", "    type: exec", f"    input: {task.command}",
                      "    computes: [local]"]
            if task.params:
                lines.append("    params:")
                for key, values in task.params:
                    lines += [f"      - key: {key}", f"        value: {json.dumps(values)}"]
        relations = [(p, t.title) for t in self.tasks for p in t.parents]
        lines.append("relations:" if relations else "relations: []")
        for src, dst in relations:
            lines += [f"  - from: {src}", f"    to: {dst}"]
        return "\n".join(lines) + "\n"

    # ---- the hand-written DAG file ---------------------------------------------------------------
    def hand_dag(self, dag_id: str, project_dir: Path) -> str:
        """The DAG file an Airflow user would write for the same pipeline, the grids spelled out."""
        routes = self.routes()
        out = [
            f'"""Hand-written equivalent of the flow {self.title!r}: the same tasks, mapping and commands."""',
            "",
            "from airflow.providers.standard.operators.bash import BashOperator",
            "from airflow.sdk import DAG",
            "",
            f"PROJECT = {str(project_dir)!r}",
            "",
            f"with DAG(dag_id={dag_id!r}, schedule=None, catchup=False, tags=['bench']) as dag:",
        ]
        for task in self.tasks:
            commands = [" ".join([task.command, *(shlex.quote(w) for k, v in params
                                                  for w in (f"--{k}", *shlex.split(v)))])
                        for params in routes[task.title]]
            out.append(f"    {task.slug} = BashOperator.partial(task_id={task.slug!r}, cwd=PROJECT).expand(")
            out.append("        bash_command=[")
            out += [f"            {c!r}," for c in commands]
            out.append("        ]")
            out.append("    )")
        for task in self.tasks:
            for parent in task.parents:
                out.append(f"    {_slug(parent)} >> {task.slug}")
        return "\n".join(out) + "\n"

    # ---- writing both ----------------------------------------------------------------------------
    def write_flow(self, folder: Path) -> Path:
        """The flow file and its project (step.py) in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "step.py").write_text(STEP_PY)
        path = folder / "flow.yaml"
        path.write_text(self.flow_yaml())
        return path

    def write_hand(self, file: Path, dag_id: str, project_dir: Path) -> Path:
        file.parent.mkdir(parents=True, exist_ok=True)
        project_dir.mkdir(parents=True, exist_ok=True)
        (project_dir / "step.py").write_text(STEP_PY)
        file.write_text(self.hand_dag(dag_id, project_dir))
        return file


def _slug(title: str) -> str:
    return Task(title).slug


# ---- the workloads of the benchmark ------------------------------------------------------------
def pipelines(n_tasks: int) -> Workload:
    """``n_tasks`` tasks in pipelines of five, every one with a grid; 41 routes per five tasks.

    Per pipeline i: ``Prepare i`` (1 route, after ``Prepare i-1``) -> ``Train i`` (lr x depth = 6)
    -> ``Evaluate i`` (6, one per training); ``Prepare i`` -> ``Sweep i`` (4);
    ``Evaluate i`` + ``Sweep i`` -> ``Report i`` (6 x 4 = 24). Below five tasks, the first ones.
    """
    tasks: list[Task] = []
    for i in range(-(-n_tasks // 5)):
        tasks += [
            Task(f"Prepare {i}", [("seed", ["1"])], [f"Prepare {i - 1}"] if i else []),
            Task(f"Train {i}", [("lr", ["0.1", "0.01", "0.001"]), ("depth", ["2", "4"])], [f"Prepare {i}"]),
            Task(f"Evaluate {i}", [("split", ["test"])], [f"Train {i}"]),
            Task(f"Sweep {i}", [("alpha", ["0.1", "0.2", "0.3", "0.4"])], [f"Prepare {i}"]),
            Task(f"Report {i}", [("format", ["md"])], [f"Evaluate {i}", f"Sweep {i}"]),
        ]
    return Workload(f"Bench Pipelines {n_tasks}", tasks[:n_tasks])


def single_grid(routes: int, title: str | None = None, command: str = "python3 step.py") -> Workload:
    """One task whose grid has ``routes`` routes (two params, as square as the number allows)."""
    a = next(d for d in range(int(routes**0.5), 0, -1) if routes % d == 0)
    b = routes // a
    params = [("x", [str(v) for v in range(a)])] + ([("y", [str(v) for v in range(b)])] if b > 1 else [])
    if a == 1:
        params = [("x", [str(v) for v in range(b)])]
    return Workload(title or f"Bench Grid {routes}", [Task("Grid", params, command=command)])


def grid_three() -> Workload:
    """The 30-route flow: Grid Search A (2) and B (3) feeding C (5 of its own): 2 x 3 x 5 = 30."""
    return Workload(
        "Bench Run 30",
        [
            Task("Grid Search A", [("a", ["1", "2"])]),
            Task("Grid Search B", [("b", ["x", "y", "z"])]),
            Task("Grid Search C", [("c", ["10", "20", "30", "40", "50"])], ["Grid Search A", "Grid Search B"]),
        ],
    )


def grid_nine() -> Workload:
    """The 9-route flow: one task, a 3 x 3 grid."""
    return Workload("Bench Run 9", [Task("Grid", [("lr", ["0.1", "0.01", "0.001"]), ("depth", ["2", "4", "8"])])])
