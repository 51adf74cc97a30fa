"""Tags: ``cnvrg_tag_<key>: <value>`` lines on an experiment's standard output."""

from __future__ import annotations

import re

TAG_LINE = re.compile(r"^\s*cnvrg_tag_(?P<key>[^:]+?)\s*:\s*(?P<value>.*?)\s*$")


def parse_tag(line: str) -> tuple[str, str] | None:
    """The (key, value) a line logs, or None. Extra spaces around the key and value are fine."""
    match = TAG_LINE.match(line)
    return (match["key"].strip(), match["value"]) if match else None
