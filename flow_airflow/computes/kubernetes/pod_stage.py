"""Both ends of a pod's workspace (the Kubernetes compute): packed on the worker, unpacked in the pod, back.

In the pod (the stager image, ``python3 -m flow_airflow.computes.kubernetes.pod_stage in|out <exchange> <folder>``):

- ``in``: ``<exchange>/workspace.tar`` unpacked into ``<folder>`` (the pod's workspace volume), then the
  datasets it lists (``FETCH``) fetched from the dataset store into ``<folder>/.cnvrg_data/<name>``
  (cnvrg's ``/data/<name>``), each file checked against its SHA-256 (read-only with ``use_cached``);
- ``out``: ``<folder>`` packed into ``<exchange>/end.tar``; ends with the command's exit code, which
  the experiment container wrote to ``<folder>/.flow-airflow-exit`` (1 and a message when it did not).

``<exchange>`` is a URL of the artifact store (opened with Airflow's ``ObjectStoragePath``) or a
folder path; so is the dataset store (its ``objects/<ab>/<sha256>``: :mod:`flow_airflow.datasets.store`).
Only the standard library is imported for a folder path (tests run it in a bare Python image).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

SDK_FOLDER = ".flow-airflow-sdk"
EXIT_FILE = ".flow-airflow-exit"
STAGED = f"{SDK_FOLDER}/.staged.json"  # what ``in`` unpacked: ``out`` sends back only what changed since
DATA = ".cnvrg_data"
MADE = ("input", DATA, SDK_FOLDER)  # folders the experiment container mounts: they must exist
# the datasets the pod fetches: {"store": root, "datasets": [{"name", "files": {path: [sha, size]}, "read_only"}]}
FETCH = f"{SDK_FOLDER}/datasets.json"


def _path(location: str) -> Any:
    if "://" in location:
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(location)
    return Path(location)


def _extract(archive: tarfile.TarFile, folder: Path) -> None:
    if hasattr(tarfile, "data_filter"):  # no member outside ``folder`` (Python >= 3.11.4)
        archive.extractall(folder, filter="data")
    else:
        archive.extractall(folder)


def pack_to(workspace: Path, sdk: Path | None, location: str, fetch: dict[str, Any] | None = None) -> None:
    """``workspace`` (and ``sdk`` as ``.flow-airflow-sdk``) as a tar file at ``location``; ``fetch``: the
    datasets the pod fetches (``FETCH``'s content), when any.

    The workspace's own ``.flow-airflow-sdk`` is left out (the SDK does not come back as an output).
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for entry in sorted(workspace.iterdir()):
            if entry.name != SDK_FOLDER:
                archive.add(entry, arcname=entry.name)
        if sdk is not None:
            archive.add(sdk, arcname=SDK_FOLDER)
        if fetch:
            data = json.dumps(fetch).encode()
            member = tarfile.TarInfo(FETCH)
            member.size, member.mode = len(data), 0o644
            archive.addfile(member, io.BytesIO(data))
    target = _path(location)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(buffer.getvalue())


def identities(folder: Path) -> dict[str, list[int]]:
    """Each file and link under ``folder`` (but the SDK) -> its inode, size, mtime and ctime (what a write
    changes); each folder -> ``[0]`` (so that a new, maybe empty, folder travels back)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not (root == str(folder) and d == SDK_FOLDER)]
        for name in files + dirs:
            path = os.path.join(root, name)
            info = os.lstat(path)
            new_dir = os.path.isdir(path) and not os.path.islink(path)  # only a new folder travels
            found[os.path.relpath(path, folder)] = [0] if new_dir else [
                info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]
    return found


def pack_changed(folder: Path, location: str) -> None:
    """What the command made or changed in ``folder`` (against ``STAGED``) as a tar file at ``location``.

    Only changed files travel back: the worker's copy keeps its own for the rest (so that the
    runtime, comparing the workspace with its snapshot, passes on exactly what the command changed).
    """
    staged = json.loads((folder / STAGED).read_text()) if (folder / STAGED).is_file() else {}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for rel, identity in sorted(identities(folder).items()):
            if staged.get(rel) != identity:
                archive.add(folder / rel, arcname=rel, recursive=False)
    target = _path(location)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(buffer.getvalue())


def unpack_from(location: str, folder: Path) -> None:
    """The tar file at ``location`` unpacked into ``folder`` (files there are replaced)."""
    with tarfile.open(fileobj=io.BytesIO(_path(location).read_bytes())) as archive:
        _extract(archive, folder)


def fetch_datasets(folder: Path) -> None:
    """The datasets ``FETCH`` lists, from their store into ``folder/.cnvrg_data/<name>``.

    :raises SystemExit: a file is missing, differs from what was pushed, or would leave its folder.
    """
    if not (folder / FETCH).is_file():
        return
    plan = json.loads((folder / FETCH).read_text())
    store = plan["store"].rstrip("/")
    for dataset in plan["datasets"]:
        target = folder / DATA / dataset["name"]
        for rel, (sha, size) in sorted(dataset["files"].items()):
            _fetch_file(f"{store}/objects/{sha[:2]}/{sha}", sha, size, target, rel)
        if dataset.get("read_only"):
            for path in sorted(target.rglob("*"), reverse=True):
                path.chmod(0o555 if path.is_dir() else 0o444)
            target.chmod(0o555)
        print(f"flow-airflow: dataset {dataset['name']}: {len(dataset['files'])} file(s) fetched into "
              f"/data/{dataset['name']}" + (" (read-only)" if dataset.get("read_only") else ""), file=sys.stderr)


def _fetch_file(source: str, sha: str, size: int, target: Path, rel: str) -> None:
    """One file of a dataset, from ``source`` to ``target/rel``, checked against its SHA-256 and size."""
    path = (target / rel).resolve()
    if not path.is_relative_to(target.resolve()):
        raise SystemExit(f"flow-airflow: dataset file '{rel}' would leave /data/{target.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with _path(source).open("rb") as given, path.open("wb") as copy:
        while block := given.read(1 << 20):
            digest.update(block)
            copy.write(block)
    if digest.hexdigest() != sha or path.stat().st_size != size:
        raise SystemExit(f"flow-airflow: '{rel}' of dataset {target.name} differs from what was pushed")


def main(argv: list[str]) -> int:
    step, exchange, folder = argv
    where = Path(folder)
    if step == "in":
        unpack_from(f"{exchange.rstrip('/')}/workspace.tar", where)
        for name in MADE:
            (where / name).mkdir(exist_ok=True)
        fetch_datasets(where)
        (where / STAGED).write_text(json.dumps(identities(where)))
        return 0
    exit_file = where / EXIT_FILE
    code = int(exit_file.read_text().strip()) if exit_file.is_file() else None
    exit_file.unlink(missing_ok=True)
    pack_changed(where, f"{exchange.rstrip('/')}/end.tar")
    if code is None:
        print(f"flow-airflow: the experiment container left no exit code ({EXIT_FILE})", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
