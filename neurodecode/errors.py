"""Exceptions raised by neurodecode.

Every error a user can cause with a bad file or a bad argument is one of
these, with a message that names the file or argument and says what is wrong.
"""

from __future__ import annotations

__all__ = ["NeurodecodeError", "DataError", "DatasetNotFoundError"]


class NeurodecodeError(Exception):
    """Base class of every error neurodecode raises on purpose."""


class DataError(NeurodecodeError, ValueError):
    """A file or an array cannot be used: corrupt, truncated or inconsistent.

    Parameters
    ----------
    message : str
        What is wrong and, where possible, what to do about it.
    path : str or os.PathLike, optional
        The offending file; it is put at the front of the message.
    """

    def __init__(self, message: str, path=None):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class DatasetNotFoundError(NeurodecodeError, FileNotFoundError):
    """A registered dataset is not available on this machine (nothing is downloaded)."""
