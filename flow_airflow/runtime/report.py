"""What an experiment's log opens and ends with: what cnvrg shows on its experiment page.

The log opens with the experiment's route (each task before it, with its params and tags),
the inputs staged (a folder per parent experiment), the ``CNVRG_*`` variables it got (secrets
masked), its image and compute; it ends with the tags it recorded and where its files were
stored. Each section is an Airflow log group (``::group::<title>`` ... ``::endgroup::``), folded
in the UI with its title (a one-line summary) showing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from flow_airflow.common.records import Record

if TYPE_CHECKING:
    from flow_airflow.computes.base import Compute, Launch

VALUE_LIMIT = 200  # characters of one value shown (a tag may hold 32 KiB)
LISTED = 100  # lines of one section at most
MASK = "***"


def section(log: logging.Logger, title: str, lines: Iterable[str]) -> None:
    """One folded section of the log: its title, then its lines."""
    log.info("::group::%s", title)
    shown = 0
    for line in lines:
        shown += 1
        if shown > LISTED:
            continue
        log.info("%s", line)
    if shown > LISTED:
        log.info("… and %d more", shown - LISTED)
    log.info("::endgroup::")


def short(value: object) -> str:
    text = str(value)
    return text if len(text) <= VALUE_LIMIT else text[: VALUE_LIMIT - 1] + "…"


def pairs(values: Mapping[str, object]) -> str:
    """``k=v, ...`` (``none`` when empty); the value of a secret-named key as ``***``."""
    return ", ".join(f"{k}={MASK if hidden(k) else short(v)}" for k, v in values.items()) or "none"


def hidden(name: str) -> bool:
    """Whether Airflow's secrets masker hides the value of a variable of this name (``API_TOKEN``...)."""
    from airflow.sdk._shared.secrets_masker import should_hide_value_for_key

    return bool(should_hide_value_for_key(name))


def mask_secrets(env: Mapping[str, str]) -> None:
    """Register the values of secret-named variables with Airflow's secrets masker.

    From then on every log line (the route, the command line, the command's own output)
    shows ``***`` in their place; values of 5 characters or fewer are left to
    ``[logging] min_length_masked_secret``, but the variables section never shows them.
    """
    from airflow.sdk.log import mask_secret

    for name, value in env.items():
        if value and hidden(name):
            mask_secret(value, name)


def route_lines(parents: Mapping[str, list[Record]], upstream: Mapping[str, Mapping[str, Mapping[str, str]]]
                ) -> list[str]:
    """One line per task before this experiment on its route: its experiment(s), params and tags."""
    experiments: dict[str, list[int]] = {}
    for records in parents.values():
        for record in records:
            for title, index in {**record.get("route", {}), record["task"]: record["index"]}.items():
                known = experiments.setdefault(title, [])
                if index not in known:
                    known.append(index)
    lines = []
    for title, indexes in experiments.items():
        which = ", ".join(f"#{i}" for i in sorted(indexes))
        info = upstream.get(title)
        if info is None:
            lines.append(f"{title} {which}: gathered, each with its own params and tags")
        else:
            lines.append(f"{title} {which}: params {pairs(info.get('params', {}))}; tags {pairs(info.get('tags', {}))}")
    return lines


def route_title(parents: Mapping[str, list[Record]]) -> str:
    parts = [f"{title} " + ", ".join(f"#{r['index']}" for r in records) for title, records in parents.items()]
    return "Route: after " + "; ".join(parts) if parts else "Route: the first task of its route"


def input_lines(staged: Mapping[str, tuple[Path, str, str]]) -> list[str]:
    """``staged``: folder -> (where it is, the parent experiment, the stored location it was copied from)."""
    from flow_airflow.runtime.environment import env_name

    return [f"input/{folder} (INPUT_{env_name(folder)}={path}): the files of {parent}, from {source}"
            for folder, (path, parent, source) in staged.items()]


def variable_lines(env: Mapping[str, str]) -> list[str]:
    """``NAME=value`` of every ``CNVRG_*`` variable, sorted; secret-named ones as ``***``."""
    return [f"{name}={MASK if hidden(name) else short(value)}"
            for name, value in sorted(env.items()) if name.startswith("CNVRG_")]


def compute_lines(compute: Compute, launch: Launch) -> list[str]:
    """compute, image, requirements (each with what the compute leaves out of it), working directory, command."""
    ignored = compute.ignores(launch)
    image, resources = launch.image, launch.resources

    def said(key: str) -> str:
        return f" ({ignored[key]})" if key in ignored else ""

    lines = [f"compute: {compute.name} ({compute.kind})"]
    lines.append(f"image: {image or 'none named'}{said('image')}")
    if resources:
        lines.append(f"requirements: {pairs(resources)}{said('requirements')}")
    where = "" if Path(launch.cwd) == launch.workspace else f" ({launch.workspace} on the worker)"
    lines.append(f"working directory: {launch.cwd}{where}")
    lines.append(f"command: {launch.shown}")
    return lines


def compute_title(compute: Compute, image: str | None) -> str:
    return f"Compute: {compute.name} ({compute.kind})" + (f", image {image}" if image else "")


def opening(
    log: logging.Logger,
    *,
    parents: Mapping[str, list[Record]],
    upstream: Mapping[str, Mapping[str, Mapping[str, str]]],
    staged: Mapping[str, tuple[Path, str, str]],
    launch: Launch,
    compute: Compute,
) -> None:
    """The log's opening sections: route, inputs, variables, compute (secrets masked first).

    ``launch.shown``: the command line as the log may show it (secret params already ``***``).
    """
    mask_secrets(launch.env)
    section(log, route_title(parents), route_lines(parents, upstream) or ["no task before it"])
    section(log, f"Inputs: {len(staged)} folder(s)", input_lines(staged) or ["none staged"])
    names = variable_lines(launch.env)
    section(log, f"Variables: {len(names)} CNVRG_*", names)
    section(log, compute_title(compute, launch.image), compute_lines(compute, launch))


def closing(log: logging.Logger, tags: Mapping[str, str], stored: str, *, failed: bool = False) -> None:
    """The log's closing: the tags recorded, then where the experiment's files are stored."""
    section(log, f"Tags recorded: {len(tags)}",
            [f"{k}={MASK if hidden(k) else short(v)}" for k, v in tags.items()] or ["none"])
    if failed:
        log.error("the failed experiment's files are stored at %s (for debugging: no task after it uses them)",
                  stored)
    else:
        log.info("artifacts stored at %s", stored)
