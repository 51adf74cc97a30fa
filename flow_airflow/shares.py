"""Loader shares: several loader files split the flows of a dags folder, each flow in exactly one.

A loader named ``<name>_<k>_of_<n>.py`` (``flows_03_of_16.py``) compiles only the flows of share k
of n: those whose path relative to its folder hashes (CRC-32) to k - 1 modulo n. So no single
file, and no single import timeout of Airflow (``[core] dagbag_import_timeout``), holds all flows
of a deployment, and Airflow's DAG processor parses the shares in parallel, each in its own
process. Any other name (``flows.py``) compiles every flow below its folder: share 1 of 1.

A flow title must give one DAG id in the whole folder. Two files of one share are told apart by
the loader itself; across shares, each loader writes the DAG ids of its share to an index in the
plan cache folder (``[flow_airflow] cache_folder``) and reads the other shares' ones: of two files
with one DAG id, the one whose path sorts first keeps it, the other is an import error, as in one
loader. The index is as fresh as each share's last parse (``min_file_process_interval``, 30 s):
until both shares have parsed once after a file was added, both DAGs may be listed.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import tempfile
import zlib
from pathlib import Path

from flow_airflow.spec.errors import FlowError

#: A loader file that owns one share of the flows: ``flows_03_of_16.py``.
SHARE_NAME = re.compile(r"(?P<name>.+)_(?P<k>\d+)_of_(?P<n>\d+)")
#: How many loader files ``flow-airflow import`` installs (``dags/`` holds as many).
SHARES = 16


def share_of(dag_file: Path) -> tuple[int, int]:
    """(k, n): the share of the flows the loader file ``dag_file`` compiles; (1, 1) is every flow.

    Raises :class:`FlowError` when the name says a share that cannot be (5 of 3, 0 of 4).
    """
    match = SHARE_NAME.fullmatch(dag_file.stem)
    if match is None:
        return 1, 1
    k, n = int(match["k"]), int(match["n"])
    if not 1 <= k <= n:
        raise FlowError.single(dag_file, f"the loader's name says share {k} of {n}: k must be 1 to n")
    return k, n


def in_share(relative: str, share: tuple[int, int]) -> bool:
    """Whether the flow file at ``relative`` (POSIX path from the loader's folder) is in ``share``.

    A stable hash of the path (CRC-32), so a flow stays in its share across parses and processes.
    """
    k, n = share
    return n == 1 or zlib.crc32(relative.encode("utf-8", "surrogateescape")) % n == k - 1


def share_files(folder: Path, shares: int = SHARES, name: str = "flows") -> list[Path]:
    """The loader files that split the flows of ``folder`` into ``shares`` shares."""
    width = len(str(shares))
    return [folder / f"{name}_{k:0{width}d}_of_{shares}.py" for k in range(1, shares + 1)]


def check_siblings(dag_file: Path, share: tuple[int, int]) -> list[int]:
    """The shares whose loader file is missing from the folder, when ``dag_file`` is the one to say so
    (the lowest share present); [] otherwise.

    Raises :class:`FlowError` when the loader files of the folder would load some flows twice: a
    loader of every flow (``flows.py``) beside shares of it (``flows_01_of_16.py`` ...), or shares of
    two splits (``..._of_16`` and ``..._of_32``). Without this, each flow of both would be a DAG twice.
    """
    name = dag_file.stem if share == (1, 1) else SHARE_NAME.fullmatch(dag_file.stem)["name"]
    splits: dict[int, set[int]] = {}
    for sibling in dag_file.parent.glob(f"{glob.escape(name)}_*_of_*.py"):
        match = SHARE_NAME.fullmatch(sibling.stem)
        if match and match["name"] == name:
            splits.setdefault(int(match["n"]), set()).add(int(match["k"]))
    plain = dag_file.parent / f"{name}.py"
    if splits and (plain.exists() or len(splits) > 1):
        names = [plain.name] if plain.exists() else []
        names += [f"{name}_*_of_{n}.py" for n in sorted(splits)]
        raise FlowError.single(dag_file, f"the loader files {', '.join(names)} would each load the same flows: "
                                         "keep one set of them (README 'A thousand flows')")
    k, n = share
    present = splits.get(n, set())
    return sorted(set(range(1, n + 1)) - present) if n > 1 and k == min(present) else []


def _index(dag_file: Path, share: tuple[int, int]) -> Path | None:
    from flow_airflow.plan import cache

    root = cache.folder()
    if root is None:
        return None
    folder = hashlib.sha256(str(dag_file.parent).encode()).hexdigest()[:16]
    return root / "shares" / folder / f"{SHARE_NAME.fullmatch(dag_file.stem)['name']}_{share[0]}_of_{share[1]}.json"


def claimed_elsewhere(dag_file: Path, share: tuple[int, int]) -> dict[str, str]:
    """DAG id -> the flow file (relative path) that has it in another share of the folder, by the
    index those shares wrote at their last parse; files gone since are left out."""
    own = _index(dag_file, share)
    if own is None or share[1] == 1:
        return {}
    claims: dict[str, str] = {}
    for other in sorted(own.parent.glob(f"*_of_{share[1]}.json")):
        if other == own:
            continue
        try:
            entries = json.loads(other.read_text())
        except (OSError, ValueError):
            continue
        for dag_id, relative in entries.items():
            if (dag_file.parent / relative).exists() and relative < claims.get(dag_id, "\uffff"):
                claims[dag_id] = relative
    return claims


def record(dag_file: Path, share: tuple[int, int], dag_ids: dict[str, str]) -> None:
    """Write this share's DAG ids (DAG id -> relative path of its flow file) for the other shares."""
    own = _index(dag_file, share)
    if own is None or share[1] == 1:
        return
    with contextlib.suppress(OSError):
        own.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=own.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(dag_ids, out, sort_keys=True)
            os.replace(tmp, own)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
