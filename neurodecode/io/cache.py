"""On-disk cache of loaded `Trials` (one HDF5 file per load).

A cache entry is keyed by a hash of the loader name, its arguments, the
neurodecode version and the size and modification time of every source file,
so changing a file or an argument never returns a stale result. Entries are
written atomically (see `neurodecode.atomic`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ..paths import cache_dir
from ..trials import Trials

__all__ = ["cached_trials", "cache_key"]

logger = logging.getLogger(__name__)


def cache_key(name: str, params: dict, files: Iterable[os.PathLike] = ()) -> str:
    """Hash of everything that determines a load's result."""
    from .. import __version__

    h = hashlib.sha256()
    h.update(json.dumps({"name": name, "params": params, "version": __version__},
                        sort_keys=True, default=str).encode())
    for p in sorted(str(Path(p).resolve()) for p in files):
        st = os.stat(p)
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def cached_trials(
    name: str,
    params: dict,
    files: Iterable[os.PathLike],
    build: Callable[[], Trials],
    *,
    use_cache: bool = True,
    compression: str | None = "gzip",
) -> Trials:
    """Return ``build()``, reading it from the cache when an entry exists.

    Parameters
    ----------
    name : str
        Loader name (a file-name prefix of the entry).
    params : dict
        The loader's arguments (JSON-serialisable or ``str``-able).
    files : iterable of path
        Source files whose size and mtime enter the key.
    build : callable
        Makes the `Trials` from the source files.
    use_cache : bool
        False bypasses the cache (neither read nor written).
    compression : {"gzip", "lzf", None}
        HDF5 filter for ``X`` (`Trials.save`). Filtered EEG in float64 barely
        compresses (~4 %), while gzip makes reading it 3-5x slower: EEG
        loaders pass None.
    """
    if not use_cache or os.environ.get("NEURODECODE_NO_CACHE"):
        return build()
    files = list(files)
    path = cache_dir() / f"{name}-{cache_key(name, params, files)}.h5"
    if path.exists():
        try:
            return Trials.load(path)
        except Exception as err:  # a damaged entry is rebuilt, never trusted
            logger.warning("ignoring damaged cache entry %s (%s)", path, err)
    trials = build()
    try:
        trials.save(path, compression=compression)
    except OSError as err:  # a read-only cache must not break loading
        logger.warning("could not write cache entry %s (%s)", path, err)
    return trials
