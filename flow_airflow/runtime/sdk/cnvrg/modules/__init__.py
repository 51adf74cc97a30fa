"""cnvrg v1's errors (``from cnvrg.modules import UserError``; also ``cnvrg.modules.errors``)."""

from __future__ import annotations

__all__ = ["CnvrgError", "UserError"]


class CnvrgError(Exception):
    """An error of the cnvrg SDK; here also a call that has no stand-in in flow-airflow (its message names it)."""


class UserError(CnvrgError):
    """A call made wrongly (its arguments)."""
