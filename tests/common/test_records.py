"""The experiment record: its status and reason, and a batch of records flattened (no Airflow needed)."""

from __future__ import annotations

import json

from flow_airflow.common.records import Record, Status, flatten, not_succeeded, reason_of, status_of, succeeded


def test_a_status_and_its_reason_are_the_record_s_failed_text() -> None:
    ok = Record(task="Train", index=0)
    failed = not_succeeded(Record(task="Train", index=1), Status.FAILED, "exit code 1: boom")
    skipped = not_succeeded(Record(task="Train", index=2), Status.SKIPPED, "it follows 'Data' #0")
    assert failed["failed"] == "failed: exit code 1: boom"  # the text the experiments page shows, as before
    assert skipped["failed"] == "skipped: it follows 'Data' #0"
    assert [status_of(r) for r in (ok, failed, skipped)] == [Status.SUCCESS, Status.FAILED, Status.SKIPPED]
    assert [reason_of(r) for r in (ok, failed, skipped)] == ["", "exit code 1: boom", "it follows 'Data' #0"]
    assert succeeded([ok, failed, skipped]) == [ok]
    assert json.dumps(Status.FAILED) == '"failed"'  # a StrEnum serialises as its word


def test_a_record_of_another_text_is_skipped() -> None:
    odd = Record(task="Train", index=0, failed="did not run")
    assert status_of(odd) is Status.SKIPPED and reason_of(odd) == "did not run"


def test_records_are_flattened_from_one_a_batch_or_a_pull_of_many() -> None:
    a, b, c = Record(task="T", index=0), Record(task="T", index=1), Record(task="T", index=2)
    assert flatten(a) == [a]
    assert flatten([a, b]) == [a, b]  # one task instance's batch
    assert flatten([[a, b], c, None]) == [a, b, c]  # an xcom_pull over task instances, one without a record
    assert flatten(None) == []
