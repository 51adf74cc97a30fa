"""Tags: ``cnvrg_tag_<key>: <value>`` lines on an experiment's standard output.

Tags reach the next experiments as environment variables (spec, "Tags and Parameters
Flow"), so a tag that no environment can hold is refused where it is logged, with a warning
in that experiment's log: a NUL byte, a key or value too long, more tags than a process
environment can take. The experiments after it never see it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from flow_airflow.runtime.environment import env_name

PREFIX = "cnvrg_tag_"
# Linux takes at most 128 KiB per environment string (MAX_ARG_STRLEN) and about 2 MiB for
# all of argv and the environment together; an experiment's tags stay well within them.
MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 32 * 1024
MAX_TAGS = 1000
MAX_TOTAL_BYTES = 256 * 1024
WARNINGS_SHOWN = 10
SERIES_PREFIX = "cnvrg_series_"  # the SDK's log_metric series: kept in the record, not a tag
MAX_SERIES, MAX_SERIES_POINTS = 100, 10_000
# the SDKs' charts (runtime/sdk/cnvrg/_flow.py) and cnvrg's stdout line charts: kept in the record, not tags
CHART_PREFIX, LINECHART_PREFIX = "cnvrg_chart_", "cnvrg_linechart_"
IMAGE_PREFIX, PUT_PREFIX = "cnvrg_image:", "cnvrg_dataset_put:"
CHART_KINDS = ("line", "bar", "scatter", "heatmap")
CHART_OPTIONS = ("title", "x_axis", "y_axis", "x_ticks", "y_ticks", "stops", "min", "max", "colors", "group", "step")
MAX_CHARTS, MAX_CHART_POINTS, MAX_IMAGES, MAX_PUTS = 100, 10_000, 100, 100
_WORD = re.compile(r"(?:^|\s)(key|group|value|x|y):", re.IGNORECASE)  # a cnvrg_linechart_ line's words


def parse_tag(line: str) -> tuple[str, str] | None:
    """The (key, value) a line logs, or None. Extra spaces around the key and value are fine.

    Linear in the line's length (string methods only): a 60 KB line costs microseconds.
    """
    text = line.lstrip()
    if not text.startswith(PREFIX):
        return None
    key, colon, value = text[len(PREFIX) :].partition(":")
    key = key.strip()
    if not colon or not key:
        return None
    return key, value.strip()


def problem(key: str, value: str) -> str | None:
    """Why a tag cannot be kept, or None."""
    if "\0" in key or "\0" in value:
        return "it holds a NUL byte, which no environment variable can"
    if len(key.encode()) > MAX_KEY_BYTES:
        return f"its key is longer than {MAX_KEY_BYTES} bytes"
    size = len(value.encode(errors="replace"))
    if size > MAX_VALUE_BYTES:
        return f"its value is {size:,} bytes, over the {MAX_VALUE_BYTES:,} an environment variable may take here"
    return None


class TagLog:
    """The tags an experiment logs, as its output streams by; refused ones are warned about."""

    def __init__(self, warn: Callable[[str], None], task: str = ""):
        self.tags: dict[str, str] = {}
        self.warn = warn
        self.task = task  # the experiment's task title: to tell which variable a tag becomes
        self.refused = 0
        self._size = 0
        self.series: dict[str, dict[str, list[object]]] = {}  # key -> {"ys": [...], "xs": [...]}
        self.charts: dict[str, dict[str, Any]] = {}  # key -> {"type", "series": [{"name", "data"}], options}
        self.images: list[str] = []  # images logged (log_artifacts, log_images): paths in the output folder
        self.puts: list[dict[str, Any]] = []  # put_files: {"dataset", "folder", "blank", "message"}, in order

    def line(self, line: str) -> None:
        text = line.lstrip()
        if text[:1] in "\"'" and text[1:].startswith(LINECHART_PREFIX):  # printed quoted, as some published scripts do
            text = text.strip().strip("\"'")
        if text.startswith("cnvrg_") and not text.startswith(PREFIX):
            self._sdk_line(text)
            return
        tag = parse_tag(line)
        if tag is None:
            return
        key, value = tag
        why = problem(key, value)
        size = len(key.encode(errors="replace")) + len(value.encode(errors="replace"))
        old = self.tags.get(key)
        old_size = 0 if old is None else len(key.encode(errors="replace")) + len(old.encode(errors="replace"))
        if why is None and old is None and len(self.tags) >= MAX_TAGS:
            why = f"the experiment already logged {MAX_TAGS} tags, the most that are kept"
        if why is None and self._size - old_size + size > MAX_TOTAL_BYTES:
            why = f"its tags would take more than {MAX_TOTAL_BYTES:,} bytes, the most that are kept"
        if why is not None:
            self.refused += 1
            if self.refused <= WARNINGS_SHOWN:
                self.warn(f"tag '{_short(key)}' not kept: {why}")
            return
        if old is None and not _plain(key):
            name = env_name("CNVRG", self.task, key) if self.task else env_name(key)
            self.warn(f"tag '{_short(key)}' reaches the next tasks as {name}: variable names hold only A-Z, 0-9, _")
        self.tags[key] = value
        self._size += size - old_size

    def _sdk_line(self, text: str) -> None:
        """A line of the SDKs other than a tag: a series, a chart, a line chart's point, an image, a put_files."""
        if text.startswith(SERIES_PREFIX):
            self._series(text)
        elif text.startswith(CHART_PREFIX):
            key, _, body = text[len(CHART_PREFIX):].partition(":")
            chart = _json(body)
            if isinstance(chart, dict) and key.strip():
                self._chart(key.strip(), chart)
        elif text.startswith(LINECHART_PREFIX):
            self._linechart(text[len(LINECHART_PREFIX):])
        elif text.startswith(IMAGE_PREFIX):
            image = _json(text[len(IMAGE_PREFIX):])
            path = image.get("path") if isinstance(image, dict) else None
            if isinstance(path, str) and path not in self.images and len(self.images) < MAX_IMAGES:
                self.images.append(path)
        elif text.startswith(PUT_PREFIX):
            put = _json(text[len(PUT_PREFIX):])
            if isinstance(put, dict) and isinstance(put.get("dataset"), str) and isinstance(put.get("folder"), str):
                if len(self.puts) < MAX_PUTS:
                    self.puts.append(put)
                else:
                    self.warn(f"put_files to '{put['dataset']}' not kept: an experiment makes at most {MAX_PUTS}")

    def _chart(self, key: str, chart: dict[str, Any]) -> None:
        """``mode`` ``set`` replaces the chart ``key``, ``add`` adds its points to the series of the same names;
        at most ``MAX_CHARTS`` charts of ``MAX_CHART_POINTS`` points each."""
        kind = chart.get("type")
        series = chart.get("series")
        if kind not in CHART_KINDS or not isinstance(series, list):
            return
        kept = self.charts.get(key)
        if kept is None or chart.get("mode") != "add" or kept["type"] != kind:
            if kept is None and len(self.charts) >= MAX_CHARTS:
                self.warn(f"chart '{_short(key)}' not kept: an experiment keeps at most {MAX_CHARTS} charts")
                return
            kept = self.charts[key] = {"type": kind, "series": []}
        kept.update({k: chart[k] for k in CHART_OPTIONS if chart.get(k) is not None})
        room = MAX_CHART_POINTS - sum(len(s["data"]) for s in kept["series"])
        for part in series:
            data = part.get("data") if isinstance(part, dict) else None
            if not isinstance(data, list) or room <= 0:
                continue
            name = part.get("name")
            name = None if name is None else str(name)
            target = next((s for s in kept["series"] if s["name"] == name), None)
            if target is None:
                target = {"name": name, "data": []}
                kept["series"].append(target)
            target["data"] += data[:room]
            room -= len(data[:room])

    def _linechart(self, text: str) -> None:
        """``cnvrg_linechart_<name> [key: <x>] [group: <line>] value: <y>`` (or ``x: <x> y: <y>``): a point of the
        line chart ``<name>``, on its line ``group`` (one line by default); x is ``key`` or ``x``, else the
        point's number. A word's value runs to the next word (``key: epoch 1 value: 5``), quotes around it
        are dropped; the whole line may be in quotes."""
        name, _, rest = text.partition(" ")
        found = list(_WORD.finditer(rest))  # a word's value runs to the next word: ``key: epoch 1 value: 5``
        ends = [m.start() for m in found[1:]] + [len(rest)]
        words = {m.group(1).lower(): rest[m.end() : end].strip().strip("\"'")
                 for m, end in zip(found, ends, strict=True)}
        y = _number(words.get("value", words.get("y")))
        if not name.strip() or y is None:
            return
        group = words.get("group")
        chart = self.charts.get(name)
        line = next((s for s in chart["series"] if s["name"] == group), None) if chart else None
        x_text = words.get("key", words.get("x"))
        x: Any = _number(x_text) if _number(x_text) is not None else x_text
        if x is None:
            x = len(line["data"]) if line else 0
        self._chart(name, {"type": "line", "mode": "add", "series": [{"name": group, "data": [[x, y]]}]})

    def _series(self, line: str) -> None:
        """A ``cnvrg_series_<key>: {"ys": [...], "xs": [...]}`` line (the SDK's ``log_metric``): its points
        are added to ``series[key]``, up to ``MAX_SERIES_POINTS`` each and ``MAX_SERIES`` keys."""
        key, _, text = line.lstrip()[len(SERIES_PREFIX):].partition(":")
        try:
            points = json.loads(text)
            ys, xs = list(points["ys"]), points.get("xs")
        except (ValueError, TypeError, KeyError):
            return
        key = key.strip()
        if not key or (key not in self.series and len(self.series) >= MAX_SERIES):
            return
        kept = self.series.setdefault(key, {"ys": [], "xs": []})
        start = len(kept["ys"])
        room = max(0, MAX_SERIES_POINTS - start)
        kept["ys"] += ys[:room]
        xs = list(xs) if isinstance(xs, list) and len(xs) == len(ys) else list(range(start, start + len(ys)))
        kept["xs"] += xs[:room]

    def finish(self) -> None:
        if self.refused > WARNINGS_SHOWN:
            self.warn(f"{self.refused} tags were not kept in all (the first {WARNINGS_SHOWN} are named above)")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _number(text: str | None) -> float | int | None:
    """A number written as text (``3``, ``0.5``), else None."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _plain(key: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c in "_ ") for c in key)


def _short(text: str, limit: int = 80) -> str:
    text = text.replace("\0", "\\0")
    return text if len(text) <= limit else text[: limit - 1] + "…"
