"""The benchmark command (bench/) runs: its smallest size, parse part only (no timing is checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
pytestmark = pytest.mark.airflow


def test_the_bench_command_runs_at_its_smallest_size(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", "parse", "--json", str(out), "--workdir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| parse | 10 tasks, 82 routes: CPU time of a parse" in done.stdout
    rows = json.loads(out.read_text())["rows"]
    assert all(r["flow"] > 0 and r["hand"] > 0 for r in rows if r["hand"] is not None)
    assert rows[-1]["measure"].startswith("Kubernetes/Docker") and rows[-1]["flow"] == 0


def test_the_thousand_flows_bench_runs_at_its_smallest_size(tmp_path: Path) -> None:
    """``--only thousand`` at its smoke size: 20 flows of 5 tasks and 20 hand-written files, all listed
    by ``airflow dag-processor`` cold and warm (the part raises when a DAG is missing or an import fails)."""
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", "thousand", "--json", str(out), "--workdir",
         str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["measure"].split(":")[0] for r in rows] == [
        "20 flows of 5 tasks, cold", "20 flows, cold", "20 flows of 5 tasks, warm", "20 flows, warm"]
    assert all(r["flow"] > 0 and r["hand"] > 0 for r in rows)
