"""cnvrg v1's chart objects, for ``Experiment().log_chart(key, [chart, ...])`` (keyword names as cnvrg's SDK).

``Bar(x, y)``: bars named by ``x``; ``Heatmap(z)``: ``z`` a list of ``((x, y), value)`` or ``(x, y, value)``;
``MatrixHeatmap(matrix)``: a matrix (rows are y); ``Scatterplot(x, y)``: points. Drawn on the experiments
page with Apache ECharts.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["Bar", "BasicChart", "CategoricalScatterplot", "Heatmap", "MatrixHeatmap", "Scatterplot"]


def _list(values: Any) -> list[Any]:
    values = values.tolist() if hasattr(values, "tolist") else values
    return list(values) if values is not None else []


class BasicChart:
    """One series of a chart."""

    kind = ""

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    @classmethod
    def chart_type(cls) -> str:
        return cls.kind

    @property
    def x_ticks(self) -> list[Any] | None:
        return None

    @property
    def y_ticks(self) -> list[Any] | None:
        return None

    @property
    def data(self) -> list[Any]:
        return []

    def as_series(self, index: int = 0) -> dict[str, Any]:
        return {"name": self.name if self.name is not None else f"Series {index}", "data": self.data}

    def options(self) -> dict[str, Any]:
        """What the chart adds to its line (colours, bounds)."""
        return {}


class Bar(BasicChart):
    kind = "bar"

    def __init__(
        self,
        x: Any,
        y: Any,
        name: str | None = None,
        min_val: Any = None,
        max_val: Any = None,
        colors: list[str] | None = None,
    ) -> None:
        super().__init__(name)
        self._x, self._y = _list(x), _list(y)
        if colors is not None and not isinstance(colors, list):
            raise ValueError("Colors should be in format: ['#3060cf', '#fffbbc', ...]")
        self.min, self.max, self.colors = min_val, max_val, colors or []

    @property
    def x_ticks(self) -> list[Any]:
        return self._x

    @property
    def data(self) -> list[Any]:
        return self._y

    def options(self) -> dict[str, Any]:
        return {"colors": self.colors or None, "min": self.min, "max": self.max}


class Heatmap(BasicChart):
    kind = "heatmap"

    def __init__(
        self,
        z: Any,
        name: str | None = None,
        color_stops: list[Any] | None = None,
        min_val: Any = None,
        max_val: Any = None,
    ) -> None:
        super().__init__(name)
        cells = []
        for item in _list(z):
            item = _list(item)
            if len(item) == 2:
                (x, y), value = item
            elif len(item) == 3:
                x, y, value = item
            else:
                raise ValueError("Heatmap only support in values in type of ((x,y),z) or (x,y,z)")
            if isinstance(value, float) and math.isnan(value):
                continue
            cells.append((x, y, value))
        self._x = sorted({c[0] for c in cells}, key=_order)
        self._y = sorted({c[1] for c in cells}, key=_order)
        self._cells = [[self._x.index(x), self._y.index(y), v] for x, y, v in cells]
        if color_stops is not None and not (
            isinstance(color_stops, list) and all(isinstance(s, list) and len(s) == 2 for s in color_stops)
        ):
            raise ValueError("Color stops should be in format: [[0, '#3060cf'], [0.5, '#fffbbc'], ...]")
        self.color_stops, self.min, self.max = color_stops or [], min_val, max_val

    @property
    def x_ticks(self) -> list[Any]:
        return self._x

    @property
    def y_ticks(self) -> list[Any]:
        return self._y

    @property
    def data(self) -> list[Any]:
        return self._cells

    def options(self) -> dict[str, Any]:
        return {"stops": self.color_stops or None, "min": self.min, "max": self.max}


class MatrixHeatmap(Heatmap):
    def __init__(
        self,
        matrix: Any,
        name: str | None = None,
        color_stops: list[Any] | None = None,
        min_val: Any = None,
        max_val: Any = None,
    ) -> None:
        rows = [_list(r) for r in _list(matrix)]
        super().__init__(
            [(x, y, v) for y, row in enumerate(rows) for x, v in enumerate(row)], name, color_stops, min_val, max_val
        )


class Scatterplot(BasicChart):
    kind = "scatter"

    def __init__(self, x: Any, y: Any, name: str | None = None) -> None:
        super().__init__(name)
        self._x, self._y = _list(x), _list(y)

    @property
    def data(self) -> list[Any]:
        return [list(p) for p in zip(self._x, self._y)]


class CategoricalScatterplot(Scatterplot):
    """Points whose x and y are categories: drawn at the categories' positions."""

    @property
    def x_ticks(self) -> list[Any]:
        return sorted(set(self._x), key=_order)

    @property
    def y_ticks(self) -> list[Any]:
        return sorted(set(self._y), key=_order)

    @property
    def data(self) -> list[Any]:
        xs, ys = self.x_ticks, self.y_ticks
        return [[xs.index(x), ys.index(y)] for x, y in zip(self._x, self._y)]


def _order(value: Any) -> Any:
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))
