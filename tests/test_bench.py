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
