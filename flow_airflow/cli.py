"""The ``flow-airflow`` command: validate, plan, run and import flow files."""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from flow_airflow import settings
from flow_airflow.spec.errors import FlowError, FlowIssue
from flow_airflow.spec.models import DataTask, DeployTask, Flow, Task, scalar_text

if TYPE_CHECKING:
    from flow_airflow.plan.flow_plan import TaskPlan
    from flow_airflow.spec.load import LoadedFlow

LOADER = '''"""Airflow DAGs compiled from the cnvrg flow files (*.yaml, *.yml) in this folder and below."""

from flow_airflow.loader import load_dags

globals().update(load_dags(__file__))
'''


def validate(args: argparse.Namespace) -> int:
    """Check flow files and folders: a folder as the loader reads it (the same files, the same checks)."""
    from flow_airflow.loader import compile_file, walk
    from flow_airflow.plan.flow_plan import plan_flow
    from flow_airflow.spec.load import load_flow

    checked = failed = links = 0
    seen: dict[str, Path] = {}
    for raw in args.paths:
        path = Path(raw)
        files, repeats = walk(path) if path.is_dir() else ([path], [])
        for repeat in repeats:  # a link loop: Airflow's walk of the dags folder would stop on it
            links += 1
            print(repeat.issue(), file=sys.stderr)
        for file in files:
            try:
                if path.is_dir():
                    found = compile_file(file)
                    plan = found.plan if found else None
                else:
                    plan = plan_flow(load_flow(file, library_folders=settings.library_folders()))
                if plan is not None and plan.dag_id in seen:
                    raise FlowError.single(file, f"the flow title '{plan.flow.spec.name}' gives the DAG id "
                                                 f"'{plan.dag_id}', already used by {seen[plan.dag_id]}", 1, 1)
            except FlowError as e:
                checked, failed = checked + 1, failed + 1
                print(e, file=sys.stderr)
                continue
            if plan is None:
                continue  # YAML that is no flow: the loader skips it too
            checked += 1
            seen[plan.dag_id] = file
            for warning in getattr(plan.flow, "warnings", ()):  # keys of another task type (issue 11, section 1)
                print(FlowIssue(warning.file, f"warning: {warning.message}", warning.line, warning.column))
            print(f"{file}: OK, flow '{plan.flow.spec.name}' with {len(plan.tasks)} task(s), DAG '{plan.dag_id}'")
    if not checked and not links:
        print("no flow files found", file=sys.stderr)
        return 1
    print(f"{checked} flow file{'s' if checked != 1 else ''}, {failed} with errors"
          + (f"; {links} folder link{'s' if links != 1 else ''} not followed (see above)" if links else ""))
    return 1 if failed or links else 0


def plan(args: argparse.Namespace) -> int:
    """Print how a flow compiles: its DAG, schedule, and per task its routes and what it will do."""
    from airflow.configuration import conf

    from flow_airflow.plan.flow_plan import plan_flow
    from flow_airflow.spec.load import load_flow

    try:
        flow_plan = plan_flow(load_flow(args.file, library_folders=settings.library_folders()))
    except FlowError as e:
        print(e, file=sys.stderr)
        return 1
    flow = flow_plan.flow
    version = f", version {flow.spec.version}" if flow.spec.version else ""
    print(f"Flow '{flow.spec.name}' -> DAG '{flow_plan.dag_id}' (sha256 {flow.digest[:12]}{version})")
    print(f"  runs: {_when(flow.spec)}")
    for warning in flow.warnings:
        print(f"  {_warning(warning)}")
    batch = settings.batch_routes(flow_plan.dag_id)
    map_limit = conf.getint("core", "max_map_length", fallback=1024)
    if batch > 1:
        print(f"  {batch} routes per task instance ([flow_airflow] batch_routes)")
    datasets = {t.title: t.spec.dataset for t in flow_plan.tasks if isinstance(t.spec, DataTask)}
    for task in flow_plan.tasks:
        after = f" after {', '.join(task.parents)}" if task.parents else ""
        print(f"  {task.title} [{task.kind}{after}]: {task.describe_count()}")
        for line in [*_component_lines(flow, task.title), *_route_lines(task), *_task_lines(task.spec),
                     *_dataset_lines(task.spec), *_map_lines(task, batch, map_limit), *_compute_lines(task, datasets)]:
            print(f"      {line}")
    return 0


def _component_lines(flow: LoadedFlow, title: str) -> list[str]:
    """The AI Library component a task runs in: its slug, version, folder, and what the task takes from it."""
    used = flow.components.get(title)
    if used is None:
        return []
    component = used.component
    line = f"AI Library component {component.slug} {component.version or '(no version)'} from {component.folder}"
    return [line + (f", giving {', '.join(used.gave)}" if used.gave else "")]


def _route_lines(task: TaskPlan) -> list[str]:
    """How its routes are made: at run time, single mode, conditions, approvals, params without a value, ranges."""
    lines = []
    if task.runtime_reason and task.count is not None:
        lines.append(f"planned at run time: {task.runtime_reason}")
    if task.single_mode:
        lines.append("single mode: its own grid only, no upstream artifacts")
    lines += [f"condition: {test.describe()}" for test in task.tests
              if test.describe() not in task.describe_count()]  # said once is enough
    if task.approvers:
        lines.append(f"waits for approval by {', '.join(task.approvers)}")
    if task.unset_params:
        lines.append(f"params without a value, not passed until given one: {', '.join(task.unset_params)}")
    lines += [f"{p.key}: {p.describe_range()}" for p in getattr(task.spec, "params", []) if p.is_range]
    return lines + _page_lines(task.spec)


def _page_lines(spec: Task) -> list[str]:
    """What the keys of cnvrg's flow page do here: the concurrency limit, the grid's cap, the cnvrg queue."""
    lines = []
    if parallel := getattr(spec, "parallel_jobs", None):
        lines.append(f"at most {parallel} experiment(s) at once (parallel_jobs: Airflow's max_active_tis_per_dagrun)")
    if cap := getattr(spec, "max_jobs", None):
        lines.append(f"at most {cap} experiment(s) in its grid (max_jobs: a larger grid is refused)")
    if queue := getattr(spec, "queue_slug", None):
        lines.append(f"cnvrg queue {queue} (queue_slug): not used, Airflow's workers take it from the default queue")
    return lines


def _dataset_lines(spec: Task) -> list[str]:
    """A data task's version as the dataset store resolves it now, or a warning that it is not there."""
    from flow_airflow.datasets.store import DatasetError, configured

    if not isinstance(spec, DataTask):
        return []
    try:
        chosen = configured().resolve(spec.dataset, spec.data_commit, spec.data_query)
    except DatasetError as e:
        return [f"warning: {e}; the task fails at run time unless it is there by then"]
    return [f"dataset: {chosen.describe()}"]


def _task_lines(spec: Task) -> list[str]:
    """What a deploy task serves; whom it mails; whether it restarts."""
    lines = _deploy_lines(spec) if isinstance(spec, DeployTask) else []
    notify = [what for what, key in (("errors", "notify_on_error"), ("success", "notify_on_success"))
              if getattr(spec, key, False)]
    if notify:
        to = ", ".join(getattr(spec, "emails", [])) or "nobody (no emails listed)"
        lines.append(f"mails on {' and '.join(notify)} to {to}")
    if getattr(spec, "restart_if_stuck", False):
        lines.append("restarts when it fails ([flow_airflow] restart_if_stuck_retries)")
    return lines


def _map_lines(task: TaskPlan, batch: int, map_limit: int) -> list[str]:
    """A warning when its routes are more task instances than Airflow maps."""
    if task.count and math.ceil(task.count / batch) > map_limit:
        return [f"warning: {task.count} routes are more task instances than Airflow's [core] max_map_length "
                f"({map_limit}): set [flow_airflow] batch_routes to at least {math.ceil(task.count / map_limit)}"]
    return []


def _compute_lines(task: TaskPlan, datasets: dict[str, str]) -> list[str]:
    """Its compute unless the default alone, what was skipped choosing it, and what will not work there."""
    from flow_airflow import computes
    from flow_airflow.common.routes import slug
    from flow_airflow.runtime.paths import plan_notes

    lines = []
    choice = task.compute
    if choice and (choice.name != computes.DEFAULT or choice.notes):  # not the default alone
        lines.append(f"compute: {choice.name} ({choice.kind})")
        lines += [f"warning: {note}" for note in choice.notes]
        if choice.kind in computes.KINDS and computes.compute_class(choice.kind).deferrable:
            lines.append("deferrable: while its command runs, a task instance of one route waits in Airflow's "
                         "triggerer, holding no worker slot (a batch of routes runs them in turn in the worker)")
    lines += _image_lines(task)
    values = [v for _, values in task.params for v in values]
    script = getattr(task.spec, "script", "")
    notes = plan_notes(script, values, [slug(p) for p in task.parents if p not in datasets], task.single_mode,
                       [datasets[p] for p in task.parents if p in datasets])
    if choice and choice.kind in computes.KINDS:
        notes += choice.compute().plan_notes(task.spec, [script, *values])
    return lines + [f"warning: {note}" for note in notes]


def _image_lines(task: TaskPlan) -> list[str]:
    """The image the task runs in: its ``image:``, else its compute's default (kinds with an ``image`` setting)."""
    from flow_airflow import computes

    choice = task.compute
    named = getattr(task.spec, "image", None)
    uses_images = bool(choice) and choice.kind in computes.KINDS and "image" in computes.compute_class(
        choice.kind).Settings.model_fields
    if uses_images:
        image = named or choice.settings.get("image")
        return [f"image: {image}" + ("" if named else " (the compute's default)")] if image else []
    return [f"image: {named} (not used by the {choice.kind if choice else 'local'} compute)"] if named else []


def _warning(issue: FlowIssue) -> str:
    """``file:line:column: warning: message``."""
    return str(FlowIssue(issue.file, f"warning: {issue.message}", issue.line, issue.column))


def _deploy_lines(spec: DeployTask) -> list[str]:
    """What a deploy task says it serves: its function, the endpoint (``flow-airflow endpoints list``), its keys."""
    import json

    from flow_airflow.endpoints.store import endpoint_name

    kind = f" ({spec.kind})" if spec.kind else ""
    if spec.serves_own_code:
        lines = [f"serves {spec.file_name}:{spec.function_name}{kind} as endpoint '{endpoint_name(spec)}'"]
    else:
        names = " or ".join(f"'{n}'" for n in dict.fromkeys(n for n in (spec.endpoint_id, spec.endpoint_title) if n))
        lines = [f"updates the existing endpoint {names}{kind}: the code it serves now, with this run's inputs"
                 + ("" if spec.computes else ", on its compute")]
    details = [
        ("command", spec.command),
        ("language", spec.language),
        ("env_setup", spec.env_setup),
        ("prep", f"{spec.prep_file}:{spec.prep_function}" if spec.prep_file else None),
        ("accept_files", None if spec.accept_files is None else str(spec.accept_files).lower()),
        ("replicas", None if spec.min_replica is None and spec.max_replica is None
         else f"{spec.min_replica or 0} to {spec.max_replica or '-'}"),
        ("requirements", ", ".join(f"{k} {v:g}" for k, v in spec.resources.model_dump(exclude_none=True).items())
         if spec.resources else None),
    ]
    lines += [f"{key}: {value}" for key, value in details if value]
    for key in ("input_example", "input_schema", "output_schema"):
        if (value := getattr(spec, key)) is not None:
            lines.append(f"{key}: {json.dumps(value)}")
    for key in ("gunicorn_config", "flask_config"):
        if items := getattr(spec, key):
            lines.append(f"{key}: " + ", ".join(f"{i.key}={scalar_text(i.value)}" for i in items))
    if spec.config_vars:
        lines.append(f"config_vars: {', '.join(spec.config_vars)}")
    return lines


def _when(flow: Flow) -> str:
    from flow_airflow.render.schedule import timezone_of

    parts = []
    if flow.recurring:
        parts.append(f"on the cron schedule '{flow.recurring}' ({timezone_of(flow)})")
    if flow.schedule:
        parts.append(f"once, at {flow.schedule} ({timezone_of(flow)})")
    triggers = flow.triggers
    if triggers and triggers.datasets:
        parts.append(f"on a new version of {', '.join(triggers.datasets)}")
    parts.append("when triggered (UI, CLI or REST API)")
    return "; ".join(parts)


def schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of flow files (both dialects), for editors: see README."""
    import json

    from flow_airflow.spec.schema import flow_schema

    print(json.dumps(flow_schema(), indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from flow_airflow.local_run import run_flow, titles_of
    from flow_airflow.plan.flow_plan import plan_flow
    from flow_airflow.spec.load import load_flow

    try:
        conf = json.loads(args.conf) if args.conf else None
        if args.reuse:
            if conf is not None and not isinstance(conf, dict):
                print("--conf must be a JSON object to go with --reuse", file=sys.stderr)
                return 2
            conf = {**(conf or {}), "flow_airflow": {**(conf or {}).get("flow_airflow", {}), "reuse": True}}
        flow_plan = plan_flow(load_flow(args.file, library_folders=settings.library_folders()))
    except FlowError as e:
        print(e, file=sys.stderr)
        return 1
    except json.JSONDecodeError as e:
        print(f"--conf is not valid JSON: {e}", file=sys.stderr)
        return 2
    from flow_airflow.run_report import Progress, airflow_output_to, summary

    logs = settings.airflow_home() / "flow_airflow_run"
    log_file = None if args.verbose else logs / f"{flow_plan.dag_id}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    started = time.monotonic()
    with airflow_output_to(log_file) as (out, err):
        print(f"Running '{flow_plan.flow.spec.name}' (DAG {flow_plan.dag_id})"
              + (f"; Airflow's log: {log_file}" if log_file else ""), file=out)
        progress = Progress(titles_of(flow_plan.flow), {t.title: t.count for t in flow_plan.tasks}, out, err)
        try:
            result = run_flow(args.file, conf, listener=progress, say=lambda line: print(line, file=out))
        except FlowError as e:
            print(e, file=err)
            return 1
        except Exception as e:  # Airflow could not run it: say what, the details are in the log
            print(f"the run could not start: {e}" + (f" (see {log_file})" if log_file else ""), file=err)
            return 1
    print("\n".join(summary(result, time.monotonic() - started, log_file)))
    return 0 if result.state == "success" else 1


def import_flow(args: argparse.Namespace) -> int:
    """Copy the flow's project folder into the dags folder, whole or not at all.

    Links are copied as links (never followed, so a link loop cannot multiply the copy); links
    pointing outside the project are named. The copy is made beside the target under a hidden
    name and renamed into place, so a failed import leaves nothing behind.
    """
    from airflow.configuration import conf

    from flow_airflow.common.routes import slug
    from flow_airflow.loader import IGNORE_FILE
    from flow_airflow.runtime.workspace import copy_project
    from flow_airflow.spec.load import load_flow

    try:
        flow = load_flow(args.file, library_folders=settings.library_folders())
    except FlowError as e:
        print(e, file=sys.stderr)
        return 1
    dags = Path(args.dags_folder or conf.get("core", "dags_folder")).expanduser()
    target = dags / (slug(flow.spec.name) or "flow")
    refusal = _import_refusal(flow, dags, target, args.force)
    if refusal:
        print(refusal, file=sys.stderr)
        return 1
    dags.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.importing-", dir=dags))
    (staging / ".airflowignore").write_text("*\n", encoding="utf-8")  # no parse sees a half-made copy
    try:
        outside = copy_project(flow.project_dir, staging / "project")
        ignored = _ignore_folder_links(staging / "project", target)
        if target.exists():
            target.rename(staging / "replaced")
        try:
            (staging / "project").rename(target)
        except OSError:
            if (staging / "replaced").exists():
                (staging / "replaced").rename(target)
            raise
    except OSError as e:
        print(f"cannot import '{flow.spec.name}': {e}; nothing was imported", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not _push_datasets(flow.project_dir, args.no_event):
        return 1
    for link in outside:
        print(f"note: {link} in {target} is a link out of the project, copied as a link: the workers need its target")
    for link in ignored:
        print(f"note: {link} in {target} is a link to a folder: listed in {target / IGNORE_FILE}, so that Airflow's "
              "walk of the dags folder does not follow it (a loop there stops Airflow's DAG processor)")
    _install_loader(dags)
    print(f"imported '{flow.spec.name}' into {target / flow.file.name}")
    return 0


def _import_refusal(flow: LoadedFlow, dags: Path, target: Path, force: bool) -> str | None:
    """Why ``flow`` cannot be imported into ``target`` in ``dags``; None when it can."""
    from flow_airflow.plan.flow_plan import plan_flow

    if target.exists() and not force:
        return f"{target} exists; use --force to replace it"
    dag_id = plan_flow(flow).dag_id
    clash = _flow_of_dag_id(dags, dag_id, besides=target)
    if clash is not None:  # Airflow would load one of the two and make the other an import error
        return (f"cannot import '{flow.spec.name}': its DAG id '{dag_id}' is already used by {clash}; give the "
                "flow another title (its 'flow:' or 'title:') or remove that one; nothing was imported")
    return None


def _flow_of_dag_id(dags: Path, dag_id: str, besides: Path) -> Path | None:
    """The flow file under ``dags`` (outside ``besides``, the folder an import replaces) whose DAG id
    is ``dag_id``, as the loader reads the folder; None when there is none. Broken flows are skipped
    (they make no DAG)."""
    from flow_airflow.loader import compile_file, walk

    if not dags.is_dir():
        return None
    files, _ = walk(dags)
    for file in files:
        if besides == file or besides in file.parents:
            continue
        try:
            found = compile_file(file)
        except FlowError:
            continue
        if found is not None and found.plan.dag_id == dag_id:
            return file
    return None


def _ignore_folder_links(copy: Path, final: Path) -> list[str]:
    """List every link of the project ``copy`` that does not lead to a file in its ``.airflowignore``.

    Airflow's walk of the dags folder follows linked folders and raises on one it reaches twice
    ("Detected recursive loop"), which stops its DAG processor: a link to a folder above it
    (a loop), to another folder of the project, or one that another project links to too. A
    project's flows are in the project itself, so none of its folder links needs following. The
    links are judged where the copy will be, ``final`` (a relative link may lead elsewhere from
    there); the patterns are in the syntax ``[core] dag_ignore_file_syntax`` says. Returns the
    links listed (``path -> where it points``).

    :param copy: the copy of the project, not yet in its place.
    :param final: the folder the copy is renamed to, in the dags folder.
    """
    from airflow.configuration import conf

    from flow_airflow.loader import IGNORE_FILE

    regexp = conf.get_mandatory_value("core", "DAG_IGNORE_FILE_SYNTAX", fallback="glob") == "regexp"
    listed: list[str] = []
    patterns: list[str] = []
    for root, dirs, names in os.walk(copy):  # links are not followed
        for name in sorted([*dirs, *names]):
            link = Path(root) / name
            if not link.is_symlink():
                continue
            relative = link.relative_to(copy).as_posix()
            pointed = Path(os.path.normpath(final / relative / ".." / os.readlink(link)))
            if pointed == final or final in pointed.parents:  # judged in the copy, as it is not in place yet
                pointed = copy / pointed.relative_to(final)
            if pointed.is_file():
                continue
            listed.append(f"{relative} -> {os.readlink(link)}")
            patterns.append(_regexp_pattern(f"{final.name}/{relative}") if regexp else _glob_pattern(relative))
    if patterns:
        ignore = copy / IGNORE_FILE
        before = ignore.read_text(encoding="utf-8") if ignore.is_file() else ""
        ignore.write_text(before + ("\n" if before and not before.endswith("\n") else "")
                          + "# flow-airflow import: the project's links to folders, not to be followed by Airflow\n"
                          + "".join(f"{p}\n" for p in patterns), encoding="utf-8")
    return listed


def _glob_pattern(relative: str) -> str:
    """A gitignore pattern for exactly ``relative`` (from the ignore file's folder).

    Airflow cuts a line at '#' (a comment) and a pattern at a line break: those match any character."""
    escaped = "".join("?" if c in "#\n\r" else f"\\{c}" if c in "\\*?[ !" else c for c in relative)
    return f"/{escaped}"


def _regexp_pattern(relative: str) -> str:
    """A regular expression for exactly ``relative`` (from the dags folder, as Airflow matches them)."""
    return "^" + "".join("." if c in "#\n\r" else re.escape(c) for c in relative) + "$"


def _install_loader(dags: Path) -> None:
    """The loader files in ``dags``, unless one is there: each compiles its share of the flows
    (README "Using it in an Airflow deployment")."""
    if any(p.read_text(errors="replace").count("flow_airflow.loader") for p in dags.glob("*.py")):
        return
    from flow_airflow.shares import share_files

    loaders = share_files(dags)
    for loader in loaders:
        loader.write_text(LOADER, encoding="utf-8")
    print(f"installed the flow loader as {len(loaders)} files {loaders[0].name} .. {loaders[-1].name} in {dags}")


def _push_datasets(project_dir: Path, no_event: bool) -> bool:
    """The flow's ``datasets/<name>/<version>/`` folders into the dataset store (``flow_airflow.datasets``)."""
    from flow_airflow.datasets.cli import push_flow_datasets
    from flow_airflow.datasets.store import DatasetError

    try:
        lines = push_flow_datasets(project_dir, no_event)
    except DatasetError as e:
        print(f"cannot import the flow's datasets: {e}", file=sys.stderr)
        return False
    for line in lines:
        print(line)
    return True


def gc(args: argparse.Namespace) -> int:
    """``flow-airflow gc`` (:func:`flow_airflow.retention.gc`)."""
    from flow_airflow.retention import gc as collect

    return collect(args.days, args.keep, args.delete)


def parser() -> argparse.ArgumentParser:
    """The command line: every subcommand and argument with its help text (``flow-airflow <command> --help``)."""
    top = argparse.ArgumentParser(
        prog="flow-airflow",
        description="Run cnvrg flow YAML files on Apache Airflow: check them, show their plan, run them once, "
        "or import them into the dags folder; keep versions of datasets. "
        "'flow-airflow <command> --help' describes each command.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="<command>")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=f"{summary[0].upper()}{summary[1:]}. {description}")

    p = command("validate", "check flow files; print every mistake (exit 1 on any)",
                "Each mistake is printed as file:line:column: message; a file that is fine prints OK.")
    p.add_argument("paths", nargs="+", metavar="path",
                   help="a flow YAML file, or a folder holding flow files")
    p.set_defaults(func=validate)
    p = command("plan", "show the tasks of a flow and how many routes each runs",
                "Per task: its parents, its route count (or why it is known only at run time), conditions, "
                "approvals, notifications, and warnings (a compute that is not configured, paths that cannot work). "
                "Nothing runs.")
    p.add_argument("file", help="the flow YAML file")
    p.set_defaults(func=plan)
    p = command("schema", "print the JSON Schema of flow files, for editors",
                "Covers both dialects of flow files; with it, editors that use the YAML language server "
                "check flows as they are typed (see README).")
    p.set_defaults(func=schema)
    p = command("run", "run a flow once through Airflow in AIRFLOW_HOME and summarize it",
                "Prints a line per experiment as it ends, then a summary; the exit code is 0 when the run succeeded.")
    p.add_argument("file", help="the flow YAML file")
    p.add_argument("--conf", metavar="JSON",
                   help="the run's conf as JSON, as a trigger from the UI or REST API gives it")
    p.add_argument("--reuse", action="store_true",
                   help="take each experiment whose key (command line, image, files, parents, environment) an "
                        "earlier experiment that succeeded has, instead of running it (conf "
                        '{"flow_airflow": {"reuse": true}})')
    p.add_argument("--verbose", "-v", action="store_true",
                   help="show Airflow's own output (else it goes to a log file named in the summary)")
    p.set_defaults(func=run)
    p = command("import", "copy a flow and its project folder into the dags folder",
                "The folder is copied whole or not at all, links as links; the flow loader is installed there "
                "when the dags folder has none; its datasets/<name>/<version>/ folders go into the dataset store.")
    p.add_argument("file", help="the flow YAML file; the folder holding it is the project folder that is copied")
    p.add_argument("--dags-folder", metavar="FOLDER",
                   help="where to copy it (default: [core] dags_folder of the Airflow configuration)")
    p.add_argument("--force", action="store_true", help="replace a flow imported before under the same name")
    p.add_argument("--no-event", action="store_true",
                   help="push the flow's datasets/<name>/<version>/ folders without Airflow asset events")
    p.set_defaults(func=import_flow)
    p = command("gc", "list, then remove, stored end states past the retention settings and leftover workspaces",
                "Keeps runs that are queued or running and those an endpoint's version was made from; never touches "
                "datasets or endpoints. Without --delete only lists each folder with its size.")
    p.add_argument("--days", type=float, metavar="N", help="remove end states of runs that ended more than N days "
                   "ago (default: [flow_airflow] retention_days)")
    p.add_argument("--keep", type=int, metavar="N", help="keep the end states of the newest N runs of each flow "
                   "(default: [flow_airflow] retention_runs)")
    p.add_argument("--delete", action="store_true", help="remove the folders listed")
    p.set_defaults(func=gc)
    from flow_airflow.datasets.cli import add_commands
    from flow_airflow.endpoints.cli import add_commands as add_endpoint_commands
    from flow_airflow.library_cli import add_commands as add_library_commands

    add_commands(commands)
    add_endpoint_commands(commands)
    add_library_commands(commands)
    return top


def fresh_home_note() -> str | None:
    """What to say when Airflow is about to make a new home in ``~/airflow`` (no ``AIRFLOW_HOME``, none there yet):
    the command would then work on an empty instance of its own, not on the one ``./dev up`` serves."""
    import os

    if os.environ.get("AIRFLOW_HOME") or os.environ.get("AIRFLOW_CONFIG"):
        return None
    home = Path("~/airflow").expanduser()
    if home.exists():
        return None
    note = (f"note: AIRFLOW_HOME is not set and {home} does not exist: Airflow makes a new, empty home there "
            "(its own metadata DB and dags folder)")
    served = Path.cwd() / "airflow-home"
    if (served / "airflow.cfg").is_file():
        note += f"; the home ./dev up serves is {served}: export AIRFLOW_HOME={served}"
    else:
        note += "; for the instance ./dev up serves, export AIRFLOW_HOME as its banner says"
    return note


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.func is not schema and (note := fresh_home_note()):
        print(note, file=sys.stderr)
    try:
        return args.func(args)
    except settings.SettingError as e:  # a deployment's mistake, said in one sentence (README: Settings)
        print(f"flow-airflow: {e}", file=sys.stderr)
        return 2

if __name__ == "__main__":
    sys.exit(main())
