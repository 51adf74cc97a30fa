"""The image builder's content key and the machine facts it reads (no engine needed)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest


def test_the_key_follows_the_recipe(image_builder: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same recipe, same tag; another package list or builder version, another tag."""
    tag = image_builder.image_tag("python")
    assert tag.startswith("flow-airflow/python:") and len(tag.rsplit(":", 1)[1]) == 12
    assert image_builder.image_tag("python") == tag
    recipe = image_builder.RECIPES["python"]
    monkeypatch.setitem(image_builder.RECIPES, "python",
                        dataclasses.replace(recipe, packages=(*recipe.packages, "python3-numpy")))
    with_numpy = image_builder.image_tag("python")
    assert with_numpy != tag
    monkeypatch.setattr(image_builder, "BUILDER_VERSION", image_builder.BUILDER_VERSION + 1)
    assert image_builder.image_tag("python") not in (tag, with_numpy)


def test_suite_and_mirror_of_this_machine(image_builder: Any) -> None:
    """The machine's Debian release and the mirror apt uses for it (debootstrap's arguments)."""
    suite = image_builder.debian_suite()
    assert suite.isalpha() and suite.islower()
    assert image_builder.apt_mirror(suite).startswith(("http://", "https://"))


def test_unknown_recipe_is_refused(image_builder: Any) -> None:
    known = r"python, postgres, redis, airflow-debian, airflow"
    with pytest.raises(image_builder.ImageError, match=rf"no image recipe 'nodejs' \(known: {known}\)"):
        image_builder.image_tag("nodejs")
