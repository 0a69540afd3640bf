"""Exception types shared by every package.

Each subclass also derives from the builtin a caller would naturally catch (``ValueError`` for bad input,
``FloatingPointError`` for non-finite numbers), so library users need not import these to handle them.
"""

from __future__ import annotations


class RVPerceiverError(Exception):
    """Base class of every error this library raises on purpose."""


class InputError(RVPerceiverError, ValueError):
    """A tensor or argument has the wrong rank, shape, dtype, range or contains NaN/Inf."""


class DataError(RVPerceiverError, ValueError):
    """A dataset on disk is missing, malformed or inconsistent (names the file and the key)."""


class ConfigError(RVPerceiverError, ValueError):
    """A configuration is malformed, has an unknown key or a value of the wrong type or range."""


class CheckpointError(RVPerceiverError, ValueError):
    """A checkpoint is missing, corrupt, or does not match the model it is loaded into."""


class NonFiniteError(RVPerceiverError, FloatingPointError):
    """Training produced a NaN or Inf loss or gradient."""
