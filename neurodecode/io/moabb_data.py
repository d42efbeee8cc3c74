"""MOABB datasets and paradigms → `Trials`, offline, with an HDF5 cache.

MOABB 1.7 reaches for the network even when every file is on disk: with the
default download provider (``auto``) it first tries to pre-fetch each subject
from the NEMAR store (5 retries per call, about 40 s per subject offline),
then hands each file to ``pooch.retrieve``; and `PhysionetMI(imagined=True)`
also asks for the hands/feet runs 6/10/14, which a left/right copy does not
have. `moabb_offline` removes all of that for the duration of a load:

* ``MOABB_DOWNLOAD_PROVIDER=upstream`` (no NEMAR pre-fetch) and the MNE data
  folder (``MNE_DATA``, see `neurodecode.paths.mne_data_path`) are set in the
  environment, which MNE's ``get_config`` reads before its config file;
* MOABB's ``retrieve`` (pooch) is replaced by a function that returns the
  local file when it exists and raises `DataError` naming the expected path
  when it does not — nothing is ever downloaded;
* ``socket.connect`` to an internet address raises at once, so any network
  attempt that slipped through fails fast instead of retrying for minutes.

Everything is restored on exit. `from_moabb` loads one subject at a time
inside that context and caches each subject's epochs with
`neurodecode.io.cache.cached_trials`, so a second load reads one HDF5 file
per subject and never opens the raw files.

``X`` is in MOABB's array units (the dataset's ``unit_factor``, µV for EEG
datasets), exactly what ``paradigm.get_data(...)`` returns.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import socket
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..paths import mne_data_path
from ..trials import Trials, concatenate_trials
from .cache import cached_trials

__all__ = ["moabb_offline", "from_moabb", "load_physionet_mi", "physionet_mi_files"]

logger = logging.getLogger(__name__)

#: Folder of the PhysioNet EEG motor movement/imagery files under ``MNE_DATA``.
PHYSIONET_SUBDIR = Path("MNE-eegbci-data") / "files" / "eegmmidb" / "1.0.0"

_INET = {socket.AF_INET, getattr(socket, "AF_INET6", socket.AF_INET)}


class NetworkBlockedError(ConnectionRefusedError):
    """A network connection was attempted while neurodecode loads data offline."""


def _is_loopback(address) -> bool:
    import ipaddress

    host = address[0] if isinstance(address, tuple) and address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def _no_internet():
    """Make ``socket.connect`` to an internet address fail at once (local sockets still work)."""
    original = socket.socket.connect

    def connect(self, address, *args, **kwargs):
        # Loopback stays open: other threads may talk to local services (Ray, a database).
        if self.family in _INET and not _is_loopback(address):
            raise NetworkBlockedError(
                f"neurodecode loads data offline and blocked a connection to {address!r}")
        return original(self, address, *args, **kwargs)

    socket.socket.connect = connect
    try:
        yield
    finally:
        socket.socket.connect = original


def _offline_retrieve(url, known_hash=None, fname=None, path=None, **kwargs):
    """Stand-in for ``pooch.retrieve``: the local copy or a `DataError`, never a download."""
    if path is None:
        raise DataError(f"{url} has no local path; neurodecode never downloads data")
    target = Path(path) / fname if fname is not None else Path(path)
    if target.is_file():
        return str(target)
    raise DataError(
        f"not available locally (would be downloaded from {url}). neurodecode never downloads: "
        "put the file there or point MNE_DATA at a folder that has it", target)


@contextlib.contextmanager
def moabb_offline(mne_data=None, *, block_network: bool = True):
    """Context in which MOABB reads local files only, without any network attempt.

    Parameters
    ----------
    mne_data : path-like, optional
        MNE data folder (default `neurodecode.paths.mne_data_path`: ``MNE_DATA``
        or ``<data root>/mne_data``).
    block_network : bool
        Also make ``socket.connect`` to any non-loopback address fail
        immediately (process-wide while the context is open).

    Examples
    --------
    >>> from moabb.datasets import PhysionetMI                     # doctest: +SKIP
    >>> with moabb_offline():                                      # doctest: +SKIP
    ...     raws = PhysionetMI().get_data([1])
    """
    import mne
    import moabb.datasets.download as download

    root = Path(mne_data) if mne_data is not None else mne_data_path()
    if not root.is_dir():
        raise DataError("MNE data folder not found (set MNE_DATA to the folder holding "
                        "MNE-eegbci-data/ and the other MNE/MOABB datasets)", root)
    env = {
        "MOABB_DOWNLOAD_PROVIDER": "upstream",
        "MNE_DATA": str(root),
        # MOABB looks for MNE_DATASETS_<SIGN>_PATH first; a stale value in
        # ~/.mne would send it elsewhere, so the environment overrides it here.
        "MNE_DATASETS_EEGBCI_PATH": str(root),
    }
    saved_env = {k: os.environ.get(k) for k in env}
    saved_retrieve = download.retrieve
    os.environ.update(env)
    download.retrieve = _offline_retrieve
    try:
        with contextlib.ExitStack() as stack:
            if block_network:
                stack.enter_context(_no_internet())
            stack.enter_context(mne.utils.use_log_level("ERROR"))
            stack.enter_context(warnings.catch_warnings())
            # MOABB's own montage call; not ours to fix, and noisy per run.
            warnings.filterwarnings("ignore", message=".*standard_1005.*", category=FutureWarning)
            yield root
    finally:
        download.retrieve = saved_retrieve
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----------------------------------------------------------------- PhysionetMI
def _is_physionet_mi(dataset) -> bool:
    return type(dataset).__name__ == "PhysionetMI"


def physionet_mi_files(subject: int, runs: Iterable[int], mne_data=None) -> list[Path]:
    """Local paths of PhysioNet eegmmidb runs, laid out as MNE/MOABB expect."""
    root = Path(mne_data) if mne_data is not None else mne_data_path()
    return [root / PHYSIONET_SUBDIR / f"S{subject:03d}" / f"S{subject:03d}R{run:02d}.edf"
            for run in runs]


def _paradigm_events(paradigm, dataset) -> list | None:
    events = getattr(paradigm, "events", None)
    return None if events is None else list(events)


def _prepare_physionet(dataset, paradigm, subjects, root):
    """Copy of a PhysionetMI dataset restricted to what is on disk.

    Drops the hands/feet runs when none of the requested classes needs them
    and their files are absent (the left/right copy has only runs 4/8/12);
    a missing run that *is* needed is a `DataError` naming the file.
    """
    ds = copy.copy(dataset)
    ds.hand_runs = list(dataset.hand_runs)
    ds.feet_runs = list(dataset.feet_runs)
    events = _paradigm_events(paradigm, ds)
    needs_feet = events is None or bool({"feet", "hands"} & set(events))
    missing_feet = [p for s in subjects for p in physionet_mi_files(s, ds.feet_runs, root)
                    if not p.is_file()]
    if ds.feet_runs and missing_feet:
        if needs_feet:
            raise DataError(f"run needed for the classes {events or 'all'} is not available locally "
                            f"({len(missing_feet)} file(s) missing)", missing_feet[0])
        logger.info("PhysionetMI: hands/feet runs %s not on disk and not needed; skipped",
                    ds.feet_runs)
        ds.feet_runs = []
    for s in subjects:
        for p in physionet_mi_files(s, ds.hand_runs, root):
            if not p.is_file():
                raise DataError("PhysionetMI run not available locally", p)
    return ds


def _local_subjects_physionet(dataset, root) -> list[int]:
    return [s for s in dataset.subject_list
            if all(p.is_file() for p in physionet_mi_files(s, dataset.hand_runs, root))]


def _subject_files(dataset, subject, root) -> list[Path]:
    if _is_physionet_mi(dataset):
        return physionet_mi_files(subject, list(dataset.hand_runs) + list(dataset.feet_runs), root)
    return []


# --------------------------------------------------------------------- generic
def _simple(value):
    """JSON-able view of a parameter (None when it is not a plain value)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        items = [_simple(v) for v in value]
        return items
    if isinstance(value, dict):
        return {str(k): _simple(v) for k, v in value.items()}
    return f"<{type(value).__name__}>"


def _describe(obj) -> dict:
    """Class name and plain attributes: what determines a load, for the cache key."""
    attrs = {k: _simple(v) for k, v in sorted(vars(obj).items()) if not k.startswith("_")}
    return {"class": f"{type(obj).__module__}.{type(obj).__qualname__}", **attrs}


def _positions(epochs, ch_names):
    montage = epochs.get_montage()
    if montage is None:
        return None, None
    info = montage.get_positions()
    out = np.full((len(ch_names), 3), np.nan)
    for i, name in enumerate(ch_names):
        pos = info["ch_pos"].get(name)
        if pos is not None and np.all(np.isfinite(pos)):
            out[i] = pos
    if np.isnan(out).all():
        return None, None
    return out, info["coord_frame"]


def _load_subject(dataset, paradigm, subject, name) -> Trials:
    epochs, labels, meta = paradigm.get_data(dataset=dataset, subjects=[subject], return_epochs=True)
    unit = getattr(dataset, "unit_factor", 1.0) or 1.0
    # Same numbers as paradigm.get_data(return_epochs=False): MOABB's array
    # step is epochs.get_data() times the dataset's unit factor.
    X = epochs.get_data(copy=True)
    if unit != 1:
        X *= unit
    ch_names = list(epochs.ch_names)
    positions, frame = _positions(epochs, ch_names)
    meta = meta.reset_index(drop=True)
    return Trials(X, np.asarray(labels).astype(str), meta, sfreq=float(epochs.info["sfreq"]),
                  ch_names=ch_names, modality="eeg", positions=positions, coord_frame=frame,
                  name=name)


def from_moabb(dataset, paradigm, subjects: Sequence[int] | None = None, *, use_cache: bool = True,
               mne_data=None, name: str | None = None) -> Trials:
    """Load a MOABB dataset through a MOABB paradigm into `Trials`, offline.

    Parameters
    ----------
    dataset : moabb.datasets.base.BaseDataset
        E.g. ``PhysionetMI()``. It is not modified (a copy is adjusted when
        runs must be skipped).
    paradigm : moabb.paradigms.base.BaseParadigm
        E.g. ``LeftRightImagery()``; its filters, window and events apply.
    subjects : sequence of int, optional
        Default: every subject of ``dataset.subject_list`` — for PhysionetMI,
        every subject whose runs are on disk.
    use_cache : bool
        Read/write each subject's epochs in the HDF5 cache
        (`neurodecode.io.cache.cached_trials`; key: dataset and paradigm
        class and parameters, subject, and — for PhysionetMI — the size and
        mtime of the subject's files).
    mne_data : path-like, optional
        MNE data folder (default ``MNE_DATA`` / ``<data root>/mne_data``).
    name : str, optional
        `Trials.name` (default: the dataset's MOABB code).

    Returns
    -------
    Trials
        ``X`` (n_trials, n_channels, n_times) in MOABB's array units (µV),
        ``y`` string labels, ``meta`` with ``subject``, ``session``, ``run``
        as MOABB returns them, ``sfreq``, ``ch_names`` and ``positions``
        (head frame, metres) from the dataset's montage when it has one.

    Raises
    ------
    DataError
        A file the load needs is not on disk (its expected path is named);
        nothing is downloaded.

    Examples
    --------
    >>> from moabb.datasets import PhysionetMI
    >>> from moabb.paradigms import LeftRightImagery
    >>> trials = from_moabb(PhysionetMI(), LeftRightImagery(), subjects=[1])  # doctest: +SKIP
    >>> trials.X.shape                                                        # doctest: +SKIP
    (45, 64, 481)
    """
    root = Path(mne_data) if mne_data is not None else mne_data_path()
    physionet = _is_physionet_mi(dataset)
    if subjects is None:
        subjects = _local_subjects_physionet(dataset, root) if physionet else list(dataset.subject_list)
        if not subjects:
            raise DataError(f"no subject of {type(dataset).__name__} is available locally", root)
    subjects = [int(s) for s in subjects]
    unknown = [s for s in subjects if s not in dataset.subject_list]
    if unknown:
        raise ValueError(f"subjects {unknown} are not in {type(dataset).__name__}.subject_list")
    ds = _prepare_physionet(dataset, paradigm, subjects, root) if physionet else dataset
    name = name or getattr(ds, "code", type(ds).__name__)

    parts = []
    with moabb_offline(root):
        for subject in subjects:
            params = {"dataset": _describe(ds), "paradigm": _describe(paradigm), "subject": subject}
            files = [p for p in _subject_files(ds, subject, root) if p.is_file()]
            t0 = time.perf_counter()
            parts.append(cached_trials(
                f"moabb-{name}-s{subject}", params, files,
                lambda s=subject: _load_subject(ds, paradigm, s, name), use_cache=use_cache,
                compression=None))
            logger.info("%s subject %s: %d trials in %.2f s", name, subject,
                        parts[-1].n_trials, time.perf_counter() - t0)
    return parts[0] if len(parts) == 1 else concatenate_trials(parts)


def load_physionet_mi(subjects: Iterable[int] = range(1, 16),
                      events: Sequence[str] = ("left_hand", "right_hand"), *,
                      tmin: float = 0.0, tmax: float | None = None,
                      fmin: float = 8.0, fmax: float = 32.0,
                      use_cache: bool = True) -> Trials:
    """PhysioNet EEG motor imagery (MOABB ``PhysionetMI``), imagined runs, as `Trials`.

    With the defaults this is MOABB's ``LeftRightImagery()`` on
    ``PhysionetMI(imagined=True)`` runs 4/8/12: band-pass 8–32 Hz, window
    0–3 s after the cue (481 samples at 160 Hz), 64 channels, 45 trials per
    subject (left_hand 342 / right_hand 333 over subjects 1–15).

    Parameters
    ----------
    subjects : iterable of int
        PhysioNet subject numbers (1–15 in the shared copy).
    events : sequence of str
        Classes among ``left_hand, right_hand, rest, feet, hands`` (the last
        two need runs 6/10/14, absent from the shared copy).
    tmin, tmax : float
        Window in seconds from the cue (``tmax=None``: end of MOABB's 3-s
        interval), as in MOABB's ``LeftRightImagery``.
    fmin, fmax : float
        Band-pass in Hz (MOABB defaults).
    use_cache : bool
        Use the HDF5 cache (one entry per subject, keyed by these arguments,
        the MOABB/MNE versions and the size and mtime of the subject's EDF
        files). A cache hit neither imports MOABB nor opens an EDF file.

    Examples
    --------
    >>> from neurodecode.io.moabb_data import load_physionet_mi
    >>> trials = load_physionet_mi(subjects=[1, 2])   # doctest: +SKIP
    >>> trials.X.shape                                # doctest: +SKIP
    (90, 64, 481)
    """
    from importlib.metadata import version

    events = [str(e) for e in events]
    subjects = [int(s) for s in subjects]
    root = mne_data_path()
    hand_runs = [4, 8, 12]  # imagined left/right fist (PhysionetMI(imagined=True).hand_runs)
    for s in subjects:
        for p in physionet_mi_files(s, hand_runs, root):
            if not p.is_file():
                raise DataError("PhysionetMI run not available locally", p)
    made = {}

    def objects():
        # Imported only on a cache miss: importing MOABB alone takes seconds
        # (tens of seconds on a busy machine), longer than reading the cache.
        if not made:
            from moabb.datasets import PhysionetMI
            from moabb.paradigms import LeftRightImagery, MotorImagery

            if sorted(events) == ["left_hand", "right_hand"]:
                made["paradigm"] = LeftRightImagery(fmin=fmin, fmax=fmax, tmin=tmin, tmax=tmax)
            else:
                made["paradigm"] = MotorImagery(events=events, n_classes=len(events), fmin=fmin,
                                                fmax=fmax, tmin=tmin, tmax=tmax)
            made["dataset"] = PhysionetMI(imagined=True, executed=False)
        return made["dataset"], made["paradigm"]

    def build(subject):
        dataset, paradigm = objects()
        return from_moabb(dataset, paradigm, [subject], use_cache=False, mne_data=root,
                          name="physionet-mi")

    params = {"events": events, "tmin": tmin, "tmax": tmax, "fmin": fmin, "fmax": fmax,
              "moabb": version("moabb"), "mne": version("mne")}
    parts = [cached_trials(f"physionet-mi-s{s}", {**params, "subject": s},
                           physionet_mi_files(s, hand_runs, root), lambda s=s: build(s),
                           use_cache=use_cache, compression=None)
             for s in subjects]
    if not parts:
        raise ValueError("subjects is empty")
    return parts[0] if len(parts) == 1 else concatenate_trials(parts)
