"""Intracranial EEG (ECoG, sEEG): EDF + electrode table, BIDS iEEG, → `Trials`.

Clinical iEEG files carry no channel types and no coordinates: the EDF reader
types every channel ``eeg``, and the contact positions live in a separate
electrode table (``name, x, y, z``) whose units are not stated in the file.
`read_ieeg_edf` puts the two together into an `mne.io.Raw` with channel types
and a montage (positions always in metres, as MNE expects); `raw_to_trials`
cuts such a recording into windows or event-locked epochs and keeps the
positions in `Trials.positions`.

Channel typing rule (one rule, so every loader agrees):

* a channel named in the electrode table → ``ch_type`` (``"ecog"`` or ``"seeg"``);
* a channel whose name starts with ``EKG`` or ``ECG`` → ``"ecg"``;
* any other channel → ``"misc"`` (DC inputs, unlocalised contacts…).

Without an electrode table every channel except the EKG/ECG ones gets
``ch_type``: nothing else tells them apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..paths import dataset_path
from ..trials import Trials

__all__ = [
    "read_electrodes_tsv",
    "check_edf_structure",
    "read_ieeg_edf",
    "raw_to_trials",
    "read_bids_ieeg",
    "load_mne_ecog",
    "load_mne_seeg",
]

_UNITS = {"m": 1.0, "mm": 1e-3}
_IEEG_TYPES = ("ecog", "seeg")
_ECG_NAME = re.compile(r"^(EKG|ECG)", re.IGNORECASE)

#: Annotation marking the seizure onset in ``ieeg_mne_misc/ecog/sample_ecog.edf``.
ECOG_SEIZURE_ONSET = "eeg sz start"


def read_electrodes_tsv(path, *, units: str = "m") -> pd.DataFrame:
    """Read an electrode table (tab-separated ``name, x, y, z``) in metres.

    Parameters
    ----------
    path : path-like
        The table; BIDS ``n/a`` marks a contact without a position.
    units : {"m", "mm"}
        Units of ``x, y, z`` in the file (the file does not say; the ECoG
        table of MNE's misc data is in metres, the sEEG one in millimetres).

    Returns
    -------
    pandas.DataFrame
        Columns ``name`` (str) and ``x, y, z`` in metres (NaN where ``n/a``).

    Raises
    ------
    DataError
        Missing file or column, duplicated names, or a coordinate that is not
        a number.
    """
    if units not in _UNITS:
        raise ValueError(f"units={units!r}: expected one of {sorted(_UNITS)}")
    path = Path(path)
    if not path.is_file():
        raise DataError("electrode table not found", path)
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"not a readable tab-separated electrode table ({err})", path) from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in ("name", "x", "y", "z") if c not in table.columns]
    if missing:
        raise DataError(
            f"electrode table lacks column(s) {missing}; found {list(table.columns)} "
            "(expected tab-separated name, x, y, z)", path)
    out = pd.DataFrame({"name": table["name"].str.strip()})
    if (out["name"] == "").any():
        raise DataError(f"electrode table has an empty name in row(s) "
                        f"{(np.flatnonzero(out['name'] == '') + 2).tolist()} (file lines)", path)
    dup = out["name"][out["name"].duplicated()].tolist()
    if dup:
        raise DataError(f"electrode table names a contact twice: {dup[:5]}", path)
    for axis in ("x", "y", "z"):
        text = table[axis].str.strip()
        values = pd.to_numeric(text.where(~text.isin(["n/a", "nan", "NaN"])), errors="coerce")
        bad = values.isna() & ~text.isin(["n/a", "nan", "NaN"])
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"column {axis!r} is not a number for contact {out['name'].iloc[i]!r} "
                f"(file line {i + 2}: {text.iloc[i]!r})", path)
        out[axis] = values.to_numpy(dtype=np.float64) * _UNITS[units]
    return out


def edf_size_check(path, fmt: str = "EDF", bytes_per_sample: int = 2):
    """Parse an EDF-family header; return ``(file size, size the header announces, n_records)``.

    EDF stores 2 bytes per sample, BDF 3; the header layout is the same.
    ``n_records`` is negative while a file is still being recorded.

    Raises
    ------
    DataError
        The header is too short, its fields are not numbers, or its header
        size does not match its number of signals.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(256)
        if len(head) < 256:
            raise DataError(f"only {size} bytes: shorter than an {fmt} header (256 bytes)", path)
        try:
            header_bytes = int(head[184:192].strip())
            n_records = int(head[236:244].strip())
            n_signals = int(head[252:256].strip())
        except ValueError:
            raise DataError(f"the {fmt} header fields (header size, records, signals) are not numbers",
                            path) from None
        if n_signals <= 0 or header_bytes != 256 * (n_signals + 1):
            raise DataError(f"{fmt} header says {header_bytes} header bytes for {n_signals} signals "
                            f"(expected {256 * (n_signals + 1)})", path)
        f.seek(256 + n_signals * 216)
        field = f.read(8 * n_signals)
    try:
        samples = [int(field[8 * i:8 * i + 8].strip()) for i in range(n_signals)]
    except ValueError:
        raise DataError(f"the {fmt} header's samples-per-record fields are not numbers", path) from None
    expected = header_bytes + n_records * bytes_per_sample * sum(samples)
    if 0 <= n_records and size < expected:
        raise DataError(f"file has {size} bytes but its header announces {expected} "
                        f"({n_records} records): the file is truncated", path)
    return size, expected, n_records


def check_edf_structure(path) -> None:
    """Check an EDF file's size against its header before MNE reads it.

    A truncated download or a text-mode copy that turned ``\\n`` bytes into
    ``\\r\\n`` leaves a file whose size no longer matches ``header bytes +
    n_records × record bytes``; MNE then fails deep inside its reader or
    reads shifted samples. This says so up front.

    Raises
    ------
    DataError
        The header cannot be parsed or the size does not match it.
    """
    path = Path(path)
    size, expected, n_records = edf_size_check(path, "EDF", 2)
    if n_records < 0:
        return  # still being recorded: nothing to compare
    if size > expected:
        # only read the whole file when the size is already wrong
        crlf = path.read_bytes().count(b"\r\n")
        if crlf and size - crlf == expected:
            raise DataError(
                f"file has {size} bytes but its header announces {expected}; removing the {crlf} "
                "\\r bytes before \\n gives exactly that size: line endings were converted "
                "(\\n -> \\r\\n, a text-mode copy). Copy the file in binary mode", path)


def read_ieeg_edf(
    edf_path,
    electrodes_tsv=None,
    *,
    units: str = "m",
    coord_frame: str = "head",
    ch_type: str = "ecog",
    preload: bool = True,
):
    """Read an iEEG EDF recording with its electrode table into an `mne.io.Raw`.

    Parameters
    ----------
    edf_path : path-like
        EDF/EDF+ file.
    electrodes_tsv : path-like, optional
        Tab-separated ``name, x, y, z`` table; every name must be a channel
        of the recording. Its contacts get ``ch_type`` and a position.
    units : {"m", "mm"}
        Units of the table's coordinates (converted to metres).
    coord_frame : str
        Space of the coordinates for `mne.channels.make_dig_montage`:
        ``"head"`` (native/surface-RAS treated as head with identity trans,
        as MNE's ECoG tutorial does) or ``"mni_tal"`` (MNI, e.g. the sEEG table).
    ch_type : {"ecog", "seeg"}
        Type of the implanted contacts.
    preload : bool
        Read the samples into memory.

    Returns
    -------
    mne.io.Raw
        Channel types set (ecog/seeg from the table, ``ecg`` for EKG*/ECG*,
        ``misc`` otherwise) and the montage attached (positions in metres).

    Raises
    ------
    DataError
        The EDF cannot be read, or the table is malformed or names a channel
        the recording does not have (the message names the file).

    Examples
    --------
    >>> from neurodecode.io.ieeg import read_ieeg_edf
    >>> raw = read_ieeg_edf("seeg/sample_seeg.edf", "seeg/sample_seeg_electrodes.tsv",
    ...                     units="mm", coord_frame="mni_tal", ch_type="seeg")  # doctest: +SKIP
    >>> raw.get_channel_types().count("seeg")                                  # doctest: +SKIP
    88
    """
    import mne

    if ch_type not in _IEEG_TYPES:
        raise ValueError(f"ch_type={ch_type!r}: expected one of {_IEEG_TYPES}")
    if units not in _UNITS:
        raise ValueError(f"units={units!r}: expected one of {sorted(_UNITS)}")
    edf_path = Path(edf_path)
    if not edf_path.is_file():
        raise DataError("EDF file not found", edf_path)
    check_edf_structure(edf_path)
    try:
        raw = mne.io.read_raw_edf(edf_path, preload=preload, verbose="error")
    except Exception as err:  # MNE raises many types for a damaged header
        raise DataError(f"cannot read as EDF ({type(err).__name__}: {err})", edf_path) from None
    if raw.n_times == 0 or len(raw.ch_names) == 0:
        raise DataError("EDF holds no samples or no channels", edf_path)

    table = None
    if electrodes_tsv is not None:
        table = read_electrodes_tsv(electrodes_tsv, units=units)
        unknown = sorted(set(table["name"]) - set(raw.ch_names))
        if unknown:
            raise DataError(
                f"electrode table names {len(unknown)} contact(s) absent from {edf_path.name}: "
                f"{unknown[:5]}", electrodes_tsv)
    located = set(table["name"]) if table is not None else None
    types = {}
    for name in raw.ch_names:
        if _ECG_NAME.match(name):
            types[name] = "ecg"
        elif located is None or name in located:
            types[name] = ch_type
        else:
            types[name] = "misc"
    raw.set_channel_types(types, verbose="error")

    if table is not None:
        has_pos = table[["x", "y", "z"]].notna().all(axis=1)
        ch_pos = {n: p for n, p in zip(table["name"][has_pos],
                                        table.loc[has_pos, ["x", "y", "z"]].to_numpy())}
        montage = mne.channels.make_dig_montage(ch_pos=ch_pos, coord_frame=coord_frame)
        try:
            raw.set_montage(montage, on_missing="ignore", verbose="error")
        except Exception as err:
            raise DataError(f"cannot attach the electrode positions ({err})", electrodes_tsv) from None
    return raw


def _channel_positions(raw, picks: Sequence[str]):
    """Positions (n, 3) in metres with NaN rows where a channel has none, and the frame."""
    montage = raw.get_montage()
    out = np.full((len(picks), 3), np.nan)
    if montage is None:
        return out, None
    info = montage.get_positions()
    for i, name in enumerate(picks):
        pos = info["ch_pos"].get(name)
        if pos is not None and np.all(np.isfinite(pos)):
            out[i] = pos
    return out, info["coord_frame"]


def _pick_indices(raw, picks) -> np.ndarray:
    """Channel indices for ``picks``: None (all), channel type(s) or channel names."""
    if picks is None:
        return np.arange(len(raw.ch_names))
    wanted = [picks] if isinstance(picks, str) else list(picks)
    types = raw.get_channel_types()
    if all(w in set(types) | {"ecog", "seeg", "eeg", "ecg", "misc"} for w in wanted) \
            and not any(w in raw.ch_names for w in wanted):
        idx = np.array([i for i, t in enumerate(types) if t in wanted], dtype=int)
    else:
        unknown = [w for w in wanted if w not in raw.ch_names]
        if unknown:
            raise ValueError(f"picks={picks!r}: no channel named {unknown[:5]}")
        idx = np.array([raw.ch_names.index(w) for w in wanted], dtype=int)
    if len(idx) == 0:
        raise ValueError(f"picks={picks!r} selects no channel; types present: {sorted(set(types))}")
    return idx


def raw_to_trials(
    raw,
    *,
    window: float = 1.0,
    step: float | None = None,
    event_id: Mapping[str, int] | None = None,
    tmin: float = -0.5,
    tmax: float = 0.5,
    picks=None,
    subject: str = "1",
    session: str = "0",
    run: str = "0",
    label_fn: Callable[[float, float], object] | None = None,
    name: str | None = None,
) -> Trials:
    """Cut an iEEG `mne.io.Raw` into `Trials` (modality ``"ieeg"``) with positions.

    Two modes:

    * **fixed-length windows** (default; continuous clinical recordings have
      no trial structure): windows of ``round(window * sfreq)`` samples every
      ``round(step * sfreq)`` samples (``step`` defaults to ``window``, no
      overlap), the last incomplete window dropped. ``label_fn(start, stop)``
      (seconds from the first sample) gives each window's label; returning
      ``None`` drops the window (e.g. one that straddles a seizure onset).
    * **epochs around annotations** when ``event_id`` maps annotation
      descriptions to integer codes: `mne.Epochs` from ``tmin`` to ``tmax``
      (no baseline); ``y`` is the code.

    Parameters
    ----------
    raw : mne.io.Raw
        A recording, e.g. from `read_ieeg_edf` or `read_bids_ieeg`.
    window, step : float
        Window length and hop in seconds (windows mode).
    event_id : dict, optional
        ``{annotation description: code}`` switches to epochs mode.
    tmin, tmax : float
        Epoch limits in seconds around each annotation (epochs mode).
    picks : str, list of str, optional
        Channels to keep (an MNE picks value: a type such as ``"ecog"`` or
        names). Default: all channels.
    subject, session, run : str
        Written to ``meta``.
    label_fn : callable, optional
        ``label_fn(start_s, stop_s) -> label or None`` (windows mode).
    name : str, optional
        Dataset name.

    Returns
    -------
    Trials
        ``X`` (n_trials, n_channels, n_times); ``positions`` (n_channels, 3)
        in metres with NaN rows for channels without a position, and
        ``coord_frame`` (None when the recording has no montage); ``meta``
        has ``onset`` (seconds from the first sample) and ``kind``
        (``"window"`` or the annotation description).
    """
    import mne

    sfreq = float(raw.info["sfreq"])
    pick_idx = _pick_indices(raw, picks)
    ch_names = [raw.ch_names[i] for i in pick_idx]
    positions, frame = _channel_positions(raw, ch_names)
    if np.isnan(positions).all():
        positions, frame = None, None

    if event_id is None:
        if window <= 0:
            raise ValueError(f"window={window}: must be positive (seconds)")
        n_win = int(round(window * sfreq))
        n_step = int(round((window if step is None else step) * sfreq))
        if n_step <= 0:
            raise ValueError(f"step={step}: must be positive (seconds)")
        if n_win < 2:
            raise ValueError(f"window={window} s is shorter than two samples at {sfreq} Hz")
        starts = np.arange(0, raw.n_times - n_win + 1, n_step)
        if len(starts) == 0:
            raise ValueError(f"window={window} s is longer than the recording ({raw.n_times / sfreq:.3f} s)")
        labels, keep = [], []
        for s in starts:
            label = None if label_fn is None else label_fn(s / sfreq, (s + n_win) / sfreq)
            if label_fn is None or label is not None:
                keep.append(s)
                labels.append(label)
        if not keep:
            raise ValueError("label_fn dropped every window")
        data = raw.get_data(picks=pick_idx)
        X = np.stack([data[:, s:s + n_win] for s in keep])
        onsets = np.asarray(keep) / sfreq
        y = None if label_fn is None else np.asarray(labels)
        kinds = ["window"] * len(keep)
    else:
        present = set(raw.annotations.description)
        missing = [d for d in event_id if d not in present]
        if missing:
            raise ValueError(f"event_id names annotation(s) {missing} absent from the recording; "
                             f"present: {sorted(present)}")
        events, _ = mne.events_from_annotations(raw, event_id=dict(event_id), verbose="error")
        epochs = mne.Epochs(raw, events, event_id=dict(event_id), tmin=tmin, tmax=tmax,
                            baseline=None, picks=pick_idx, preload=True,
                            reject_by_annotation=False, verbose="error")
        if len(epochs) == 0:
            raise ValueError(f"no epoch from {tmin} to {tmax} s fits inside the recording")
        X = epochs.get_data(copy=False)
        y = epochs.events[:, 2].copy()
        code_to_desc = {v: k for k, v in event_id.items()}
        kinds = [code_to_desc[c] for c in y]
        onsets = (epochs.events[:, 0] - raw.first_samp) / sfreq
    meta = pd.DataFrame({"subject": str(subject), "session": str(session), "run": str(run),
                         "onset": onsets.astype(np.float64), "kind": kinds})
    return Trials(X, y, meta, sfreq=sfreq, ch_names=ch_names, modality="ieeg",
                  positions=positions, coord_frame=frame, name=name)


def read_bids_ieeg(bids_root, subject: str, session: str | None = None, task: str | None = None,
                   *, run: str | None = None, acquisition: str | None = None):
    """Read one BIDS iEEG recording through `mne_bids.read_raw_bids`.

    Channel types come from ``*_channels.tsv`` and positions from
    ``*_electrodes.tsv`` + ``*_coordsystem.json`` (mne-bids converts them to
    metres). Pass the result to `raw_to_trials`.

    Parameters
    ----------
    bids_root : path-like
        The BIDS dataset folder (holds ``dataset_description.json``).
    subject, session, task, run, acquisition : str, optional
        BIDS entities (without their ``sub-``/``ses-``… prefixes).

    Returns
    -------
    mne.io.Raw

    Raises
    ------
    DataError
        No matching recording, or mne-bids cannot read it.
    """
    import mne_bids

    bids_root = Path(bids_root)
    if not (bids_root / "dataset_description.json").is_file():
        raise DataError("not a BIDS dataset (no dataset_description.json)", bids_root)
    bids_path = mne_bids.BIDSPath(root=bids_root, subject=subject, session=session, task=task,
                                  run=run, acquisition=acquisition, datatype="ieeg", suffix="ieeg")
    matches = [p for p in bids_path.match() if p.extension not in (".json", ".tsv")]
    if not matches:
        raise DataError(f"no iEEG recording for sub-{subject}"
                        + (f" ses-{session}" if session else "") + (f" task-{task}" if task else ""),
                        bids_root)
    if len(matches) > 1:
        raise DataError(f"{len(matches)} recordings match; give task/run/acquisition: "
                        f"{[m.basename for m in matches[:5]]}", bids_root)
    try:
        return mne_bids.read_raw_bids(matches[0], verbose="error")
    except Exception as err:
        raise DataError(f"mne-bids cannot read it ({type(err).__name__}: {err})", matches[0].fpath) from None


# ------------------------------------------------------------ registry loaders
def load_mne_ecog(window: float = 1.0, step: float | None = None, picks="ecog") -> Trials:
    """MNE misc ECoG recording (``mne-ecog``) as 1-s windows labelled pre/post seizure onset.

    ``ieeg_mne_misc/ecog/sample_ecog.edf`` (78 channels, 999.412 Hz, 21.67 s)
    with ``sample_ecog_electrodes.tsv`` (64 contacts, metres, treated as
    ``head`` coordinates as MNE's tutorial does). ``y`` is ``"pre"`` for
    windows that end before the ``"eeg sz start"`` annotation (10.2287 s) and
    ``"post"`` for windows that start after it; the window that straddles the
    onset is dropped. With ``picks="ecog"`` the 64 located contacts are kept.

    Examples
    --------
    >>> from neurodecode import load_dataset
    >>> t = load_dataset("mne-ecog")           # doctest: +SKIP
    >>> t.X.shape, sorted(set(t.y))            # doctest: +SKIP
    ((20, 64, 999), ['post', 'pre'])
    """
    folder = dataset_path("ieeg_mne_misc")
    raw = read_ieeg_edf(folder / "ecog" / "sample_ecog.edf", folder / "ecog" / "sample_ecog_electrodes.tsv",
                        units="m", coord_frame="head", ch_type="ecog")
    onsets = raw.annotations.onset[raw.annotations.description == ECOG_SEIZURE_ONSET]
    if len(onsets) != 1:
        raise DataError(f"expected one {ECOG_SEIZURE_ONSET!r} annotation, found {len(onsets)}",
                        folder / "ecog" / "sample_ecog.edf")
    onset = float(onsets[0]) - raw.first_samp / raw.info["sfreq"]

    def label(start, stop):
        if stop <= onset:
            return "pre"
        if start >= onset:
            return "post"
        return None

    return raw_to_trials(raw, window=window, step=step, picks=picks, subject="pat01",
                         session="ecog", label_fn=label, name="mne-ecog")


def load_mne_seeg(window: float = 1.0, step: float | None = None, picks="seeg") -> Trials:
    """MNE misc sEEG recording (``mne-seeg``) as unlabelled fixed-length windows.

    ``ieeg_mne_misc/seeg/sample_seeg.edf`` (98 channels, 1000 Hz, 20 s) with
    ``sample_seeg_electrodes.tsv`` (88 contacts, MNI millimetres → metres,
    ``mni_tal``). Its three annotations are test markers, not clinical events,
    so no label is given (``y`` is None). ``picks="seeg"`` keeps the 88
    located contacts; ``picks=None`` keeps all 98 (NaN positions for the rest).
    """
    folder = dataset_path("ieeg_mne_misc")
    raw = read_ieeg_edf(folder / "seeg" / "sample_seeg.edf", folder / "seeg" / "sample_seeg_electrodes.tsv",
                        units="mm", coord_frame="mni_tal", ch_type="seeg")
    return raw_to_trials(raw, window=window, step=step, picks=picks, subject="pat01",
                         session="seeg", name="mne-seeg")
