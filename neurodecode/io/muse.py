"""The eeg-notebooks Muse visual cueing study (``eeg_notebooks_muse``) → `Trials`.

Each recording is a gzip CSV ``timestamps,TP9,AF7,AF8,TP10,Marker0`` from a
Muse 2016 headband (4 dry channels, µV, nominally 256 Hz) with the stimulus
markers in ``Marker0`` (0 = none): 1/2 = cue left/right, 11/12 = target
left/right invalidly cued, 21/22 = target left/right validly cued. The
layout, the counts and the reference preprocessing are in the folder's
``SOURCE.md``; this module follows that reference exactly:

1. **Segments.** The LSL timestamps are split at gaps > 0.5 s and segments
   shorter than 5 s are dropped (only the 12-sample tails after the long
   gaps of ``subject1308/session1`` and ``subject1311/session1``).
2. **Resampling to a fixed 256 Hz.** The timestamps are only approximately
   regular (3- or 4-ms steps: a 256 Hz clock rounded to the millisecond), so
   each channel is linearly interpolated (`numpy.interp`) onto the uniform
   grid ``t_first + i / 256``, ``i = 0 … floor((t_last - t_first) * 256)``.
   256 Hz is the device's own rate, so no anti-aliasing is needed.
3. **Band-pass 1–30 Hz** on each continuous segment with
   ``mne.filter.filter_data`` defaults (zero-phase FIR, firwin/Hamming).
4. **Events.** A marker at time ``t`` falls on grid sample
   ``round((t - t_first) * 256)``.
5. **Epochs** of 256 samples (1 s) × 4 channels, no baseline, no artefact
   rejection; an epoch not fully inside its segment is dropped.

   * ``task="cue"``: cue left (``y="cue_left"``) vs cue right
     (``"cue_right"``), window [+0.2, +1.2) s after the cue.
   * ``task="target"``: every target (codes 11/12/21/22, ``y="target"``),
     window [0, +1) s, vs the second before every cue (``y="pre_cue"``),
     window [−1, 0) s.

``meta``: ``subject`` and ``session`` are the folder names
(``"subject101"``, ``"session1"``), ``run`` the recording's index within its
session (two sessions hold two recordings), plus ``code`` (marker), ``onset``
(seconds from the first kept sample of the file) and ``recording`` (file name).
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..paths import dataset_path
from ..trials import Trials, concatenate_trials
from .cache import cached_trials

__all__ = ["MUSE_CHANNELS", "MUSE_SFREQ", "MuseRecording", "read_muse_csv", "muse_recordings",
           "recording_to_trials", "load_muse_cueing"]

FOLDER = "eeg_notebooks_muse"
MUSE_CHANNELS = ("TP9", "AF7", "AF8", "TP10")
MARKER_COLUMN = "Marker0"
MUSE_SFREQ = 256.0
CUE_LEFT, CUE_RIGHT = 1, 2
TARGET_CODES = (11, 12, 21, 22)
GAP_S = 0.5
MIN_SEGMENT_S = 5.0
EPOCH_SAMPLES = 256
TASKS = ("cue", "target")


@dataclass
class MuseRecording:
    """One Muse CSV as read: timestamps (s), EEG (n_samples, 4) in µV, marker codes."""

    path: Path
    timestamps: np.ndarray
    data: np.ndarray
    markers: np.ndarray
    ch_names: tuple = MUSE_CHANNELS


def read_muse_csv(path) -> MuseRecording:
    """Read one ``*.csv.gz`` (or plain ``.csv``) Muse recording with its marker column.

    Raises
    ------
    DataError
        Missing or unreadable file, no marker column, a missing EEG column,
        non-numeric values, or timestamps that go backwards; the message
        names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("Muse recording not found", path)
    try:
        table = pd.read_csv(path, compression="infer")
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError) as err:
        raise DataError(f"cannot decompress/read the CSV ({type(err).__name__}: {err}); "
                        "the file is truncated or damaged", path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"not a readable CSV ({err})", path) from None
    columns = [str(c).strip() for c in table.columns]
    table.columns = columns
    if MARKER_COLUMN not in columns:
        raise DataError(f"no marker column {MARKER_COLUMN!r} (columns: {columns}); without "
                        "stimulus markers the recording has no trials", path)
    missing = [c for c in ("timestamps", *MUSE_CHANNELS) if c not in columns]
    if missing:
        raise DataError(f"missing column(s) {missing} (columns: {columns})", path)
    if len(table) < 2:
        raise DataError(f"only {len(table)} data row(s)", path)
    try:
        t = table["timestamps"].to_numpy(dtype=np.float64)
        data = table[list(MUSE_CHANNELS)].to_numpy(dtype=np.float64)
        markers = table[MARKER_COLUMN].to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise DataError(f"non-numeric values in the timestamp, EEG or marker columns ({err})",
                        path) from None
    bad = ~np.isfinite(t) | ~np.isfinite(data).all(axis=1) | ~np.isfinite(markers)
    if bad.any():
        raise DataError(f"{int(bad.sum())} row(s) with a missing or non-finite value, first at "
                        f"data row {int(np.flatnonzero(bad)[0]) + 1}", path)
    back = np.flatnonzero(np.diff(t) <= 0)
    if len(back):
        raise DataError(f"timestamps do not increase at data row {int(back[0]) + 2} "
                        f"({t[back[0]]!r} then {t[back[0] + 1]!r})", path)
    if np.any(markers != np.round(markers)):
        raise DataError(f"column {MARKER_COLUMN!r} holds non-integer codes", path)
    return MuseRecording(path, t, data, markers.astype(np.int64))


def _segments(rec: MuseRecording):
    """Split at timestamp gaps; yield (first row, last row + 1) of segments ≥ MIN_SEGMENT_S."""
    cuts = np.flatnonzero(np.diff(rec.timestamps) > GAP_S) + 1
    bounds = np.concatenate([[0], cuts, [len(rec.timestamps)]])
    for a, b in zip(bounds[:-1], bounds[1:]):
        if rec.timestamps[b - 1] - rec.timestamps[a] >= MIN_SEGMENT_S:
            yield int(a), int(b)


def _resample(t, data):
    """Linear interpolation of (n, ch) samples at times t onto t[0] + i / 256."""
    rel = t - t[0]
    n = int(np.floor(rel[-1] * MUSE_SFREQ)) + 1
    grid = np.arange(n) / MUSE_SFREQ
    return np.stack([np.interp(grid, rel, data[:, c]) for c in range(data.shape[1])])


def _windows(task):
    """{code: (label, start offset in samples)} for a task's epochs."""
    if task == "cue":
        start = int(round(0.2 * MUSE_SFREQ))
        return {CUE_LEFT: ("cue_left", start), CUE_RIGHT: ("cue_right", start)}
    return {**{c: ("target", 0) for c in TARGET_CODES},
            CUE_LEFT: ("pre_cue", -EPOCH_SAMPLES), CUE_RIGHT: ("pre_cue", -EPOCH_SAMPLES)}


def recording_to_trials(path, task: str = "cue", *, subject: str = "1", session: str = "0",
                        run: str = "0", l_freq: float = 1.0, h_freq: float = 30.0) -> Trials | None:
    """Epochs of one Muse recording (see the module text), or None when it has none.

    Parameters
    ----------
    path : path-like
        A ``*.csv.gz`` recording.
    task : {"cue", "target"}
        Which epochs (module text).
    subject, session, run : str
        Written to ``meta``.
    l_freq, h_freq : float
        Band-pass edges in Hz (``mne.filter.filter_data``; None skips a side).
    """
    import mne

    if task not in TASKS:
        raise ValueError(f"task={task!r}: expected one of {TASKS}")
    rec = read_muse_csv(path)
    windows = _windows(task)
    t_file0 = rec.timestamps[0]
    X, y, codes, onsets = [], [], [], []
    for a, b in _segments(rec):
        seg_markers = rec.markers[a:b]
        rows = np.flatnonzero(np.isin(seg_markers, list(windows)))
        if len(rows) == 0:
            continue
        t = rec.timestamps[a:b]
        cont = _resample(t, rec.data[a:b])
        if l_freq is not None or h_freq is not None:
            cont = mne.filter.filter_data(cont, MUSE_SFREQ, l_freq, h_freq, verbose="error")
        n = cont.shape[1]
        for r in rows:
            code = int(seg_markers[r])
            label, offset = windows[code]
            sample = int(round((t[r] - t[0]) * MUSE_SFREQ))
            start = sample + offset
            if start < 0 or start + EPOCH_SAMPLES > n:
                continue  # not fully inside the segment
            X.append(cont[:, start:start + EPOCH_SAMPLES])
            y.append(label)
            codes.append(code)
            onsets.append(t[r] - t_file0)
    if not X:
        return None
    meta = pd.DataFrame({"subject": str(subject), "session": str(session), "run": str(run),
                         "code": np.asarray(codes, dtype=np.int64),
                         "onset": np.asarray(onsets, dtype=np.float64),
                         "recording": Path(path).name})
    return Trials(np.stack(X), np.asarray(y), meta, sfreq=MUSE_SFREQ, ch_names=list(MUSE_CHANNELS),
                  modality="eeg", name="muse-cueing")


def _subject_name(subject) -> str:
    text = str(subject)
    return text if text.startswith("subject") else f"subject{int(text)}"


def muse_recordings(root=None, subjects=None) -> pd.DataFrame:
    """The recordings of the study: ``path, subject, session, run`` (one row per file).

    Read from the folder's ``index.csv`` when present, else from the file
    names ``subject<N>/session<K>/*.csv.gz``.
    """
    root = Path(root) if root is not None else dataset_path(FOLDER)
    if not root.is_dir():
        raise DataError("Muse cueing folder not found (set NEURODECODE_DATA to the folder that "
                        f"holds {FOLDER}/)", root)
    index = root / "index.csv"
    if index.is_file():
        table = pd.read_csv(index, usecols=["path", "subject", "session"], dtype=str)
    else:
        files = sorted(root.glob("subject*/session*/*.csv.gz"))
        table = pd.DataFrame({"path": [str(f.relative_to(root)) for f in files],
                              "subject": [f.parts[-3] for f in files],
                              "session": [f.parts[-2] for f in files]})
    if table.empty:
        raise DataError("no Muse recording (subject*/session*/*.csv.gz) found", root)
    if subjects is not None:
        wanted = [_subject_name(s) for s in ([subjects] if isinstance(subjects, (str, int)) else subjects)]
        unknown = sorted(set(wanted) - set(table["subject"]))
        if unknown:
            raise ValueError(f"subjects {unknown} are not in the Muse cueing study")
        table = table[table["subject"].isin(wanted)]
    table = table.sort_values("path", key=lambda p: p.map(_natural_key)).reset_index(drop=True)
    table["run"] = table.groupby(["subject", "session"]).cumcount().astype(str)
    table["path"] = [root / p for p in table["path"]]
    return table


def _natural_key(text: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def load_muse_cueing(task: str = "cue", subjects=None, *, l_freq: float = 1.0, h_freq: float = 30.0,
                     use_cache: bool = True, root=None) -> Trials:
    """The Muse visual cueing study as `Trials` (one subject per recording's folder).

    Parameters
    ----------
    task : {"cue", "target"}
        ``"cue"``: cue left vs cue right, [0.2, 1.2) s after the cue
        (SOURCE.md: 2660 / 2567 epochs from 66 subjects). ``"target"``:
        [0, 1) s after each target vs [−1, 0) s before each cue (5158 /
        5257 epochs from 67 subjects).
    subjects : iterable of int or str, optional
        ``101`` or ``"subject101"``; default all 67.
    l_freq, h_freq : float
        Band-pass in Hz (the reference's 1–30 Hz).
    use_cache : bool
        HDF5 cache keyed by these arguments and the files' sizes and mtimes.
    root : path-like, optional
        The ``eeg_notebooks_muse`` folder (default: under the data root).

    Returns
    -------
    Trials
        ``X`` (n, 4, 256) in µV at 256 Hz, ``y`` string labels, ``meta`` with
        ``subject, session, run, code, onset, recording``.

    Examples
    --------
    >>> from neurodecode.io.muse import load_muse_cueing
    >>> trials = load_muse_cueing("cue", subjects=[101])   # doctest: +SKIP
    >>> trials.X.shape                                     # doctest: +SKIP
    (62, 4, 256)
    """
    if task not in TASKS:
        raise ValueError(f"task={task!r}: expected one of {TASKS}")
    table = muse_recordings(root, subjects)

    def build():
        parts = []
        for row in table.itertuples():
            part = recording_to_trials(row.path, task, subject=row.subject, session=row.session,
                                       run=row.run, l_freq=l_freq, h_freq=h_freq)
            if part is not None:
                parts.append(part)
        if not parts:
            raise DataError(f"no {task!r} epoch in the {len(table)} recording(s) selected",
                            table["path"].iloc[0])
        return parts[0] if len(parts) == 1 else concatenate_trials(parts)

    params = {"task": task, "subjects": sorted(set(table["subject"])), "l_freq": l_freq,
              "h_freq": h_freq, "epoch_samples": EPOCH_SAMPLES, "sfreq": MUSE_SFREQ}
    return cached_trials(f"muse-cueing-{task}", params, list(table["path"]), build,
                         use_cache=use_cache, compression=None)
