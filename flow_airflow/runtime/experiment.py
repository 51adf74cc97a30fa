"""One experiment: a route of a flow task, run from a fresh workspace to a stored record."""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import TypeAdapter

from flow_airflow import settings
from flow_airflow.computes.local import LocalCompute
from flow_airflow.plan.routes import Record, Route, label, render, slug, upstream_of
from flow_airflow.runtime import workspace
from flow_airflow.runtime.artifacts import ArtifactStore
from flow_airflow.runtime.environment import experiment_env
from flow_airflow.runtime.tags import parse_tag
from flow_airflow.spec import models

LAST_LINES = 20
SYNC_SECONDS = 60.0


class ExperimentFailed(Exception):
    """The experiment's command failed; the message says how, for the task log and the UI."""


@dataclass
class Experiment:
    """Everything one experiment needs; built by the operator from its task instance."""

    task: dict  # the flow task as validated at compile time (models.Task, dumped)
    route: Route
    parents: dict[str, list[Record]]  # the parent experiments this route follows
    gathered: list[str]  # parents tested by a condition: their experiments come as a group
    dag_id: str
    run_id: str
    index: int
    project_dir: Path
    compute: dict  # {"name", "kind", "settings", "notes"}
    base_env: Mapping[str, str]
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("flow_airflow.experiment"))

    def __post_init__(self) -> None:
        self.spec = TypeAdapter(models.Task).validate_python(self.task)
        self.slug = slug(self.spec.title)
        self.runner: LocalCompute | None = None

    def run(self) -> Record:
        spec = self.spec
        if not isinstance(spec, models.ExecTask):
            raise ExperimentFailed(
                f"'{spec.title}' is a {spec.type} task: running {spec.type} tasks is not supported yet "
                "by flow-airflow (the flow loads and shows it, but cannot run it)"
            )
        for note in self.compute.get("notes", []):
            self.log.warning("%s", note)
        if spec.mount_folders and self.compute["kind"] == "local":
            raise ExperimentFailed(
                f"'{spec.title}' mounts network folders ({', '.join(spec.mount_folders)}), which the local "
                f"compute '{self.compute['name']}' cannot do"
            )
        if spec.image:
            self.log.info("image %s is not used by the local compute: the command runs on the worker", spec.image)
        if spec.resources:
            self.log.info("requirements %s are not enforced by the local compute", spec.resources.model_dump())

        upstream = upstream_of(self.parents)
        params = [[k, render(v, upstream)] for k, v in self.route["params"]]
        self.route["label"] = label(params, self.parents)  # its params, then those of the experiments it follows
        root = settings.workspaces_root() / self.dag_id / _safe(self.run_id) / self.slug / str(self.index)
        workdir = self._workspace(root)
        inputs, passed = self._stage_inputs(workdir)
        output_dir = workspace.inside(workdir, spec.output_dir or "output")
        output_dir.mkdir(parents=True, exist_ok=True)
        env = experiment_env(
            params=params,
            upstream=upstream,
            inputs=inputs,
            passed_condition=passed,
            workdir=workdir,
            output_dir=output_dir,
            base=self.base_env,
        )
        env["CNVRG_EXPERIMENT_TITLE"] = f"{spec.title} #{self.index}"
        store = ArtifactStore(settings.artifacts_root())
        runner = self.runner = LocalCompute(self.compute["name"], self.compute.get("settings"))

        self._prepare(workdir, env, runner)
        command = " ".join([spec.script, *(shlex.quote(f"--{k}={v}") for k, v in params)])
        self.log.info("running on compute '%s' in %s: %s", self.compute["name"], workdir, command)
        tags: dict[str, str] = {}
        last: deque[str] = deque(maxlen=LAST_LINES)

        def on_line(line: str) -> None:
            self.log.info("%s", line)
            last.append(line)
            if tag := parse_tag(line):
                tags[tag[0]] = tag[1]

        sync = self._periodic_sync(store, output_dir) if spec.periodic_sync else None
        try:
            code = runner.run(command, cwd=workdir, env=env, on_line=on_line)
        finally:
            if sync:
                sync.set()
        if code != 0:
            tail = "\n".join(last) or "(no output)"
            self.log.error("the working directory is kept for inspection: %s", workdir)
            raise ExperimentFailed(
                f"'{spec.title}' failed: its command exited with code {code}. Last lines of its output:\n{tail}"
            )
        output = store.put(output_dir, self.dag_id, self.run_id, self.slug, self.index)
        lineage: dict[str, int] = {}
        for title, records in self.parents.items():
            if title not in self.gathered and len(records) == 1:
                lineage.update(records[0].get("route", {}))
        shutil.rmtree(workdir, ignore_errors=True)
        return Record(
            task=spec.title,
            index=self.index,
            params=dict(params),
            tags=tags,
            output=output,
            route={**lineage, spec.title: self.index},
            upstream=upstream,
            label=self.route["label"],
        )

    def kill(self) -> None:
        if self.runner:
            self.runner.kill()

    def _workspace(self, root: Path) -> Path:
        """A fresh copy of the project folder; of a Git revision of it when the task names one."""
        spec = self.spec
        revision = spec.revision or spec.git_branch  # type: ignore[union-attr]
        if not revision:
            return workspace.create(root, self.project_dir)
        prefix = _git(self.project_dir, "rev-parse", "--show-prefix")
        if prefix is None:
            self.log.warning(
                "git_branch/git_commit '%s' ignored: the project folder %s is not a Git repository",
                revision,
                self.project_dir,
            )
            return workspace.create(root, self.project_dir)
        workspace.create(root, Path("/nonexistent"))
        archive = subprocess.run(
            ["git", "-C", str(self.project_dir), "archive", "--format=tar", f"{revision}:{prefix.strip()}"],
            capture_output=True,
        )
        if archive.returncode != 0:
            raise ExperimentFailed(
                f"cannot check out '{revision}' of the project: {archive.stderr.decode(errors='replace').strip()}"
            )
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
        self.log.info("working directory holds the project at Git revision %s", revision)
        return root

    def _stage_inputs(self, workdir: Path) -> tuple[dict[str, Path], list[Path]]:
        """Copy parent outputs to ``input/<task>`` (``input/<task>_<n>`` for several experiments)."""
        store = ArtifactStore(settings.artifacts_root())
        inputs: dict[str, Path] = {}
        passed: list[Path] = []
        if getattr(self.spec, "single_mode", False):
            return inputs, passed
        for title, records in self.parents.items():
            for n, record in enumerate(records, start=1):
                folder = slug(title) if len(records) == 1 else f"{slug(title)}_{n}"
                target = workdir / "input" / folder
                store.get(record["output"], target)
                inputs[folder] = target
                if title in self.gathered:
                    passed.append(target)
        return inputs, passed

    def _prepare(self, workdir: Path, env: dict[str, str], runner: LocalCompute) -> None:
        """cnvrg's environment steps: install requirements.txt, then run prerun.sh, when present."""
        spec = self.spec
        if spec.requirements is not False and (workdir / "requirements.txt").is_file():  # type: ignore[union-attr]
            target = workdir / ".cnvrg_packages"
            self.log.info("installing requirements.txt into %s", target)
            code = runner.run(
                f"python3 -m pip install --quiet --target {shlex.quote(str(target))} -r requirements.txt",
                cwd=workdir,
                env=env,
                on_line=self.log.info,
            )
            if code != 0:
                raise ExperimentFailed(f"installing requirements.txt failed with exit code {code}")
            env["PYTHONPATH"] = f"{target}:{env['PYTHONPATH']}"
        if spec.prerun is not False and (workdir / "prerun.sh").is_file():  # type: ignore[union-attr]
            self.log.info("running prerun.sh")
            code = runner.run("bash prerun.sh", cwd=workdir, env=env, on_line=self.log.info)
            if code != 0:
                raise ExperimentFailed(f"prerun.sh failed with exit code {code}")

    def _periodic_sync(self, store: ArtifactStore, output_dir: Path) -> threading.Event:
        """Keep the output folder in the store while the command runs (``periodic_sync``)."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(SYNC_SECONDS):
                store.put(output_dir, self.dag_id, self.run_id, self.slug, self.index)
                self.log.info("synced the output folder to the artifact store")

        threading.Thread(target=loop, daemon=True).start()
        return stop


def _safe(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in run_id)


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return done.stdout if done.returncode == 0 else None
