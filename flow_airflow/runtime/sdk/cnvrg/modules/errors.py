"""cnvrg v1's errors, where cnvrg's SDK keeps them (``from cnvrg.modules.errors import CnvrgError``)."""

from __future__ import annotations

from cnvrg.modules import CnvrgError, UserError

__all__ = ["CnvrgError", "UserError"]
