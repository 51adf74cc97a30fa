"""The experiments page's bench (``python -m bench.experiments_page``) runs at a small size: the run's
page and the flow's page over two runs answer with every experiment (no timing is checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
pytestmark = pytest.mark.airflow


def test_the_page_bench_runs_at_a_small_size() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.experiments_page", "--routes", "50", "--reps", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    assert "| experiments page, 50 experiments | first screen (API, 200 rows) |" in done.stdout
    assert "| flow page, 2 runs, 52 experiments | first screen (API, 200 rows) |" in done.stdout
