"""A new version of a dataset as an Airflow asset event of ``cnvrg-dataset://<name>``.

Flows with ``triggers: {datasets: [<name>]}`` are scheduled on that asset
(:mod:`flow_airflow.render.schedule`): the event starts them, and their data tasks that ask for
the latest version use the commit in the event's extra (``{"commit": ..., "names": [...]}``).
Another system can post the same event through Airflow's REST API (``POST /api/v2/assets/events``
with ``{"asset_id": ..., "extra": {"commit": ...}}``). Here it is recorded in the metadata database,
as that endpoint does (``AssetManager.register_asset_change``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flow_airflow.assets import URI_SCHEME

COMMIT_KEY = "commit"


def emit_new_version(dataset: str, commit: str, names: list[str]) -> str:
    """Record the asset event of a new version of ``dataset``; what happened, in words.

    No event when no flow ever named the dataset (Airflow knows no such asset yet) or the metadata
    database cannot be reached: the words say so; nothing raises.
    """
    try:
        from airflow.assets.manager import asset_manager
        from airflow.models.asset import AssetModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        uri = f"{URI_SCHEME}://{dataset}"
        with create_session() as session:
            # by name: Airflow keeps the URI normalized (cnvrg-dataset://iris/)
            model = session.scalar(select(AssetModel).where(AssetModel.name == f"{URI_SCHEME}/{dataset}").limit(1))
            if model is None:
                return f"no asset event: no flow names {uri} yet (Airflow knows no such asset)"
            event = asset_manager.register_asset_change(
                asset=model, extra={COMMIT_KEY: commit, "names": names}, source_is_api=True, session=session)
    except Exception as e:  # no metadata database here: the version is kept all the same
        return f"no asset event: Airflow's metadata database cannot be reached ({type(e).__name__}: {e})"
    if event is None:
        return f"no asset event: Airflow did not record one for {uri}"
    return f"asset event {event.id} of {uri}: flows triggered by this dataset will run on this commit"


def announcer(dataset: str, said: list[str]) -> Callable[[str, list[str]], None]:
    """What :meth:`~flow_airflow.datasets.store.DatasetStore.push` calls to announce a new version of ``dataset``:
    its asset event (:func:`emit_new_version`), the words appended to ``said``."""

    def announce(commit: str, names: list[str]) -> None:
        said.append(emit_new_version(dataset, commit, names))

    return announce


def triggered_commit(context: Any, dataset: str) -> str | None:
    """The commit (or version name) of ``dataset`` that triggered the run: the newest asset event's extra
    ``commit`` (or ``version``, e.g. ``{"version": "v2"}`` posted by another system).

    None when the run was not started by an event of ``cnvrg-dataset://<dataset>`` carrying one.
    """
    uri = f"{URI_SCHEME}://{dataset}"
    events = context.get("triggering_asset_events") or {}
    found = [event for key in events if str(getattr(key, "uri", "")).rstrip("/") == uri for event in events[key]]
    extras = [(str(getattr(e, "timestamp", "")), getattr(e, "extra", None) or {}) for e in found]
    commits = [(when, extra.get(COMMIT_KEY) or extra.get("version")) for when, extra in extras]
    commits = [c for c in commits if isinstance(c[1], str) and c[1].strip()]
    return max(commits)[1] if commits else None
