"""Routes, as cnvrg defines them, in plain functions over experiment records.

An *experiment* is one run of a flow task; its record is a small JSON-able dict kept in XCom.
A *route* of a task is a consistent choice of parent experiments times one permutation of
the task's own params: ``N = X * Y``, several parents multiply, but a route never mixes two
experiments of the same ancestor (``record["route"]`` says which experiment of every task
upstream it came from). The same functions plan routes at compile time (over stand-in
records) and at run time (over the real ones), so ``plan`` and the run cannot disagree.
No Airflow import here: this module runs in planning tasks and in unit tests alike.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any, NotRequired, TypedDict

from flow_airflow.common.records import Record, Status, status_of

# Each name ends at its last non-blank character (no lazy group before '\s*': linear in the text).
# The braces may be spaced, as cnvrg's documentation writes them: '{ { Task A.model accuracy } }'.
TEMPLATE = re.compile(
    r"\{\s*\{\s*(?P<task>[^.{}|]*[^.{}|\s])\s*\.\s*(?P<tag>[^{}|]*[^{}|\s])\s*(?P<hyper>\|\s*hyper\s*)?\}\s*\}"
)
LABEL_LIMIT = 250  # Airflow's rendered_map_index column


class Route(TypedDict):
    """What one experiment is given: its params and the parent experiments it follows."""

    params: list[list[str]]  # [key, value] in the order the flow lists them
    parents: dict[str, list[int]]  # parent title -> experiment indexes (several when gathered)
    label: NotRequired[str]  # compiled DAGs leave it out: the experiment makes it again from its parents


class RouteError(Exception):
    """Routes that cannot be made from the upstream results (a missing tag, say)."""


def slug(title: str) -> str:
    """cnvrg's folder name for a task: lower case, spaces and hyphens to underscores, other symbols removed.

    A title in another script than ASCII is transliterated, with a hash (see common/ids.py).
    """
    from flow_airflow.common.ids import task_slug

    return task_slug(title)


def split_values(text: str) -> list[str]:
    """The values of a comma-separated grid, stripped; empty items are dropped (``"a, b,"`` is a, b).

    One rule for a CSV param value in the file and a ``| hyper`` tag at run time (cnvrg: "comma
    separated values ... an experiment for each").
    """
    return [part.strip() for part in text.split(",") if part.strip()]


def lineage(chosen: Mapping[str, list[Record]], gathered: Iterable[str] = ()) -> dict[str, int]:
    """Which experiment of every task upstream a route follows (gathered parents name none)."""
    gathered = set(gathered)
    result: dict[str, int] = {}
    for title, records in chosen.items():
        if title not in gathered and len(records) == 1:
            result.update(records[0].get("route", {}))
    return result


def record_route(
    title: str, index: int, chosen: Mapping[str, list[Record]], gathered: Iterable[str] = ()
) -> dict[str, int]:
    """A record's ``route``: the :func:`lineage` of experiment ``index`` of ``title`` that follows ``chosen``
    (title -> the parent experiments), and itself."""
    return {**lineage(chosen, gathered), title: index}


def combinations(parents: Mapping[str, list[Record]], gathered: Iterable[str] = ()) -> list[dict[str, list[Record]]]:
    """Consistent choices of one experiment per parent.

    Parents that share an ancestor must agree on its experiment. A *gathered* parent (one
    tested by a condition) contributes all its given experiments together, as one choice.
    """
    gathered = set(gathered)
    choices: list[tuple[dict[str, list[Record]], dict[str, int]]] = [({}, {})]
    for title, records in parents.items():
        if title in gathered:
            choices = [({**chosen, title: list(records)}, lineage) for chosen, lineage in choices]
            continue
        choices = [
            ({**chosen, title: [record]}, {**lineage, **record.get("route", {})})
            for chosen, lineage in choices
            for record in records
            if not lineage or all(lineage.get(k, v) == v for k, v in record.get("route", {}).items())
        ]
    return [chosen for chosen, _ in choices]


def upstream_of(chosen: Mapping[str, list[Record]]) -> dict[str, dict[str, dict[str, str]]]:
    """Params and tags of every task before, on this route (a task gathered several times: none)."""
    seen: dict[str, list[dict[str, dict[str, str]]]] = {}
    for records in chosen.values():
        for record in records:
            for title, info in record.get("upstream", {}).items():
                seen.setdefault(title, []).append(info)
            seen.setdefault(record["task"], []).append({"params": record["params"], "tags": record["tags"]})
    return {title: infos[0] for title, infos in seen.items() if all(i == infos[0] for i in infos)}


def tag_value(upstream: Mapping[str, Mapping[str, Mapping[str, str]]], task: str, tag: str) -> str:
    """The value of ``{{ task.tag }}`` on a route: a tag, or else a param, of that task."""
    info = upstream.get(task)
    if info is None:
        raise RouteError(f"no experiment of '{task}' is on this route")
    for kind in ("tags", "params"):
        if tag in info.get(kind, {}):
            return str(info[kind][tag])
    raise RouteError(f"'{task}' did not log the tag '{tag}' (tags it logged: {', '.join(info['tags']) or 'none'})")


def render(value: str, upstream: Mapping[str, Mapping[str, Mapping[str, str]]]) -> str:
    """Replace every ``{{ Task.tag }}`` in a param value by that tag's value on the route."""
    return TEMPLATE.sub(lambda m: tag_value(upstream, m["task"], m["tag"]), value)


def grid(
    params: list[tuple[str, list[str]]], upstream: Mapping[str, Any] | None = None, *, keep_hyper: bool = False
) -> list[list[list[str]]]:
    """Every permutation of the params, in order; ``| hyper`` values expand from the route's tags.

    ``keep_hyper``: a ``| hyper`` value stays one value, as written (a route after a failed experiment).
    """
    axes: list[list[list[str]]] = []
    for key, values in params:
        expanded: list[str] = []
        for value in values:
            match = TEMPLATE.fullmatch(value.strip())
            if match and match["hyper"] and not keep_hyper:
                if upstream is None:
                    raise RouteError(f"param '{key}' is known only at run time")
                raw = tag_value(upstream, match["task"], match["tag"])
                expanded += split_values(raw)
            else:
                expanded.append(value)
        axes.append([[key, v] for v in expanded])
    return [list(p) for p in itertools.product(*axes)]


def varying(params: Iterable[tuple[str, list[str]]]) -> set[str]:
    """The keys of the params that can differ between a task's routes: several values, or a value
    made from a tag (``{{ Task.tag }}``, ``| hyper``). A one-value param is the same on every route."""
    return {key for key, values in params if len(values) > 1 or any("{{" in v for v in values)}


def labels(params: list[list[str]], chosen: Mapping[str, list[Record]], varies: Iterable[str]) -> dict[str, str]:
    """The label parts of a route: ``{"": its own varying params, title: those of each task before it}``.

    Nearest task first; a task gathered several times joins its experiments' parts with " / ", and
    a task further up is kept only when all of them agree on it. Empty parts are left out.
    """
    varies = set(varies)
    own = ", ".join(f"{k}={v}" for k, v in params if k in varies)
    parts: dict[str, str] = {"": own} if own else {}
    for title, records in chosen.items():
        mine = [_own_part(r) for r in records]
        if joined := " / ".join(dict.fromkeys(p for p in mine if p)):
            parts.setdefault(title, joined)
        above = [{k: v for k, v in r.get("labels", {}).items() if k} for r in records]
        for task, part in above[0].items() if above else ():
            if all(a.get(task) == part for a in above):
                parts.setdefault(task, part)
    return parts


def _own_part(record: Record) -> str:
    return record.get("labels", {}).get("", "")


def label_text(parts: Mapping[str, str]) -> str:
    """A route's label from its parts: ``depth=8 | Grid Search A: lr=0.1``; "" when it has none.

    Longer than Airflow's 250 characters: cut, with a hash of the whole text so that it stays unique.
    """
    text = " | ".join(part if title == "" else f"{title}: {part}" for title, part in parts.items())
    if len(text) <= LABEL_LIMIT:
        return text
    import hashlib

    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    return text[: LABEL_LIMIT - 11] + f"… #{digest}"


def route_label(
    route: Mapping[str, Any], chosen: Mapping[str, list[Record]], varies: Iterable[str]
) -> tuple[str, dict[str, str]]:
    """The label of a route that follows ``chosen``, and its parts (:func:`labels`): as planned
    (``route["label"]``), else made from its params (``[key, value]`` pairs) and ``chosen``."""
    parts = labels(route["params"], chosen, varies)
    return route.get("label") or label_text(parts), parts


def label(params: list[list[str]], chosen: Mapping[str, list[Record]], varies: Iterable[str] | None = None) -> str:
    """A route's label (see :func:`labels`); ``varies`` None: all its own params."""
    return label_text(labels(params, chosen, [k for k, _ in params] if varies is None else varies))


def plan_routes(
    params: list[tuple[str, list[str]]],
    parents: Mapping[str, list[Record]],
    *,
    single_mode: bool = False,
    gathered: Iterable[str] = (),
    max_jobs: int | None = None,
) -> list[Route]:
    """The routes of a task, given its params and the experiments of its parents.

    ``{{ Task.tag }}`` values stay as they are: the experiment renders them when it starts. A
    route after a failed experiment (a record with ``failed``) is planned too, with its ``| hyper``
    values unexpanded: its experiment does not run, it is marked skipped saying why.

    :param max_jobs: the task's ``max_jobs`` (cnvrg's flow page): at most that many experiments in its own grid
        (per route of the tasks before it); None: no limit.
    :raises RouteError: the grid is larger than ``max_jobs`` (a grid is never cut: which routes to drop is a guess).
    """
    choices = [{}] if single_mode else combinations(parents, gathered)
    varies = varying(params)
    routes: list[Route] = []
    for chosen in choices:
        failed = any(status_of(r) is not Status.SUCCESS for records in chosen.values() for r in records)
        permutations = grid(params, upstream_of(chosen), keep_hyper=failed)
        if max_jobs and len(permutations) > max_jobs:
            raise RouteError(f"its grid has {len(permutations)} experiments, more than its max_jobs ({max_jobs}): "
                             "flow-airflow runs every route of a grid, never a part of it; raise max_jobs "
                             "(-1: no limit) or give fewer values")
        for permutation in permutations:
            routes.append(
                Route(
                    params=permutation,
                    parents={title: [r["index"] for r in records] for title, records in chosen.items()},
                    label=label(permutation, chosen, varies),
                )
            )
    return routes


def stand_in_records(title: str, routes: list[Route], parents: Mapping[str, list[Record]],
                     varies: Iterable[str] = ()) -> list[Record]:
    """The records a task's routes will produce, as far as they are known before it runs
    (``varies``: the keys of its params that differ between its routes, see :func:`varying`)."""
    by_index = {t: {r["index"]: r for r in records} for t, records in parents.items()}
    records = []
    for index, route in enumerate(routes):
        chosen = {parent: [by_index[parent][i] for i in indexes] for parent, indexes in route["parents"].items()}
        records.append(
            Record(
                task=title,
                index=index,
                params=dict(route["params"]),
                tags={},
                route=record_route(title, index, chosen),
                upstream={},
                label=route["label"],
                labels=labels(route["params"], chosen, varies),
            )
        )
    return records
