"""cnvrg's v2 SDK as flow-airflow stands in for it: ``from cnvrgv2 import Cnvrg, Experiment, LineChart``.

``Experiment()`` is the running experiment (``log_param``, ``log_metric``, ``create_chart``, ``update_chart``,
``log_artifacts``, ``log_images``); the charts (``LineChart``, ``BarChart``, ``Heatmap``, ``ScatterPlot``, with
``add_series``) are drawn on the experiments page. ``Cnvrg().datasets.get(name)`` / ``.create(name=...)`` are
the project's dataset store: ``ds.put_files(paths=[...])`` makes a new version of the dataset (committed by
the worker when the command ends, with its asset event, so flows triggered by the dataset run), ``ds.reload()``
raises :class:`~cnvrgv2.errors.CnvrgHttpError` when the store has no such dataset. ``Cnvrg().projects.get(...)``
is this project. Any other call raises :class:`~cnvrgv2.errors.CnvrgHttpError` naming it.
"""

from __future__ import annotations

import builtins
import numbers
import os
from typing import Any

from cnvrg import _flow

from cnvrgv2.errors import CnvrgArgumentsError, CnvrgError, CnvrgHttpError, NoStandIn

__all__ = [
    "BarChart",
    "Cnvrg",
    "CnvrgError",
    "CnvrgHttpError",
    "Dataset",
    "Experiment",
    "Heatmap",
    "LineChart",
    "Project",
    "ScatterPlot",
]


class _StandIn:
    """A stand-in object: an attribute it does not have raises :class:`CnvrgHttpError` naming the call."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise NoStandIn(_flow.no_stand_in("cnvrgv2", f"{type(self).__name__}.{name}"))


# --- charts ---------------------------------------------------------------------------------------


class Chart:
    """A chart: ``key`` names it in the experiment; ``Ys`` (``Xs`` / ``x_ticks``) an initial series, or ``add_series``.

    Keyword names as cnvrgv2's: ``title``, ``x_axis``, ``y_axis``, ``Ys`` / ``y_ticks``, ``Xs`` / ``x_ticks`` /
    ``bars``, ``series_name``, ``stops``, ``min_val``, ``max_val``, ``colors``; a heatmap ``matrix``.
    """

    chart_type = ""

    def __init__(self, key: str, **kwargs: Any) -> None:
        self.key = key
        self.series_list: list[dict[str, Any]] = []
        self.kwargs = dict(kwargs)
        self.x_ticks = _flow._plain(kwargs.get("Xs") or kwargs.get("bars") or kwargs.get("x_ticks"))
        heatmap_ys = kwargs.get("Ys") if self.chart_type == "heatmap" else None
        self.y_ticks = _flow._plain(kwargs.get("y_ticks") or heatmap_ys)
        if self.chart_type != "heatmap" and (kwargs.get("group") or kwargs.get("step")):
            raise CnvrgArgumentsError("only a heatmap takes group and step")
        first = kwargs.get("matrix") if self.chart_type == "heatmap" else kwargs.get("Ys")
        if first is not None and len(_flow._plain(first)):
            self.add_series(first, name=kwargs.get("series_name"))

    def add_series(self, data: Any, name: str | None = None) -> None:
        """Add ``data`` to the series ``name`` (made when new): numbers, or ``[x, y]`` points (line, scatter)."""
        data = _flow._plain(data)
        if not data:
            return
        points = self.validate_series(data)
        for series in self.series_list:
            if series["name"] == name:
                series["data"].extend(points)
                return
        self.series_list.append({"name": name, "data": points})

    def validate_series(self, data: Any) -> list[Any]:
        if not isinstance(data, list):
            raise CnvrgArgumentsError("a series is a list")
        point = lambda v: isinstance(v, list) and len(v) == 2 and all(isinstance(n, numbers.Real) for n in v)  # noqa: E731
        if not all(isinstance(v, numbers.Real) or (self.chart_type != "bar" and point(v)) for v in data):
            raise CnvrgArgumentsError(
                f"a series of a {type(self).__name__} is a list of numbers"
                + ("" if self.chart_type == "bar" else " or [x, y] points")
            )
        return list(data)

    def options(self) -> dict[str, Any]:
        k = self.kwargs
        return {
            "title": k.get("title"),
            "x_axis": k.get("x_axis"),
            "y_axis": k.get("y_axis"),
            "x_ticks": self.x_ticks,
            "y_ticks": self.y_ticks,
            "stops": k.get("stops"),
            "min": k.get("min_val"),
            "max": k.get("max_val"),
            "colors": k.get("colors"),
            "group": k.get("group"),
            "step": k.get("step"),
        }

    def to_dict(self) -> dict[str, Any]:
        return {"chart_type": self.chart_type, "key": self.key, "series": self.series_list, **self.options()}


class LineChart(Chart):
    chart_type = "line"


class BarChart(Chart):
    chart_type = "bar"


class ScatterPlot(Chart):
    chart_type = "scatter"


class Heatmap(Chart):
    """A heatmap: ``add_series([(1, 2, 3), (4, 5, 6)])`` adds rows of a matrix (row ``i`` is y ``i``)."""

    chart_type = "heatmap"

    def __init__(self, key: str, **kwargs: Any) -> None:
        self.rows = 0
        if bool(kwargs.get("group")) != bool(kwargs.get("step")):
            raise CnvrgArgumentsError("a heatmap takes group and step together")
        super().__init__(key, **kwargs)

    def validate_series(self, data: Any) -> list[Any]:
        if not isinstance(data, list) or not all(isinstance(r, list) and r for r in data):
            raise CnvrgArgumentsError("a heatmap's series is a list of rows (tuples of numbers)")
        width = len(data[0])
        if not all(len(r) == width and all(isinstance(v, numbers.Real) for v in r) for r in data):
            raise CnvrgArgumentsError("a heatmap's rows are tuples of numbers of one length")
        cells = [[x, self.rows + y, v] for y, row in enumerate(data) for x, v in enumerate(row)]
        self.rows += len(data)
        return cells


def _emit_chart(chart: Chart, series: list[dict[str, Any]], mode: str) -> None:
    _flow.chart(chart.key, chart.chart_type, series, mode=mode, **chart.options())


# --- the experiment -------------------------------------------------------------------------------


class Experiment(_StandIn):
    """The running experiment: ``Experiment()`` (in a job, as cnvrg's SDK); another one has no stand-in."""

    def __init__(self, context: Any = None, slug: str | None = None, attributes: Any = None) -> None:
        if slug is not None and slug != os.environ.get("CNVRG_EXPERIMENT_SLUG"):
            raise CnvrgHttpError(_flow.no_stand_in("cnvrgv2", f"Experiment(slug={slug!r}) (another experiment)"))
        self.slug = os.environ.get("CNVRG_EXPERIMENT_SLUG", "")
        self.title = os.environ.get("CNVRG_EXPERIMENT_TITLE", "")
        self._charts: dict[str, Chart] = {}

    def log_param(self, key: Any, value: Any = None) -> None:
        """A tag of this experiment."""
        _flow.tag(key, value)

    def log_metric(self, chart: Any, Ys: Any = None, Xs: Any = None) -> None:
        """A chart (as ``create_chart``); or, as in v1, a metric's values ``log_metric(key, Ys=[...])``: a
        series of the record, its last value a tag."""
        if isinstance(chart, Chart):
            self.create_chart(chart)
            return
        from cnvrg import Experiment as V1

        V1().log_metric(chart, Ys, Xs)

    def create_chart(self, chart: Chart) -> Chart:
        """Show ``chart`` on the experiments page (the same key again replaces it)."""
        if not isinstance(chart, Chart):
            raise CnvrgArgumentsError("create_chart takes a LineChart, BarChart, Heatmap or ScatterPlot")
        self._charts[chart.key] = chart
        _emit_chart(chart, chart.series_list, "set")
        return chart

    def update_chart(self, key: str, data: Any, series_name: str | None = None) -> None:
        """Add ``data`` to the series ``series_name`` of the chart ``key`` (made as a line chart when new)."""
        chart = self._charts.get(key)
        if chart is None:
            chart = self.create_chart(LineChart(key))
        before = {s["name"]: len(s["data"]) for s in chart.series_list}
        chart.add_series(data, name=series_name)
        added = [
            {"name": s["name"], "data": s["data"][before.get(s["name"], 0) :]}
            for s in chart.series_list
            if len(s["data"]) > before.get(s["name"], 0)
        ]
        _emit_chart(chart, added, "add")

    def get_chart(self, key: str) -> Chart:
        if key not in self._charts:
            raise CnvrgHttpError(
                f"cnvrgv2: the experiment has no chart '{key}' (its charts: {', '.join(self._charts) or 'none'})"
            )
        return self._charts[key]

    def log_artifacts(
        self, paths: Any = None, git_diff: bool = False, work_dir: str | None = None, message: str = ""
    ) -> None:
        """Copy files into the output folder (the tasks after this one receive them; images are shown on the
        experiments page); ``work_dir``: the folder the paths are relative to."""
        if git_diff:
            raise CnvrgHttpError(_flow.no_stand_in("cnvrgv2", "Experiment.log_artifacts(git_diff=True)"), 501)
        here = os.getcwd()
        try:
            if work_dir:
                os.chdir(work_dir)
            _flow.artifacts(paths or [], "")
        finally:
            os.chdir(here)

    def log_images(self, file_paths: Any) -> None:
        """Images into the output folder, shown on the experiments page."""
        _flow.artifacts(file_paths, "")


# --- datasets and projects ------------------------------------------------------------------------


class Dataset(_StandIn):
    """A dataset of the project's dataset store, by name."""

    def __init__(self, slug: str, created: bool = False) -> None:
        self.slug = self.title = str(slug)
        self._created = created
        known = _flow.datasets_known() or {}
        self.last_commit: str | None = known.get(self.slug)

    def reload(self) -> None:
        """:class:`CnvrgHttpError` when the dataset store has no such dataset (nor was it made here)."""
        known = _flow.datasets_known()
        if known is not None and self.slug not in known and not self._created and self.slug not in _made:
            raise CnvrgHttpError(
                f"cnvrgv2: there is no dataset '{self.slug}' in the dataset store (its datasets: "
                f"{', '.join(sorted(known)) or 'none'}); Cnvrg().datasets.create(name=...) makes one"
            )

    def put_files(
        self,
        paths: Any,
        message: str = "",
        job_slug: Any = None,
        blank: bool = False,
        override: bool = False,
        force: bool = False,
        upload: bool = False,
        tag_images: bool = False,
        progress_bar_enabled: bool = False,
        git_diff: bool = False,
        debug_mode: bool = False,
        dir_path: str = "",
        threads: int = 40,
        chunks: int = 1000,
    ) -> str | None:
        """A new version of the dataset: its latest version's files (none with ``blank``) and ``paths`` (files,
        folders, glob patterns; a path inside the working directory keeps its relative path, under ``dir_path``).

        The worker commits it when the command ends (the experiment's log and record say its commit) and
        announces it (the asset event of ``cnvrg-dataset://<name>``). Returns the staged version's id here
        (the commit is made later), None when no file matched.
        """
        if git_diff:
            raise CnvrgHttpError(_flow.no_stand_in("cnvrgv2", "Dataset.put_files(git_diff=True)"), 501)
        paths = [paths] if isinstance(paths, str) else list(paths)
        count = _flow.put_files(self.slug, paths, blank=blank, message=message, dir_path=dir_path)
        if not count:
            return None
        _made.add(self.slug)
        return f"staged-{_flow._puts[0]}"


_made: set = set()  # datasets this process made or put files to


class DatasetsClient(_StandIn):
    def get(self, slug: str) -> Dataset:
        """The dataset ``slug`` (``reload()`` says whether the store has it, as cnvrg's SDK)."""
        return Dataset(slug)

    def create(self, name: str, category: str = "general", **kwargs: Any) -> Dataset:
        """A new dataset: an empty first version, committed when the command ends."""
        known = _flow.datasets_known() or {}
        if name in known:
            raise CnvrgHttpError(f"cnvrgv2: a dataset named '{name}' already exists in the dataset store", 422)
        _made.add(name)
        import json

        _flow.emit(
            "cnvrg_dataset_put: " + json.dumps({"dataset": name, "folder": "", "blank": True, "message": "created"})
        )
        return Dataset(name, created=True)

    def list(self, sort: str = "-id") -> builtins.list[Dataset]:
        return [Dataset(name) for name in sorted(_flow.datasets_known() or {})]


class Project(_StandIn):
    """This project (the flow's folder)."""

    def __init__(self, slug: str | None = None) -> None:
        self.slug = self.title = os.environ.get("CNVRG_PROJECT", "") or (slug or "")


class ProjectsClient(_StandIn):
    def get(self, slug: str | None = None) -> Project:
        """This project, whatever ``slug`` names (there is one project here: the flow's)."""
        return Project(slug)


class Cnvrg(_StandIn):
    """cnvrg's client: credentials are not needed here (``domain``, ``email``, ``password`` ... are accepted)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.datasets = DatasetsClient()
        self.projects = ProjectsClient()


def __getattr__(name: str) -> Any:
    """``from cnvrgv2 import <name>`` of what has no stand-in: :class:`CnvrgHttpError` naming it."""
    if name.startswith("_"):
        raise AttributeError(name)
    if name == "errors":
        import importlib

        return importlib.import_module("cnvrgv2.errors")
    raise CnvrgHttpError(_flow.no_stand_in("cnvrgv2", f"cnvrgv2.{name}"), 501)
