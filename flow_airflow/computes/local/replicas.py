"""An endpoint's replicas on the local compute: each a gunicorn process on the worker, supervised.

Each replica runs as a process that outlives the Airflow task (:mod:`flow_airflow.computes.local.supervise`:
started again when it dies, its log kept in the endpoint's ``logs/v<n>-r<i>.log``), in the version's
workspace, with the worker's Python.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flow_airflow.computes.replicas import (
    LOCALHOST,
    Replica,
    Replicas,
    Served,
    argv,
    free_port,
    serving_dir,
    serving_env,
    tail,
)


class LocalReplicas(Replicas):
    """Each replica a gunicorn process on the worker, supervised, its output in ``logs/v<n>-r<i>.log``."""

    kind = "local"

    def start(self, version: Served, count: int, key: str | None) -> list[Replica]:
        from flow_airflow.computes.local import supervise

        launch = version.launch
        env = serving_env(launch, launch["config"], key, base=os.environ)
        started = []
        for index in range(count):
            port = free_port()
            command = argv(launch, port, python=sys.executable, app_dir=str(serving_dir()))
            pidfile = self.folder / "run" / f"v{version.version}-r{index}.pid"
            log = self.folder / "logs" / f"v{version.version}-r{index}.log"
            supervise.start(command, pidfile=pidfile, log=log, env=env, cwd=Path(launch["cwd"]))
            started.append(Replica(url=f"http://{LOCALHOST}:{port}", ident=str(pidfile), log=str(log)))
        return started

    def stop(self, replica: Replica) -> None:
        from flow_airflow.computes.local import supervise

        supervise.stop(Path(replica.ident))

    def alive(self, replica: Replica) -> bool:
        from flow_airflow.computes.local import supervise

        return supervise.alive(Path(replica.ident))

    def log_tail(self, replica: Replica, lines: int = 40) -> str:
        return tail(Path(replica.log), lines)
