"""NSD-style single-trial betas in HDF5, read lazily with h5py.

Layout (written by `write_nsd_hdf5`; the Natural Scenes Dataset itself ships
betas per session as NIfTI/HDF5 and must be converted to it once)::

    file.h5
    ├── attrs: format = "neurodecode.nsd", format_version = 1
    ├── subj01/                       one group per subject
    │   ├── betas     (n_trials, n_voxels_s)  float32, chunked by trials
    │   ├── stimulus  (n_trials,)             int    stimulus id per trial
    │   ├── y         (n_trials,)             optional labels / targets
    │   ├── session   (n_trials,)             optional, text
    │   └── roi/<name> (n_voxels_s,)          optional boolean voxel masks
    └── subj02/ …

A file may also hold **one subject at its root** (``betas``, ``stimulus``…
directly under ``/``; the subject name is the ``subject`` attribute or the
file stem), so a folder of per-subject files works as well as one file.
Voxel counts differ between subjects, so every subject is its own `Trials`.

Betas are not read when a file is opened: `NSDBetas.trials` returns `Trials`
whose ``X`` is the ``h5py.Dataset`` itself (slices are read on access;
`Trials.load_data` reads all). Only ``stimulus``, ``y`` and ``session``
(one value per trial) are read eagerly. Selecting an ROI reads just those
voxel columns.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from ..errors import DataError
from ..trials import Trials

__all__ = ["NSDBetas", "load_nsd", "write_nsd_hdf5"]

_FORMAT = "neurodecode.nsd"
_FORMAT_VERSION = 1


def write_nsd_hdf5(path, subjects, *, rois: Mapping | None = None, compression: str | None = "gzip") -> Path:
    """Write per-subject beta `Trials` (e.g. `simulate_nsd` output) to one NSD-style HDF5 file.

    The file is written atomically (a reader never sees half of it).

    Parameters
    ----------
    path : path-like
        Target ``.h5`` file.
    subjects : dict or tuple
        subject → `Trials` with 2D ``X`` ``(n_trials, n_voxels)`` and
        ``meta["stimulus"]``; the ``(trials, truth)`` tuple returned by
        ``simulate_nsd(return_truth=True)`` is accepted too.
    rois : dict, optional
        subject → {roi name → boolean mask of length n_voxels}.
    compression : {"gzip", "lzf", None}

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile, os
    >>> from neurodecode.simulation import simulate_nsd
    >>> sim = simulate_nsd(n_subjects=2, n_stimuli=10, n_trials_per_subject=12,
    ...                    n_voxels=(20, 30), random_state=0)
    >>> path = write_nsd_hdf5(os.path.join(tempfile.mkdtemp(), "nsd.h5"), sim)
    >>> with NSDBetas(path) as nsd:
    ...     print(nsd.subjects, nsd.trials("subj01").is_lazy)
    ['subj01', 'subj02'] True
    """
    import h5py

    if isinstance(subjects, tuple) and len(subjects) == 2 and isinstance(subjects[0], Mapping):
        subjects = subjects[0]
    if not isinstance(subjects, Mapping) or not subjects:
        raise ValueError("subjects must be a non-empty dict subject -> Trials (simulate_nsd output)")
    rois = dict(rois or {})
    for name, t in subjects.items():
        if not isinstance(t, Trials) or t.X_ndim != 2:
            raise ValueError(f"subject {name!r}: expected Trials with 2D X (n_trials, n_voxels)")
        if "stimulus" not in t.meta.columns:
            raise ValueError(f"subject {name!r}: meta has no 'stimulus' column")
        if "/" in str(name):
            raise ValueError(f"subject name {name!r} cannot contain '/'")
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = _FORMAT
        f.attrs["format_version"] = _FORMAT_VERSION
        for name, t in subjects.items():
            g = f.create_group(str(name))
            X = np.asarray(t.X[...] if t.is_lazy else t.X)
            if X.dtype.kind != "f":
                X = X.astype(np.float32)
            g.create_dataset("betas", data=X, compression=compression,
                             chunks=(min(len(X), 64), X.shape[1]))
            g.create_dataset("stimulus", data=t.meta["stimulus"].to_numpy(dtype=np.int64))
            if t.y is not None:
                if t.y.dtype.kind in "UO":
                    g.create_dataset("y", data=t.y.astype(object), dtype=h5py.string_dtype())
                else:
                    g.create_dataset("y", data=t.y)
            g.create_dataset("session", data=t.meta["session"].astype(str).to_numpy().astype(object),
                             dtype=h5py.string_dtype())
            for roi, mask in rois.get(name, {}).items():
                mask = np.asarray(mask, dtype=bool)
                if mask.shape != (X.shape[1],):
                    raise ValueError(f"roi {roi!r} of {name!r} has shape {mask.shape}; expected ({X.shape[1]},)")
                g.create_dataset(f"roi/{roi}", data=mask)
    return path


class NSDBetas:
    """Lazy reader of NSD-style per-trial betas (see the module docstring for the layout).

    Parameters
    ----------
    path : path-like or list of path-like
        One HDF5 file with a group per subject, a list of files, or a folder
        whose ``*.h5``/``*.hdf5`` files are read (one subject per file, or
        several).

    Attributes
    ----------
    subjects : list of str
    n_voxels : dict
        subject → voxel count (differs between subjects).
    n_trials : dict
        subject → trial count.

    Notes
    -----
    The files stay open while the object (or a lazy `Trials` from it) is in
    use; `close` (or a ``with`` block) closes them, after which lazy `Trials`
    can no longer be read.

    Examples
    --------
    >>> nsd = NSDBetas("nsd_betas.h5")                  # doctest: +SKIP
    >>> t = nsd.trials("subj01")        # lazy: nothing read yet   # doctest: +SKIP
    >>> t.X[:10].shape                                  # doctest: +SKIP
    (10, 15724)
    >>> t_roi = nsd.trials("subj01", roi="nsdgeneral")  # doctest: +SKIP
    """

    def __init__(self, path):
        import h5py

        paths = self._paths(path)
        self._files = []
        self._groups: dict[str, tuple] = {}  # subject -> (h5py group, file path)
        try:
            for p in paths:
                if not p.is_file():
                    raise DataError("NSD betas file not found", p)
                try:
                    f = h5py.File(p, "r")
                except OSError as err:
                    raise DataError(f"not a readable HDF5 file, truncated or corrupted? ({err})", p) from None
                self._files.append(f)
                for subject, group in self._subject_groups(f, p):
                    if subject in self._groups:
                        raise DataError(f"subject {subject!r} also in {self._groups[subject][1]}", p)
                    self._check_group(group, subject, p)
                    self._groups[subject] = (group, p)
        except BaseException:
            self.close()
            raise
        if not self._groups:
            raise DataError("no subject group with 'betas' found", paths[0] if len(paths) == 1 else None)

    # ------------------------------------------------------------ opening
    @staticmethod
    def _paths(path) -> list[Path]:
        if isinstance(path, (str, os.PathLike)):
            p = Path(path)
            if p.is_dir():
                found = sorted([*p.glob("*.h5"), *p.glob("*.hdf5")])
                if not found:
                    raise DataError("folder has no .h5/.hdf5 file", p)
                return found
            return [p]
        paths = [Path(q) for q in path]
        if not paths:
            raise ValueError("path is an empty list")
        return paths

    @staticmethod
    def _subject_groups(f, path: Path):
        import h5py

        if "betas" in f:  # one subject at the file root
            name = f.attrs.get("subject", path.stem)
            yield (name.decode() if isinstance(name, bytes) else str(name)), f
            return
        groups = [(k, v) for k, v in f.items() if isinstance(v, h5py.Group)]
        for k, g in groups:
            if "betas" not in g:
                raise DataError(f"group /{k} has no 'betas' dataset; has {sorted(g.keys())}", path)
            yield k, g

    @staticmethod
    def _check_group(g, subject: str, path: Path):
        import h5py

        where = f"/{subject}" if g.name != "/" else "/"
        if "stimulus" not in g:
            raise DataError(f"{where} has no 'stimulus' dataset (one stimulus id per trial)", path)
        betas = g["betas"]
        if not isinstance(betas, h5py.Dataset) or betas.ndim != 2:
            raise DataError(f"{where}/betas has shape {getattr(betas, 'shape', None)}; "
                            "expected (n_trials, n_voxels)", path)
        n = betas.shape[0]
        for key in ("stimulus", "y", "session"):
            if key in g and g[key].shape != (n,):
                raise DataError(f"{where}/{key} has shape {g[key].shape} but betas has {n} trials", path)
        if "roi" in g:
            for roi, ds in g["roi"].items():
                if ds.shape != (betas.shape[1],):
                    raise DataError(f"{where}/roi/{roi} has shape {ds.shape} but betas has "
                                    f"{betas.shape[1]} voxels", path)

    # ------------------------------------------------------------- access
    @property
    def subjects(self) -> list[str]:
        return list(self._groups)

    @property
    def n_voxels(self) -> dict:
        return {s: int(g["betas"].shape[1]) for s, (g, _) in self._groups.items()}

    @property
    def n_trials(self) -> dict:
        return {s: int(g["betas"].shape[0]) for s, (g, _) in self._groups.items()}

    def rois(self, subject: str) -> list[str]:
        """Names of the ROI masks stored for ``subject``."""
        g, _ = self._group(subject)
        return sorted(g["roi"].keys()) if "roi" in g else []

    def _group(self, subject):
        if not self._files:
            raise ValueError("NSDBetas is closed")
        try:
            return self._groups[str(subject)]
        except KeyError:
            raise KeyError(f"unknown subject {subject!r}; subjects: {self.subjects}") from None

    def trials(self, subject: str, *, roi: str | None = None, lazy: bool = True, target: str = "y") -> Trials:
        """One subject's betas as `Trials` ``(n_trials, n_voxels)``.

        Parameters
        ----------
        subject : str
        roi : str, optional
            Keep only the voxels of this stored mask (read now, in memory).
        lazy : bool
            Keep ``X`` as the ``h5py.Dataset`` (default) or read it.
        target : {"y", "stimulus"}
            ``y`` from the stored ``y`` (falls back to ``stimulus`` when the
            file has none) or the stimulus id.

        Returns
        -------
        Trials
            ``meta``: ``subject``, ``session`` (stored or ``"0"``), ``run``
            ``"0"``, ``stimulus``, ``trial`` (row in the file); ``sfreq`` NaN;
            ``name`` the file name without suffix.
        """
        g, path = self._group(subject)
        betas = g["betas"]
        n = betas.shape[0]
        try:
            stimulus = g["stimulus"][...].astype(np.int64)
            session = (np.array([s.decode() if isinstance(s, bytes) else str(s) for s in g["session"][...]],
                                dtype=object) if "session" in g else "0")
            if target == "stimulus" or "y" not in g:
                if target not in ("y", "stimulus"):
                    raise ValueError(f"target={target!r}: expected 'y' or 'stimulus'")
                y = stimulus
            elif target == "y":
                y = g["y"][...]
                if y.dtype.kind in "OS":
                    y = np.array([v.decode() if isinstance(v, bytes) else v for v in y], dtype=str)
            else:
                raise ValueError(f"target={target!r}: expected 'y' or 'stimulus'")
            if roi is not None:
                if "roi" not in g or roi not in g["roi"]:
                    raise KeyError(f"subject {subject!r} has no ROI {roi!r}; ROIs: {self.rois(subject)}")
                idx = np.flatnonzero(g["roi"][roi][...])
                if len(idx) == 0:
                    raise DataError(f"ROI {roi!r} of {subject!r} selects no voxel", path)
                X = betas[:, idx]  # h5py reads only these columns (increasing indices)
            else:
                X = betas if lazy else betas[...]
        except OSError as err:
            raise DataError(f"cannot read /{subject} (truncated or corrupted? {err})", path) from None
        meta = pd.DataFrame({
            "subject": str(subject),
            "session": session,
            "run": "0",
            "stimulus": stimulus,
            "trial": np.arange(n, dtype=np.int64),
        })
        if roi is not None:
            meta["roi"] = roi
        return Trials(X, y, meta, sfreq=np.nan, modality="fmri", name=path.stem)

    def __getitem__(self, subject) -> Trials:
        return self.trials(subject)

    def __iter__(self):
        return iter(self.subjects)

    def __len__(self) -> int:
        return len(self._groups)

    def __contains__(self, subject) -> bool:
        return str(subject) in self._groups

    def load(self, subjects=None, **kwargs) -> dict:
        """subject → `Trials` for ``subjects`` (default all); keywords go to `trials`."""
        subjects = self.subjects if subjects is None else [str(s) for s in np.atleast_1d(subjects)]
        return {s: self.trials(s, **kwargs) for s in subjects}

    def close(self) -> None:
        for f in self._files:
            try:
                f.close()
            except Exception:  # pragma: no cover - closing twice is harmless
                pass
        self._files = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        if not self._files:
            return "<NSDBetas | closed>"
        parts = ", ".join(f"{s}: {self.n_trials[s]}×{v}" for s, v in self.n_voxels.items())
        return f"<NSDBetas | {len(self)} subjects | trials×voxels {parts}>"


def load_nsd(path, subjects=None, *, roi: str | None = None, lazy: bool = True, target: str = "y") -> dict:
    """Open NSD-style HDF5 betas and return subject → `Trials` (lazy by default).

    The files stay open as long as the lazy `Trials` are used (see `NSDBetas`).

    Examples
    --------
    >>> data = load_nsd("nsd_betas.h5", subjects=["subj01"])   # doctest: +SKIP
    >>> data["subj01"].is_lazy                                  # doctest: +SKIP
    True
    """
    nsd = NSDBetas(path)
    try:
        return nsd.load(subjects, roi=roi, lazy=lazy, target=target)
    except BaseException:
        nsd.close()
        raise
    finally:
        if not lazy:
            nsd.close()
