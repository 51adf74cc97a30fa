#!/usr/bin/env python3
"""docker-compose.yaml with every service on the host's network, for machines without Docker bridge
networks (these: the tests run the stack so, tests/compose). Prints the file to stdout:

    python3 docker/host_network.py > /tmp/compose-host.yaml
    docker-compose --project-directory . --env-file docker/host-network.env -f /tmp/compose-host.yaml up -d

Each service gets ``network_mode: host`` and loses its published ``ports`` (compose refuses both);
PostgreSQL and Redis listen on 127.0.0.1 only, where the others find them (docker/host-network.env);
every port is docker-compose.yaml's variable: pick free ones. Needs PyYAML (Debian's docker-compose
depends on python3-yaml); anchors and merge keys are resolved, ``${...}`` are left to compose.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yaml"


def host_network(text: str) -> dict[str, Any]:
    """The compose file ``text`` with every service on the host's network (see above)."""
    config = yaml.safe_load(text)
    config = {k: v for k, v in config.items() if not k.startswith("x-")}  # anchors, already merged
    for name, service in config["services"].items():
        service.pop("ports", None)
        service["network_mode"] = "host"
        if name == "postgres":
            service.setdefault("environment", {})["POSTGRES_LISTEN_ADDRESSES"] = "127.0.0.1"
        if name == "redis":
            service["command"] = [*service["command"], "--bind", "127.0.0.1"]
    return config


if __name__ == "__main__":
    yaml.safe_dump(host_network(COMPOSE.read_text()), sys.stdout, sort_keys=False)
