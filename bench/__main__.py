"""``python -m bench``: flow-airflow against hand-written Airflow DAGs; prints a table of ratios.

Three parts, each measured side by side in this one run (see bench/RESULTS.md):

- parse: the DAG processor's time on the loader with a flow of 10, 100 and 500 tasks, against a
  hand-written DAG file of the same tasks and mapping; a 10,000-route grid against a 3-route one;
  which provider modules the loader imports;
- run: whole runs of a 9-route and a 30-route flow on ``airflow standalone`` (LocalExecutor);
- scale: a grid beyond ``max_map_length``, batched, and one task instance per route against the
  hand-written DAG; API latency during the runs; per-route cost;
- docker (not in the default parts: it needs a Docker engine): a 1-second experiment on the Docker
  compute against the same command under ``docker run`` by hand;
- reuse (not in the default parts, about 4 minutes): grid_three with 3-second experiments run again with
  one value changed, reuse on against reuse off;
- thousand (not in the default parts, about 13 minutes): 1,000 flows of 20 tasks under the 16 loader
  files against 1,000 hand-written DAG files, parsed by ``airflow dag-processor`` cold and warm.

The defaults take about 10 minutes on 2 cores; ``--smoke`` only checks that everything runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import env
from bench.report import Row, table


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="parse,run,scale",
                        help="parts to run, comma separated (parse,run,scale; also docker, reuse, thousand)")
    parser.add_argument("--smoke", action="store_true", help="the smallest sizes, one repetition: does it all run")
    parser.add_argument("--parse-sizes", type=_ints, default=[10, 100, 500], help="flow sizes in tasks (10,100,500)")
    parser.add_argument("--grid", type=int, default=10_000, help="the big grid against a 3-route one (10000)")
    parser.add_argument("--parse-reps", type=int, default=60, help="parses of each file (60)")
    parser.add_argument("--cold-reps", type=int, default=0,
                        help="also parse each file in a fresh interpreter this many times (0)")
    parser.add_argument("--run-reps", type=int, default=5, help="runs of each DAG after a warm-up run (5)")
    parser.add_argument("--parallelism", type=int, default=None,
                        help="[core] parallelism of the server of the run part (harness: 8)")
    parser.add_argument("--scale-parallelism", type=int, default=os.cpu_count() or 2,
                        help="[core] parallelism of the scale part: as many task instances at a time as cores "
                             f"({os.cpu_count()}), since experiments are CPU-bound and share the machine with Airflow")
    parser.add_argument("--scale-routes", type=int, default=2000, help="routes of the batched grid (2000)")
    parser.add_argument("--scale-batch", type=int, default=100, help="routes per task instance (100)")
    parser.add_argument("--scale-mapped", type=int, default=100,
                        help="routes of the grid run one task instance per route, flow and hand-written (100)")
    parser.add_argument("--docker-reps", type=int, default=10, help="experiments of each side of the docker part (10)")
    parser.add_argument("--reuse-seconds", type=float, default=3.0, help="seconds each experiment of the reuse "
                        "part works (3)")
    parser.add_argument("--thousand-flows", type=int, default=1000,
                        help="flows in the dags folder of the thousand part (1000)")
    parser.add_argument("--thousand-tasks", type=int, default=20, help="tasks per flow of the thousand part (20)")
    parser.add_argument("--thousand-one-loader", action="store_true",
                        help="thousand part: also the same flows under one loader file (flows.py)")
    parser.add_argument("--json", type=Path, help="also write every figure and sample to this file")
    parser.add_argument("--check", action="store_true", help="exit with 1 when a ratio misses its target")
    parser.add_argument("--workdir", type=Path, help="keep the benchmark's files here (default: a temp folder)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.smoke:
        args.parse_sizes, args.grid, args.parse_reps, args.cold_reps = [10], 300, 1, 0
        args.run_reps, args.scale_routes, args.scale_batch, args.scale_mapped = 1, 20, 10, 5
        args.docker_reps, args.thousand_flows, args.thousand_tasks, args.reuse_seconds = 1, 20, 5, 0.0
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - {"parse", "run", "scale", "docker", "reuse", "thousand"}
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")

    started = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="flow-airflow-bench-") as tmp:
        root = args.workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        if "parse" in parts:
            from bench import parse

            _say(f"parse: flows of {args.parse_sizes} tasks, a {args.grid:,}-route grid, {args.parse_reps} parses each")
            rows += parse.run(root / "parse", args.parse_sizes, (3, args.grid), args.parse_reps, args.cold_reps)
        if "run" in parts:
            from bench import run

            _say(f"run: airflow standalone, 9- and 30-route flows, {args.run_reps} runs each after a warm-up")
            rows += run.run(root / "run", args.run_reps, args.parallelism)
        if "scale" in parts:
            from bench import scale

            _say(f"scale: {args.scale_routes:,} routes by {args.scale_batch}, and {args.scale_mapped:,} routes "
                 f"one task instance each (flow and hand-written), parallelism {args.scale_parallelism}")
            rows += scale.run(root / "scale", args.scale_routes, args.scale_batch, args.scale_mapped,
                              args.scale_parallelism)
        if "docker" in parts:
            from bench import docker

            _say(f"docker: a 1-second experiment on the Docker compute and by `docker run`, {args.docker_reps} each")
            rows += docker.run(root / "docker", args.docker_reps)
        if "reuse" in parts:
            from bench import reuse

            _say(f"reuse: grid_three, {args.reuse_seconds:g} s per experiment, again with one value changed")
            rows += reuse.run(root / "reuse", args.reuse_seconds)
        if "thousand" in parts:
            from bench import thousand

            _say(f"thousand: {args.thousand_flows:,} flows of {args.thousand_tasks} tasks and as many hand-written "
                 "DAG files, airflow dag-processor cold and warm")
            rows += thousand.run(root / "thousand", args.thousand_flows, args.thousand_tasks, args.thousand_one_loader)
    seconds = time.monotonic() - started
    machine = env.machine()
    print()
    print(table(rows))
    print()
    print("machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()) + f"; {seconds / 60:.1f} min")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "seconds": seconds, "args": {
            k: str(v) for k, v in vars(args).items()}, "rows": [r.as_dict() for r in rows]}, indent=1))
    return 1 if args.check and any(r.ok is False for r in rows) else 0


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
