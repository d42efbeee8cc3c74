"""Atomic file writes: a reader never sees half a cache, result or checkpoint."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text"]


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; move it onto ``path`` on success.

    The temporary file lives in the same folder, so the final ``os.replace`` is
    atomic on POSIX file systems. On an exception the temporary file is removed
    and ``path`` is left as it was.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> target = os.path.join(tempfile.mkdtemp(), "a.npy")
    >>> with atomic_path(target) as tmp:
    ...     with open(tmp, "wb") as f:
    ...         np.save(f, np.arange(3))
    >>> np.load(target).tolist()
    [0, 1, 2]
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path.

    Examples
    --------
    >>> import tempfile, os
    >>> target = atomic_write_text(os.path.join(tempfile.mkdtemp(), "a.txt"), "done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
