"""The Airflow Asset that stands for a cnvrg dataset: a new version of it is an asset event."""

from __future__ import annotations

from typing import Any

URI_SCHEME = "cnvrg-dataset"


def dataset_asset(name: str) -> Any:
    from airflow.sdk import Asset

    return Asset(name=f"{URI_SCHEME}/{name}", uri=f"{URI_SCHEME}://{name}", group="cnvrg-dataset")
