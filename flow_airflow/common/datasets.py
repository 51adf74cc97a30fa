"""What a dataset's name may be, checked where a flow names one (``validate``) and where the store
makes or reads one (``flow-airflow dataset``, a data task at run time): a name is a folder of the
store, so nothing in it may lead out of the store (``../outside``, ``/etc``)."""

from __future__ import annotations

import re

#: A dataset or version name: letters, digits, '.', '_' and '-', starting with a letter or digit.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: The store's own folders, which no dataset may be named.
RESERVED = frozenset({"objects", "cache"})


def name_problem(name: str, what: str = "dataset") -> str | None:
    """Why ``name`` cannot be a dataset's (or, with ``what``, a version's) name; None when it can.

    :param name: the name as written.
    :param what: what the name is for, in the sentence: "dataset", "version name".
    """
    if what == "dataset" and name in RESERVED:
        return f"'{name}' cannot be a dataset's name: the store keeps its own {name} folder"
    if not NAME.fullmatch(name):
        return (f"'{name}' cannot be a {what}: use letters, digits, '.', '_' and '-', starting "
                "with a letter or digit")
    return None
