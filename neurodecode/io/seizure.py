"""Kaggle 2014 seizure-detection clips (UPenn/Mayo): original ``.mat`` files and Dog_1 → `Trials`.

Each clip of the competition is one MATLAB v5 file ``<Subject>_<kind>_segment_<N>.mat``
with ``data`` (channels × samples), ``freq`` (Hz; the field is **not** called
``sampling_frequency`` as the competition text says), ``channels`` (a 1×1
struct whose fields hold the channel names) and, for ictal clips only,
``latency`` (seconds from the marked seizure onset to the clip start).

Labels: ``y = 1`` ictal, ``0`` interictal (and ``-1`` for unlabelled test clips
in `load_kaggle_clips`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..paths import dataset_path
from ..trials import Trials
from .cache import cached_trials

__all__ = ["KaggleClip", "read_kaggle_clip", "load_kaggle_clips", "load_dog1_seizure"]

_NAME = re.compile(r"^(?P<subject>.+)_(?P<kind>ictal|interictal|test)_segment_(?P<index>\d+)$")
_LABELS = {"ictal": 1, "interictal": 0, "test": -1}


@dataclass(frozen=True)
class KaggleClip:
    """One clip read from a competition ``.mat`` file.

    Attributes
    ----------
    data : ndarray of shape (n_channels, n_samples), float64
    sfreq : float
        Sampling rate (the file's ``freq``).
    ch_names : list of str
    latency : float or None
        Seconds from seizure onset to the clip start (ictal clips only).
    subject, kind : str or None
        Parsed from the file name (``Dog_1``, ``ictal``/``interictal``/``test``);
        None when the name does not follow the competition pattern.
    segment_index : int or None
        ``N`` of ``..._segment_N.mat``.
    """

    data: np.ndarray
    sfreq: float
    ch_names: list
    latency: float | None
    subject: str | None
    kind: str | None
    segment_index: int | None


def read_kaggle_clip(path) -> KaggleClip:
    """Read one competition clip with `scipy.io.loadmat`.

    Parameters
    ----------
    path : path-like
        ``<Subject>_<kind>_segment_<N>.mat``.

    Returns
    -------
    KaggleClip

    Raises
    ------
    DataError
        Not a MAT file, truncated, or missing ``data``/``freq``/``channels``
        (or their shapes disagree); the message names the file.

    Examples
    --------
    >>> clip = read_kaggle_clip("mat/Dog_1_ictal_segment_1.mat")   # doctest: +SKIP
    >>> clip.data.shape, clip.sfreq, clip.latency                   # doctest: +SKIP
    ((16, 400), 399.609756097561, 0.0)
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DataError("clip file not found", path)
    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises ValueError/TypeError/OSError for junk and truncation
        raise DataError(f"not a readable MAT file ({type(err).__name__}: {err})", path) from None
    missing = [k for k in ("data", "freq", "channels") if k not in mat]
    if missing:
        raise DataError(f"MAT file lacks variable(s) {missing}; has "
                        f"{sorted(k for k in mat if not k.startswith('__'))}", path)
    data = np.asarray(mat["data"], dtype=np.float64)
    if data.ndim != 2 or data.size == 0:
        raise DataError(f"'data' has shape {data.shape}; expected (channels, samples)", path)
    freq = np.asarray(mat["freq"], dtype=np.float64).ravel()
    if freq.size != 1 or not np.isfinite(freq[0]) or freq[0] <= 0:
        raise DataError(f"'freq' is {freq.tolist()}; expected one positive rate in Hz", path)
    try:
        struct = mat["channels"][0, 0]
        ch_names = [str(np.asarray(struct[j]).ravel()[0]) for j in range(len(struct.dtype.names))]
    except (IndexError, TypeError, KeyError) as err:
        raise DataError(f"cannot read channel names from 'channels' ({err})", path) from None
    if len(ch_names) != data.shape[0]:
        raise DataError(f"{len(ch_names)} channel names for {data.shape[0]} rows of 'data'", path)
    if not np.isfinite(data).all():
        raise DataError("'data' contains NaN or inf", path)
    latency = float(np.asarray(mat["latency"]).ravel()[0]) if "latency" in mat else None
    m = _NAME.match(path.stem)
    return KaggleClip(
        data=data, sfreq=float(freq[0]), ch_names=ch_names, latency=latency,
        subject=m["subject"] if m else None, kind=m["kind"] if m else None,
        segment_index=int(m["index"]) if m else None,
    )


def load_kaggle_clips(paths, *, name: str | None = None) -> Trials:
    """Stack competition ``.mat`` clips of one subject into `Trials`.

    ``y`` is 1 (ictal), 0 (interictal) or -1 (unlabelled test clip); ``meta``
    has ``kind``, ``segment_index``, ``latency`` (NaN unless ictal) and ``file``.
    All clips must share shape, rate and channel names.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("paths is empty: no clip to load")
    clips = [read_kaggle_clip(p) for p in paths]
    first = clips[0]
    for p, c in zip(paths[1:], clips[1:]):
        if c.data.shape != first.data.shape or c.sfreq != first.sfreq or c.ch_names != first.ch_names:
            raise DataError(f"clip differs from {paths[0].name} in shape, rate or channels", p)
    for p, c in zip(paths, clips):
        if c.kind is None:
            raise DataError("file name does not follow <Subject>_<kind>_segment_<N>.mat", p)
    meta = pd.DataFrame({
        "subject": [c.subject for c in clips],
        "session": "0",
        "run": "0",
        "kind": [c.kind for c in clips],
        "segment_index": np.array([c.segment_index for c in clips], dtype=np.int64),
        "latency": np.array([np.nan if c.latency is None else c.latency for c in clips]),
        "file": [p.name for p in paths],
    })
    y = np.array([_LABELS[c.kind] for c in clips], dtype=np.int64)
    return Trials(np.stack([c.data for c in clips]), y, meta, sfreq=first.sfreq,
                  ch_names=first.ch_names, modality="ieeg", name=name)


def _build_dog1(npz_path: Path) -> Trials:
    try:
        z = np.load(npz_path, allow_pickle=False)
        fields = {k: z[k] for k in ("data", "label", "latency", "segment_index", "kind", "group",
                                    "sfreq", "ch_names")}
    except KeyError as err:
        raise DataError(f"npz lacks field {err}", npz_path) from None
    except Exception as err:
        raise DataError(f"cannot read the npz ({type(err).__name__}: {err})", npz_path) from None
    group = fields["group"].astype(np.int64)
    meta = pd.DataFrame({
        "subject": "Dog_1",
        "session": "0",
        # one run per seizure (groups 0-4) or per 38-s interictal run (5-15): see SOURCE.md
        "run": [f"{g:02d}" for g in group],
        "group": group,
        "kind": fields["kind"].astype(str),
        "latency": fields["latency"].astype(np.float64),
        "segment_index": fields["segment_index"].astype(np.int64),
    })
    return Trials(fields["data"], fields["label"].astype(np.int64), meta, sfreq=float(fields["sfreq"]),
                  ch_names=[str(c) for c in fields["ch_names"]], modality="ieeg", name="dog1-seizure")


def load_dog1_seizure(use_cache: bool = False) -> Trials:
    """Kaggle 2014 Dog_1 labelled clips (``dog1-seizure``): 596 × 16 × 400, ~400 Hz.

    Read from the packed ``dog1_ictal_interictal.npz`` (float32 as stored;
    the cast from the float64 originals is exact to 5.9e-5 absolute).

    Returns
    -------
    Trials
        ``y`` = 1 ictal (178), 0 interictal (418); ``sfreq`` 399.609756097561;
        ``meta``: ``subject`` ``"Dog_1"``, ``session`` ``"0"``, ``run`` (two-digit
        ``group``), ``group`` (0–4 one per seizure, 5–15 interictal runs of 38
        consecutive clips; inferred, see the dataset card), ``kind``,
        ``latency`` (s from onset; NaN for interictal), ``segment_index``.
        Split with ``meta["group"]`` (e.g. `StratifiedGroupKFold`) to keep
        neighbouring clips of one seizure out of both sides.

    Examples
    --------
    >>> from neurodecode import load_dataset
    >>> t = load_dataset("dog1-seizure")        # doctest: +SKIP
    >>> t.X.shape                                # doctest: +SKIP
    (596, 16, 400)
    """
    npz = dataset_path("kaggle_seizure_dog1") / "dog1_ictal_interictal.npz"
    if not npz.is_file():
        raise DataError("Dog_1 npz not found (see datasets/dog1-seizure.md)", npz)
    return cached_trials("dog1-seizure", {}, [npz], lambda: _build_dog1(npz), use_cache=use_cache)
