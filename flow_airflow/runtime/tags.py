"""Tags: ``cnvrg_tag_<key>: <value>`` lines on an experiment's standard output.

Tags reach the next experiments as environment variables (spec, "Tags and Parameters
Flow"), so a tag that no environment can hold is refused where it is logged, with a warning
in that experiment's log: a NUL byte, a key or value too long, more tags than a process
environment can take. The experiments after it never see it.
"""

from __future__ import annotations

from collections.abc import Callable

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

    def line(self, line: str) -> None:
        if line.lstrip().startswith(SERIES_PREFIX):
            self._series(line)
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

    def _series(self, line: str) -> None:
        """A ``cnvrg_series_<key>: {"ys": [...], "xs": [...]}`` line (the SDK's ``log_metric``): its points
        are added to ``series[key]``, up to ``MAX_SERIES_POINTS`` each and ``MAX_SERIES`` keys."""
        import json

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


def _plain(key: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c in "_ ") for c in key)


def _short(text: str, limit: int = 80) -> str:
    text = text.replace("\0", "\\0")
    return text if len(text) <= limit else text[: limit - 1] + "…"
