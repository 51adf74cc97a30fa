"""cnvrg's v1 SDK as flow-airflow stands in for it: ``from cnvrg import Experiment``.

The calls of cnvrg's published scripts write lines on standard output that the worker keeps in the
experiment's record (``cnvrg._flow``): ``log_param`` and ``log_metric`` tags and series, ``log_chart``
charts, ``log_artifacts`` files into the output folder (images shown on the experiments page),
``Endpoint().log_metric`` in a predict function the endpoint's stats. Any other call raises
:class:`cnvrg.modules.CnvrgError` naming it: nothing is silently dropped.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from cnvrg import _flow
from cnvrg.modules import CnvrgError, NoStandIn, UserError

__all__ = ["CnvrgError", "Dataset", "Endpoint", "Experiment", "Project", "UserError"]


class _StandIn:
    """A stand-in object: an attribute it does not have raises :class:`CnvrgError` naming the call."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise NoStandIn(_flow.no_stand_in("cnvrg", f"{type(self).__name__}.{name}"))


class Experiment(_StandIn):
    """The running experiment. ``Experiment()`` and ``Experiment.init()`` both return it; ``Experiment("slug")``
    of another experiment has no stand-in."""

    def __init__(self, experiment: str | None = None, project: Any = None, **kwargs: Any) -> None:
        if experiment is not None and experiment != os.environ.get("CNVRG_EXPERIMENT_SLUG"):
            raise CnvrgError(_flow.no_stand_in("cnvrg", f"Experiment({experiment!r}) (another experiment)"))
        self.slug = os.environ.get("CNVRG_EXPERIMENT_SLUG", "")
        self.title = os.environ.get("CNVRG_EXPERIMENT_TITLE", "")

    @classmethod
    def init(cls, *args: Any, **kwargs: Any) -> Experiment:
        return cls()

    def log_param(self, key: Any, value: Any = None) -> None:
        """A tag of this experiment: ``cnvrg_tag_<key>: <value>``."""
        _flow.tag(key, value)

    def log_metric(
        self, key: Any, Ys: Any = None, Xs: Any = None, grouping: Any = None, x_axis: Any = None, y_axis: Any = None
    ) -> None:
        """A metric's values (one or a list): a series of the record (``Xs`` its steps), its last value the tag
        ``key``. ``grouping`` (a group per value) draws a line chart ``key`` with a line per group (x: ``Xs``, else
        the value's number in its group); a grouping naming only ``key`` (``[key] * len(Ys)``, as cnvrg's
        published trainers call it) is the plain series."""
        values = _flow._plain(Ys)
        values = values if isinstance(values, list) else [values]
        xs = _flow._plain(Xs)
        xs = xs if isinstance(xs, list) else None if xs is None else [xs]
        groups = _flow._plain(grouping)
        groups = groups if isinstance(groups, list) or groups is None else [groups] * len(values)
        if groups is not None and {str(g) for g in groups} != {str(key)}:  # one group named as the key: one series
            lines: dict = {}
            for i, (y, g) in enumerate(zip(values, groups)):
                line = lines.setdefault(str(g), [])
                line.append([xs[i] if xs and i < len(xs) else len(line), y])
            _flow.chart(
                key,
                "line",
                [{"name": g, "data": d} for g, d in lines.items()],
                mode="add",
                x_axis=x_axis,
                y_axis=y_axis,
            )
            return
        if any(v is not None for v in values):
            _flow.series(key, values, xs)
        if values and values[-1] is not None:
            _flow.tag(key, values[-1])

    def log_chart(
        self,
        key: Any,
        data: Any,
        group: Any = None,
        step: Any = None,
        title: str | None = None,
        x_axis: str | None = None,
        y_axis: str | None = None,
        y_ticks: list | None = None,
        x_ticks: list | None = None,
    ) -> None:
        """A chart of ``cnvrg.charts`` objects (``Bar``, ``Heatmap``, ``MatrixHeatmap``, ``Scatterplot``; one kind,
        at most one heatmap): shown on the experiments page; the same ``key`` again replaces it."""
        from cnvrg.charts import BasicChart

        items = list(data) if isinstance(data, (list, tuple)) else [data]
        if not items or not all(isinstance(c, BasicChart) for c in items):
            raise UserError(
                "log_chart takes cnvrg.charts objects (Bar, Heatmap, MatrixHeatmap, Scatterplot), "
                f"got {[type(c).__name__ for c in items]}"
            )
        kinds = {c.chart_type() for c in items}
        if len(kinds) > 1:
            raise UserError(f"log_chart: the charts of one key are of one kind, got {sorted(kinds)}")
        kind = kinds.pop()
        if kind == "heatmap" and len(items) > 1:
            raise UserError("log_chart: a chart holds at most one heatmap")
        x_ticks = x_ticks or next((c.x_ticks for c in items if c.x_ticks), None)
        y_ticks = y_ticks or next((c.y_ticks for c in items if c.y_ticks), None)
        extra = items[0].options()
        _flow.chart(
            key,
            kind,
            [c.as_series(i) for i, c in enumerate(items)],
            title=title,
            x_axis=x_axis,
            y_axis=y_axis,
            x_ticks=x_ticks,
            y_ticks=y_ticks,
            group=group,
            step=step,
            **extra,
        )

    def log_artifacts(self, paths: Any, target_dir: str = "") -> None:
        """Copy files into the output folder, so that the tasks after this one receive them (images: shown on
        the experiments page)."""
        _flow.artifacts(paths, target_dir)

    def log_images(self, paths: Any) -> None:
        """Images into the output folder, shown on the experiments page."""
        _flow.artifacts(paths, "")

    def log(self, message: Any) -> None:
        print(message, flush=True)

    def set_title(self, title: str) -> None:
        self.title = title


class Endpoint(_StandIn):
    """A model endpoint, in its predict function: ``Endpoint().log_metric(name, y)`` goes into the endpoint's stats
    (its page) and log."""

    def __init__(self, endpoint: str | None = None, project: Any = None) -> None:
        self.slug = endpoint or os.environ.get("CNVRG_ENDPOINT_TITLE", "")

    def log_metric(self, name: Any = None, y: Any = None, x: Any = None) -> None:
        try:
            _flow.endpoint_metric(name, y, x)
        except (TypeError, ValueError) as e:  # as cnvrg: a value that is no number is said, not raised
            print(f"ERROR {e}", file=sys.stderr, flush=True)

    def log_param(self, tag_name: Any = None, tag_value: Any = None) -> None:
        print(f"cnvrg: endpoint tag {tag_name}: {tag_value}", flush=True)


class Dataset(_StandIn):
    """A dataset, by name: ``Dataset("iris")``; its version at ``/data/<name>`` (a data task before) is
    ``local_path``. Pushing to it (``put_files``) is cnvrgv2's ``Cnvrg().datasets``."""

    def __init__(self, dataset: str = "", *args: Any, **kwargs: Any) -> None:
        self.slug = str(dataset).rstrip("/").split("/")[-1]
        from cnvrg._flow import datasets_known

        known = datasets_known()
        if known is not None and self.slug not in known:
            raise UserError(
                f"there is no dataset '{self.slug}' in the dataset store (its datasets: "
                f"{', '.join(sorted(known)) or 'none'})"
            )

    @property
    def local_path(self) -> str:
        from cnvrg._flow import workdir

        env = "CNVRG_DATASET_" + "".join(c for c in self.slug.upper().replace(" ", "_") if c.isalnum() or c == "_")
        return os.environ.get(env) or os.path.join(workdir(), ".cnvrg_data", self.slug)


class Project(_StandIn):
    """This project (the flow's folder); nothing else of a project has a stand-in."""

    def __init__(self, project: str | None = None, *args: Any, **kwargs: Any) -> None:
        self.slug = os.environ.get("CNVRG_PROJECT", "")
        self.title = self.slug


def __getattr__(name: str) -> Any:
    """``from cnvrg import <name>`` of what has no stand-in: :class:`CnvrgError` naming it."""
    if name.startswith("__") or name.startswith("_"):
        raise AttributeError(name)
    if name in ("charts", "modules"):  # ``from cnvrg import charts`` asks for the attribute first
        import importlib

        return importlib.import_module(f"cnvrg.{name}")
    raise CnvrgError(_flow.no_stand_in("cnvrg", f"cnvrg.{name}"))


def _main() -> None:  # pragma: no cover - `python -m cnvrg` prints where the module is
    print(__file__, file=sys.stderr)
