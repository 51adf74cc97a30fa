"""An S3-compatible server for the artifact store's tests: moto's standalone server on 127.0.0.1.

Reached like any S3 service, through an Airflow connection given as an environment variable
(``AIRFLOW_CONN_FLOW_S3``, JSON, ``endpoint_url`` in its extra, fake keys): no Airflow metadata DB
is needed to read it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

CONN_ID = "flow_s3"


@dataclass
class S3Server:
    endpoint: str
    conn_id: str

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def bucket(self, name: str) -> str:
        """A fresh bucket: its name."""
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """moto's server on a free port of 127.0.0.1, and the connection ``flow_s3`` to it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request in the captured logs
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    variable = f"AIRFLOW_CONN_{CONN_ID.upper()}"
    os.environ[variable] = json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    })
    try:
        yield S3Server(endpoint, CONN_ID)
    finally:
        os.environ.pop(variable, None)
        server.stop()
