"""One experiment: a route of a flow task, run from a fresh workspace to a stored record."""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pydantic import TypeAdapter

from flow_airflow import settings
from flow_airflow.common.routes import Record, Route, RouteError, label_text, labels, render, slug, upstream_of, varying
from flow_airflow.computes.local import LocalCompute
from flow_airflow.runtime import report, workspace
from flow_airflow.runtime.artifacts import ArtifactStore
from flow_airflow.runtime.environment import experiment_env
from flow_airflow.runtime.paths import input_references, local_paths, map_command, map_path, names_roots
from flow_airflow.runtime.tags import TagLog
from flow_airflow.spec import models

LAST_LINES = 20
SYNC_SECONDS = 60.0


class ExperimentFailed(Exception):
    """The experiment failed or cannot start; the message says why in one line (the log has the details)."""


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
    varies: set[str] | None = None  # its params that differ between its routes in this run; None: as in the file

    def __post_init__(self) -> None:
        self.spec = TypeAdapter(models.Task).validate_python(self.task)
        self.slug = slug(self.spec.title)
        self.runner: LocalCompute | None = None
        self.staged: dict[str, tuple[Path, str, str]] = {}  # input folder -> (path, parent experiment, source)
        self.parts: dict[str, str] | None = None  # its label's parts, once made (see plan.routes.labels)

    def run(self) -> Record:
        spec = self.spec
        self._check_compute()
        upstream = upstream_of(self.parents)
        params = self._params(upstream)
        varies = self.varies
        if varies is None:
            varies = varying([(p.key, p.grid()) for p in getattr(spec, "params", [])])
        parts = self.parts = labels(params, self.parents, varies)  # its varying params, then the tasks' before it
        self.route["label"] = label_text(parts)
        root = settings.workspaces_root() / self.dag_id / _safe(self.run_id) / self.slug / str(self.index)
        try:
            workdir, from_git = self._workspace(root)
        except workspace.WorkspaceError as e:
            raise ExperimentFailed(f"'{spec.title}' cannot start: {e}") from None
        baseline = None if from_git else workspace.snapshot(workdir)  # to pass on only what the run changed
        inputs, passed = self._stage_inputs(workdir)
        output_dir = workspace.inside(workdir, spec.output_dir or "output")  # type: ignore[union-attr]
        output_dir.mkdir(parents=True, exist_ok=True)
        paths = local_paths(workdir, workdir / workspace.DATA)
        env = experiment_env(
            params=params,
            upstream=upstream,
            inputs=inputs,
            passed_condition=passed,
            workdir=workdir,
            output_dir=output_dir,
            base=self.base_env,
            paths=paths,
            warn=self.log.warning,
        )
        env["CNVRG_EXPERIMENT_TITLE"] = f"{spec.title} #{self.index}"
        runner = self.runner = LocalCompute(self.compute["name"], self.compute.get("settings"))

        def save(folder: Path) -> None:
            """The end state: without Git what the run created or changed, with Git the output folder."""
            only = None if baseline is not None else PurePosixPath(spec.output_dir or "output").as_posix()
            workspace.save_end_state(workdir, folder, baseline=baseline, only=only, warn=self.log.warning)

        command, shown = self._command(params, paths)
        resources = spec.resources.model_dump(exclude_none=True) if spec.resources else None
        report.opening(self.log, parents=self.parents, upstream=upstream, staged=self.staged, env=env,
                       compute=self.compute, image=spec.image, resources=resources, workdir=workdir, command=shown)
        store = ArtifactStore(settings.artifacts_root())
        tags = TagLog(self.log.warning, spec.title)
        try:
            self._prepare(workdir, env, runner)
            self._execute(command, workdir, env, store, save, tags)
        except ExperimentFailed:
            self._keep_failed(store, save, tags.tags, workdir)
            raise
        output = store.put(save, self.dag_id, self.run_id, self.slug, self.index)
        report.closing(self.log, tags.tags, output)
        shutil.rmtree(workdir, ignore_errors=True)
        return Record(
            task=spec.title,
            index=self.index,
            params=dict(params),
            tags=tags.tags,
            output=output,
            route={**self._lineage(), spec.title: self.index},
            upstream=upstream,
            label=self.route["label"],
            labels=parts,
            **({"series": tags.series} if tags.series else {}),
        )

    def _lineage(self) -> dict[str, int]:
        """Task title -> experiment index of every task before it on its route (gathered parents left out)."""
        lineage: dict[str, int] = {}
        for title, records in self.parents.items():
            if title not in self.gathered and len(records) == 1:
                lineage.update(records[0].get("route", {}))
        return lineage

    def _check_compute(self) -> None:
        """Refuse what the task's compute cannot run; say what it leaves out."""
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

    def _execute(
        self,
        command: str,
        workdir: Path,
        env: dict[str, str],
        store: ArtifactStore,
        save: Callable[[Path], None],
        tags: TagLog,
    ) -> None:
        """Run the command: its output into the log (stdout at INFO, stderr at ERROR), its tags into ``tags``.

        A failure is logged at ERROR with the last lines of the output; the exception says it in one line.
        """
        assert self.runner is not None
        self.log.info("running on compute '%s'", self.compute["name"])
        last: deque[str] = deque(maxlen=LAST_LINES)

        def on_line(line: str) -> None:
            self.log.info("%s", line)
            last.append(line)
            tags.line(line)

        def on_error_line(line: str) -> None:
            self.log.error("%s", line)
            last.append(line)
            tags.line(line)

        sync = self._periodic_sync(store, save) if getattr(self.spec, "periodic_sync", False) else None
        try:
            code = self.runner.run(command, cwd=workdir, env=env, on_line=on_line, on_error_line=on_error_line)
        finally:
            if sync:
                sync[0].set()
                sync[1].join()
        tags.finish()
        if code != 0:
            title = self.spec.title
            self.log.error("'%s' failed: its command exited with code %d. Last lines of its output:\n%s",
                           title, code, "\n".join(last) or "(no output)")
            said = f"its last line: {report.short(last[-1])}" if last else "it printed nothing"
            raise ExperimentFailed(f"'{title}' failed: its command exited with code {code} ({said})")

    def _keep_failed(self, store: ArtifactStore, save: Callable[[Path], None], tags: dict[str, str],
                     workdir: Path) -> None:
        """Store a failed experiment's end state apart (``<index>.failed``), for debugging; log where."""
        try:
            kept = store.put(save, self.dag_id, self.run_id, self.slug, self.index, failed=True)
        except OSError as e:
            self.log.error("the failed experiment's files could not be stored: %s", e)
        else:
            report.closing(self.log, tags, kept, failed=True)
        self.log.error("the working directory is kept for inspection: %s", workdir)

    def _params(self, upstream: Mapping[str, Mapping[str, Mapping[str, str]]]) -> list[list[str]]:
        """The route's params with ``{{ Task.tag }}`` replaced; a tag never logged fails the experiment."""
        params = []
        for key, value in self.route["params"]:
            try:
                params.append([key, render(value, upstream)])
            except RouteError as e:
                title = self.spec.title
                raise ExperimentFailed(f"'{title}' cannot start: its param '{key}' names a tag, but {e}") from None
            if "\0" in key or "\0" in params[-1][1]:
                raise ExperimentFailed(f"'{self.spec.title}' cannot start: its param '{key}' holds a NUL byte")
        return params

    def _command(self, params: list[list[str]], paths: Mapping[str, Path]) -> tuple[str, str]:
        """The command line: the task's script, then ``--key=value`` per param, each quoted.

        Also the line as the log shows it: the value of a secret-named param (``api_token``) as ``***``.

        cnvrg's absolute paths (``/input/<task>/...``, ``/cnvrg/...``, ``/data/<name>/...``) in
        the script and at the start of a param value mean the experiment's own folders here.
        """
        script = self.spec.script  # type: ignore[union-attr]
        mapped = map_command(script, paths)
        if mapped is None:
            mapped = script
            if names_roots(script):
                self.log.warning("the command names cnvrg's absolute paths, which cannot be mapped here: "
                                 "the local folders' names need shell quoting")
        args = [[k, map_path(v, paths)] for k, v in params]
        if mapped != script or args != params:
            self.log.info("cnvrg's absolute paths mean this experiment's own folders here: %s",
                          ", ".join(f"{root} -> {local}" for root, local in paths.items()))
            self._check_inputs([script, *(v for _, v in params)], paths["/input"])
        shown = [[k, report.MASK if report.hidden(k) else v] for k, v in args]

        def line(pairs: list[list[str]]) -> str:
            return " ".join([mapped, *(shlex.quote(f"--{k}={v}") for k, v in pairs)])

        return line(args), line(shown)

    def _check_inputs(self, texts: list[str], inputs: Path) -> None:
        """Warn of an ``/input/<task>/<file>`` that is not there, saying where a file of that name is."""
        for text in texts:
            for folder, rest in input_references(text):
                if not (inputs / folder).is_dir():
                    self.log.warning("/input/%s is named, but no parent task filled it: this task's inputs are %s",
                                     folder, ", ".join(sorted(p.name for p in inputs.glob("*"))) or "none")
                elif rest and not (inputs / folder / rest).exists():
                    found = [p for p in sorted((inputs / folder).iterdir()) if (p / rest).exists()][:3]
                    where = ", ".join(f"/input/{folder}/{p.name}/{rest}" for p in found)
                    self.log.warning("/input/%s/%s is named, but its task did not leave it%s", folder, rest,
                                     f" (it left {where}: a task's files keep their paths)" if where else "")

    def kill(self) -> None:
        if self.runner:
            self.runner.kill()

    def _workspace(self, root: Path) -> tuple[Path, bool]:
        """A fresh copy of the project folder; of a Git revision of it when the task names one.

        Also whether it came from Git: then only the output folder is passed on (spec, "Artifacts Flow").
        """
        spec = self.spec
        revision = spec.revision or spec.git_branch  # type: ignore[union-attr]
        if not revision:
            return workspace.create(root, self.project_dir), False
        prefix = _git(self.project_dir, "rev-parse", "--show-prefix")
        if prefix is None:
            self.log.warning(
                "git_branch/git_commit '%s' ignored: the project folder %s is not a Git repository",
                revision,
                self.project_dir,
            )
            return workspace.create(root, self.project_dir), False
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
        self.log.info("working directory holds the project at Git revision %s: only its output folder is passed on",
                      revision)
        return root, True

    def _stage_inputs(self, workdir: Path) -> tuple[dict[str, Path], list[Path]]:
        """Copy parent outputs to ``input/<task>`` (``input/<task>_<n>`` for several experiments)."""
        store = ArtifactStore(settings.artifacts_root())
        inputs: dict[str, Path] = {}
        passed: list[Path] = []
        self.staged = {}
        if getattr(self.spec, "single_mode", False):
            return inputs, passed
        for title, records in self.parents.items():
            for n, record in enumerate(records, start=1):
                folder = slug(title) if len(records) == 1 else f"{slug(title)}_{n}"
                target = workdir / "input" / folder
                store.get(record["output"], target)
                inputs[folder] = target
                which = f"{title} #{record['index']}" + (" (passed the condition)" if title in self.gathered else "")
                self.staged[folder] = (target, which, str(record["output"]))
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
                on_error_line=self.log.warning,
            )
            if code != 0:
                raise ExperimentFailed(f"installing requirements.txt failed with exit code {code}")
            env["PYTHONPATH"] = f"{target}:{env['PYTHONPATH']}"
        if spec.prerun is not False and (workdir / "prerun.sh").is_file():  # type: ignore[union-attr]
            self.log.info("running prerun.sh")
            code = runner.run("bash prerun.sh", cwd=workdir, env=env, on_line=self.log.info,
                              on_error_line=self.log.warning)
            if code != 0:
                raise ExperimentFailed(f"prerun.sh failed with exit code {code}")

    def _periodic_sync(
        self, store: ArtifactStore, save: Callable[[Path], None]
    ) -> tuple[threading.Event, threading.Thread]:
        """Keep the end state in the store while the command runs (``periodic_sync``)."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(SYNC_SECONDS):
                store.put(save, self.dag_id, self.run_id, self.slug, self.index)
                self.log.info("synced the experiment's files to the artifact store")

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return stop, thread


def _safe(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in run_id)


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return done.stdout if done.returncode == 0 else None
