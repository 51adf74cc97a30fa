"""Airflow ids from flow and task titles, and the limits Airflow puts on them.

A title in ASCII keeps the id it always had (``Two Grid Searches`` -> ``two_grid_searches``).
A title with other letters (accented, Chinese, Hebrew, Cyrillic ...) is transliterated to
ASCII (``text_unidecode``, which Airflow installs with ``python-slugify``) and, since that
loses information (``Prévision`` and ``Prevision`` must not collide), gets the first 8 hex
digits of the title's SHA-256 appended: ``Обучение модели`` -> ``obuchenie_modeli_1c0e5f3a``.
The UI still shows the title itself (``dag_display_name``, ``task_display_name``).

Airflow's limits (``airflow.sdk.definitions._internal.node.validate_key`` and
``validate_group_key``, ``airflow.models.base.ID_LEN``, the ``String(2000)`` display name
columns, ``TAG_MAX_LEN``) are checked by ``spec.ids.id_issues``, so that ``validate`` refuses,
with the line, what the DAG build would fail on.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

DAG_ID_LIMIT = 250  # validate_key, and the dag_id columns (ID_LEN)
GROUP_ID_LIMIT = 200  # validate_group_key
DISPLAY_NAME_LIMIT = 2000  # dag_display_name, task_display_name: String(2000)
TAG_LIMIT = 100  # TAG_MAX_LEN
#: What render/dag.py appends to a task's title for the display names of its tasks.
LONGEST_DISPLAY_SUFFIX = len(": condition")


def title_hash(title: str) -> str:
    """8 hex digits of the SHA-256 of a title (NFC, stripped): what keeps transliterated ids distinct."""
    return hashlib.sha256(unicodedata.normalize("NFC", title.strip()).encode()).hexdigest()[:8]


def ascii_of(title: str) -> tuple[str, bool]:
    """``title`` in ASCII, and whether it was ASCII already (nothing lost)."""
    if title.isascii():
        return title, True
    try:
        from text_unidecode import unidecode
    except ImportError:  # pragma: no cover - Airflow installs it; accents at least
        return unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode(), False
    return unidecode(title), False


def dag_id_for(title: str) -> str:
    """A DAG id from a flow title: letters, digits, ``_ . -``; readable, stable and distinct."""
    text, exact = ascii_of(title.strip())
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.-").lower()
    if exact:
        return base or "flow"
    return f"{base or 'flow'}_{title_hash(title)}"


def task_slug(title: str) -> str:
    """cnvrg's folder name for a task (lower case, spaces and hyphens to underscores, other symbols removed:
    ``Train-Valid Split`` -> ``train_valid_split``, as cnvrg's published blueprints read ``/input/<task>``).

    Also the task's TaskGroup id. A title that is not ASCII gets its hash appended (see the
    module's docstring); one without any letter or digit gives '' (refused by the checks).
    """
    text, exact = ascii_of(title.strip())
    base = re.sub(r"[^a-z0-9_]", "", re.sub(r"[ -]", "_", text.strip().lower()))
    if exact or not any(ch.isalnum() for ch in title):
        return base if exact else ""
    return f"{base.strip('_') or 'task'}_{title_hash(title)}"


# --- task ids: what the DAG names its tasks, and what reads its runs finds them by -------------------
# A flow task is a TaskGroup whose id is its slug (task_slug); in it, by role:
RUN = "run"  # its experiments: <slug>.run, a mapped task
ROUTES = "routes"  # plans its routes at run time: <slug>.routes
CONDITION = "condition"  # plans them from what passed its metric conditions: <slug>.condition
APPROVAL = "approval"  # its human validation gate: <slug>.approval
#: The task after the flow's last tasks that fails the run when anything failed (outside any group).
OUTCOME = "flow-outcome"


def task_id(slug: str, role: str) -> str:
    """The task id of ``role`` (:data:`RUN`, :data:`ROUTES`, :data:`CONDITION`, :data:`APPROVAL`) of the
    flow task ``slug``: ``<slug>.<role>``."""
    return f"{slug}.{role}"


def run_task_id(slug: str) -> str:
    """The task id of the experiments of the flow task ``slug``: ``<slug>.run``."""
    return task_id(slug, RUN)


def suffix(role: str) -> str:
    """What the task ids of ``role`` end with (``.run``): for queries over the task ids of a run."""
    return f".{role}"


def is_role(task_id: str, role: str) -> bool:
    """Whether ``task_id`` is the ``role`` task of a flow task (``is_role("train.run", RUN)``)."""
    return task_id.endswith(suffix(role))


def group_of(task_id: str) -> str:
    """The flow task's slug (its TaskGroup id) of one of its task ids; ``""`` for :data:`OUTCOME`."""
    return task_id.rpartition(".")[0]
