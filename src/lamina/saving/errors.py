"""SavingError: the one error type of lamina's saving and loading code.

Every problem with a file — not a model file at all, truncated, corrupted, hostile, or describing
a model that cannot be rebuilt — reaches the caller as a SavingError (a ValueError) whose message
names the file and what is wrong; the underlying exception, if any, is chained as its cause.
"""

from __future__ import annotations


class SavingError(ValueError):
    """A model or weights file could not be written or read; the message says why."""
