"""Shared test set-up: data locations, thread limits, the dataset gate."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before numpy/torch import: BLAS oversubscription made runs 10-30x slower here.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest

from neurodecode.paths import data_root, mne_data_path

os.environ.setdefault("MNE_DATA", str(mne_data_path()))
os.environ.setdefault("MOABB_DOWNLOAD_PROVIDER", "upstream")
# A fresh cache per test session keeps tests honest (no stale entries).
os.environ.setdefault("NEURODECODE_CACHE", tempfile.mkdtemp(prefix="neurodecode-test-cache-"))

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_dataset(folder: str, marker: str = "") -> Path:
    """Return ``<data root>/<folder>``; fail under CI, skip elsewhere, when missing."""
    path = (mne_data_path() if folder == "mne_data" else data_root() / folder)
    target = path / marker if marker else path
    if not target.exists():
        msg = (
            f"dataset folder {target} is missing. Put the shared datasets next to the checkout "
            f"(../shared/datasets) or set NEURODECODE_DATA to the folder holding {folder}/"
        )
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
