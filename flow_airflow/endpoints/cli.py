"""``flow-airflow endpoints list|stop|rollback|logs``: the model endpoints of the endpoint store, from the command line.

The same as the endpoints page (``flow_airflow.endpoints.api``), for whoever may use the worker's
endpoint store (``[flow_airflow] endpoints_folder``) and Airflow's metadata DB (the keys).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flow_airflow.endpoints.store import EndpointError


def list_endpoints(args: argparse.Namespace) -> int:
    """Each endpoint: status (probed), URL, version and the run that deployed it, replicas, requests and errors."""
    from flow_airflow.endpoints import api

    store = api.store()
    endpoints = store.all()
    if not endpoints:
        print(f"no endpoints in {store.root}")
    for endpoint, shown in zip(endpoints, api.describe_all(endpoints), strict=True):
        current = shown["current"]
        deployed = (f"version {current['version']} by {current['dag_id']} run {current['run_id']}"
                    if current else "no version serving")
        healthy = sum(r["healthy"] for r in shown["replicas"])
        print(f"{endpoint.name}: {shown['status']}, {shown['predict_url']}\n"
              f"  {deployed}; {healthy}/{len(shown['replicas'])} replica(s) healthy; "
              f"{shown['requests']} request(s), {shown['errors']} error(s)"
              + ("; open (no key)" if endpoint.open else f"; key: Airflow Variable {shown['key_variable']}"))
    return 0


def stop(args: argparse.Namespace) -> int:
    """Stop an endpoint: its replicas and its front (its versions are kept)."""
    import getpass

    from flow_airflow.endpoints import api
    from flow_airflow.endpoints.rollout import stop_endpoint

    try:
        stop_endpoint(api.store(), args.endpoint, f"{getpass.getuser()} (flow-airflow endpoints stop)")
    except EndpointError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"endpoint {args.endpoint} stopped")
    return 0


def rollback(args: argparse.Namespace) -> int:
    """Serve the version that served before the current one again."""
    import getpass

    from flow_airflow.endpoints import api
    from flow_airflow.endpoints.rollout import RolloutFailed, roll_back

    try:
        endpoint = roll_back(api.store(), args.endpoint, f"{getpass.getuser()} (flow-airflow endpoints rollback)",
                             say=lambda line: print(line, file=sys.stderr))
    except (EndpointError, RolloutFailed) as e:
        print(e, file=sys.stderr)
        return 1
    print(f"endpoint {args.endpoint} serves version {endpoint.current} again")
    return 0


def logs(args: argparse.Namespace) -> int:
    """The end of the endpoint's logs: its front's, then each replica's."""
    from flow_airflow.endpoints import api

    store = api.store()
    try:
        endpoint = store.load(args.endpoint)
    except EndpointError as e:
        print(e, file=sys.stderr)
        return 1
    for name, text in api.logs(store, endpoint, args.lines).items():
        print(f"==> {name} <==")
        print(text or "(empty)")
    return 0


def add_commands(commands: Any) -> None:
    """``flow-airflow endpoints ...`` under ``commands`` (the top parser's subparsers)."""
    top = commands.add_parser(
        "endpoints", help="list, stop, roll back the model endpoints deploy tasks published; show their logs",
        description="The model endpoints deploy tasks published. The endpoint store is [flow_airflow] "
        "endpoints_folder ($AIRFLOW_HOME/flow_endpoints by default).")
    sub = top.add_subparsers(dest="endpoints_command", required=True, metavar="<endpoints command>",
                             help="list, stop, rollback or logs ('flow-airflow endpoints <command> --help')")
    p = sub.add_parser("list", help="each endpoint: status (probed now), URL, version, replicas, requests, errors")
    p.set_defaults(func=list_endpoints)
    p = sub.add_parser("stop", help="stop an endpoint (its replicas and its URL); its versions are kept")
    p.add_argument("endpoint", metavar="NAME", help="the endpoint's name")
    p.set_defaults(func=stop)
    p = sub.add_parser("rollback", help="serve the previous version again (started, checked, switched to)")
    p.add_argument("endpoint", metavar="NAME", help="the endpoint's name")
    p.set_defaults(func=rollback)
    p = sub.add_parser("logs", help="the end of an endpoint's logs: its front's and each replica's")
    p.add_argument("endpoint", metavar="NAME", help="the endpoint's name")
    p.add_argument("--lines", "-n", type=int, default=100, help="lines of each log (default 100)")
    p.set_defaults(func=logs)
