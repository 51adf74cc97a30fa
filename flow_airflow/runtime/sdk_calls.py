"""What the worker does for the stand-in SDKs (``runtime/sdk``: ``cnvrg``, ``cnvrgv2``) beyond keeping their lines
in the record (:class:`~flow_airflow.runtime.tags.TagLog`): the versions ``put_files`` staged, committed to the
dataset store with their asset events; ``requirements.txt`` lines that would install the real SDKs, left out.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from flow_airflow.computes.base import ExperimentFailed

PUT_FOLDER = ".flow-airflow-put"  # as runtime/sdk/cnvrg/_flow.py PUT_FOLDER: under the working directory
# a requirement naming cnvrg's SDKs: the name (any case, ``-``/``_``/``.`` alike), then a specifier, extras, a
# marker or nothing (PEP 508); ``cnvrg-foo`` is another package
_SDK_REQUIREMENT = re.compile(r"^\s*cnvrg(v2)?\s*(\[[^\]]*\])?\s*($|[<>=!~;@\s#])", re.IGNORECASE)
SDK_PACKAGES = ("cnvrg", "cnvrgv2")


def commit_puts(puts: list[dict[str, Any]], workdir: Path, log: logging.Logger) -> list[dict[str, Any]]:
    """Commit each ``put_files`` of the experiment, in order, as a new version of its dataset: what it put over
    the dataset's latest version (nothing of that with ``blank``); an empty first version for
    ``datasets.create``. Each new version is announced (its asset event: flows triggered by the dataset run).

    The staged files (``<workdir>/.flow-airflow-put``) are removed, so they are no part of the end state.

    :returns: per put, ``{"dataset", "commit", "new", "files", "event"}`` (what the record keeps).
    :raises ExperimentFailed: the dataset store refuses it (a bad name, a link), saying which call.
    """
    staged = workdir / PUT_FOLDER
    try:
        return [_commit(put, workdir, log) for put in puts]
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _commit(put: dict[str, Any], workdir: Path, log: logging.Logger) -> dict[str, Any]:
    from flow_airflow.datasets.events import announcer
    from flow_airflow.datasets.store import SHORT, DatasetError, configured

    dataset, folder = str(put["dataset"]), str(put.get("folder") or "")
    call = f"put_files to dataset '{dataset}'" if folder else f"datasets.create(name='{dataset}')"
    said: list[str] = []
    try:
        store = configured()
        base = None if put.get("blank") else store.latest(dataset)
        with tempfile.TemporaryDirectory(prefix="flow-airflow-put-") as empty:
            files = (workdir / folder).resolve() if folder else Path(empty)
            if folder and (workdir / PUT_FOLDER).resolve() not in files.parents:
                raise DatasetError(f"its files were staged outside {PUT_FOLDER}/ ({folder})")
            commit, new = store.push(dataset, files, announce=announcer(dataset, said), base=base)
            count = sum(1 for p in files.rglob("*") if p.is_file())
    except DatasetError as e:
        raise ExperimentFailed(f"the experiment's {call} could not be committed: {e}") from None
    if new:
        log.info(
            "%s: new commit %s of '%s' (%d file(s) put%s)",
            call,
            commit[:SHORT],
            dataset,
            count,
            f" over commit {base[:SHORT]}" if base else "",
        )
    else:
        log.info("%s: unchanged, the dataset already has this content as commit %s", call, commit[:SHORT])
    for line in said:
        log.info("%s", line)
    return {"dataset": dataset, "commit": commit, "new": new, "files": count, "event": said[0] if said else ""}


def sdk_requirement(line: str) -> str | None:
    """The SDK package a ``requirements.txt`` line installs (``cnvrg``, ``cnvrgv2``), else None."""
    found = _SDK_REQUIREMENT.match(line)
    return None if found is None else ("cnvrgv2" if found.group(1) else "cnvrg")


def without_sdks(requirements: Path, log: logging.Logger) -> Path | None:
    """``requirements`` without its lines that name cnvrg's SDKs (the stand-ins on the experiment's path
    answer their calls; the real packages need cnvrg's server), each left out said in the log.

    :returns: the filtered file written beside it (``.flow-airflow-requirements.txt``), or None when no line
        names them (the file is installed as it is). See :func:`installs_anything`.
    """
    lines = requirements.read_text(errors="replace").splitlines()
    kept = []
    for number, line in enumerate(lines, 1):
        package = sdk_requirement(line)
        if package is None:
            kept.append(line)
        else:
            log.warning(
                "requirements.txt line %d (%s) is left out: flow-airflow's stand-in '%s' SDK is on the "
                "experiment's path and stays there",
                number,
                line.strip(),
                package,
            )
    if len(kept) == len(lines):
        return None
    target = requirements.with_name(".flow-airflow-requirements.txt")
    target.write_text("\n".join(kept) + "\n")
    return target


def installs_anything(requirements: Path) -> bool:
    """Whether a requirements file asks for anything (a line that is not blank nor a comment)."""
    return any(line.strip() and not line.lstrip().startswith("#") for line in requirements.read_text().splitlines())
