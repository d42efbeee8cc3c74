"""4D NIfTI scans + an atlas → fMRI `Trials`, through nilearn's maskers.

Two ways to cut the scans into trials:

* `load_nifti_rois`: one trial per scan (run). ``X`` is the ragged list of
  ``(n_rois, n_times_i)`` ROI series (the `Trials` fMRI layout, the transpose
  of nilearn's ``(n_times, n_rois)``); ``y`` is one label per run, if given.
* `load_nifti_events`: one trial per event of a BIDS-like events table
  (``onset``, ``duration``, ``trial_type``; seconds from the first volume).
  ``X`` is ``(n_events, n_rois, n_window)``: the ROI series of the volumes
  starting at the event; ``y`` is ``trial_type``.

Signal extraction is nilearn's `NiftiLabelsMasker` (``kind="labels"``: a 3D
integer atlas, mean over each label's voxels) or `NiftiMapsMasker`
(``kind="maps"``: a 4D probabilistic atlas, one map per ROI); confounds,
detrending, filtering and standardisation are the masker's. Nothing of the
extraction is reimplemented here: this module reads and checks the files so
that a bad file gives a `DataError` naming it, and arranges the output.

By default the atlas must lie on the image's voxel grid (same shape and
affine): a mismatch is a `DataError` naming both files, because a silent
resampling of a wrong atlas looks like a valid result. Pass
``resampling_target="data"`` (or ``"labels"``/``"maps"``) to let nilearn
resample on purpose.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..trials import Trials

__all__ = ["read_nifti", "read_events", "load_nifti_rois", "load_nifti_events"]

_EVENT_COLUMNS = ("onset", "duration", "trial_type")


# ------------------------------------------------------------------ reading
def _describe(img, i: int | None = None) -> str:
    if isinstance(img, (str, os.PathLike)):
        return str(img)
    return f"<in-memory image {i}>" if i is not None else "<in-memory image>"


def read_nifti(img, *, ndim: int | None = 4, what: str = "image"):
    """Read a NIfTI file (or check an in-memory image) with its data in memory.

    The data are read here, not later inside nilearn, so that a missing,
    truncated or malformed file is reported as a `DataError` with its name.

    Parameters
    ----------
    img : path-like or nibabel image
    ndim : int or None
        Required number of dimensions (4 for scans, 3 for a label atlas);
        None accepts any.
    what : str
        Word used in error messages (``"image"``, ``"atlas"``).

    Returns
    -------
    nibabel.Nifti1Image
        With the voxel data loaded.

    Raises
    ------
    DataError
        File missing, not NIfTI, truncated, wrong number of dimensions, or
        containing NaN/inf.

    Examples
    --------
    >>> img = read_nifti("sub-01_task-rest_bold.nii.gz")   # doctest: +SKIP
    >>> img.shape                                           # doctest: +SKIP
    (61, 73, 61, 168)
    """
    import nibabel as nib

    label = _describe(img)
    if isinstance(img, (str, os.PathLike)):
        path = Path(img)
        if not path.is_file():
            raise DataError(f"{what} file not found", path)
        try:
            img = nib.load(path)
        except Exception as err:  # ImageFileError, HeaderDataError, OSError, EOFError…
            raise DataError(f"not a readable NIfTI {what} ({type(err).__name__}: {err})", path) from None
    elif not hasattr(img, "affine") or not hasattr(img, "dataobj"):
        raise TypeError(f"{what} must be a path or a nibabel image, got {type(img).__name__}")
    try:
        # Materialise now: a truncated .nii(.gz) only fails when its data are read.
        data = np.asanyarray(img.dataobj)
    except Exception as err:
        raise DataError(f"cannot read the {what} data, truncated or corrupted? "
                        f"({type(err).__name__}: {err})", label) from None
    if ndim is not None and data.ndim != ndim:
        if what == "image" and data.ndim == 3:
            hint = " (a single volume; fMRI scans are 4D: x, y, z, time)"
        else:
            hint = ""
        raise DataError(f"{what} has shape {data.shape}: expected a {ndim}D NIfTI{hint}", label)
    if data.dtype.kind in "fc" and not np.isfinite(data).all():
        raise DataError(f"{what} contains NaN or inf voxels", label)
    return nib.Nifti1Image(data, img.affine, img.header)


def _tr_from_header(img, label: str = "image") -> float:
    """Repetition time (s) from the NIfTI header, NaN when it is not recorded."""
    zooms = img.header.get_zooms()
    if len(zooms) < 4 or not zooms[3] or zooms[3] <= 0:
        return np.nan
    unit = img.header.get_xyzt_units()[1]
    if unit == "unknown":
        # nibabel writes pixdim[4] = 1 with no unit when nobody set the TR: say so rather
        # than trust a TR that may be a placeholder.
        warnings.warn(f"{label}: header gives pixdim[4] = {float(zooms[3]):g} with no time unit; "
                      "taken as seconds. Pass tr= if that is wrong", stacklevel=3)
    scale = {"msec": 1e-3, "usec": 1e-6}.get(unit, 1.0)
    return float(zooms[3]) * scale


def read_events(events, *, source: str = "events") -> pd.DataFrame:
    """Read a BIDS-like events table (``onset``, ``duration``, ``trial_type``).

    Parameters
    ----------
    events : path-like or pandas.DataFrame
        A tab-separated ``*_events.tsv`` (``n/a`` for missing values) or a
        DataFrame with the same columns. Rows without a ``trial_type`` are
        dropped (BIDS allows such rows for non-trial events).
    source : str
        Name used in error messages for an in-memory table.

    Returns
    -------
    pandas.DataFrame
        ``onset`` and ``duration`` as float seconds, ``trial_type`` as text,
        plus every other column of the file.

    Examples
    --------
    >>> import pandas as pd
    >>> ev = read_events(pd.DataFrame({"onset": [0, 10], "duration": [5, 5],
    ...                                "trial_type": ["face", "house"]}))
    >>> ev["trial_type"].tolist()
    ['face', 'house']
    """
    if isinstance(events, (str, os.PathLike)):
        path = Path(events)
        source = str(path)
        if not path.is_file():
            raise DataError("events file not found", path)
        try:
            table = pd.read_csv(path, sep="\t", na_values=["n/a"])
        except Exception as err:
            raise DataError(f"not a readable events table ({type(err).__name__}: {err})", path) from None
    elif isinstance(events, pd.DataFrame):
        table = events.copy()
    else:
        raise TypeError(f"events must be a path or a DataFrame, got {type(events).__name__}")
    missing = [c for c in _EVENT_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"events table lacks column(s) {missing}; has {list(table.columns)}", source)
    table = table[table["trial_type"].notna()].reset_index(drop=True)
    for col in ("onset", "duration"):
        try:
            table[col] = pd.to_numeric(table[col]).astype(np.float64)
        except (ValueError, TypeError):
            raise DataError(f"column {col!r} is not numeric", source) from None
        if not np.isfinite(table[col]).all():
            raise DataError(f"column {col!r} has missing or infinite values", source)
    if (table["onset"] < 0).any():
        raise DataError("negative onset: onsets are seconds from the first volume", source)
    table["trial_type"] = table["trial_type"].astype(str)
    return table


# ------------------------------------------------------------------ masker
def _as_list(value, n: int, what: str) -> list:
    if value is None:
        return [None] * n
    # A path, a table or a 2D array is one entry (e.g. the confounds of a single scan).
    single = isinstance(value, (str, os.PathLike, pd.DataFrame)) or (
        isinstance(value, np.ndarray) and value.ndim == 2
    )
    values = [value] if single else list(value)
    if len(values) != n:
        raise ValueError(f"{what} has {len(values)} entries for {n} image(s); give one per image")
    return values


def _make_masker(atlas_img, kind: str, tr, resampling_target, masker_kwargs: dict):
    from nilearn.maskers import NiftiLabelsMasker, NiftiMapsMasker

    # nilearn 0.14 deprecates standardize=False in favour of None.
    kwargs = {"standardize": None, "reports": False, **masker_kwargs}
    if tr is not None and np.isfinite(tr):
        kwargs.setdefault("t_r", float(tr))
    if kind == "labels":
        return NiftiLabelsMasker(labels_img=atlas_img, resampling_target=resampling_target, **kwargs)
    return NiftiMapsMasker(maps_img=atlas_img, resampling_target=resampling_target, **kwargs)


def _roi_names(masker, atlas_img, kind: str, n_rois: int, roi_names) -> list[str]:
    if roi_names is not None:
        roi_names = [str(r) for r in roi_names]
        if len(roi_names) != n_rois:
            raise ValueError(f"roi_names has {len(roi_names)} names but the atlas gives {n_rois} ROIs")
        return roi_names
    if kind == "labels":
        ids = getattr(masker, "region_ids_", None)
        if isinstance(ids, dict):
            cols = sorted(k for k in ids if k != "background")
            if len(cols) == n_rois:
                return [str(_int_if_whole(ids[k])) for k in cols]
        values = np.unique(np.asanyarray(atlas_img.dataobj))
        values = values[values != 0]
        if len(values) == n_rois:
            return [str(_int_if_whole(v)) for v in values]
    return [f"roi{i:03d}" for i in range(n_rois)]


def _int_if_whole(v):
    v = float(v)
    return int(v) if v.is_integer() else v


def _check_grid(img, atlas_img, kind: str, img_label: str, atlas_label: str, resampling_target):
    if resampling_target is not None:
        return
    atlas_shape = atlas_img.shape[:3]
    if img.shape[:3] != atlas_shape or not np.allclose(img.affine, atlas_img.affine, atol=1e-4):
        raise DataError(
            f"image grid {img.shape[:3]} (affine diagonal {np.round(np.diag(img.affine)[:3], 3).tolist()}) "
            f"does not match the {kind} atlas {atlas_label} grid {atlas_shape} "
            f"(affine diagonal {np.round(np.diag(atlas_img.affine)[:3], 3).tolist()}). "
            "Use an atlas on the image's grid, or pass resampling_target='data' to let nilearn resample it",
            img_label,
        )


def _read_confounds(conf, n_vols: int, img_label: str):
    if conf is None:
        return None
    if isinstance(conf, (str, os.PathLike)):
        path = Path(conf)
        if not path.is_file():
            raise DataError("confounds file not found", path)
        try:
            conf = pd.read_csv(path, sep="\t", na_values=["n/a"])
        except Exception as err:
            raise DataError(f"not a readable confounds table ({type(err).__name__}: {err})", path) from None
        label = str(path)
    else:
        label = f"confounds of {img_label}"
    values = np.asarray(conf, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.shape[0] != n_vols:
        raise DataError(f"confounds have {values.shape[0]} rows but the image has {n_vols} volumes", label)
    if not np.isfinite(values).all():
        # fMRIPrep derivative columns start with n/a; say so instead of failing inside nilearn.
        raise DataError("confounds contain NaN/n/a (e.g. first row of derivative columns): "
                        "fill or drop them before loading", label)
    return values


def _extract(imgs, atlas, kind, confounds, tr, resampling_target, masker_kwargs, roi_names, dtype):
    """Run the masker on each scan; return series (n_rois, n_times), names, TRs, file labels."""
    if kind not in ("labels", "maps"):
        raise ValueError(f"kind={kind!r}: expected 'labels' (3D label atlas) or 'maps' (4D maps)")
    if isinstance(imgs, (str, os.PathLike)) or hasattr(imgs, "affine"):
        imgs = [imgs]
    imgs = list(imgs)
    if not imgs:
        raise ValueError("imgs is empty: no scan to load")
    n = len(imgs)
    confounds = _as_list(confounds, n, "confounds")
    atlas_label = _describe(atlas)
    atlas_img = read_nifti(atlas, ndim=3 if kind == "labels" else 4, what=f"{kind} atlas")
    if kind == "labels":
        values = np.asanyarray(atlas_img.dataobj)
        if values.dtype.kind == "f" and not np.equal(np.mod(values, 1), 0).all():
            raise DataError("label atlas has non-integer values; use kind='maps' for a probabilistic "
                            "atlas", atlas_label)
        if not (values != 0).any():
            raise DataError("label atlas has no labelled voxel (all 0 = background)", atlas_label)

    series, trs, labels = [], [], []
    masker = names = None
    for i, (img, conf) in enumerate(zip(imgs, confounds)):
        label = _describe(img, i)
        data = read_nifti(img, ndim=4, what="image")
        _check_grid(data, atlas_img, kind, label, atlas_label, resampling_target)
        n_vols = data.shape[3]
        img_tr = _tr_from_header(data, label) if tr is None else float(tr)
        conf_values = _read_confounds(conf, n_vols, label)
        masker = _make_masker(atlas_img, kind, img_tr, resampling_target or "data", masker_kwargs)
        with warnings.catch_warnings():
            # nilearn warns about its own future defaults on every call; not the user's concern here.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                out = masker.fit_transform(data, confounds=conf_values)
            except Exception as err:
                raise DataError(f"nilearn {type(masker).__name__} failed ({type(err).__name__}: {err})",
                                label) from None
        out = np.asarray(out)
        if out.ndim != 2 or out.shape[0] != n_vols:
            raise DataError(f"masker returned shape {out.shape} for {n_vols} volumes", label)
        if names is None:
            names = _roi_names(masker, atlas_img, kind, out.shape[1], roi_names)
        elif out.shape[1] != len(names):
            raise DataError(f"{out.shape[1]} ROIs here but {len(names)} in the first image "
                            "(a label has no voxel inside this scan)", label)
        series.append(np.ascontiguousarray(out.T, dtype=dtype))
        trs.append(img_tr)
        labels.append(label)
    return series, names, np.asarray(trs, dtype=np.float64), labels


def _base_meta(n, labels, subjects, sessions, runs) -> pd.DataFrame:
    def stem(label):
        name = Path(label).name
        for ext in (".nii.gz", ".nii"):
            if name.endswith(ext):
                return name[: -len(ext)]
        return name

    return pd.DataFrame({
        "subject": [stem(lb) for lb in labels] if subjects is None else [str(s) for s in _as_list(subjects, n, "subjects")],
        "session": "0" if sessions is None else [str(s) for s in _as_list(sessions, n, "sessions")],
        "run": [str(i) for i in range(n)] if runs is None else [str(r) for r in _as_list(runs, n, "runs")],
        "file": labels,
    })


def _sfreq(trs: np.ndarray) -> float:
    unique = np.unique(trs[np.isfinite(trs)])
    if len(unique) == 1 and np.isfinite(trs).all():
        return 1.0 / unique[0]
    return np.nan


# ------------------------------------------------------------------ public
def load_nifti_rois(
    imgs,
    atlas,
    *,
    kind: str = "labels",
    confounds=None,
    labels=None,
    events=None,
    tr: float | None = None,
    subjects=None,
    sessions=None,
    runs=None,
    roi_names: Sequence[str] | None = None,
    resampling_target: str | None = None,
    masker_kwargs: dict | None = None,
    dtype=np.float64,
    name: str | None = None,
    **event_kwargs,
) -> Trials:
    """ROI time series of 4D NIfTI scans → ragged fMRI `Trials`, one trial per scan.

    Parameters
    ----------
    imgs : path-like, nibabel image, or a list of them
        4D scans (x, y, z, time), one per run.
    atlas : path-like or nibabel image
        ``kind="labels"``: a 3D integer image, 0 = background, one value per
        ROI. ``kind="maps"``: a 4D image with one (probabilistic) map per ROI.
    kind : {"labels", "maps"}
        `~nilearn.maskers.NiftiLabelsMasker` or `~nilearn.maskers.NiftiMapsMasker`.
    confounds : list, optional
        One entry per scan: None, an array/DataFrame ``(n_volumes, n_conf)``
        or a TSV path (fMRIPrep ``*_desc-confounds_timeseries.tsv`` columns
        you chose). Regressed out by the masker.
    labels : array-like, optional
        One label per scan (``y``).
    events : list, optional
        One events table per scan; then the result is per event, see
        `load_nifti_events` (``labels`` must be None; extra keyword
        arguments such as ``tmin``/``tmax`` go there).
    tr : float, optional
        Repetition time in s; default: from each header (``pixdim[4]``).
    subjects, sessions, runs : list, optional
        One per scan (default subject: the file name without ``.nii[.gz]``;
        run: the position in ``imgs``).
    roi_names : list of str, optional
        Default: the atlas label values (``"1"``, ``"2"``…) for labels,
        ``"roi000"``… for maps.
    resampling_target : {None, "data", "labels", "maps"}
        None (default) requires the atlas on the image grid (else
        `DataError`); otherwise passed to nilearn, which resamples.
    masker_kwargs : dict, optional
        More masker arguments (``standardize="zscore_sample"``,
        ``detrend=True``, ``low_pass``, ``high_pass``, ``smoothing_fwhm``…).
    dtype : numpy dtype
        Of the returned series.
    name : str, optional
        Dataset name of the result.

    Returns
    -------
    Trials
        ``X`` a list of ``(n_rois, n_times_i)`` arrays (ragged; lengths in
        ``meta["n_times"]``); ``meta``: ``subject``, ``session``, ``run``,
        ``file``, ``tr``; ``sfreq`` ``1 / tr`` when all scans share one TR,
        else NaN.

    Raises
    ------
    DataError
        Missing/unreadable/truncated file, a scan that is not 4D, an atlas not
        on the scan's grid, or confounds of the wrong length (each names the
        file).

    Examples
    --------
    >>> t = load_nifti_rois(["sub-01_bold.nii.gz", "sub-02_bold.nii.gz"],
    ...                     "atlas_labels.nii.gz", labels=["child", "adult"])  # doctest: +SKIP
    >>> t.X[0].shape                                                            # doctest: +SKIP
    (64, 168)
    """
    if events is not None:
        if labels is not None:
            raise ValueError("give either labels (one per scan) or events (one trial per event), not both")
        return load_nifti_events(
            imgs, atlas, events, kind=kind, confounds=confounds, tr=tr, subjects=subjects,
            sessions=sessions, runs=runs, roi_names=roi_names, resampling_target=resampling_target,
            masker_kwargs=masker_kwargs, dtype=dtype, name=name, **event_kwargs,
        )
    if event_kwargs:
        raise TypeError(f"unexpected keyword argument(s) {sorted(event_kwargs)} (only with events=)")
    series, names, trs, files = _extract(imgs, atlas, kind, confounds, tr, resampling_target,
                                         masker_kwargs or {}, roi_names, dtype)
    meta = _base_meta(len(series), files, subjects, sessions, runs)
    meta["tr"] = trs
    y = None if labels is None else np.asarray(labels)
    if y is not None and (y.ndim != 1 or len(y) != len(series)):
        raise ValueError(f"labels has shape {y.shape}; expected one label per scan ({len(series)})")
    return Trials(series, y, meta, sfreq=_sfreq(trs), ch_names=names, modality="fmri", name=name)


def load_nifti_events(
    imgs,
    atlas,
    events,
    *,
    tmin: float = 0.0,
    tmax: float | None = None,
    kind: str = "labels",
    confounds=None,
    tr: float | None = None,
    subjects=None,
    sessions=None,
    runs=None,
    roi_names: Sequence[str] | None = None,
    resampling_target: str | None = None,
    masker_kwargs: dict | None = None,
    on_outside: str = "drop",
    dtype=np.float64,
    name: str | None = None,
) -> Trials:
    """Per-event ROI windows of 4D NIfTI scans → fMRI `Trials` ``(n_events, n_rois, n_window)``.

    Each scan's ROI series is extracted once (as in `load_nifti_rois`, so
    confounds and filtering apply to the whole run), then cut around each
    event. Volume ``k`` is taken at time ``k * tr`` (nilearn's
    ``slice_time_ref=0``); the window of an event at ``onset`` starts at
    volume ``round((onset + tmin) / tr)`` and has
    ``n_window = round((tmax - tmin) / tr)`` volumes.

    Parameters
    ----------
    imgs, atlas : see `load_nifti_rois`
    events : path-like, DataFrame, or a list of them (one per scan)
        BIDS-like: ``onset``, ``duration`` (s) and ``trial_type``.
    tmin, tmax : float
        Window in seconds relative to the onset. ``tmax`` defaults to
        ``tmin`` plus the longest event duration (at least one volume).
        Add the haemodynamic delay yourself (e.g. ``tmin=4``) if you want it.
    on_outside : {"drop", "raise"}
        What to do with an event whose window runs past the scan: drop it
        (with a warning that counts them) or raise `DataError`.

    Returns
    -------
    Trials
        ``X`` ``(n_events, n_rois, n_window)``; ``y`` the ``trial_type``;
        ``meta``: ``subject``, ``session``, ``run``, ``file``, ``tr``,
        ``onset``, ``duration``, ``start_volume`` and the other event columns.

    Examples
    --------
    >>> t = load_nifti_events("sub-01_task-faces_bold.nii.gz", "atlas.nii.gz",
    ...                       "sub-01_task-faces_events.tsv", tmin=4, tmax=12)  # doctest: +SKIP
    >>> t.y[:3]                                                                 # doctest: +SKIP
    array(['face', 'house', 'face'], dtype='<U5')
    """
    if on_outside not in ("drop", "raise"):
        raise ValueError(f"on_outside={on_outside!r}: expected 'drop' or 'raise'")
    series, names, trs, files = _extract(imgs, atlas, kind, confounds, tr, resampling_target,
                                         masker_kwargs or {}, roi_names, dtype)
    n = len(series)
    if isinstance(events, (str, os.PathLike, pd.DataFrame)):
        events = [events]
    events = list(events)
    if len(events) != n:
        raise ValueError(f"events has {len(events)} tables for {n} image(s); give one per image")
    base = _base_meta(n, files, subjects, sessions, runs)
    tables = [read_events(ev, source=f"events of {files[i]}") for i, ev in enumerate(events)]
    if not np.isfinite(trs).all():
        bad = files[int(np.flatnonzero(~np.isfinite(trs))[0])]
        raise DataError("no repetition time in the header (pixdim[4]); pass tr=", bad)
    if tmax is None:
        longest = max((float(t["duration"].max()) for t in tables if len(t)), default=0.0)
        tmax = tmin + max(longest, float(trs.max()))
    if tmax <= tmin:
        raise ValueError(f"tmax={tmax} must be greater than tmin={tmin}")
    windows = {int(round((tmax - tmin) / t)) for t in trs}
    if len(windows) != 1:
        raise ValueError(f"scans have different TRs {sorted(set(trs.tolist()))}: windows of "
                         f"{tmax - tmin} s have different volume counts; load them separately")
    n_window = max(1, windows.pop())

    X, rows, dropped = [], [], 0
    for i, (s, table) in enumerate(zip(series, tables)):
        n_vols = s.shape[1]
        for _, ev in table.iterrows():
            start = int(round((ev["onset"] + tmin) / trs[i]))
            if start < 0 or start + n_window > n_vols:
                if on_outside == "raise":
                    raise DataError(f"event at onset {ev['onset']} s needs volumes {start}..{start + n_window - 1}"
                                    f" but the scan has {n_vols}", files[i])
                dropped += 1
                continue
            X.append(s[:, start:start + n_window])
            row = {**base.iloc[i].to_dict(), "tr": trs[i], "start_volume": start}
            row.update({k: v for k, v in ev.items() if k not in row})
            rows.append(row)
    if dropped:
        warnings.warn(f"dropped {dropped} event(s) whose window [{tmin}, {tmax}) s runs past the scan",
                      stacklevel=2)
    if not X:
        raise DataError("no event window lies inside its scan", files[0] if n == 1 else None)
    meta = pd.DataFrame(rows)
    y = meta.pop("trial_type").to_numpy().astype(str)
    meta["trial_type"] = y
    return Trials(np.stack(X), y, meta, sfreq=_sfreq(trs), ch_names=names, modality="fmri", name=name)
