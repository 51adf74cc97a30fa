"""What keeps parsing fast (bench/ measures it): big grids counted, not listed; compact task arguments;
compiled plans kept between parses; the compiler imported once by the DAG processor."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("argv, loaded", [(["airflow", "dag-processor"], True), (["airflow", "scheduler"], False)])
def test_the_dag_processor_imports_the_compiler_with_the_plugin(argv: list[str], loaded: bool) -> None:
    code = (f"import sys; sys.argv = {argv!r}; import flow_airflow.plugin; "
            "print('flow_airflow.build.dag' in sys.modules, 'flow_airflow.runtime.experiment' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [str(loaded), "False"]  # never the task-time modules
