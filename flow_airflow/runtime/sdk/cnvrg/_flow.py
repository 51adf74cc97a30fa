"""What both stand-in SDKs (``cnvrg``, ``cnvrgv2``) write: one line each on standard output, which the
worker reads as the experiment runs (``flow_airflow.runtime.tags.TagLog``).

Self-contained (standard library only, Python 3.8 and later): it runs inside the experiment's own
interpreter, on the worker or in any image. The lines:

- ``cnvrg_tag_<key>: <value>``: a tag (``log_param``, a metric's last value);
- ``cnvrg_series_<key>: {"ys": [...], "xs": [...]}``: points of a metric's series (v1 ``log_metric``);
- ``cnvrg_chart_<key>: {"type", "mode", "series": [{"name", "data"}], ...}``: a chart (v1 ``log_chart``,
  v2 ``create_chart`` / ``update_chart``): ``mode`` ``set`` replaces the chart, ``add`` adds to its series;
- ``cnvrg_image: {"path": ...}``: an image the experiment logged, kept in its output folder;
- ``cnvrg_dataset_put: {"dataset", "folder", "blank", "message"}``: files staged for a new version of a
  dataset (v2 ``put_files``), committed by the worker once the command ends;
- ``cnvrg_endpoint_metric: {"name", "y", "x"}``: a metric an endpoint's predict function logged.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from typing import Any

PUT_FOLDER = ".flow-airflow-put"  # under the working directory: what put_files staged (removed by the worker)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp")


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def key_of(key: Any) -> str:
    """A key as a line carries it: no ``:`` (it ends the key), no line break."""
    return _one_line(str(key)).replace(":", "_")


def _plain(value: Any) -> Any:
    """``value`` as JSON takes it: numpy values and arrays (``tolist``), tuples as lists, NaN as None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def emit(line: str) -> None:
    print(line, flush=True)


def tag(key: Any, value: Any) -> None:
    """A tag line; a ``:`` in the key or a line break cannot be part of it, said on stderr."""
    clean_key, text = key_of(key), _one_line(str(value))
    if (clean_key, text) != (str(key), str(value)):
        print(
            f"cnvrg: tag {str(key)!r} logged as {clean_key!r} on one line (a tag is one line, its key has no ':')",
            file=sys.stderr,
            flush=True,
        )
    emit(f"cnvrg_tag_{clean_key}: {text}")


def series(key: Any, ys: list[Any], xs: list[Any] | None = None) -> None:
    points: dict[str, Any] = {"ys": _plain(ys)}
    if xs is not None and len(xs) == len(ys):
        points["xs"] = _plain(xs)
    emit(f"cnvrg_series_{key_of(key)}: {json.dumps(points)}")


def chart(key: Any, kind: str, series_list: list[dict[str, Any]], mode: str = "set", **options: Any) -> None:
    """A chart line: ``kind`` one of line, bar, scatter, heatmap; ``series_list`` ``[{"name", "data"}]``."""
    body = {"type": kind, "mode": mode, "series": _plain(series_list)}
    body.update({k: _plain(v) for k, v in options.items() if v is not None})
    emit(f"cnvrg_chart_{key_of(key)}: {json.dumps(body)}")


def workdir() -> str:
    return os.environ.get("CNVRG_WORKDIR") or os.getcwd()


def output_dir() -> str:
    return os.environ.get("CNVRG_OUTPUT_DIR") or os.path.join(workdir(), "output")


def copy_into(paths: list[str], target: str) -> list[str]:
    """Copy files and folders into ``target`` (made): a path inside the working directory keeps its relative
    path, another its name; a glob pattern is expanded. The copied files' paths relative to ``target``."""
    import glob

    copied: list[str] = []
    base = os.path.realpath(os.getcwd())
    for given in paths:
        found = sorted(glob.glob(given)) if glob.has_magic(given) else [given]
        if not found:
            raise FileNotFoundError(f"no file matches {given!r}")
        for path in found:
            real = os.path.realpath(path)
            if not os.path.exists(real):
                raise FileNotFoundError(f"no such file or folder: {path!r}")
            inside = real == base or real.startswith(base + os.sep)
            name = os.path.relpath(real, base) if inside and real != base else os.path.basename(real)
            if os.path.isdir(real):
                for root, _, files in os.walk(real):
                    for file in files:
                        rel = os.path.normpath(os.path.join(name, os.path.relpath(os.path.join(root, file), real)))
                        copied.append(_copy(os.path.join(root, file), target, rel))
            else:
                copied.append(_copy(real, target, name))
    return copied


def _copy(source: str, target: str, rel: str) -> str:
    rel = rel if rel != "." else os.path.basename(source)
    destination = os.path.join(target, rel)
    os.makedirs(os.path.dirname(destination) or target, exist_ok=True)
    if os.path.realpath(source) != os.path.realpath(destination):
        shutil.copy2(source, destination)
    return rel.replace(os.sep, "/")


def artifacts(paths: Any, target_dir: str = "") -> list[str]:
    """Copy files into the output folder (what the tasks after this one receive); images are also named on a
    ``cnvrg_image`` line, shown on the experiments page. The copied files' paths in the output folder."""
    paths = [paths] if isinstance(paths, str) else list(paths or [])
    out = os.path.join(output_dir(), target_dir or "")
    copied = [os.path.join(target_dir or "", p).replace(os.sep, "/") for p in copy_into(paths, out)]
    for path in copied:
        if path.lower().endswith(IMAGE_SUFFIXES):
            emit(f"cnvrg_image: {json.dumps({'path': path})}")
    return copied


def datasets_known() -> dict[str, str] | None:
    """The dataset store's datasets when the experiment started (name -> latest commit); None: not known."""
    text = os.environ.get("FLOW_AIRFLOW_DATASETS")
    if not text:
        return None
    try:
        known = json.loads(text)
    except ValueError:
        return None
    return known if isinstance(known, dict) else None


_puts = [0]


def put_files(dataset: str, paths: list[str], blank: bool = False, message: str = "", dir_path: str = "") -> int:
    """Stage ``paths`` for a new version of ``dataset`` (committed by the worker when the command ends, its
    asset event then); the number of files staged."""
    _puts[0] += 1
    folder = os.path.join(PUT_FOLDER, f"{os.getpid()}-{_puts[0]}")
    target = os.path.join(workdir(), folder, dir_path or "")
    copied = copy_into(paths, target)
    if not copied:
        return 0
    emit(
        "cnvrg_dataset_put: "
        + json.dumps({"dataset": str(dataset), "folder": folder, "blank": bool(blank), "message": str(message or "")})
    )
    return len(copied)


def endpoint_metric(name: Any, y: Any, x: Any = None) -> None:
    """A metric an endpoint's predict function logged: a line in the endpoint's log, and the endpoint's stats
    (``/stats`` of the serving app reads :data:`ENDPOINT_METRICS`)."""
    point = {"name": key_of(name), "y": float(y), "x": _plain(x)}
    kept = ENDPOINT_METRICS.setdefault(point["name"], {"count": 0, "last": None, "points": []})
    kept["count"] += 1
    kept["last"] = point["y"]
    kept["points"] = (kept["points"] + [[point["x"], point["y"]]])[-100:]
    emit("cnvrg_endpoint_metric: " + json.dumps(point))


ENDPOINT_METRICS: dict[str, dict[str, Any]] = {}  # name -> {"count", "last", "points": last 100 [x, y]}


def no_stand_in(sdk: str, call: str) -> str:
    """The message of a call that has no stand-in here."""
    return (
        f"{sdk}: {call} has no stand-in in flow-airflow (there is no cnvrg server here); the calls that "
        f"work are listed in flow-airflow's README, section 'The cnvrg SDKs'"
    )
