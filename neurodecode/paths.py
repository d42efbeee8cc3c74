"""Where data and caches live on disk.

neurodecode never downloads data. It looks for datasets, in this order, under

1. the folder named by the ``NEURODECODE_DATA`` environment variable;
2. ``../shared/datasets`` next to a source checkout of neurodecode;
3. ``~/neurodecode_data``.

MNE/MOABB datasets (PhysioNet MI) are looked up in ``MNE_DATA`` when it is
set, else in ``<data root>/mne_data``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_root", "dataset_path", "mne_data_path", "cache_dir"]

_CHECKOUT_SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


def data_root() -> Path:
    """Return the folder that holds the datasets (it may not exist).

    Examples
    --------
    >>> from neurodecode.paths import data_root
    >>> root = data_root()  # NEURODECODE_DATA, ../shared/datasets or ~/neurodecode_data
    """
    env = os.environ.get("NEURODECODE_DATA")
    if env:
        return Path(env).expanduser()
    if _CHECKOUT_SHARED.is_dir():
        return _CHECKOUT_SHARED
    return Path("~/neurodecode_data").expanduser()


def dataset_path(folder: str) -> Path:
    """Return ``<data root>/<folder>`` (it may not exist)."""
    return data_root() / folder


def mne_data_path() -> Path:
    """Return the MNE data folder used for MNE/MOABB datasets."""
    env = os.environ.get("MNE_DATA")
    if env:
        return Path(env).expanduser()
    return data_root() / "mne_data"


def cache_dir() -> Path:
    """Return the cache folder (``NEURODECODE_CACHE``, default ``~/.cache/neurodecode``)."""
    env = os.environ.get("NEURODECODE_CACHE")
    path = Path(env).expanduser() if env else Path("~/.cache/neurodecode").expanduser()
    return path
