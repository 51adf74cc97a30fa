"""The ``flow-airflow`` command: validate, plan, run and import flow files."""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path

from flow_airflow.spec.errors import FlowError, FlowIssue
from flow_airflow.spec.models import Flow

LOADER = '''"""Airflow DAGs compiled from the cnvrg flow files (*.yaml, *.yml) in this folder and below."""

from flow_airflow.loader import load_dags

globals().update(load_dags(__file__))
'''


def validate(args: argparse.Namespace) -> int:
    """Check flow files and folders: a folder as the loader reads it (the same files, the same checks)."""
    from flow_airflow.loader import compile_file, flow_files
    from flow_airflow.plan.flow_plan import plan_flow
    from flow_airflow.spec.load import load_flow

    checked = failed = 0
    seen: dict[str, Path] = {}
    for raw in args.paths:
        path = Path(raw)
        for file in flow_files(path) if path.is_dir() else [path]:
            try:
                plan = compile_file(file) if path.is_dir() else plan_flow(load_flow(file))
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
    if not checked:
        print("no flow files found", file=sys.stderr)
        return 1
    print(f"{checked} flow file{'s' if checked != 1 else ''}, {failed} with errors")
    return 1 if failed else 0


def plan(args: argparse.Namespace) -> int:
    from airflow.configuration import conf

    from flow_airflow import settings
    from flow_airflow.plan.flow_plan import plan_flow
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
    from airflow.configuration import conf

    from flow_airflow.plan.routes import slug
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
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(flow.project_dir, target, ignore=shutil.ignore_patterns("__pycache__", ".git", "input", "output"))
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
