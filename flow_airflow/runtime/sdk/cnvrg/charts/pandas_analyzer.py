"""``from cnvrg.charts.pandas_analyzer import PandasAnalyzer`` (and the chart objects, as cnvrg's module has them).

``PandasAnalyzer(df, experiment=Experiment())`` logs the charts cnvrg's does: the correlation matrix, null
values per column, counts of each categorical column, and a scatter of each strongly correlated pair.
"""

from __future__ import annotations

from typing import Any

from cnvrg.charts import Bar, CategoricalScatterplot, Heatmap, MatrixHeatmap, Scatterplot

__all__ = ["Bar", "CategoricalScatterplot", "Heatmap", "MatrixHeatmap", "PandasAnalyzer", "Scatterplot"]


class PandasAnalyzer:
    def __init__(self, data: Any, experiment: Any = None) -> None:
        try:
            import numpy  # noqa: F401  (pandas needs it)
            import pandas  # noqa: F401
        except ImportError:
            raise ImportError("Can't analyze dataframe, please install pandas first.") from None
        if experiment is None:
            from cnvrg import Experiment

            experiment = Experiment()
        self.data, self.experiment = data, experiment
        numeric = data.select_dtypes(include=["number"])
        correlation = numeric.corr()
        columns = list(correlation.columns)
        names = [str(c) for c in columns]
        experiment.log_chart(
            "correlation", [MatrixHeatmap(correlation.round(2).values.tolist())], x_ticks=names, y_ticks=names
        )
        nulls = data.isnull().sum()
        experiment.log_chart(
            "null_values",
            [Bar(x=[str(i) for i in nulls.index], y=nulls.values.tolist())],
            title="Null values in the dataframe",
        )
        for column in data.select_dtypes(include=["category"]).columns:
            counts = data[column].value_counts()
            experiment.log_chart(
                f"{column}_categorical_counts",
                [Bar(x=[str(i) for i in counts.index], y=counts.values.tolist(), name=str(column))],
                title=f"Categorical count {column}",
            )
        for i, a in enumerate(columns):
            for b in columns[i + 1 :]:
                strength = abs(correlation[a][b])
                if strength == 1 or not strength >= 0.5:
                    continue
                pair = numeric[[a, b]].dropna()
                experiment.log_chart(
                    f"{a}_against_{b}", [Scatterplot(x=pair[a].tolist(), y=pair[b].tolist())], title=f"{a} against {b}"
                )
