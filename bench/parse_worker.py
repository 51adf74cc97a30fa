"""Parse DAG files the way Airflow 3.3's DAG processor does, and time it; run by :mod:`bench.parse`.

``python bench/parse_worker.py`` reads ``{"mode", "reps", "files": [...]}`` as JSON on stdin and
prints ``{file: [[wall seconds, CPU seconds], ...], "_dags": {file: n}}`` as JSON on stdout.

``mode: processor`` mirrors ``airflow dag-processor``: this process plays the manager. It imports
what the manager imports, loads the plugins (the manager does, so their modules are in every
parsing process) and pre-imports the Airflow modules each file imports
(``[dag_processor] parsing_pre_import_modules``). Every parse is then a forked child, as
``DagFileProcessorProcess.start`` does, running the processor's own ``_parse_file`` (DAG stability
check, ``BundleDagBag``, serialization of every DAG) and encoding the result for the manager;
the child's wall time is the parse time.

``mode: cold`` parses each file in a fresh interpreter with only Airflow imported: the file's
own imports (the hand-written file's operators, flow-airflow's compiler) are timed too.
"""

from __future__ import annotations

import gc
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _parse(file: str) -> tuple[float, float, int, int]:
    """One parse of ``file`` in this process: (wall seconds, CPU seconds, DAGs, import errors)."""
    import structlog
    from airflow.dag_processing.processor import DagFileParseRequest, _parse_file
    from airflow.sdk.execution_time.comms import _new_encoder, _RequestFrame

    path = Path(file)
    start, cpu = time.perf_counter(), time.process_time()
    result = _parse_file(
        DagFileParseRequest(file=file, bundle_path=path.parent, bundle_name="bench"), structlog.get_logger()
    )
    assert result is not None
    _new_encoder().encode(_RequestFrame(id=0, body=result.model_dump()))
    return (time.perf_counter() - start, time.process_time() - cpu, len(result.serialized_dags),
            len(result.import_errors or {}))


def _forked(file: str) -> tuple[float, float, int, int]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the parsing process
        os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "client"  # _parse_file_entrypoint
        os.close(read)
        code = 0
        try:
            os.write(write, json.dumps(_parse(file)).encode())
        except BaseException as e:
            os.write(write, json.dumps({"error": repr(e)}).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    answer = json.loads(b"".join(chunks) or b"{}")
    if isinstance(answer, dict):
        raise RuntimeError(f"parsing {file} failed: {answer.get('error')}")
    return tuple(answer)  # type: ignore[return-value]


def processor(files: list[str], reps: int) -> dict[str, Any]:
    import airflow.dag_processing.manager  # noqa: F401  (what the manager process holds)
    import structlog
    from airflow import plugins_manager
    from airflow.dag_processing.processor import _pre_import_airflow_modules

    sys.argv = ["airflow", "dag-processor"]  # what plugins see in the manager
    os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "server"  # DagFileProcessorManager.prepare_server_process_context
    plugins_manager.ensure_plugins_loaded()
    gc.freeze()  # DagFileProcessorManager.before_run, "to prevent COW in forked process parsing dag file"
    for file in files:  # DagFileProcessorProcess.start, before each fork
        _pre_import_airflow_modules(file, structlog.get_logger())
    times: dict[str, Any] = {f: [] for f in files}
    dags: dict[str, int] = {}
    shuffle = random.Random(0).shuffle
    for rep in range(reps + 1):  # the first round warms the caches and is not counted
        # Each round in another order: a parse runs a little slower after a big one (the caches
        # it left cold), and a fixed order would always give a file the same neighbour.
        order = list(files)
        shuffle(order)
        for file in order:
            wall, cpu, n, errors = _forked(file)
            if errors:
                raise RuntimeError(f"{file}: {errors} import error(s)")
            dags[file] = n
            if rep:
                times[file].append([wall, cpu])
    return {**times, "_dags": dags}


def cold(files: list[str], reps: int) -> dict[str, Any]:
    times: dict[str, Any] = {f: [] for f in files}
    dags: dict[str, int] = {}
    for rep in range(reps):
        for file in files[rep % len(files):] + files[: rep % len(files)]:
            done = subprocess.run([sys.executable, __file__, "--cold", file], capture_output=True, text=True,
                                  check=False)
            if done.returncode:
                raise RuntimeError(f"parsing {file} failed:\n{done.stderr[-3000:]}")
            wall, cpu, n, _ = json.loads(done.stdout.strip().splitlines()[-1])
            times[file].append([wall, cpu])
            dags[file] = n
    return {**times, "_dags": dags}


def main() -> None:
    if sys.argv[1:2] == ["--cold"]:  # one cold parse: Airflow imported first, then the file timed
        import airflow.dag_processing.processor
        import airflow.sdk.execution_time.comms  # noqa: F401

        print(json.dumps(_parse(sys.argv[2])))
        return
    request = json.load(sys.stdin)
    run = processor if request["mode"] == "processor" else cold
    result = run(request["files"], request["reps"])
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
