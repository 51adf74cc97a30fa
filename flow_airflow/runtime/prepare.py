"""Preparing a task instance, the same for every task type and compute: one module to change how it is done.

:meth:`Preparation.prepare` makes an exec task's experiment and a deploy task's endpoint version
alike: a fresh workspace on the worker (a copy of the project, or of its Git revision), the
parents' end states staged in ``input/<task>``, the data tasks' datasets at ``.cnvrg_data/<name>``,
cnvrg's environment, all laid out for the task's compute: an :class:`Instance`, which gives the
compute its :class:`~flow_airflow.computes.base.Launch`. The command sees cnvrg's folders where
its compute's :class:`~flow_airflow.computes.base.Layout` puts them (the workspace itself on the
local compute, ``/cnvrg``, ``/input``, ``/data`` in a container). :func:`seen` turns a worker path
into the command's; cnvrg's absolute paths named in the command and its params are mapped to the
layout (:func:`command_line`).
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

from flow_airflow.common.records import Record
from flow_airflow.common.routes import slug
from flow_airflow.computes.base import DATA, INPUT, Compute, ExperimentFailed, Launch, Layout, Mount
from flow_airflow.runtime import report, workspace
from flow_airflow.runtime.artifacts import ArtifactStore
from flow_airflow.runtime.environment import SDK_PATH, experiment_env
from flow_airflow.runtime.paths import input_references, map_command, map_path, names_roots
from flow_airflow.spec import models

if TYPE_CHECKING:
    from flow_airflow.datasets.store import DatasetStore

T = TypeVar("T")
Staged = dict[str, tuple[Path, str, str]]  # input folder -> (its path on the worker, parent experiment, source)


@dataclass(frozen=True)
class Instance:
    """A task instance prepared on the worker: its files, laid out for its compute, and its environment.

    Paths in ``env`` are as the command sees them (``layout``); ``workspace``, ``inputs`` and
    ``output_dir`` are on the worker (the output folder is not made: an experiment makes it once it
    has taken its snapshot, see :meth:`Preparation.prepare`).
    """

    spec: models.ExecTask | models.DeployTask
    workspace: Path  # the instance's working directory on the worker
    from_git: bool  # its files are a Git revision of the project: only the output folder is passed on
    layout: Layout  # the compute's, with ``dataset_mounts``
    inputs: dict[str, Path]  # the parents' end states by folder (``prepare``, ``train_2``), under ``input/``
    staged: Staged  # what the log lists of them
    output_dir: Path
    env: dict[str, str]  # its whole environment: the base, then cnvrg's variables
    dataset_mounts: tuple[Mount, ...] = ()  # what a container compute binds of the datasets staged for it
    datasets: tuple[dict, ...] = ()  # what a compute that fetches datasets brings (``Launch.datasets``)
    passed: frozenset[str] = frozenset()  # the project's variables: passed into a container whatever the worker has

    def launch(self, name: str, command: str = "", shown: str = "") -> Launch:
        """What its compute runs: ``command`` (``shown``: as the log shows it) in the instance's files.

        ``name``: readable and unique (container names); a deploy version has no command (its
        replicas run the serving app).
        """
        spec = self.spec
        return Launch(
            name=name,
            command=command,
            shown=shown,
            workspace=self.workspace,
            cwd=self.layout.cnvrg,
            env=self.env,
            layout=self.layout,
            inputs=self.inputs,
            image=spec.image,
            resources=spec.resources.model_dump(exclude_none=True) if spec.resources else {},
            mount_folders=tuple(getattr(spec, "mount_folders", ())),
            datasets=self.datasets,
            passed=self.passed,
        )


@dataclass(frozen=True)
class Preparation:
    """What a task instance is prepared from: its task, the parent experiments it follows, the project.

    ``gathered``: the parents a condition tested, whose passing experiments come as a group;
    ``base_env``: the worker's environment with the project's ``env`` (``[flow_airflow] project_env``).
    """

    spec: models.ExecTask | models.DeployTask
    parents: Mapping[str, list[Record]]
    gathered: list[str]
    project_dir: Path
    base_env: Mapping[str, str]
    log: logging.Logger
    component: Path | None = None  # the AI Library component the task runs in: its folder, copied over the project's
    project_env: Mapping[str, str] = dataclasses.field(default_factory=dict)  # in ``base_env``: always passed on

    def prepare(self, root: Path, compute: Compute, store: ArtifactStore, *, title: str, params: list[list[str]],
                upstream: Mapping[str, Mapping[str, Mapping[str, str]]], fetch_datasets: bool = False) -> Instance:
        """The instance's files at ``root`` on the worker, laid out for ``compute``, and its environment.

        Steps: the workspace (:func:`make_workspace`), the parents' end states from ``store``
        (:func:`stage_inputs`), the compute's layout, the datasets (staged on the worker, or with
        ``fetch_datasets`` left for the compute to bring: a pod), cnvrg's variables
        (:func:`~flow_airflow.runtime.environment.experiment_env`) with ``params`` (rendered),
        ``upstream`` (the tags before it) and ``title`` (``CNVRG_EXPERIMENT_TITLE``). Only an exec
        task's experiment gets ``CNVRG_TASKS_PASSED_CONDITION``: a deploy version serves the model
        staged for it.

        :raises ExperimentFailed: the workspace or an input cannot be made (the project, a Git
            revision, a dataset), saying which.
        :raises ValueError: the task's ``output_dir`` leads out of the workspace.
        """
        spec, log = self.spec, self.log
        try:
            workdir, from_git = make_workspace(spec, root, self.project_dir, log)
        except workspace.WorkspaceError as e:
            raise ExperimentFailed(f"'{spec.title}' cannot start: {e}") from None
        if self.component is not None:
            add_component(self.component, workdir, log)
        inputs, passed, staged = stage_inputs(spec, self.parents, self.gathered, workdir, store)
        output_dir = workspace.inside(workdir, getattr(spec, "output_dir", None) or "output")
        layout = compute.layout(workdir, SDK_PATH)
        mounts: tuple[Mount, ...] = ()
        fetched: tuple[dict, ...] = ()
        if fetch_datasets:  # cnvrg's /data/<name>: the compute brings the files
            datasets, fetched = datasets_to_fetch(self.parents, workdir, log)
        else:
            datasets, mounts = stage_datasets(self.parents, workdir, layout, log)
        layout = dataclasses.replace(layout, mounts=layout.mounts + mounts)
        env = experiment_env(
            params=params,
            upstream=upstream,
            inputs={folder: seen(path, workdir, layout) for folder, path in inputs.items()},
            passed_condition=[seen(path, workdir, layout) for path in passed] if spec.type == "exec" else [],
            workdir=layout.cnvrg,
            output_dir=seen(output_dir, workdir, layout),
            base=self.base_env,
            paths=layout.roots(),
            datasets={name: seen(path, workdir, layout) for name, path in datasets.items()},
            sdk=layout.sdk,
            warn=log.warning,
        )
        env["CNVRG_EXPERIMENT_TITLE"] = title
        env["CNVRG_PROJECT"] = self.project_dir.name  # cnvrgv2's Cnvrg().projects.get(...): this project
        known = known_datasets(log)
        if known is not None:  # cnvrgv2's datasets.get(name).reload() raises for a dataset the store lacks
            env["FLOW_AIRFLOW_DATASETS"] = known
        return Instance(spec=spec, workspace=workdir, from_git=from_git, layout=layout, inputs=inputs,
                        staged=staged, output_dir=output_dir, env=env, dataset_mounts=mounts, datasets=fetched,
                        passed=frozenset(self.project_env))


def add_component(folder: Path, workdir: Path, log: logging.Logger) -> None:
    """The AI Library component's files copied over the workspace's (cnvrg clones the component into ``/cnvrg``):
    its scripts, ``requirements.txt`` and ``prerun.sh`` are the ones that run. Links are copied as links.

    :raises ExperimentFailed: the component's folder is gone or cannot be read.
    """
    import shutil

    try:
        shutil.copytree(folder, workdir, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".git", "__pycache__"))
    except (OSError, shutil.Error) as e:
        raise ExperimentFailed(f"the AI Library component at {folder} cannot be copied into the working "
                               f"directory: {e}") from None
    log.info("working directory: the project's files with the AI Library component's from %s over them", folder)


def environment_steps(spec: models.ExecTask | models.DeployTask, launch: Launch, runner: Compute,
                      log: logging.Logger) -> Launch:
    """cnvrg's environment steps in a prepared instance, on its compute: install ``requirements.txt`` (into
    ``.cnvrg_packages`` of the workspace, without its ``cnvrg``/``cnvrgv2`` lines), then run ``prerun.sh``, when
    present (an exec task may turn either off: ``requirements: false``, ``prerun: false``). The same for an
    experiment and for a deploy task's endpoint version (its replicas then share what was installed).

    :returns: ``launch`` with the installed packages on its ``PYTHONPATH``, after the stand-in SDKs.
    :raises ExperimentFailed: a step exited with another code than 0.
    """
    from flow_airflow.runtime.sdk_calls import installs_anything, without_sdks

    workdir = launch.workspace
    if getattr(spec, "requirements", None) is not False and (workdir / "requirements.txt").is_file():
        target = launch.cwd / workspace.PACKAGES
        log.info("installing requirements.txt into %s", target)
        filtered = without_sdks(workdir / "requirements.txt", log)  # cnvrg's SDKs: the stand-ins stay
        file = filtered.name if filtered else "requirements.txt"
        pip = f"python3 -m pip install --quiet --target {shlex.quote(str(target))} -r {file}"
        try:
            if filtered and not installs_anything(filtered):
                log.info("requirements.txt asks for nothing else: nothing to install")
                code = 0
            else:
                code = runner.run(dataclasses.replace(launch, command=pip, shown=pip), log.info, log.warning)
        finally:
            if filtered:
                filtered.unlink(missing_ok=True)
        if code != 0:
            raise ExperimentFailed(f"installing requirements.txt failed with exit code {code}")
        # after the stand-in SDKs (first on the path): a package that pulls in cnvrg's never shadows them
        sdk, _, rest = launch.env["PYTHONPATH"].partition(":")
        path = f"{sdk}:{target}" + (f":{rest}" if rest else "")
        launch = dataclasses.replace(launch, env={**launch.env, "PYTHONPATH": path})
    if getattr(spec, "prerun", None) is not False and (workdir / "prerun.sh").is_file():
        log.info("running prerun.sh")
        prerun = "bash prerun.sh"
        code = runner.run(dataclasses.replace(launch, command=prerun, shown=prerun), log.info, log.warning)
        if code != 0:
            raise ExperimentFailed(f"prerun.sh failed with exit code {code}")
    return launch


def known_datasets(log: logging.Logger) -> str | None:
    """The dataset store's datasets and their latest commits, as JSON (``{"iris": "<commit>"}``), for the
    stand-in SDKs; None (said in the log) when the store cannot be read."""
    import json

    from flow_airflow.datasets.store import DatasetError, configured

    try:
        store = configured()
        return json.dumps({name: store.latest(name) for name in store.datasets()})
    except (DatasetError, OSError, ValueError) as e:
        log.warning("the SDKs' datasets cannot be told which datasets exist: the dataset store: %s", e)
        return None


def seen(path: Path, workspace_dir: Path, layout: Layout) -> PurePath:
    """Where ``path`` (in the workspace, on the worker) is for the command; unchanged when the command
    runs in the workspace itself (the local compute)."""
    if Path(layout.cnvrg) == workspace_dir:
        return path
    for host, there in ((workspace_dir / INPUT, layout.input), (workspace_dir / DATA, layout.data),
                        (workspace_dir, layout.cnvrg)):
        if path == host or host in path.parents:
            return there / path.relative_to(host)
    return path


def uses_git(spec: models.ExecTask, project_dir: Path) -> bool:
    """Whether the task's workspace comes from a Git revision of the project (only its output folder passed on)."""
    return bool(spec.revision or spec.git_branch) and _git(project_dir, "rev-parse", "--show-prefix") is not None


def make_workspace(spec: models.ExecTask | models.DeployTask, root: Path, project_dir: Path,
                   log: logging.Logger) -> tuple[Path, bool]:
    """A fresh copy of the project folder; of a Git revision of it when the task names one.

    Also whether it came from Git: then only the output folder is passed on (spec, "Artifacts Flow").
    """
    revision = spec.revision or spec.git_branch
    if not revision:
        return workspace.create(root, project_dir), False
    prefix = _git(project_dir, "rev-parse", "--show-prefix")
    if prefix is None:
        log.warning("git_branch/git_commit '%s' ignored: the project folder %s is not a Git repository",
                    revision, project_dir)
        return workspace.create(root, project_dir), False
    workspace.create(root, Path("/nonexistent"))
    archive = subprocess.run(
        ["git", "-C", str(project_dir), "archive", "--format=tar", f"{revision}:{prefix.strip()}"],
        capture_output=True,
    )
    if archive.returncode != 0:
        raise ExperimentFailed(
            f"cannot check out '{revision}' of the project: {archive.stderr.decode(errors='replace').strip()}"
        )
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    log.info("working directory holds the project at Git revision %s: only its output folder is passed on", revision)
    return root, True


def stage_inputs(
    spec: models.ExecTask | models.DeployTask, parents: Mapping[str, list[Record]], gathered: list[str], workdir: Path,
    store: ArtifactStore,
) -> tuple[dict[str, Path], list[Path], Staged]:
    """Copy parent outputs to ``input/<task>`` (``input/<task>_<n>`` for several experiments).

    Returns the folders by name, those of parents that passed a condition, and what the log lists.
    """
    inputs: dict[str, Path] = {}
    passed: list[Path] = []
    staged: Staged = {}
    if getattr(spec, "single_mode", False):  # a deploy task has none
        return inputs, passed, staged
    for title, records in parents.items():
        for n, record in enumerate(records, start=1):
            if "dataset" in record or record.get("output") is None:  # a data task (its dataset goes to
                continue  # /data/<name>: stage_datasets), a deploy task (an endpoint, no files)
            folder = slug(title) if len(records) == 1 else f"{slug(title)}_{n}"
            target = workdir / INPUT / folder
            store.get(record["output"], target)
            inputs[folder] = target
            which = f"{title} #{record['index']}" + (" (passed the condition)" if title in gathered else "")
            staged[folder] = (target, which, str(record["output"]))
            if title in gathered:
                passed.append(target)
    return inputs, passed, staged


def stage_datasets(parents: Mapping[str, list[Record]], workdir: Path, layout: Layout,
                   log: logging.Logger) -> tuple[dict[str, Path], tuple[Mount, ...]]:
    """The datasets of the data tasks before this experiment at ``<workspace>/.cnvrg_data/<name>``
    (cnvrg's ``/data/<name>``): by name, on the worker; and the mounts a container compute adds.

    Each gets its own writable copy, or with ``use_cached`` the worker's read-only copy of that
    commit, made once (a link to it on the local compute; on a compute that binds folders
    (``layout.mounts``), a read-only mount over the empty folder). The log says which, and how
    many files were copied. :class:`ExperimentFailed` when a version cannot be staged.
    """
    found: dict[str, Path] = {}
    mounts: list[Mount] = []
    for store, info in _datasets(parents):
        found[info["name"]] = workdir / DATA / info["name"]
        mount = _guarded(info["name"], _stage_dataset, store, info, found[info["name"]], layout, log)
        mounts += [mount] if mount else []
    return found, tuple(mounts)


def datasets_to_fetch(parents: Mapping[str, list[Record]], workdir: Path,
                      log: logging.Logger) -> tuple[dict[str, Path], tuple[dict, ...]]:
    """For a compute that fetches datasets itself (a pod, ``Compute.fetches_datasets``): the datasets'
    empty folders ``<workspace>/.cnvrg_data/<name>`` by name, and what it must fetch into them
    (``Launch.datasets``). :class:`ExperimentFailed` when a version cannot be read."""
    found: dict[str, Path] = {}
    fetches = []
    for store, info in _datasets(parents):
        found[info["name"]] = workdir / DATA / info["name"]
        fetches.append(_guarded(info["name"], _to_fetch, store, info, found[info["name"]], log))
    return found, tuple(fetches)


def _datasets(parents: Mapping[str, list[Record]]) -> list[tuple[DatasetStore, dict]]:
    """The data tasks' records (``dataset``) among ``parents``, each with the dataset store."""
    from flow_airflow.datasets.store import DatasetError, configured

    infos = [record["dataset"] for records in parents.values() for record in records if "dataset" in record]
    if not infos:
        return []
    try:
        store = configured()
    except DatasetError as e:
        raise ExperimentFailed(f"the datasets cannot be staged: {e}") from None
    return [(store, info) for info in infos]


def _guarded(name: str, stage: Callable[..., T], *args: Any) -> T:
    """``stage(*args)``; its dataset or file error as :class:`ExperimentFailed` naming ``/data/<name>``."""
    from flow_airflow.datasets.store import DatasetError

    try:
        return stage(*args)
    except (DatasetError, OSError) as e:
        raise ExperimentFailed(f"dataset '{name}' cannot be staged at /data/{name}: {e}") from None


def _to_fetch(store: DatasetStore, info: dict, target: Path, log: logging.Logger) -> dict:
    """One data task's version for a compute that fetches it itself: an empty ``target``, and what to fetch."""
    name = info["name"]
    selection = store.select(name, info["commit"], info.get("patterns"), info.get("query"))
    target.mkdir(parents=True, exist_ok=True)
    log.info("dataset %s at /data/%s: fetched by the compute from the dataset store %s (%d file(s))%s",
             selection.describe(), name, store.place.where, len(selection.files),
             "; use_cached: read-only, but a copy per pod (no copy is kept on the node)" if info.get("use_cached")
             else "")
    return {"name": name, "files": {p: list(f) for p, f in selection.files.items()},
            "read_only": bool(info.get("use_cached"))}


def _stage_dataset(store: DatasetStore, info: dict, target: Path, layout: Layout, log: logging.Logger) -> Mount | None:
    """One data task's version at ``target``: the mount a container compute adds for it, if any."""
    name = info["name"]
    selection = store.select(name, info["commit"], info.get("patterns"), info.get("query"))
    if not info.get("use_cached"):
        copied = store.checkout(selection, target)
        log.info("dataset %s at /data/%s: this experiment's own copy, %d file(s) copied",
                 selection.describe(), name, copied)
        return None
    folder, copied = store.cached(selection)
    if store.evicted:
        log.info("the worker's use_cached copies hold more than datasets_cache_gib: evicted the least recently "
                 "used ones not in use: %s", ", ".join(store.evicted))
    log.info("dataset %s at /data/%s: use_cached, the worker's read-only copy %s (%s)", selection.describe(),
             name, folder, f"made now: {copied} file(s) copied" if copied else "copied nothing: kept from before")
    target.parent.mkdir(parents=True, exist_ok=True)
    if layout.mounts:  # a container compute: the copy is bound over an empty folder
        target.mkdir()
        return Mount(folder, str(PurePosixPath(layout.data) / name), read_only=True)
    target.symlink_to(folder, target_is_directory=True)
    return None


def command_line(spec: models.ExecTask, params: list[list[str]], roots: Mapping[str, PurePath], inputs: Path,
                 log: logging.Logger) -> tuple[str, str]:
    """The command line: the task's script, then ``--key`` and the words of its value per param, as cnvrg
    passes them (:func:`param_words`), each word quoted so that no shell reads it.

    Also the line as the log shows it: the value of a secret-named param (``api_token``) as ``***``.

    cnvrg's absolute paths (``/input/<task>/...``, ``/cnvrg/...``, ``/data/<name>/...``) in the
    script and at the start of a param's word mean ``roots`` (the layout's folders). ``inputs``:
    the workspace's input folder on the worker, to warn of an input that is not there.

    :raises ExperimentFailed: a value whose quote marks are not closed (it has no words).
    """
    script = spec.script
    mapped = map_command(script, roots)
    if mapped is None:
        mapped = script
        if names_roots(script):
            log.warning("the command names cnvrg's absolute paths, which cannot be mapped here: "
                        "the local folders' names need shell quoting")
    words = [(k, param_words(k, v)) for k, v in params]
    args = [(k, [map_path(w, roots) for w in ws]) for k, ws in words]
    if mapped != script or args != words:
        log.info("cnvrg's absolute paths mean this experiment's own folders here: %s",
                 ", ".join(f"{root} -> {local}" for root, local in roots.items()))
        check_inputs([script, *(w for _, ws in words for w in ws)], inputs, log)
    shown = [(k, [report.MASK] if report.hidden(k) else ws) for k, ws in args]

    def line(pairs: list[tuple[str, list[str]]]) -> str:
        return " ".join([mapped, *(shlex.quote(w) for k, ws in pairs for w in (f"--{k}", *ws))])

    return line(args), line(shown)


def param_words(key: str, value: str) -> list[str]:
    """The words a param's value reaches the command as, after ``--<key>``: cnvrg passes ``--key value``, the
    value split into words as a shell splits it (quote marks group words, ``\\`` escapes), never run by one:
    ``"a 'b c'"`` is ``a`` and ``b c``; ``$HOME``, ``;``, ``*`` stay as written.

    :raises ExperimentFailed: the value's quote marks are not closed.
    """
    try:
        return shlex.split(value)
    except ValueError as e:
        why = f"param '{key}': its value {value!r} cannot be split into words ({e})"
        raise ExperimentFailed(f"{why}: quote marks group words, as a shell reads them; close the quote or escape "
                               "it with \\") from None


def check_inputs(texts: list[str], inputs: Path, log: logging.Logger) -> None:
    """Warn of an ``/input/<task>/<file>`` that is not there, saying where a file of that name is."""
    for text in texts:
        for folder, rest in input_references(text):
            if not (inputs / folder).is_dir():
                log.warning("/input/%s is named, but no parent task filled it: this task's inputs are %s",
                            folder, ", ".join(sorted(p.name for p in inputs.glob("*"))) or "none")
            elif rest and not (inputs / folder / rest).exists():
                found = [p for p in sorted((inputs / folder).iterdir()) if (p / rest).exists()][:3]
                where = ", ".join(f"/input/{folder}/{p.name}/{rest}" for p in found)
                log.warning("/input/%s/%s is named, but its task did not leave it%s", folder, rest,
                            f" (it left {where}: a task's files keep their paths)" if where else "")


def safe(run_id: str) -> str:
    """The run id as a folder name (:func:`~flow_airflow.runtime.workspace.folder_name`; ``.`` is refused)."""
    return workspace.folder_name(run_id, "run id")


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return done.stdout if done.returncode == 0 else None
