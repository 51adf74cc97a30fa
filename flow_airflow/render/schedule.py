"""A flow's ``schedule``, ``recurring`` and ``triggers`` as an Airflow schedule (a timetable, assets, or both)."""

from __future__ import annotations

from typing import Any

from flow_airflow.assets import dataset_asset
from flow_airflow.spec.models import Flow
from flow_airflow.spec.schedule import parse_schedule


def timezone_of(flow: Flow) -> str:
    """The flow's ``timezone``, else the Airflow configuration's ``[core] default_timezone``."""
    from airflow.configuration import conf

    return flow.timezone or conf.get("core", "default_timezone", fallback="utc")


def schedule_of(flow: Flow) -> dict[str, Any]:
    """The DAG's ``schedule``, ``catchup`` and ``start_date``.

    ``recurring`` fires at every cron tick (no catch-up of missed ticks); ``schedule`` runs once
    at its time, or as soon as the DAG is unpaused if that time has passed; neither: no schedule.
    Datasets of ``triggers`` start a run on a new version, alone or besides the time schedule.
    What a flow does not use is not imported: a parse pays only for its own schedule.
    """
    timetable: Any = None
    when = None
    if flow.recurring:
        from airflow.sdk import CronTriggerTimetable

        timetable = CronTriggerTimetable(flow.recurring, timezone=timezone_of(flow))
    elif flow.schedule:
        import pendulum

        # Airflow 3.3.2 cannot serialize the Task SDK's EventsTimetable (its encoder drops the
        # '_summary' that the scheduler's class reads back); the core class serializes itself.
        from airflow.timetables.events import EventsTimetable

        when = pendulum.instance(parse_schedule(flow.schedule), tz=pendulum.timezone(timezone_of(flow)))
        timetable = EventsTimetable([when], description=f"Once, at {when.format('YYYY-MM-DD HH:mm:ss zz')}")
    # a one-shot time already past still runs, once: catch-up from that very time
    dates = {"catchup": True, "start_date": when} if when else {"catchup": False}
    datasets = flow.triggers.datasets if flow.triggers else []
    if datasets:
        from airflow.sdk import AssetAny, AssetOrTimeSchedule

        assets = AssetAny(*(dataset_asset(name) for name in datasets))
        timetable = assets if timetable is None else AssetOrTimeSchedule(timetable=timetable, assets=assets)
    return {"schedule": timetable, **dates}
