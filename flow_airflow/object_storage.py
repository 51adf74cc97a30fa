"""Object storage shared by the artifact store and the dataset store: what names it (a URL of Airflow's
``ObjectStoragePath``, ``s3://<conn id>@bucket/prefix``, rather than a folder), whether it can be used
here, and transfers of many files at once. Airflow is imported inside the functions only.
"""

from __future__ import annotations

import asyncio
import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

CONCURRENCY = 16  # transfers at once on an asynchronous filesystem
URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")  # a URL's scheme (RFC 3986)


def is_url(text: str) -> bool:
    """Whether ``text`` names object storage (``<scheme>://...``, not ``file://``) rather than a local folder."""
    scheme = URL.match(text)
    return bool(scheme) and scheme.group(1).lower() not in ("file", "local")


def local_path(text: str) -> Path:
    """The local folder of ``text``: a path, or a ``file://`` URL."""
    if text.startswith(("file://", "local://")):
        return Path(urlsplit(text).path)
    return Path(text).expanduser()


def check_usable(url: str, conn_id: str | None = None, what: str = "the artifact store") -> None:
    """Refuse a URL whose scheme has no filesystem installed, or whose named connection does not exist.

    (Airflow would go on without a connection it cannot find: anonymous, or the machine's credentials.)
    Checked once per scheme and connection in a process.
    """
    parts = urlsplit(url)
    try:
        _check(parts.scheme, conn_id or parts.netloc.rpartition("@")[0] or None)
    except ValueError as e:
        raise ValueError(f"{what} {url} cannot be used: {e}") from None


@functools.lru_cache(maxsize=32)
def _check(scheme: str, conn_id: str | None) -> None:
    from airflow.sdk.io import has_fs

    if scheme not in ("file", "local") and not has_fs(scheme):
        extra = " (pip install 'flow-airflow[s3]')" if scheme.startswith("s3") else ""
        raise ValueError(f"no filesystem for '{scheme}://' is installed{extra}: the provider of that "
                         f"object storage must be installed on every worker")
    if conn_id:
        from airflow.sdk import BaseHook

        try:
            BaseHook.get_connection(conn_id)
        except Exception as e:  # AirflowNotFoundException, or what the secrets backend raises
            raise ValueError(f"its connection '{conn_id}' cannot be read: {e}") from None


def transfer(fs: AbstractFileSystem, method: str, pairs: list[tuple[str, str]]) -> None:
    """``fs.<method>(a, b)`` for each pair (``put_file``, ``get_file``): on an asynchronous filesystem
    (s3fs, gcsfs) up to :data:`CONCURRENCY` at a time, else one after the other.

    :raises FileNotFoundError: an ``a`` is missing (its ``filename``).
    """
    if not getattr(fs, "async_impl", False):
        for a, b in pairs:
            try:
                getattr(fs, method)(a, b)
            except FileNotFoundError:
                raise FileNotFoundError(2, "missing", a) from None
        return
    from fsspec.asyn import sync

    async def one(a: str, b: str) -> None:
        try:
            await getattr(fs, f"_{method}")(a, b)
        except FileNotFoundError:
            raise FileNotFoundError(2, "missing", a) from None

    async def each() -> None:
        for start in range(0, len(pairs), CONCURRENCY):
            await asyncio.gather(*(one(a, b) for a, b in pairs[start:start + CONCURRENCY]))

    if pairs:
        sync(fs.loop, each)
