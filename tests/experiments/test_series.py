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
