"""``flow-airflow library list|show``: the AI Library components a flow can name (:mod:`flow_airflow.spec.library`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from flow_airflow import settings
from flow_airflow.spec import library


def add_commands(commands: Any) -> None:
    """``flow-airflow library ...`` under ``commands`` (the top parser's subparsers)."""
    top = commands.add_parser(
        "library", help="list the AI Library components flows can name, or show one",
        description="AI Library components: folders with a library.yaml, named by the slug of their title "
        "(library: <slug> in a task). They are looked for in the flow's folder, then in [flow_airflow] "
        "library_folders, in that order.")
    sub = top.add_subparsers(dest="library_command", required=True, metavar="<library command>",
                             help="list or show ('flow-airflow library <command> --help')")
    p = sub.add_parser("list", help="each component: its slug, versions, title and folder; library.yaml files "
                       "that cannot be read, and why")
    p.add_argument("folder", nargs="?", default=".",
                   help="the flow's folder (default: the current folder), or a flow file in it")
    p.set_defaults(func=list_components)
    p = sub.add_parser("show", help="one component: what a task naming it takes from it")
    p.add_argument("slug", help="what a task's library: names")
    p.add_argument("--version", help="the version (default: the highest)")
    p.add_argument("--folder", default=".",
                   help="the flow's folder (default: the current folder), or a flow file in it")
    p.set_defaults(func=show)


def _catalog(folder: str) -> library.Catalog:
    path = Path(folder)
    return library.find(path.parent if path.is_file() else path, settings.library_folders())


def list_components(args: argparse.Namespace) -> int:
    catalog = _catalog(args.folder)
    print("looked in: " + ", ".join(str(p) for p in catalog.places))
    if not catalog.found:
        print("no components (folders with a library.yaml) there")
    for slug in sorted(catalog.found):
        for version in catalog.versions(slug):
            component = catalog.found[slug][version]
            kind = "deploy" if component.is_deploy else "exec"
            print(f"{slug} {version or '(no version)'} [{kind}] '{component.title}' {component.folder}")
    for broken in catalog.broken:
        print(f"{broken.file}: {broken.problem}", file=sys.stderr)
    return 0


def show(args: argparse.Namespace) -> int:
    catalog = _catalog(args.folder)
    component = catalog.get(args.slug, args.version)
    if component is None:
        versions = catalog.versions(args.slug)
        print(f"no component '{args.slug}'" + (f" version {args.version} (versions here: {', '.join(versions)})"
                                               if versions else f" in {', '.join(map(str, catalog.places))}"),
              file=sys.stderr)
        return 1
    data = component.data
    print(f"{component.slug} {component.version or '(no version)'}: '{component.title}'")
    print(f"  folder: {component.folder}")
    print(f"  kind: {'deploy (webservice)' if component.is_deploy else 'exec'}")
    for key in ("description", "command", "image", "language", "requirements"):
        if not library.is_empty(data.get(key)):
            print(f"  {key}: {json.dumps(data[key]) if isinstance(data[key], dict | list) else data[key]}")
    arguments = data.get("arguments")
    if isinstance(arguments, list):
        for argument in arguments:
            if isinstance(argument, dict):
                values = argument.get("values", argument.get("value"))
                shown = "unset until given" if library.is_empty(values) else json.dumps(values)
                print(f"  param {argument.get('key')}: {shown}")
    elif isinstance(arguments, dict):
        for key in library.DEPLOY_KEYS:
            if key in arguments:
                print(f"  {key}: {json.dumps(arguments[key])}")
    files = sorted(str(p.relative_to(component.folder)) for p in component.folder.rglob("*") if p.is_file())
    print(f"  files: {', '.join(files[:30])}" + (f" and {len(files) - 30} more" if len(files) > 30 else ""))
    return 0
