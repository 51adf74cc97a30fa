"""The series of the SDK's ``log_metric(key, Ys=[...], Xs=[...])``, as the runtime keeps them for the
experiments page (``flow_airflow.runtime.tags.TagLog``): fast tier, no Airflow."""

from __future__ import annotations

from flow_airflow.runtime.tags import MAX_SERIES_POINTS, TagLog


def test_series_lines_add_up_and_are_not_tags() -> None:
    log = TagLog(lambda message: None)
    for line in ['cnvrg_series_loss: {"ys": [0.9, 0.5]}', 'cnvrg_series_loss: {"ys": [0.25]}',
                 'cnvrg_series_acc: {"ys": [0.1, 0.2], "xs": [10, 20]}', "cnvrg_tag_loss: 0.25",
                 "cnvrg_series_bad: not json", 'cnvrg_series_: {"ys": [1]}']:
        log.line(line)
    assert log.series == {"loss": {"ys": [0.9, 0.5, 0.25], "xs": [0, 1, 2]},
                          "acc": {"ys": [0.1, 0.2], "xs": [10, 20]}}
    assert log.tags == {"loss": "0.25"}


def test_a_series_is_bounded() -> None:
    log = TagLog(lambda message: None)
    log.line('cnvrg_series_x: {"ys": [' + ",".join(["1"] * (MAX_SERIES_POINTS + 5)) + "]}")
    log.line('cnvrg_series_x: {"ys": [2]}')
    assert len(log.series["x"]["ys"]) == len(log.series["x"]["xs"]) == MAX_SERIES_POINTS


def test_chart_lines_replace_add_and_are_bounded() -> None:
    from flow_airflow.runtime.tags import MAX_CHART_POINTS, MAX_CHARTS

    warned: list[str] = []
    log = TagLog(warned.append)
    log.line('cnvrg_chart_c: {"type": "line", "mode": "set", "series": [{"name": "a", "data": [1, 2]}]}')
    log.line('cnvrg_chart_c: {"type": "line", "mode": "add", "series": [{"name": "a", "data": [3]}]}')
    assert log.charts["c"]["series"] == [{"name": "a", "data": [1, 2, 3]}]
    log.line('cnvrg_chart_c: {"type": "bar", "mode": "set", "series": [{"name": "b", "data": [9]}]}')  # replaced
    assert log.charts["c"] == {"type": "bar", "series": [{"name": "b", "data": [9]}]}
    log.line('cnvrg_chart_x: {"type": "pie", "series": []}')  # no such kind
    log.line("cnvrg_chart_y: not json")
    assert sorted(log.charts) == ["c"]
    points = ",".join(["1"] * (MAX_CHART_POINTS + 3))
    log.line('cnvrg_chart_big: {"type": "line", "series": [{"name": null, "data": [' + points + "]}]}")
    assert len(log.charts["big"]["series"][0]["data"]) == MAX_CHART_POINTS
    for i in range(MAX_CHARTS):
        log.line(f'cnvrg_chart_k{i}: {{"type": "line", "series": []}}')
    assert len(log.charts) == MAX_CHARTS and any("at most" in w for w in warned)
    assert log.tags == {}


def test_linechart_lines_as_cnvrg_users_print_them() -> None:
    log = TagLog(lambda message: None)
    for line in ["cnvrg_linechart_acc value: 0.5", "cnvrg_linechart_acc value: 0.75",
                 "cnvrg_linechart_acc group: val key: 3 value: '0.25'", '"cnvrg_linechart_q value: 1"',
                 "cnvrg_linechart_e key: epoch 1 value: 5e-1", "cnvrg_linechart_p x: 2 y: 1.5",
                 "cnvrg_linechart_bad value: nan", "cnvrg_linechart_bad value: text"]:
        log.line(line)
    assert log.charts == {
        "acc": {"type": "line", "series": [{"name": None, "data": [[0, 0.5], [1, 0.75]]},
                                           {"name": "val", "data": [[3, 0.25]]}]},
        "q": {"type": "line", "series": [{"name": None, "data": [[0, 1]]}]},
        "e": {"type": "line", "series": [{"name": None, "data": [["epoch 1", 0.5]]}]},
        "p": {"type": "line", "series": [{"name": None, "data": [[2, 1.5]]}]},
    }
