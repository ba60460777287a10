"""Error types shared by every stage.

The split follows Keras Tuner: a :class:`TrialFailed` ends one trial and the study goes on; a
:class:`FatalError` (bad config, bad data) stops the program with one readable line.
"""

from __future__ import annotations


class TunelabError(Exception):
    """Base of every error tunelab raises on purpose."""


class FatalError(TunelabError):
    """Stops the whole program; ``str(err)`` is one line meant for the user."""


class ConfigError(FatalError, ValueError):
    """An invalid experiment config: names the field, the bad value and what is allowed."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DataError(FatalError, ValueError):
    """Bad input data: names the file, column and row where it can."""


class TrialFailed(TunelabError):
    """One trial cannot go on (NaN loss, OOM, a bad combination); the study continues."""

    def __init__(self, message: str, *, reason: str = "failed") -> None:
        super().__init__(message)
        self.reason = reason
