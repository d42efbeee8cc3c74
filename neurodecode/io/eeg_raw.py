"""EEG files through MNE (EDF, BDF, GDF, FIF, BrainVision, EEGLAB) → `Trials`.

`read_raw_eeg` opens a recording with `mne.io.read_raw` after checking what
MNE checks badly. MNE reads a truncated BDF or BrainVision file without a
word (fewer samples), and fails on a truncated FIF or an EDF whose ``\\n``
bytes became ``\\r\\n`` with messages from deep inside its readers
("cannot reshape array…", "invalid byte in annotations channel"). Here each
of those is a `DataError` that names the file and the problem:

* EDF: header size vs file size (`neurodecode.io.ieeg.check_edf_structure`,
  which also recognises a ``\\n`` → ``\\r\\n`` conversion);
* BDF: the same check with 3-byte samples;
* FIF: the tag chain (16-byte headers) must end inside the file;
* BrainVision: the header's data and marker files must exist, the data
  file must hold a whole number of samples and reach the last marker.

Any other failure inside MNE is re-raised as a `DataError` naming the file
and the format. `raw_to_epochs_trials` then cuts a recording into epochs
around its annotations (or stim-channel events) and returns `Trials`.
"""

from __future__ import annotations

import configparser
import re
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..trials import Trials
from .ieeg import _channel_positions, check_edf_structure, edf_size_check

__all__ = ["read_raw_eeg", "raw_to_epochs_trials", "SUPPORTED_FORMATS", "check_fif_structure",
           "check_bdf_structure", "check_brainvision_structure"]

#: File name ending → format name (MNE reader chosen by `mne.io.read_raw`).
SUPPORTED_FORMATS = {
    ".edf": "EDF", ".bdf": "BDF", ".gdf": "GDF", ".fif": "FIF", ".fif.gz": "FIF",
    ".vhdr": "BrainVision", ".set": "EEGLAB",
}


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for ext in sorted(SUPPORTED_FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return SUPPORTED_FORMATS[ext]
    raise DataError(
        f"unknown EEG file type {''.join(path.suffixes) or '(no extension)'!r}; supported: "
        f"{', '.join(sorted(SUPPORTED_FORMATS))} (BrainVision: open the .vhdr header)", path)


# ------------------------------------------------------------- structure checks
def check_bdf_structure(path) -> None:
    """BDF (24-bit EDF) header vs file size; `DataError` when truncated or padded."""
    size, expected, n_records = edf_size_check(path, "BDF", 3)
    if n_records >= 0 and size > expected:
        raise DataError(f"file has {size} bytes but its header announces {expected} "
                        f"({n_records} records): extra bytes (damaged or converted copy)", Path(path))


def check_fif_structure(path) -> None:
    """Walk a FIF file's tag chain; `DataError` when it is not FIF or is cut short.

    Every FIF tag is a 16-byte big-endian header (kind, type, size, next)
    followed by ``size`` bytes; a file cut anywhere leaves a tag whose data
    runs past the end of the file.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(16)
        if len(head) < 16:
            raise DataError(f"only {size} bytes: not a FIF file (no first tag)", path)
        kind = struct.unpack(">i", head[:4])[0]
        if kind != 100:  # FIFF_FILE_ID opens every FIF file
            raise DataError(f"not a FIF file (first tag kind {kind}, expected 100 = file id)", path)
        pos = 0
        n_tags = 0
        while pos < size:
            f.seek(pos)
            head = f.read(16)
            if len(head) < 16:
                raise DataError(f"tag header at byte {pos} is cut off after {n_tags} tags "
                                f"(file has {size} bytes): the file is truncated", path)
            _, _, tag_size, nxt = struct.unpack(">iiii", head)
            end = pos + 16 + tag_size
            if tag_size < 0 or end > size:
                raise DataError(f"tag {n_tags} at byte {pos} needs {tag_size} data bytes up to byte "
                                f"{end}, but the file has only {size} bytes: the file is truncated", path)
            n_tags += 1
            if nxt == -1:  # FIFFV_NEXT_NONE: the writer ended the chain here
                break
            pos = end if nxt == 0 else nxt


_BV_BYTES = {"INT_16": 2, "INT_32": 4, "IEEE_FLOAT_32": 4, "UINT_16": 2}


def _read_ini(path: Path) -> configparser.ConfigParser:
    text = path.read_bytes().decode("latin-1")
    # Drop the "Brain Vision Data Exchange ... File" first line, which is not INI.
    lines = [ln for ln in text.splitlines() if not ln.lower().startswith("brain vision")
             and not ln.lower().startswith("brainvision")]
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str
    try:
        cp.read_string("\n".join(ln for ln in lines if not ln.startswith(";")))
    except configparser.Error as err:
        raise DataError(f"not a readable BrainVision header ({err})", path) from None
    return cp


def check_brainvision_structure(vhdr) -> None:
    """Check a BrainVision header's data and marker files before MNE reads them."""
    vhdr = Path(vhdr)
    cp = _read_ini(vhdr)
    if not cp.has_section("Common Infos"):
        raise DataError("BrainVision header has no [Common Infos] section", vhdr)
    common = cp["Common Infos"]
    data_file = common.get("DataFile")
    if not data_file:
        raise DataError("BrainVision header names no DataFile", vhdr)
    eeg = vhdr.parent / data_file
    if not eeg.is_file():
        raise DataError(f"data file {data_file!r} named by the header is missing", eeg)
    marker_file = common.get("MarkerFile")
    vmrk = vhdr.parent / marker_file if marker_file else None
    if vmrk is not None and not vmrk.is_file():
        raise DataError(f"marker file {marker_file!r} named by the header is missing", vmrk)
    if common.get("DataFormat", "BINARY").upper() != "BINARY":
        return  # ASCII data: nothing simple to check
    try:
        n_ch = int(common["NumberOfChannels"])
    except (KeyError, ValueError):
        raise DataError("BrainVision header lacks a numeric NumberOfChannels", vhdr) from None
    fmt = cp["Binary Infos"].get("BinaryFormat", "INT_16") if cp.has_section("Binary Infos") else "INT_16"
    nbytes = _BV_BYTES.get(fmt.strip().upper())
    if nbytes is None or n_ch <= 0:
        return
    size = eeg.stat().st_size
    frame = n_ch * nbytes
    if size % frame:
        raise DataError(f"data file has {size} bytes, not a whole number of {n_ch}-channel "
                        f"{fmt} samples ({frame} bytes each): the file is truncated or damaged", eeg)
    n_samples = size // frame
    if vmrk is not None:
        positions = [int(m.group(1)) for m in re.finditer(
            r"^Mk\d+=[^,]*,[^,]*,\s*(\d+)", vmrk.read_bytes().decode("latin-1"), re.MULTILINE)]
        if positions and max(positions) > n_samples:
            raise DataError(f"markers reach sample {max(positions)} but the data file holds only "
                            f"{n_samples} samples: the data file is truncated", eeg)


# --------------------------------------------------------------------- reading
def read_raw_eeg(path, *, preload: bool = True, **kwargs):
    """Read an EEG recording (EDF/BDF/GDF/FIF/BrainVision/EEGLAB) with MNE.

    Parameters
    ----------
    path : path-like
        The recording (for BrainVision the ``.vhdr`` header; for EEGLAB the
        ``.set`` file).
    preload : bool
        Read the samples into memory.
    **kwargs
        Passed to `mne.io.read_raw` (e.g. ``eog=``, ``stim_channel=``).

    Returns
    -------
    mne.io.Raw

    Raises
    ------
    DataError
        Missing file, unknown extension, or a file that is truncated or
        damaged; the message names the file and says what is wrong.

    Examples
    --------
    >>> from neurodecode.io.eeg_raw import read_raw_eeg
    >>> raw = read_raw_eeg("sub-01_task-mi_eeg.edf")   # doctest: +SKIP
    """
    import mne

    path = Path(path)
    fmt = _format_of(path)
    if not path.exists():
        raise DataError(f"{fmt} file not found", path)
    if not path.is_file():
        raise DataError(f"not a file (a {fmt} recording is one file)", path)
    if path.stat().st_size == 0:
        raise DataError(f"empty file (0 bytes), not a {fmt} recording", path)
    if fmt == "EDF":
        check_edf_structure(path)
    elif fmt == "BDF":
        check_bdf_structure(path)
    elif fmt == "FIF" and not path.name.lower().endswith(".gz"):
        check_fif_structure(path)
    elif fmt == "BrainVision":
        check_brainvision_structure(path)
    try:
        raw = mne.io.read_raw(path, preload=preload, verbose="error", **kwargs)
    except DataError:
        raise
    except Exception as err:  # MNE's readers raise many types for damaged files
        msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise DataError(f"cannot read as {fmt} ({type(err).__name__}: {msg}); "
                        "the file is damaged, truncated or not in that format", path) from None
    if raw.n_times == 0 or len(raw.ch_names) == 0:
        raise DataError(f"{fmt} file holds no samples or no channels", path)
    return raw


# BrainVision markers come back as "Type/Description" (e.g. "Comment/BAD_x").
_SKIP = re.compile(r"^([^/]*/)?(BAD|EDGE)", re.IGNORECASE)


def raw_to_epochs_trials(
    raw,
    event_id: Mapping[str, int] | Sequence[str] | None = None,
    *,
    tmin: float = 0.0,
    tmax: float = 1.0,
    baseline: tuple | None = None,
    picks="eeg",
    stim_channel: str | None = None,
    reject_by_annotation: bool = True,
    subject: str = "1",
    session: str = "0",
    run: str = "0",
    name: str | None = None,
) -> Trials:
    """Cut a recording into epochs around its events → `Trials` (modality ``"eeg"``).

    Events come from the annotations (``mne.events_from_annotations``) or,
    when ``stim_channel`` is given, from that channel (``mne.find_events``).

    Parameters
    ----------
    raw : mne.io.Raw or path-like
        A recording (a path is opened with `read_raw_eeg`).
    event_id : dict, list of str or None
        Which events become trials and their labels: ``{label: code}``
        (annotation descriptions, or stim codes with ``stim_channel``), a
        list of annotation descriptions, or None for every annotation
        description except ``BAD*``/``EDGE*``. (BrainVision markers read
        back as ``"Type/Description"``, e.g. ``"Comment/left"``.)
    tmin, tmax : float
        Epoch window in seconds around each event (``tmax`` included, as in
        `mne.Epochs`).
    baseline : tuple or None
        `mne.Epochs` baseline (default: none).
    picks : str, list or None
        Channels (MNE picks; default the EEG channels).
    stim_channel : str, optional
        Read events from this stim channel instead of the annotations.
    reject_by_annotation : bool
        Drop epochs overlapping ``BAD*`` annotations.
    subject, session, run : str
        Written to ``meta``.
    name : str, optional
        `Trials.name`.

    Returns
    -------
    Trials
        ``y`` the event labels (str); ``meta`` adds ``onset`` (s from the
        first sample) and ``code``; ``positions`` from the montage when the
        recording has one. Epochs not fully inside the recording are dropped.

    Examples
    --------
    >>> import mne, numpy as np
    >>> from neurodecode.io.eeg_raw import raw_to_epochs_trials
    >>> info = mne.create_info(["Fz", "Cz", "Pz"], 100.0, "eeg")
    >>> raw = mne.io.RawArray(np.zeros((3, 1000)), info, verbose="error")
    >>> raw.set_annotations(mne.Annotations([1, 3, 5], 0.5, ["a", "b", "a"]))  # doctest: +ELLIPSIS
    <RawArray ...>
    >>> trials = raw_to_epochs_trials(raw, tmin=0.0, tmax=0.99)
    >>> trials.X.shape, trials.y.tolist()
    ((3, 3, 100), ['a', 'b', 'a'])
    """
    import mne

    source = None
    if not isinstance(raw, mne.io.BaseRaw):
        source = Path(raw)
        raw = read_raw_eeg(source)
    origin = source or (raw.filenames[0] if raw.filenames and raw.filenames[0] else None)
    where = f" in {origin}" if origin else " in the recording"
    if tmax <= tmin:
        raise ValueError(f"tmax={tmax} must be greater than tmin={tmin}")

    if stim_channel is not None:
        if stim_channel not in raw.ch_names:
            raise ValueError(f"stim_channel={stim_channel!r} is not a channel{where}")
        events = mne.find_events(raw, stim_channel=stim_channel, verbose="error")
        codes = sorted(set(events[:, 2].tolist()))
        if event_id is None:
            event_id = {str(c): int(c) for c in codes}
        elif not isinstance(event_id, Mapping):
            raise ValueError("with stim_channel, event_id must map labels to stim codes")
        event_id = {str(k): int(v) for k, v in event_id.items() if int(v) in codes}
    else:
        present = sorted(set(raw.annotations.description))
        if event_id is None:
            wanted = [d for d in present if not _SKIP.match(d)]
            event_id = {d: i + 1 for i, d in enumerate(wanted)}
        elif not isinstance(event_id, Mapping):
            event_id = {str(d): i + 1 for i, d in enumerate(event_id)}
        missing = [d for d in event_id if d not in present]
        if missing:
            raise ValueError(f"event_id names annotation(s) {missing} absent{where}; present: {present}")
        event_id = {str(k): int(v) for k, v in event_id.items()}
        events = (mne.events_from_annotations(raw, event_id=event_id, verbose="error")[0]
                  if event_id else np.empty((0, 3), int))
    if not event_id or len(events) == 0:
        raise ValueError(f"no events to epoch{where}")

    epochs = mne.Epochs(raw, events, event_id=event_id, tmin=tmin, tmax=tmax, baseline=baseline,
                        picks=picks, preload=True, reject_by_annotation=reject_by_annotation,
                        on_missing="ignore", verbose="error")
    if len(epochs) == 0:
        raise ValueError(f"no epoch from {tmin} to {tmax} s fits inside the recording{where}")
    sfreq = float(raw.info["sfreq"])
    code_to_label = {v: k for k, v in event_id.items()}
    codes = epochs.events[:, 2]
    ch_names = list(epochs.ch_names)
    positions, frame = _channel_positions(raw, ch_names)
    if np.isnan(positions).all():
        positions, frame = None, None
    meta = pd.DataFrame({
        "subject": str(subject), "session": str(session), "run": str(run),
        "onset": (epochs.events[:, 0] - raw.first_samp) / sfreq, "code": codes.astype(np.int64),
    })
    y = np.array([code_to_label[c] for c in codes], dtype=str)
    return Trials(epochs.get_data(copy=False), y, meta, sfreq=sfreq, ch_names=ch_names,
                  modality="eeg", positions=positions, coord_frame=frame, name=name)
