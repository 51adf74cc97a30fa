"""The worker's ``use_cached`` copies: a size bound, least recently used evicted first, never one in use.

Copies are served by other OS processes, as by the task instances of a worker: one that has ended
leaves its copies free, one still running holds its copy in use (no Airflow).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flow_airflow.datasets.cache import evict
from flow_airflow.datasets.store import DatasetStore

SERVE = """import sys, time
from pathlib import Path
from flow_airflow.datasets.store import DatasetStore
store = DatasetStore(Path(sys.argv[1]))
for version in sys.argv[3:]:
    store.cached(store.resolve("nums", version))
print("served", flush=True)
if sys.argv[2] == "hold":
    time.sleep(120)
"""


def serve(root: Path, *versions: str, hold: bool = False) -> subprocess.Popen[str]:
    """Another process serving ``versions``' copies (and keeping them in use while ``hold``)."""
    process = subprocess.Popen([sys.executable, "-c", SERVE, str(root), "hold" if hold else "end", *versions],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "served\n"
    return process


def test_the_least_recently_used_copies_not_in_use_are_evicted(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = DatasetStore(root)
    for n in range(1, 5):
        (tmp_path / f"v{n}").mkdir()
        (tmp_path / f"v{n}" / "data.bin").write_bytes(bytes([n]) * 100)  # 100 bytes a copy
        store.push("nums", tmp_path / f"v{n}", f"v{n}")
    commits = {f"v{n}": store.resolve("nums", f"v{n}").commit for n in range(1, 5)}
    serve(root, "v1", "v2", "v3").wait()  # a task instance that has ended: its copies are free
    for age, version in enumerate(["v1", "v2", "v3"]):  # last served: v1 first, then v2, then v3
        os.utime(root / "cache" / ".state" / f"nums.{commits[version]}.used", (1000 + age, 1000 + age))
    holder = serve(root, "v1", hold=True)  # a task instance still running on v1
    try:
        os.utime(root / "cache" / ".state" / f"nums.{commits['v1']}.used", (999, 999))  # v1: the oldest
        bounded = DatasetStore(root, cache_bound=200)
        folder, copied = bounded.cached(bounded.resolve("nums", "v4"))  # 400 bytes with it: 200 must go
        assert copied == 1 and (folder / "data.bin").read_bytes() == bytes([4]) * 100
        assert bounded.evicted == [f"nums/{commits['v2']} (100 bytes)", f"nums/{commits['v3']} (100 bytes)"]
        left = sorted(p.name for p in (root / "cache" / "nums").iterdir())
        assert left == sorted([commits["v1"], commits["v4"]])  # v1 was older, but in use
        assert evict(root / "cache", 0) == []  # v1 (the other process) and v4 (this one) are in use
    finally:
        holder.kill()
        holder.wait()
    serve(root, "v1").wait()
    assert evict(root / "cache", 150) == [f"nums/{commits['v1']} (100 bytes)"]  # free now; v4 is still in use here
