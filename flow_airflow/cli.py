"""The ``flow-airflow`` command: validate, plan, run and import flow files."""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
from pathlib import Path

from flow_airflow.spec.errors import FlowError
from flow_airflow.spec.models import Flow

LOADER = '''"""Airflow DAGs compiled from the cnvrg flow files (*.yaml, *.yml) in this folder and below."""

from flow_airflow.loader import load_dags

globals().update(load_dags(__file__))
'''


def _flow_files(paths: list[str]) -> list[Path]:
    from flow_airflow.spec.load import looks_like_flow

    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for found in sorted([*path.rglob("*.yaml"), *path.rglob("*.yml")]):
                if looks_like_flow(found.read_text(encoding="utf-8", errors="replace")):
                    files.append(found)
        else:
            files.append(path)
    return files


def validate(args: argparse.Namespace) -> int:
    from flow_airflow.spec.load import load_flow

    failed = 0
    files = _flow_files(args.paths)
    for file in files:
        try:
            flow = load_flow(file)
        except FlowError as e:
            failed += 1
            print(e, file=sys.stderr)
            continue
        print(f"{file}: OK, flow '{flow.spec.name}' with {len(flow.spec.tasks)} task(s)")
    if not files:
        print("no flow files found", file=sys.stderr)
        return 1
    return 1 if failed else 0


def plan(args: argparse.Namespace) -> int:
    from airflow.configuration import conf

    from flow_airflow import settings
    from flow_airflow.plan.flow_plan import plan_flow
    from flow_airflow.plan.routes import slug
    from flow_airflow.runtime.paths import plan_notes
    from flow_airflow.spec.load import load_flow

    try:
        flow_plan = plan_flow(load_flow(args.file))
    except FlowError as e:
        print(e, file=sys.stderr)
        return 1
    flow = flow_plan.flow
    version = f", version {flow.spec.version}" if flow.spec.version else ""
    print(f"Flow '{flow.spec.name}' -> DAG '{flow_plan.dag_id}' (sha256 {flow.digest[:12]}{version})")
    print(f"  runs: {_when(flow.spec)}")
    batch = settings.batch_routes(flow_plan.dag_id)
    map_limit = conf.getint("core", "max_map_length", fallback=1024)
    if batch > 1:
        print(f"  {batch} routes per task instance ([flow_airflow] batch_routes)")
    for task in flow_plan.tasks:
        after = f" after {', '.join(task.parents)}" if task.parents else ""
        print(f"  {task.title} [{task.kind}{after}]: {task.describe_count()}")
        if task.runtime_reason and task.count is not None:
            print(f"      planned at run time: {task.runtime_reason}")
        if task.single_mode:
            print("      single mode: its own grid only, no upstream artifacts")
        for test in task.tests:
            print(f"      condition: {test.describe()}")
        if task.approvers:
            print(f"      waits for approval by {', '.join(task.approvers)}")
        spec = task.spec
        notify = [what for what, key in (("errors", "notify_on_error"), ("success", "notify_on_success"))
                  if getattr(spec, key, False)]
        if notify:
            to = ", ".join(getattr(spec, "emails", [])) or "nobody (no emails listed)"
            print(f"      mails on {' and '.join(notify)} to {to}")
        if getattr(spec, "restart_if_stuck", False):
            print("      restarts when it fails ([flow_airflow] restart_if_stuck_retries)")
        if task.count and math.ceil(task.count / batch) > map_limit:
            print(f"      warning: {task.count} routes are more task instances than Airflow's [core] max_map_length "
                  f"({map_limit}): set [flow_airflow] batch_routes to at least {math.ceil(task.count / map_limit)}")
        if task.compute:
            print(f"      compute: {task.compute.name} ({task.compute.kind})")
            for note in task.compute.notes:
                print(f"      warning: {note}")
        values = [v for _, values in task.params for v in values]
        for note in plan_notes(getattr(spec, "script", ""), values, [slug(p) for p in task.parents], task.single_mode):
            print(f"      warning: {note}")
    return 0


def _when(flow: Flow) -> str:
    from flow_airflow.build.schedule import timezone_of

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


def run(args: argparse.Namespace) -> int:
    from flow_airflow.local_run import run_flow

    try:
        result = run_flow(args.file)
    except FlowError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"DAG '{result.dag_id}', run {result.run_id}: {result.state}")
    for e in result.experiments:
        tags = ", ".join(f"{k}={v}" for k, v in e.tags.items())
        print(f"  {e.task} #{e.index} [{e.label or '-'}] {e.state}" + (f"  tags: {tags}" if tags else ""))
    return 0 if result.state == "success" else 1


def import_flow(args: argparse.Namespace) -> int:
    """Copy the flow's project folder into the dags folder, whole or not at all.

    Links are copied as links (never followed, so a link loop cannot multiply the copy); links
    pointing outside the project are named. The copy is made beside the target under a hidden
    name and renamed into place, so a failed import leaves nothing behind.
    """
    from airflow.configuration import conf

    from flow_airflow.plan.routes import slug
    from flow_airflow.runtime.workspace import copy_project
    from flow_airflow.spec.load import load_flow

    try:
        flow = load_flow(args.file)
    except FlowError as e:
        print(e, file=sys.stderr)
        return 1
    dags = Path(args.dags_folder or conf.get("core", "dags_folder")).expanduser()
    target = dags / (slug(flow.spec.name) or "flow")
    if target.exists() and not args.force:
        print(f"{target} exists; use --force to replace it", file=sys.stderr)
        return 1
    dags.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.importing-", dir=dags))
    (staging / ".airflowignore").write_text("*\n", encoding="utf-8")  # no parse sees a half-made copy
    try:
        outside = copy_project(flow.project_dir, staging / "project")
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
    for link in outside:
        print(f"note: {link} in {target} is a link out of the project, copied as a link: the workers need its target")
    loader = dags / "flows.py"
    if not any(p.read_text(errors="replace").count("flow_airflow.loader") for p in dags.glob("*.py")):
        loader.write_text(LOADER, encoding="utf-8")
        print(f"installed the flow loader {loader}")
    print(f"imported '{flow.spec.name}' into {target / flow.file.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flow-airflow", description="Run cnvrg flow YAML files on Apache Airflow.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("validate", help="check flow files; print every mistake (exit 1 on any)")
    p.add_argument("paths", nargs="+", help="flow files or folders holding them")
    p.set_defaults(func=validate)
    p = commands.add_parser("plan", help="show the tasks of a flow and how many routes each runs")
    p.add_argument("file")
    p.set_defaults(func=plan)
    p = commands.add_parser("run", help="run a flow once through Airflow in AIRFLOW_HOME and summarize it")
    p.add_argument("file")
    p.set_defaults(func=run)
    p = commands.add_parser("import", help="copy a flow and its project folder into the dags folder")
    p.add_argument("file")
    p.add_argument("--dags-folder", help="default: [core] dags_folder of the Airflow configuration")
    p.add_argument("--force", action="store_true", help="replace a flow imported before")
    p.set_defaults(func=import_flow)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
