"""The bench's docker part runs (``python -m bench --smoke --only docker``); no timing is checked here
(bench/RESULTS.md has the figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
pytestmark = pytest.mark.containers


def test_the_docker_part_of_the_bench_runs(tmp_path: Path, python_image: str) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", "docker", "--json", str(out), "--workdir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [row] = json.loads(out.read_text())["rows"]
    assert row["section"] == "docker" and row["target"] == 1.2
    assert row["flow"] > 1 and row["hand"] > 1  # a 1-second experiment, each side
