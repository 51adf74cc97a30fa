"""cnvrg v1's errors (``from cnvrg.modules import UserError``; also ``cnvrg.modules.errors``)."""

from __future__ import annotations

__all__ = ["CnvrgError", "NoStandIn", "UserError"]


class CnvrgError(Exception):
    """An error of the cnvrg SDK; here also a call that has no stand-in in flow-airflow (its message names it)."""


class UserError(CnvrgError):
    """A call made wrongly (its arguments)."""


class NoStandIn(CnvrgError, AttributeError):
    """A method or attribute of an SDK object that has no stand-in here: also an ``AttributeError``, so that
    ``hasattr`` answers False (a call raises it, naming the call)."""
