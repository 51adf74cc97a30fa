"""cnvrgv2's errors (``from cnvrgv2.errors import CnvrgHttpError``)."""

from __future__ import annotations

__all__ = ["CnvrgArgumentsError", "CnvrgError", "CnvrgHttpError", "NoStandIn"]


class CnvrgError(Exception):
    """An error of the cnvrgv2 SDK."""


class CnvrgArgumentsError(CnvrgError):
    """A call made with wrong arguments."""


class CnvrgHttpError(CnvrgError):
    """What cnvrg's server answers with an error; here also a call that has no stand-in in flow-airflow, and a
    dataset the dataset store does not have (its message says which)."""

    def __init__(self, message: str = "", status_code: int = 404) -> None:
        super().__init__(message)
        self.status_code = status_code


class NoStandIn(CnvrgHttpError, AttributeError):
    """A method or attribute of an SDK object that has no stand-in here: also an ``AttributeError``, so that
    ``hasattr`` answers False (a call raises it, naming the call)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message, 501)
