"""A small cnvrg SDK for scripts run by flow-airflow: ``from cnvrg import Experiment``.

Tags and metrics become ``cnvrg_tag_<key>: <value>`` lines on standard output, which is
how flow-airflow (like cnvrg) collects an experiment's tags.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["Experiment"]


class Experiment:
    """The running experiment. ``Experiment()`` and ``Experiment.init()`` both return it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.slug = os.environ.get("CNVRG_EXPERIMENT_SLUG", "")
        self.title = os.environ.get("CNVRG_EXPERIMENT_TITLE", "")

    @classmethod
    def init(cls, *args: Any, **kwargs: Any) -> Experiment:
        return cls()

    def log_param(self, key: str, value: Any = None) -> None:
        """Log a tag (a parameter or any value) for this experiment.

        A tag is one line ``cnvrg_tag_<key>: <value>``: a ``:`` in the key and line breaks
        cannot be part of it; they become ``_`` and spaces, with a warning on stderr.
        """
        key, text = str(key), str(value)
        clean_key = key.replace(":", "_").replace("\r", " ").replace("\n", " ")
        clean_text = text.replace("\r", " ").replace("\n", " ")
        if (clean_key, clean_text) != (key, text):
            print(f"cnvrg: tag {key!r} logged as {clean_key!r} on one line (a tag is one line, its key has no ':')",
                  file=sys.stderr, flush=True)
        print(f"cnvrg_tag_{clean_key}: {clean_text}", flush=True)

    def log_metric(self, key: str, Ys: Any = None, Xs: Any = None, **kwargs: Any) -> None:
        """Log a metric; its last value becomes the experiment's tag ``key``.

        Its values are also a series (one line ``cnvrg_series_<key>: {"ys": [...], "xs": [...]}``;
        calls add to it), kept in the experiment's record and drawn on the experiments page.
        """
        values = list(Ys) if isinstance(Ys, list | tuple) else [Ys]
        if any(v is not None for v in values):
            xs = list(Xs) if isinstance(Xs, list | tuple) else None
            points = {"ys": values, **({"xs": xs} if xs is not None and len(xs) == len(values) else {})}
            clean_key = str(key).replace(":", "_").replace("\r", " ").replace("\n", " ")
            print(f"cnvrg_series_{clean_key}: {json.dumps(points, default=str)}", flush=True)
        if values and values[-1] is not None:
            self.log_param(key, values[-1])

    def log(self, message: Any) -> None:
        print(message, flush=True)

    def log_artifacts(self, paths: str | Iterable[str], target_dir: str = "") -> None:
        """Copy files into the output folder, so that the tasks after this one receive them."""
        out = os.path.join(os.environ.get("CNVRG_OUTPUT_DIR", "output"), target_dir)
        os.makedirs(out, exist_ok=True)
        for path in [paths] if isinstance(paths, str) else paths:
            shutil.copy2(path, out)

    def set_title(self, title: str) -> None:
        self.title = title


def _main() -> None:  # pragma: no cover - `python -m cnvrg` prints where the module is
    print(__file__, file=sys.stderr)
