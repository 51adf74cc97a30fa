"""The compute interface: what every kind of compute (local, docker, kubernetes, ...) provides.

An experiment runs in three steps (``flow_airflow.runtime.experiment``):

1. **prepare** (the runtime, the same for every compute): a fresh workspace on the worker, the
   parents' end states staged into ``<workspace>/input/<task>``, the environment, the command
   line with cnvrg's absolute paths mapped, image and requirements: one :class:`Launch`. Where
   cnvrg's folders are *for the command* comes from the compute's :meth:`Compute.layout`: the
   local compute runs in the workspace itself, a container compute binds the workspace at
   ``/cnvrg``, its ``input`` folder at ``/input`` and its ``.cnvrg_data`` at ``/data``.
2. **run**: :meth:`Compute.run` runs the launch and returns the command's exit code, its output
   streamed line by line; :meth:`Compute.kill` stops it (the task was killed or timed out).
3. **finish** (the runtime): tags, the end state into the artifact store, the record.

How a new kind plugs in (e.g. ``docker``): one folder, ``flow_airflow/computes/docker/``, and one
entry in ``flow_airflow.computes.KINDS``: ``"docker": Kind("flow_airflow.computes.docker.compute:DockerCompute",
"flow_airflow.computes.docker.replicas:DockerReplicas")``. The folder holds

- ``compute.py`` with ``class DockerCompute(Compute)``: ``kind = "docker"``, a nested ``class
  Settings(ComputeSettings)`` with ``kind: Literal["docker"] = "docker"`` and its template keys
  (pydantic fields; unknown keys are refused), :meth:`Compute.layout` (its mounts),
  :meth:`Compute.run` and :meth:`Compute.kill`, and where it differs from the default,
  :meth:`Compute.plan_notes` (what ``plan`` warns of), :meth:`Compute.refusal` (what it cannot run at
  all) and :meth:`Compute.ignores` (what the log's compute section says it leaves out); a
  :class:`DeferrableCompute` when its command can run while the task is deferred;
- ``replicas.py`` with ``class DockerReplicas(Replicas)`` (``computes.replicas``): an endpoint's
  replicas on it (deploy tasks);
- an ``__init__.py`` saying what the kind is (importing nothing).

Import the provider (``airflow.providers.docker``) *inside* methods only: the module ``compute`` is
imported when a template of its kind is read, which happens at DAG parse time.

Templates are configured in ``[flow_airflow] computes`` (JSON: name -> ``{"kind": ..., ...}``);
each is validated against its kind's ``Settings`` when the setting is read (a discriminated
union on ``kind``, resolved through the registry so that only configured kinds are imported).
"""

from __future__ import annotations

import codecs
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from flow_airflow.spec import models

LineCallback = Callable[[str], None]

INPUT = "input"  # <workspace>/input/<task>: the parents' end states (cnvrg's /input/<task>)
# The cnvrg-compatible SDK (the ``cnvrg`` module): its folder on the worker, and where a container sees it
SDK_PATH = Path(__file__).parents[1] / "runtime" / "sdk"
SDK_TARGET = "/opt/flow-airflow/sdk"  # (Docker, a pod; read-only: Layout.container)
DATA = ".cnvrg_data"  # <workspace>/.cnvrg_data/<dataset>: cnvrg's /data/<dataset>
MAX_LINE = 1024 * 1024  # characters of one output line kept in memory and in the log (longer ones are cut)


def lines(chunks: Iterable[str]) -> Iterator[str]:
    """The lines of a command's output, from its text in ``chunks`` of any length, without their line break.

    A line of :data:`MAX_LINE` characters or more is cut to its first ``MAX_LINE``, saying how many more
    it had (``… [line cut: 2,000,000 more characters not shown]``): memory stays bounded whatever the
    command prints (a line of gigabytes without a break). A last line without a break is given as it is.
    Only ``"\\n"`` ends a line; a compute that reads with universal newlines (the local one) has turned
    ``"\\r"`` and ``"\\r\\n"`` into it, one that reads bytes (:func:`decoded`) keeps a ``"\\r"`` in its line.
    """
    shown = ""  # the line so far; once it is cut, its first MAX_LINE characters
    dropped = -1  # characters of the line not shown; -1 while it is not cut
    for chunk in chunks:
        *ended, rest = chunk.split("\n")
        for part in ended:  # each ends a line
            if dropped >= 0:
                yield _cut(shown, dropped + len(part))
            elif len(shown) + len(part) < MAX_LINE:
                yield shown + part
            else:
                line = shown + part
                yield _cut(line[:MAX_LINE], len(line) - MAX_LINE)
            shown, dropped = "", -1
        if dropped >= 0:
            dropped += len(rest)
        elif len(shown) + len(rest) < MAX_LINE:
            shown += rest
        else:
            line = shown + rest
            shown, dropped = line[:MAX_LINE], len(line) - MAX_LINE
    if dropped >= 0:
        yield _cut(shown, dropped)
    elif shown:
        yield shown


def _cut(shown: str, dropped: int) -> str:
    return f"{shown} … [line cut: {dropped:,} more characters not shown]"


def decoded(chunks: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 ``chunks`` as text, a character split between two chunks kept whole (bad bytes: U+FFFD)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in chunks:
        yield decoder.decode(chunk)
    yield decoder.decode(b"", final=True)


def supervisor_pid() -> int:
    """The pid of the Airflow supervisor of this task process (its parent, which forked it), for the
    guards that end a command when its task dies (the local and Docker computes); 0 when the task runs
    without one (``dag.test()``, ``flow-airflow run``: an in-process supervisor).

    Source of the rule: ``airflow.sdk.execution_time.task_runner.main`` sets ``SUPERVISOR_COMMS`` to
    the supervisor's socket; ``InProcessTestSupervisor`` (``dag.test``) to ``InProcessSupervisorComms``.
    """
    import sys

    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    comms = getattr(runner, "SUPERVISOR_COMMS", None)
    if comms is None or type(comms).__name__ == "InProcessSupervisorComms":
        return 0
    return os.getppid()


class ExperimentFailed(Exception):
    """The experiment failed or cannot start; the message says why in one line (the log has the details).

    A compute raises it when it cannot run a launch (no image, no engine); the runtime re-exports it.
    """


class ComputeSettings(BaseModel):
    """The settings of one compute template (``[flow_airflow] computes``); a kind subclasses it.

    ``kind`` is the discriminator; keys a kind does not define are refused.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str


@dataclass(frozen=True)
class Mount:
    """A folder of the worker that a container compute binds where the command sees it."""

    source: Path  # on the worker
    target: str  # where the command sees it (``/cnvrg``, ``/input``, ``/data``, the SDK's folder)
    read_only: bool = False


@dataclass(frozen=True)
class Layout:
    """Where cnvrg's folders are for the command, on one compute, for one workspace.

    ``cnvrg``: the working directory (cnvrg's ``/cnvrg``, the project); ``input``: the parents'
    end states (``/input``, a folder per parent task); ``data``: datasets (``/data``); ``sdk``:
    the folder holding the cnvrg-compatible ``cnvrg`` module (put on ``PYTHONPATH``); ``mounts``:
    what a container compute binds to make these paths real (none on the local compute).
    """

    cnvrg: PurePath
    input: PurePath
    data: PurePath
    sdk: PurePath
    mounts: tuple[Mount, ...] = ()

    def roots(self) -> dict[str, PurePath]:
        """cnvrg's absolute roots -> where they are for the command (see ``runtime.paths``)."""
        return {"/cnvrg": self.cnvrg, "/input": self.input, "/data": self.data}

    @classmethod
    def container(cls, workspace: Path, sdk: Path) -> Layout:
        """cnvrg's own layout in a container: ``/cnvrg``, ``/input``, ``/data``, bound from the workspace,
        and the worker's SDK folder ``sdk`` read-only at :data:`SDK_TARGET`."""
        return cls(
            cnvrg=PurePosixPath("/cnvrg"),
            input=PurePosixPath("/input"),
            data=PurePosixPath("/data"),
            sdk=PurePosixPath(SDK_TARGET),
            mounts=(
                Mount(workspace, "/cnvrg"),
                Mount(workspace / INPUT, "/input"),
                Mount(workspace / DATA, "/data"),
                Mount(sdk, SDK_TARGET, read_only=True),
            ),
        )


@dataclass(frozen=True)
class Launch:
    """One command of an experiment, prepared: all a compute needs to run it, nothing left to decide.

    Paths in ``command``, ``cwd`` and ``env`` are as the command sees them (the compute's
    :class:`Layout`); ``workspace`` is where the experiment's files are on the worker.
    """

    name: str  # readable and unique per experiment: "<dag id>.<run id>.<task slug>.<index>" (container names)
    command: str  # one shell line (run with bash -c, else sh -c), its arguments already quoted
    shown: str  # the command as the log may show it (the values of secret-named params as ***)
    workspace: Path  # the experiment's working directory on the worker (holds input/, the output folder)
    cwd: PurePath  # where the command runs, as it sees it (the layout's ``cnvrg``)
    # Its whole environment: the worker's (the operator's base, with the project's ``env``), then cnvrg's
    # variables. A container compute should not pass the worker's own variables (PATH, HOME) into the
    # container: the base arrives merged (``ExperimentRun.base_env``), so it passes :meth:`own_env`.
    env: Mapping[str, str]
    layout: Layout
    # the parents' end states staged, by folder (``prepare``, ``train_2``): on the worker, under
    # ``<workspace>/input``; the command sees them under ``layout.input``
    inputs: Mapping[str, Path] = field(default_factory=dict)
    image: str | None = None  # the task's ``image:``; None: none named
    resources: Mapping[str, float] = field(default_factory=dict)  # requirements: cpu, memory (GiB), gpu, hpu
    mount_folders: tuple[str, ...] = ()  # network folders ``<ip>:/<folder>``
    # datasets a compute with ``fetches_datasets`` brings to ``<layout.data>/<name>`` itself (their
    # folders are left empty on the worker): ``{"name", "files": {path: [sha256, size]}, "read_only"}``
    datasets: tuple[Mapping[str, Any], ...] = ()
    # variables always passed, even with the worker's own value: the project's ``env`` ([flow_airflow] env, the
    # Airflow Variable flow_airflow_env), which a container or pod gets whatever the worker has
    passed: frozenset[str] = frozenset()

    @property
    def mounts(self) -> tuple[Mount, ...]:
        return self.layout.mounts

    def own_env(self, worker: Mapping[str, str] | None = None) -> dict[str, str]:
        """The variables the experiment sets or changes over the worker's own (``os.environ``), and those of
        :attr:`passed` (the project's) whatever the worker has."""
        worker = os.environ if worker is None else worker
        return {k: v for k, v in self.env.items() if k in self.passed or worker.get(k) != v}

    def container_env(self) -> dict[str, str]:
        """The experiment's variables for its container (Docker, a pod): :meth:`own_env`, without the
        worker's ``PYTHONPATH`` folders (folders of the worker)."""
        env = self.own_env()
        worker = os.environ.get("PYTHONPATH")
        if worker and "PYTHONPATH" in env:
            env["PYTHONPATH"] = ":".join(p for p in env["PYTHONPATH"].split(":") if p and p not in worker.split(":"))
        return env

    @classmethod
    def local(cls, command: str, cwd: Path, env: Mapping[str, str]) -> Launch:
        """A plain command in a folder of the worker (no experiment around it): for tests and tools."""
        where = PurePath(cwd)
        layout = Layout(cnvrg=where, input=where / INPUT, data=where / DATA, sdk=where)
        return cls(name=cwd.name, command=command, shown=command, workspace=cwd, cwd=cwd, env=env, layout=layout)


class Compute(ABC):
    """Where an experiment's command runs. One instance per experiment (it holds what :meth:`kill` stops)."""

    kind: ClassVar[str]
    Settings: ClassVar[type[ComputeSettings]]
    # the command runs far from the worker (a pod): it fetches the datasets from the dataset store
    # itself (``Launch.datasets``) rather than finding them in the workspace
    fetches_datasets: ClassVar[bool] = False
    # its command can run while the task is deferred (no worker slot held): a :class:`DeferrableCompute`
    deferrable: ClassVar[bool] = False

    def __init__(self, name: str | None = None, settings: ComputeSettings | Mapping[str, Any] | None = None):
        self.name = name or self.kind
        raw = settings if settings is not None else {"kind": self.kind}
        self.settings = raw if isinstance(raw, ComputeSettings) else self.Settings.model_validate(dict(raw))

    def plan_notes(self, task: models.Task, texts: Sequence[str]) -> list[str]:
        """What this compute will not honour of ``task``, for ``flow-airflow plan`` (one warning each).

        ``texts``: the task's command and param values, as written in the flow file.
        """
        return []

    def refusal(self, task: models.Task) -> str | None:
        """Why this compute cannot run ``task`` at all (the experiment fails saying it); None when it can."""
        return None

    @abstractmethod
    def layout(self, workspace: Path, sdk: Path) -> Layout:
        """Where cnvrg's folders are for a command of the experiment in ``workspace`` (see :class:`Layout`).

        ``sdk``: the worker's folder holding the cnvrg-compatible ``cnvrg`` module. A container
        compute returns :meth:`Layout.container` (or its own mounts).
        """

    def ignores(self, launch: Launch) -> dict[str, str]:
        """What of ``launch`` this compute leaves out, and why, by key (``image``, ``requirements``).

        The log's compute section says it beside the value (``image: python:3.11 (not used by ...)``).
        """
        return {}

    @abstractmethod
    def run(self, launch: Launch, on_line: LineCallback, on_error_line: LineCallback | None = None) -> int:
        """Run ``launch`` to its end and return the command's exit code.

        Each line of its standard output goes to ``on_line``; of its standard error to
        ``on_error_line`` (to ``on_line`` too when that is None). The two are never called at once.
        """

    @abstractmethod
    def kill(self) -> None:
        """Stop the command that :meth:`run` runs (from another thread), with what it started."""


class DeferrableCompute(Compute):
    """A compute whose command runs while the task is deferred, holding no worker slot (``kubernetes``).

    The runtime calls :meth:`start`, defers the task to :meth:`trigger_for` of what it started (the
    workspace is gone with the launch), and when Airflow's triggerer fires, a new task instance
    process calls :meth:`resume` with the trigger's event. :meth:`run` is still what a batch of
    routes (one task instance running several in turn) uses.
    """

    deferrable: ClassVar[bool] = True

    @abstractmethod
    def start(self, launch: Launch) -> Any:
        """Start ``launch``'s command without waiting for it; what :meth:`trigger_for` waits on (a pod)."""

    @abstractmethod
    def trigger_for(self, started: Any) -> Any:
        """The Airflow trigger (a ``BaseTrigger``) that fires when what :meth:`start` started has ended."""

    @abstractmethod
    def resume(self, event: Mapping[str, Any], workspace: Path, on_line: LineCallback) -> int:
        """After the trigger's ``event``: the command's output to ``on_line``, its end state fetched into
        ``workspace``; the command's exit code.

        :raises ExperimentFailed: it did not run to its end, or left no exit code.
        """
