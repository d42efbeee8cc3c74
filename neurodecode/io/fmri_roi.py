"""fMRI ROI time series from text and npz: ABIDE PCP (``.1D`` / packed npz) and nilearn's development set.

Layout (the `Trials` convention for fMRI): one trial per scan, ``X[i]`` of
shape ``(n_rois, n_times_i)`` — ROIs on axis 0, time on axis 1, the transpose
of nilearn's ``(n_times, n_rois)``. Scans of different lengths stay **ragged**
(``X`` is a list, ``meta["n_times"]`` the lengths); nothing is padded or
cropped (`Trials.crop_times` does that on request).

Labels are integers with the class of interest as 1, as in the reference
procedures of the dataset cards: ABIDE ``y = 1`` autism, ``0`` control;
development ``y = 1`` adult, ``0`` child. The text form is kept in ``meta``
(``diagnosis``, ``child_adult``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..paths import dataset_path
from ..trials import Trials
from .cache import cached_trials

__all__ = [
    "ABIDE_SITE_TR",
    "read_afni_1d",
    "load_afni_1d",
    "load_abide_pcp",
    "load_development_fmri",
]

#: Repetition time (s) of each ABIDE I site's resting-state scan. The PCP
#: phenotypic file has no TR column; these values are the ABIDE I scan
#: parameters as reproduced by public analysis code (not re-read from the
#: ABIDE site PDFs, which are not available offline). They agree with the
#: series lengths here (C-PAC drops 4 volumes: e.g. NYU 180 → 176 at 2 s,
#: UCLA 120 → 116 at 3 s, UM 300 → 296 at 2 s). Sources disagree on SBL
#: (2.2 s in most, 2.5 s in one); 2.2 s is used. Treat ``tr`` as documented
#: metadata, not as a measured quantity.
ABIDE_SITE_TR = {
    "CALTECH": 2.0, "CMU": 2.0, "KKI": 2.5, "LEUVEN_1": 1.656, "LEUVEN_2": 1.656,
    "MAX_MUN": 3.0, "NYU": 2.0, "OHSU": 2.5, "OLIN": 1.5, "PITT": 1.5, "SBL": 2.2,
    "SDSU": 2.0, "STANFORD": 2.0, "TRINITY": 2.0, "UCLA_1": 3.0, "UCLA_2": 3.0,
    "UM_1": 2.0, "UM_2": 2.0, "USM": 2.0, "YALE": 2.0,
}

_ABIDE_NPZ = "abide_pcp_cpac_filt_noglobal_rois_ho.npz"
_ABIDE_PHENO = "Phenotypic_V1_0b_preprocessed1.csv"
_DEV_NPZ = "development_fmri_basc064_timeseries.npz"


# ------------------------------------------------------------------ .1D text
def read_afni_1d(path) -> tuple[np.ndarray, list[str]]:
    """Read an AFNI ``.1D`` ROI time-series file (as written by C-PAC for the PCP).

    The format: an optional header line ``#10\\t#11\\t…`` naming the ROI
    label values, then one whitespace-separated row of numbers per volume.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    series : ndarray of shape (n_rois, n_times), float64
        ROIs on axis 0 (the `Trials` layout; the file is volumes × ROIs).
    roi_names : list of str
        Header labels without ``#`` (``"10"``, ``"11"``…), or ``"0".."n-1"``
        when the file has no header.

    Raises
    ------
    DataError
        Empty file, a row with the wrong number of values, or a value that is
        not a number (the message names the file and the line).

    Examples
    --------
    >>> series, names = read_afni_1d("OHSU_0050160_rois_ho.1D")   # doctest: +SKIP
    >>> series.shape                                               # doctest: +SKIP
    (111, 78)
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("1D file not found", path)
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise DataError("not a text .1D file (undecodable bytes)", path) from None
    header = None
    rows = []
    for lineno, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            if header is None and not rows:
                header = [tok.lstrip("#") for tok in text.split()]
            continue
        tokens = text.split()
        try:
            values = [float(tok) for tok in tokens]
        except ValueError:
            bad = next(t for t in tokens if not _is_float(t))
            raise DataError(f"line {lineno}: {bad!r} is not a number", path) from None
        width = len(header) if header is not None else (len(rows[0]) if rows else len(values))
        if len(values) != width:
            raise DataError(f"line {lineno} has {len(values)} values; expected {width} "
                            f"({'header' if header is not None else 'first row'})", path)
        rows.append(values)
    if not rows:
        raise DataError("no data rows", path)
    series = np.asarray(rows, dtype=np.float64).T
    if not np.isfinite(series).all():
        raise DataError("contains NaN or inf", path)
    names = header if header is not None else [str(i) for i in range(series.shape[0])]
    return series, names


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def load_afni_1d(paths, *, tr: float | None = None, subjects=None, y=None, meta=None,
                 name: str | None = None) -> Trials:
    """Load several ``.1D`` files (one scan each) into ragged fMRI `Trials`.

    Parameters
    ----------
    paths : list of path-like
    tr : float, optional
        Repetition time in seconds (``sfreq = 1 / tr``); ``nan`` sfreq when None.
    subjects : list, optional
        One subject per file (default: the file stem).
    y : array-like, optional
    meta : pandas.DataFrame, optional
        Extra columns, one row per file.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("paths is empty: no .1D file to load")
    series, names = zip(*(read_afni_1d(p) for p in paths))
    for p, n in zip(paths[1:], names[1:]):
        if n != names[0]:
            raise DataError(f"ROI header differs from {paths[0].name}", p)
    table = pd.DataFrame(index=range(len(paths))) if meta is None else meta.reset_index(drop=True).copy()
    table["subject"] = [p.stem for p in paths] if subjects is None else [str(s) for s in subjects]
    table["file"] = [p.name for p in paths]
    sfreq = np.nan if tr is None else 1.0 / float(tr)
    return Trials(list(series), y, table, sfreq=sfreq, ch_names=list(names[0]), modality="fmri", name=name)


# ------------------------------------------------------------------ ABIDE
def _split_ragged(timeseries, offsets, dtype, rows) -> list[np.ndarray]:
    return [np.ascontiguousarray(timeseries[offsets[i]:offsets[i + 1]].T, dtype=dtype) for i in rows]


def _read_npz(path: Path, keys) -> dict:
    if not path.is_file():
        raise DataError("file not found", path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise DataError(f"npz lacks key(s) {missing}; has {sorted(z.files)}", path)
            return {k: z[k] for k in keys}
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"cannot read the npz ({type(err).__name__}: {err})", path) from None


def _read_table(path: Path, **kwargs) -> pd.DataFrame:
    # A damaged table (binary junk, bad quoting) must name the file, not surface a pandas/codec traceback.
    try:
        return pd.read_csv(path, **kwargs)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"not a readable table ({type(err).__name__}: {err})", path) from None


def _build_abide(folder: Path, sites, subjects, dtype) -> Trials:
    npz_path = folder / _ABIDE_NPZ
    z = _read_npz(npz_path, ["timeseries", "lengths", "offsets", "file_ids", "sub_ids", "site_ids",
                             "dx_group", "roi_labels"])
    offsets = z["offsets"]
    n = len(z["file_ids"])
    if len(offsets) != n + 1 or offsets[-1] != len(z["timeseries"]) or \
            not np.array_equal(np.diff(offsets), z["lengths"]):
        raise DataError("offsets/lengths do not match the timeseries rows", npz_path)
    pheno_path = folder / _ABIDE_PHENO
    if not pheno_path.is_file():
        raise DataError("phenotypic table not found", pheno_path)
    pheno = _read_table(pheno_path)
    need = ["FILE_ID", "SUB_ID", "SITE_ID", "DX_GROUP", "DSM_IV_TR", "AGE_AT_SCAN", "SEX", "func_mean_fd"]
    missing = [c for c in need if c not in pheno.columns]
    if missing:
        raise DataError(f"phenotypic table lacks column(s) {missing}", pheno_path)
    pheno = pheno[pheno["FILE_ID"] != "no_filename"].set_index("FILE_ID")
    file_ids = z["file_ids"].astype(str)
    absent = [f for f in file_ids if f not in pheno.index]
    if absent:
        raise DataError(f"{len(absent)} FILE_ID(s) of the npz are not in {pheno_path.name}: {absent[:3]}",
                        npz_path)
    ph = pheno.loc[file_ids]
    if not (np.array_equal(ph["SUB_ID"].to_numpy(), z["sub_ids"])
            and np.array_equal(ph["DX_GROUP"].to_numpy(), z["dx_group"])
            and np.array_equal(ph["SITE_ID"].astype(str).to_numpy(), z["site_ids"].astype(str))):
        raise DataError(f"SUB_ID/SITE_ID/DX_GROUP of the npz disagree with {pheno_path.name}", npz_path)

    site_ids = z["site_ids"].astype(str)
    keep = np.ones(n, dtype=bool)
    if sites is not None:
        sites = [sites] if isinstance(sites, str) else list(sites)
        wanted = {str(s).upper() for s in sites}
        unknown = sorted(wanted - set(site_ids))
        if unknown:
            raise ValueError(f"sites={sites!r}: unknown site(s) {unknown}; sites: {sorted(set(site_ids))}")
        keep &= np.isin(site_ids, list(wanted))
    if subjects is not None:
        subjects = [subjects] if isinstance(subjects, (str, int, np.integer)) else list(subjects)
        wanted_ids = {int(s) for s in subjects}
        unknown = sorted(wanted_ids - set(z["sub_ids"].tolist()))
        if unknown:
            raise ValueError(f"subjects={unknown[:5]} are not among the 871 ABIDE PCP SUB_IDs")
        keep &= np.isin(z["sub_ids"], list(wanted_ids))
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        raise ValueError(f"no scan matches sites={sites!r} and subjects={subjects!r}")

    ph = ph.iloc[rows]
    dx = ph["DX_GROUP"].to_numpy()
    tr = np.array([ABIDE_SITE_TR.get(s, np.nan) for s in site_ids[rows]])
    meta = pd.DataFrame({
        "subject": ph["SUB_ID"].astype(str).to_numpy(),
        "session": "0",
        "run": "0",
        "site": site_ids[rows],
        "age": ph["AGE_AT_SCAN"].to_numpy(dtype=np.float64),
        "sex": np.where(ph["SEX"].to_numpy() == 1, "M", "F"),
        "mean_fd": ph["func_mean_fd"].to_numpy(dtype=np.float64),
        "dx_group": dx.astype(np.int64),
        "diagnosis": np.where(dx == 1, "autism", "control"),
        "dsm_iv_tr": ph["DSM_IV_TR"].to_numpy(dtype=np.int64),
        "tr": tr,
        "SUB_ID": ph["SUB_ID"].to_numpy(dtype=np.int64),
        "FILE_ID": file_ids[rows],
    })
    unique_tr = np.unique(tr)
    sfreq = 1.0 / unique_tr[0] if len(unique_tr) == 1 and np.isfinite(unique_tr[0]) else np.nan
    X = _split_ragged(z["timeseries"], offsets, dtype, rows)
    y = (dx == 1).astype(np.int64)
    return Trials(X, y, meta, sfreq=sfreq, ch_names=[str(v) for v in z["roi_labels"]],
                  modality="fmri", name="abide-pcp")


def load_abide_pcp(sites=None, subjects=None, *, dtype=np.float32, use_cache: bool = False) -> Trials:
    """ABIDE I PCP Harvard-Oxford ROI series (``abide-pcp``): 871 scans, 20 sites, 111 ROIs.

    Read from the packed ``abide_pcp_cpac_filt_noglobal_rois_ho.npz`` (C-PAC,
    band-pass filtered, no global signal regression) with the PCP phenotypic
    table merged on ``FILE_ID``.

    Parameters
    ----------
    sites : str or list of str, optional
        ``SITE_ID`` values to keep (``"NYU"``, ``"UM_1"``…; case-insensitive).
    subjects : int or list of int, optional
        ``SUB_ID`` values to keep.
    dtype : numpy dtype
        Type of the returned series. The npz stores float16; float32 (default)
        holds every float16 value exactly at half the memory of float64
        (75 MB for all scans). Pass ``np.float64`` for float64 arithmetic.
    use_cache : bool
        Keep an HDF5 copy in the neurodecode cache.

    Returns
    -------
    Trials
        Ragged ``X``: a list of ``(111, n_times_i)`` arrays (78–316 volumes;
        constant within a site). ``y`` = 1 autism (DX_GROUP 1), 0 control.
        ``meta``: ``subject`` (SUB_ID as text), ``site``, ``age``
        (AGE_AT_SCAN), ``sex`` (``"M"``/``"F"``), ``mean_fd``
        (func_mean_fd, mm), ``dx_group`` (1/2), ``diagnosis``
        (``"autism"``/``"control"``), ``dsm_iv_tr``, ``tr`` (seconds, see
        `ABIDE_SITE_TR`), ``SUB_ID``, ``FILE_ID``, ``n_times``.
        ``ch_names`` are the Harvard-Oxford label values of the ``.1D``
        header (``"10"``, ``"11"``… ``"9002"``).
        ``sfreq`` is ``1 / tr`` when the selected scans share one TR (e.g. one
        site), else ``nan``: TR differs across sites (1.5–3 s), so a
        frequency-dependent step must read ``meta["tr"]`` per scan.

    Examples
    --------
    >>> from neurodecode import load_dataset
    >>> t = load_dataset("abide-pcp", sites=["NYU"])   # doctest: +SKIP
    >>> t.n_trials, t.sfreq                             # doctest: +SKIP
    (172, 0.5)
    """
    folder = dataset_path("abide_pcp")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype={dtype}: expected a floating type")
    params = {"sites": None if sites is None else sorted(map(str, np.atleast_1d(sites))),
              "subjects": None if subjects is None else sorted(map(int, np.atleast_1d(subjects))),
              "dtype": dtype.str}
    return cached_trials("abide-pcp", params, [folder / _ABIDE_NPZ, folder / _ABIDE_PHENO],
                         lambda: _build_abide(folder, sites, subjects, dtype), use_cache=use_cache)


# ------------------------------------------------------------ development
def load_development_fmri(*, use_cache: bool = False) -> Trials:
    """nilearn development fMRI (``development-fmri``): 155 × 64 BASC ROIs × 168 volumes, TR 2 s.

    Movie-watching (Pixar "Partly Cloudy") series of OpenNeuro ds000228,
    extracted with the BASC multiscale 2015 symmetric scale-064 atlas and
    standardised per ROI (see ``datasets/development-fmri.md``).

    Returns
    -------
    Trials
        ``X`` float32 ``(155, 64, 168)``; ``sfreq`` 0.5 Hz; ``y`` = 1 adult
        (33), 0 child (122). ``meta``: ``subject`` (``sub-pixarNNN``),
        ``age`` (years), ``child_adult``, ``age_group``, ``gender``
        (``"M"``/``"F"``), ``handedness`` from ``participants.tsv``.
        ``ch_names`` are the BASC label values ``"1"``…``"64"``.
    """
    folder = dataset_path("development_fmri")
    npz_path, tsv_path = folder / _DEV_NPZ, folder / "participants.tsv"
    return cached_trials("development-fmri", {}, [npz_path, tsv_path],
                         lambda: _build_development(npz_path, tsv_path), use_cache=use_cache)


def _build_development(npz_path: Path, tsv_path: Path) -> Trials:
    z = _read_npz(npz_path, ["timeseries", "lengths", "offsets", "participant_ids", "child_adult",
                             "age", "roi_labels"])
    ids = z["participant_ids"].astype(str)
    offsets = z["offsets"]
    if len(offsets) != len(ids) + 1 or offsets[-1] != len(z["timeseries"]):
        raise DataError("offsets do not match the timeseries rows", npz_path)
    if not tsv_path.is_file():
        raise DataError("participants table not found", tsv_path)
    table = _read_table(tsv_path, sep="\t", na_values=["n/a"], dtype={"participant_id": str})
    missing = [c for c in ("participant_id", "Age", "AgeGroup", "Child_Adult", "Gender", "Handedness")
               if c not in table.columns]
    if missing:
        raise DataError(f"participants table lacks column(s) {missing}", tsv_path)
    table = table.set_index("participant_id")
    absent = [p for p in ids if p not in table.index]
    if absent:
        raise DataError(f"{len(absent)} participant(s) of the npz are not in the table: {absent[:3]}", npz_path)
    table = table.loc[ids]
    if not np.array_equal(table["Child_Adult"].astype(str).to_numpy(), z["child_adult"].astype(str)):
        raise DataError("Child_Adult of participants.tsv disagrees with the npz", npz_path)
    series = [z["timeseries"][offsets[i]:offsets[i + 1]].T for i in range(len(ids))]
    lengths = {s.shape[1] for s in series}
    X = np.ascontiguousarray(np.stack(series)) if len(lengths) == 1 else series
    meta = pd.DataFrame({
        "subject": ids,
        "session": "0",
        "run": "0",
        "age": z["age"].astype(np.float64),
        "child_adult": z["child_adult"].astype(str),
        "age_group": table["AgeGroup"].astype(str).to_numpy(),
        "gender": table["Gender"].astype(str).to_numpy(),
        "handedness": table["Handedness"].astype(str).to_numpy(),
    })
    y = (meta["child_adult"] == "adult").to_numpy().astype(np.int64)
    return Trials(X, y, meta, sfreq=0.5, ch_names=[str(v) for v in z["roi_labels"]], modality="fmri",
                  name="development-fmri")
