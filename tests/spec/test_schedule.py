"""schedule, recurring and triggers compile to Airflow timetables that fire when cnvrg would."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pendulum
import pytest
import time_machine

from flow_airflow.render.schedule import schedule_of
from flow_airflow.spec.errors import FlowError
from flow_airflow.spec.load import load_flow
from flow_airflow.spec.schedule import parse_schedule

FLOWS = Path(__file__).parents[1] / "flows"


def core_timetable(file: Path):
    from airflow.serialization.encoders import coerce_to_core_timetable

    schedule = schedule_of(load_flow(file).spec)
    return coerce_to_core_timetable(schedule["schedule"]), schedule


def next_run(timetable, start_date=None, catchup=False, after=None):
    from airflow.timetables.base import DataInterval, TimeRestriction

    last = DataInterval.exact(after) if after else None
    info = timetable.next_dagrun_info(last_automated_data_interval=last,
                                      restriction=TimeRestriction(start_date, None, catchup))
    return info.run_after if info else None


def at(hour: int, minute: int) -> pendulum.DateTime:
    return pendulum.datetime(2026, 11, 25, hour, minute)


def write(tmp_path: Path, top: str) -> Path:
    file = tmp_path / "flow.yaml"
    file.write_text(f"flow: Scheduled\n{top}\ntasks:\n  - {{title: A, type: exec, input: 'true', computes: [local]}}\n"
                    "relations: []\n")
    return file


@pytest.mark.parametrize("text", [
    "31.01.2021 16:25", "31.01.2021 4:25PM", "2021.01.31 16:25", "2021.01.31 4:25PM",
    "31.01.2021 16:25:00", "2021.01.31 04:25:00 PM", "31.01.2021 4:25 pm", " 2021.01.31   16:25 ",
])
def test_every_documented_date_form(text: str) -> None:
    assert parse_schedule(text) == datetime(2021, 1, 31, 16, 25)


@pytest.mark.parametrize("text", ["2021-01-31 16:25", "31/01/2021 16:25", "31.01.2021", "31.13.2021 16:25",
                                  "2021.01.31 25:00", "tomorrow"])
def test_unreadable_dates_are_errors_listing_the_forms(text: str, tmp_path: Path) -> None:
    with pytest.raises(FlowError) as caught:
        load_flow(write(tmp_path, f'schedule: "{text}"'))
    message = str(caught.value)
    assert ":2:11: schedule" in message and "31.01.2021 4:25PM, 2021.01.31 16:25 or 2021.01.31 4:25PM" in message


def test_invalid_cron_and_timezone_are_errors_with_their_line(tmp_path: Path) -> None:
    with pytest.raises(FlowError) as caught:
        load_flow(write(tmp_path, 'recurring: "61 * * * *"\ntimezone: Mars/Olympus'))
    lines = [str(i) for i in caught.value.issues]
    assert ":2:12: recurring '61 * * * *' is not a valid cron schedule" in lines[0]
    assert ":3:11: timezone 'Mars/Olympus' is not a known time zone" in lines[1]


def test_schedule_and_recurring_together_is_an_error() -> None:
    with pytest.raises(FlowError, match=r"'schedule' .* and 'recurring' .* cannot be used together"):
        load_flow(FLOWS / "invalid" / "schedule_and_recurring.yaml")


def test_recurring_is_a_cron_trigger_timetable_firing_at_the_tick() -> None:
    timetable, schedule = core_timetable(FLOWS / "scheduled" / "flow.yaml")
    assert type(timetable).__name__ == "CronTriggerTimetable"
    assert timetable.description == "At 30 minutes past the hour" and schedule["catchup"] is False
    with time_machine.travel(pendulum.datetime(2026, 11, 25, 10, 10), tick=False):
        assert next_run(timetable) == pendulum.datetime(2026, 11, 25, 10, 30)
    with time_machine.travel(pendulum.datetime(2026, 11, 25, 10, 40), tick=False):
        # after the 10:30 run, the next is at 11:30
        assert next_run(timetable, after=at(10, 30)) == at(11, 30)
    with time_machine.travel(pendulum.datetime(2026, 11, 25, 15, 5), tick=False):
        # no catch-up: after a pause (or downtime) only the latest missed tick runs, not every one since
        assert next_run(timetable, after=at(10, 30)) == at(14, 30)


def test_recurring_in_the_flows_time_zone(tmp_path: Path) -> None:
    timetable, _ = core_timetable(write(tmp_path, 'recurring: "0 9 * * *"\ntimezone: Europe/Berlin'))
    with time_machine.travel(pendulum.datetime(2026, 11, 25, 6, 0), tick=False):
        assert next_run(timetable) == pendulum.datetime(2026, 11, 25, 8, 0)  # 09:00 in Berlin, in winter


def test_schedule_runs_once_at_its_time() -> None:
    timetable, schedule = core_timetable(FLOWS / "scheduled" / "once.yaml")
    when = pendulum.datetime(2031, 1, 31, 16, 25)
    assert timetable.description == "Once, at 2031-01-31 16:25:00 UTC"
    assert schedule["start_date"] == when and schedule["catchup"] is True
    with time_machine.travel(pendulum.datetime(2026, 11, 25, 12, 0), tick=False):
        assert next_run(timetable, when, True) == when  # nothing before it
        assert next_run(timetable, when, True, after=when) is None  # and nothing after


def test_a_schedule_in_the_past_runs_once_as_soon_as_possible(tmp_path: Path) -> None:
    timetable, schedule = core_timetable(write(tmp_path, "schedule: 01.02.2020 9:00AM"))
    with time_machine.travel(pendulum.datetime(2026, 11, 25, 12, 0), tick=False):
        first = next_run(timetable, schedule["start_date"], True)
        assert first == pendulum.datetime(2020, 2, 1, 9, 0)  # due already: the scheduler starts it now
        assert next_run(timetable, schedule["start_date"], True, after=first) is None


def test_no_schedule_means_triggered_only(tmp_path: Path) -> None:
    assert schedule_of(load_flow(write(tmp_path, "")).spec) == {"schedule": None, "catchup": False}


def test_dataset_triggers_are_assets_alone_or_beside_a_cron(tmp_path: Path) -> None:
    from airflow.sdk import AssetAny, AssetOrTimeSchedule

    alone = schedule_of(load_flow(write(tmp_path, "triggers: {datasets: [iris, wine], webhook: true}")).spec)
    assert isinstance(alone["schedule"], AssetAny)
    assert [a.uri for a in alone["schedule"].objects] == ["cnvrg-dataset://iris/", "cnvrg-dataset://wine/"]
    both = schedule_of(load_flow(write(tmp_path, 'recurring: "0 * * * *"\ntriggers: {datasets: iris}')).spec)
    assert isinstance(both["schedule"], AssetOrTimeSchedule)
