"""`Trials`: the one container that crosses every boundary of neurodecode.

Loaders return `Trials`; preprocessing steps, model heads and the evaluation
harness read them. Nothing downstream of a loader reads a file format, and
nothing upstream of the harness knows about folds.

Layout of ``X`` (a documented choice):

* EEG / iEEG epochs: ``ndarray (n_trials, n_channels, n_times)``.
* fMRI ROI series: ``(n_scans, n_rois, n_times)``. Scans of different lengths
  are kept **ragged**: ``X`` is then a list of ``(n_rois, n_times_i)`` arrays
  and ``meta["n_times"]`` holds each length. Nothing is padded or cropped
  silently; `Trials.crop_times` makes a rectangular array on request.
* Per-trial features (NSD-style betas): ``(n_trials, n_features)``; such
  ``X`` may be a lazy ``h5py.Dataset`` (read on first access to a slice).
"""

from __future__ import annotations

import json
import numbers
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .errors import DataError

__all__ = ["Trials", "concatenate_trials", "MODALITIES"]

MODALITIES = ("eeg", "ieeg", "fmri")
_REQUIRED_META = ("subject", "session", "run")
_FORMAT = "neurodecode.Trials"
_FORMAT_VERSION = 1


def _is_lazy(X) -> bool:
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        return False
    return isinstance(X, h5py.Dataset)


class Trials:
    """Trials of one or several subjects, with labels and per-trial metadata.

    Parameters
    ----------
    X : ndarray, list of ndarray or h5py.Dataset
        ``(n_trials, n_channels, n_times)`` epochs, ``(n_trials, n_features)``
        features, or a list of ``(n_channels, n_times_i)`` arrays when the
        trials differ in length (fMRI scans). An ``h5py.Dataset`` is kept lazy.
    y : array-like of shape (n_trials,), optional
        One label or target per trial; ``None`` for unlabeled data.
    meta : pandas.DataFrame, optional
        One row per trial. ``subject``, ``session`` and ``run`` are always
        present (``session``/``run`` default to ``"0"``, ``subject`` to
        ``"1"`` when missing); any other column (``site``, ``age``, ``sex``,
        ``mean_fd``, ``stimulus``…) is kept as given.
    sfreq : float
        Sampling rate in Hz (``1 / TR`` for fMRI; ``nan`` for features).
    ch_names : list of str, optional
        Channel, ROI or feature names, one per entry of axis 1 of ``X``.
        Defaults to ``ch000, ch001, …`` for epochs; may stay ``None`` for
        features (voxels).
    modality : {"eeg", "ieeg", "fmri"}
        What was recorded.
    positions : ndarray of shape (n_channels, 3), optional
        Channel coordinates (NaN rows for channels without a position).
    coord_frame : str, optional
        Space of ``positions`` (``"mni_tal"``, ``"head"``, ``"mri"``…).
    name : str, optional
        Dataset name (registry name where the loader knows it).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from neurodecode import Trials
    >>> rng = np.random.default_rng(0)
    >>> t = Trials(rng.standard_normal((6, 4, 100)), y=[0, 1] * 3,
    ...            meta=pd.DataFrame({"subject": [1, 1, 1, 2, 2, 2]}),
    ...            sfreq=100.0, modality="eeg")
    >>> t
    <Trials | eeg, 6 trials × 4 channels × 100 times, 100 Hz | 2 subjects | y: 0 ×3, 1 ×3>
    >>> t.select(subject=2).n_trials
    3
    """

    def __init__(
        self,
        X,
        y=None,
        meta: pd.DataFrame | None = None,
        *,
        sfreq: float,
        ch_names: Sequence[str] | None = None,
        modality: str,
        positions=None,
        coord_frame: str | None = None,
        name: str | None = None,
    ):
        if modality not in MODALITIES:
            raise ValueError(f"modality={modality!r}: expected one of {MODALITIES}")
        self.modality = modality
        self.name = name
        try:
            self.sfreq = float(sfreq)
        except (TypeError, ValueError):
            raise ValueError(f"sfreq={sfreq!r}: expected a number (Hz)") from None
        if not (np.isnan(self.sfreq) or self.sfreq > 0):
            raise ValueError(f"sfreq={sfreq!r}: must be positive (or nan for features)")

        self.X = self._check_X(X)
        n = self.n_trials
        self.y = self._check_y(y, n)
        self.meta = self._check_meta(meta, n)
        if self.is_ragged:
            self.meta["n_times"] = np.array([x.shape[1] for x in self.X], dtype=np.int64)

        n_ch = self.n_channels
        if ch_names is None and self.X_ndim == 3:
            ch_names = [f"ch{i:03d}" for i in range(n_ch)]
        if ch_names is not None:
            ch_names = [str(c) for c in ch_names]
            if len(ch_names) != n_ch:
                raise ValueError(
                    f"ch_names has {len(ch_names)} names but X has {n_ch} channels (axis 1)"
                )
            if len(set(ch_names)) != len(ch_names):
                dup = pd.Series(ch_names)[pd.Series(ch_names).duplicated()].tolist()
                raise ValueError(f"ch_names are not unique: {dup[:5]}")
        self.ch_names = ch_names

        if positions is not None:
            positions = np.asarray(positions, dtype=np.float64)
            if positions.shape != (n_ch, 3):
                raise ValueError(
                    f"positions has shape {positions.shape}; expected ({n_ch}, 3), one row per channel"
                )
        self.positions = positions
        self.coord_frame = coord_frame

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_X(X):
        if _is_lazy(X):
            if X.ndim not in (2, 3):
                raise ValueError(f"X has {X.ndim} dimensions; expected 2 or 3")
            return X
        if isinstance(X, (list, tuple)):
            if len(X) == 0:
                raise ValueError("X is empty: no trials")
            arrays = [np.asarray(x) for x in X]
            for i, x in enumerate(arrays):
                if x.ndim != 2:
                    raise ValueError(
                        f"X[{i}] has shape {x.shape}; a ragged X is a list of (n_channels, n_times_i) arrays"
                    )
                if x.shape[0] != arrays[0].shape[0]:
                    raise ValueError(
                        f"X[{i}] has {x.shape[0]} channels but X[0] has {arrays[0].shape[0]}"
                    )
                _check_finite(x, f"X[{i}]")
            return arrays
        X = np.asarray(X)
        if X.ndim not in (2, 3):
            raise ValueError(
                f"X has shape {X.shape}; expected (n_trials, n_channels, n_times) "
                "or (n_trials, n_features)"
            )
        if X.shape[0] == 0:
            raise ValueError("X is empty: no trials")
        _check_finite(X, "X")
        return X

    @staticmethod
    def _check_y(y, n):
        if y is None:
            return None
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y has shape {y.shape}; expected one label per trial, shape ({n},)")
        if len(y) != n:
            raise ValueError(f"len(y) = {len(y)} but X has {n} trials")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError("y contains NaN or inf")
        if y.dtype.kind == "O":
            y = y.astype(str)
        return y

    @staticmethod
    def _check_meta(meta, n):
        if meta is None:
            meta = pd.DataFrame(index=range(n))
        elif isinstance(meta, Mapping):
            meta = pd.DataFrame(meta)
        elif not isinstance(meta, pd.DataFrame):
            raise TypeError(f"meta must be a pandas DataFrame, got {type(meta).__name__}")
        if len(meta) != n:
            raise ValueError(f"meta has {len(meta)} rows but X has {n} trials")
        meta = meta.reset_index(drop=True).copy()
        for col, default in zip(_REQUIRED_META, ("1", "0", "0")):
            if col not in meta.columns:
                meta[col] = default
        if meta["subject"].isna().any():
            raise ValueError("meta['subject'] has missing values")
        cols = list(_REQUIRED_META) + [c for c in meta.columns if c not in _REQUIRED_META]
        return meta[cols]

    # -------------------------------------------------------------- properties
    @property
    def is_ragged(self) -> bool:
        """True when trials differ in length (``X`` is a list)."""
        return isinstance(self.X, list)

    @property
    def is_lazy(self) -> bool:
        """True when ``X`` is an unread ``h5py.Dataset``."""
        return _is_lazy(self.X)

    @property
    def X_ndim(self) -> int:
        return 3 if self.is_ragged else self.X.ndim

    @property
    def n_trials(self) -> int:
        return len(self.X) if self.is_ragged else int(self.X.shape[0])

    def __len__(self) -> int:
        return self.n_trials

    @property
    def n_channels(self) -> int:
        return int(self.X[0].shape[0]) if self.is_ragged else int(self.X.shape[1])

    @property
    def n_times(self):
        """Samples per trial: an int, an array of lengths when ragged, None for features."""
        if self.is_ragged:
            return self.meta["n_times"].to_numpy()
        return int(self.X.shape[2]) if self.X.ndim == 3 else None

    @property
    def subjects(self) -> list:
        """The subjects in order of first appearance."""
        return list(pd.unique(self.meta["subject"]))

    @property
    def groups(self) -> np.ndarray:
        """``meta['subject']`` as an array, for scikit-learn group splitters."""
        return self.meta["subject"].to_numpy()

    # ------------------------------------------------------------- selection
    def __getitem__(self, index) -> "Trials":
        idx = self._as_indices(index)
        if self.is_ragged:
            X = [self.X[i] for i in idx]
        elif self.is_lazy:
            order = np.argsort(idx, kind="stable")
            sorted_idx = idx[order]
            uniq, inverse = np.unique(sorted_idx, return_inverse=True)
            block = self.X[uniq.tolist()] if len(uniq) else np.empty((0,) + self.X.shape[1:], self.X.dtype)
            X = np.empty((len(idx),) + block.shape[1:], dtype=block.dtype)
            X[order] = block[inverse]
        else:
            X = self.X[idx]
        if len(idx) == 0:
            raise IndexError("selection is empty: no trial matches")
        meta = self.meta.iloc[idx].reset_index(drop=True)
        if self.is_ragged:
            meta = meta.drop(columns="n_times")
        return self._replace(X=X, y=None if self.y is None else self.y[idx], meta=meta)

    def _as_indices(self, index) -> np.ndarray:
        n = self.n_trials
        if isinstance(index, slice):
            return np.arange(n)[index]
        if isinstance(index, numbers.Integral):
            if not -n <= index < n:
                raise IndexError(f"trial {index} out of range for {n} trials")
            return np.array([index % n])
        if isinstance(index, pd.Series):
            index = index.to_numpy()
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (n,):
                raise IndexError(f"boolean mask has shape {index.shape}; expected ({n},)")
            return np.flatnonzero(index)
        if index.dtype.kind in "iu":
            if index.size and (index.max() >= n or index.min() < -n):
                raise IndexError(f"trial index out of range for {n} trials")
            return index.astype(np.int64) % n
        raise IndexError(f"cannot index Trials with {index!r}")

    def select(self, query: Callable[[pd.DataFrame], Any] | None = None, **columns) -> "Trials":
        """Keep the trials whose ``meta`` matches.

        Parameters
        ----------
        query : callable, optional
            ``query(meta)`` returns a boolean mask.
        **columns
            ``column=value`` or ``column=[values]``; all conditions must hold.

        Examples
        --------
        >>> t.select(subject=[1, 2], session="0")          # doctest: +SKIP
        >>> t.select(lambda m: m["age"] > 18)              # doctest: +SKIP
        """
        mask = np.ones(self.n_trials, dtype=bool)
        if query is not None:
            mask &= np.asarray(query(self.meta), dtype=bool)
        for col, value in columns.items():
            if col not in self.meta.columns:
                raise KeyError(f"meta has no column {col!r}; columns: {list(self.meta.columns)}")
            values = value if _is_list_like(value) else [value]
            mask &= self.meta[col].isin(list(values)).to_numpy()
        return self[mask]

    def split_by(self, column: str = "subject") -> dict:
        """Return ``{value: Trials}`` for each value of a ``meta`` column."""
        if column not in self.meta.columns:
            raise KeyError(f"meta has no column {column!r}")
        return {v: self[(self.meta[column] == v).to_numpy()] for v in pd.unique(self.meta[column])}

    def crop_times(self, n_times: int | None = None) -> "Trials":
        """Return a rectangular copy, cropping every trial to ``n_times`` samples.

        ``n_times`` defaults to the shortest trial. Only for ragged trials.
        """
        if not self.is_ragged:
            return self
        shortest = int(self.n_times.min())
        n_times = shortest if n_times is None else int(n_times)
        if n_times > shortest:
            raise ValueError(f"n_times={n_times} exceeds the shortest trial ({shortest} samples)")
        X = np.stack([x[:, :n_times] for x in self.X])
        return self._replace(X=X, meta=self.meta.drop(columns="n_times"))

    def load_data(self) -> "Trials":
        """Read a lazy ``X`` into memory (no-op otherwise)."""
        if self.is_lazy:
            X = self.X[...]
            _check_finite(X, f"X ({self.X.file.filename})")
            return self._replace(X=X)
        return self

    def _replace(self, **changes) -> "Trials":
        kwargs = dict(
            X=self.X, y=self.y, meta=self.meta, sfreq=self.sfreq, ch_names=self.ch_names,
            modality=self.modality, positions=self.positions, coord_frame=self.coord_frame,
            name=self.name,
        )
        kwargs.update(changes)
        if isinstance(kwargs["meta"], pd.DataFrame) and "n_times" in kwargs["meta"].columns and not isinstance(kwargs["X"], list):
            kwargs["meta"] = kwargs["meta"].drop(columns="n_times")
        return Trials(**kwargs)

    def copy(self) -> "Trials":
        X = [x.copy() for x in self.X] if self.is_ragged else (self.X if self.is_lazy else self.X.copy())
        return self._replace(X=X, y=None if self.y is None else self.y.copy(), meta=self.meta.copy())

    # ------------------------------------------------------------------ repr
    def __repr__(self) -> str:
        if self.is_ragged:
            lo, hi = int(self.n_times.min()), int(self.n_times.max())
            shape = f"{self.n_trials} trials × {self.n_channels} channels × {lo}–{hi} times (ragged)"
        elif self.X_ndim == 3:
            shape = f"{self.n_trials} trials × {self.n_channels} channels × {self.n_times} times"
        else:
            shape = f"{self.n_trials} trials × {self.n_channels} features"
        if self.is_lazy:
            shape += " (lazy)"
        parts = [f"{self.modality}, {shape}"]
        if not np.isnan(self.sfreq):
            parts[0] += f", {self.sfreq:g} Hz"
        n_sub = self.meta["subject"].nunique()
        parts.append(f"{n_sub} subject{'s' if n_sub != 1 else ''}")
        if self.y is None:
            parts.append("unlabeled")
        elif self.y.dtype.kind in "fc" and len(np.unique(self.y)) > 10:
            parts.append(f"y: continuous [{self.y.min():.3g}, {self.y.max():.3g}]")
        else:
            vals, counts = np.unique(self.y, return_counts=True)
            parts.append("y: " + ", ".join(f"{v} ×{c}" for v, c in zip(vals, counts)))
        head = f"{self.name}: " if self.name else ""
        return f"<Trials | {head}" + " | ".join(parts) + ">"

    # ----------------------------------------------------------------- HDF5
    def save(self, path, *, compression: str | None = "gzip", overwrite: bool = True) -> Path:
        """Write to one HDF5 file (atomically: a reader never sees half a file).

        The round trip through `Trials.load` is exact: ``X`` and ``y`` keep
        their dtype and values, ``meta`` keeps its columns, order and dtypes.

        Parameters
        ----------
        path : str or Path
            Target ``.h5`` file.
        compression : {"gzip", "lzf", None}
            HDF5 filter for ``X`` (chunked per trial).
        overwrite : bool
            Refuse to replace an existing file when False.
        """
        import h5py

        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
        from . import __version__

        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs["format"] = _FORMAT
            f.attrs["format_version"] = _FORMAT_VERSION
            f.attrs["neurodecode_version"] = __version__
            f.attrs["modality"] = self.modality
            f.attrs["sfreq"] = self.sfreq
            f.attrs["ragged"] = self.is_ragged
            for key in ("name", "coord_frame"):
                if getattr(self, key) is not None:
                    f.attrs[key] = getattr(self, key)
            if self.is_ragged:
                lengths = np.array([x.shape[1] for x in self.X], dtype=np.int64)
                flat = np.concatenate([x.T for x in self.X], axis=0)  # (sum T, n_channels)
                f.create_dataset("X", data=flat, compression=compression,
                                 chunks=(int(min(lengths.max(), len(flat))), flat.shape[1]))
                f.create_dataset("X_offsets", data=np.concatenate([[0], np.cumsum(lengths)]))
            else:
                X = self.X[...] if self.is_lazy else self.X
                chunks = (1,) + X.shape[1:] if X.ndim == 3 else (min(len(X), 256), X.shape[1])
                f.create_dataset("X", data=X, compression=compression, chunks=chunks)
            if self.y is not None:
                _write_array(f, "y", self.y)
            if self.ch_names is not None:
                f.create_dataset("ch_names", data=np.array(self.ch_names, dtype=object),
                                 dtype=h5py.string_dtype())
            if self.positions is not None:
                f.create_dataset("positions", data=self.positions)
            meta = self.meta.drop(columns="n_times") if self.is_ragged else self.meta
            g = f.create_group("meta")
            g.attrs["columns"] = json.dumps([str(c) for c in meta.columns])
            for i, col in enumerate(meta.columns):
                _write_column(g, f"c{i}", meta[col], str(col))
        return path

    @classmethod
    def load(cls, path, *, lazy: bool = False) -> "Trials":
        """Read a file written by `Trials.save`.

        Parameters
        ----------
        path : str or Path
        lazy : bool
            Keep a rectangular ``X`` on disk (``h5py.Dataset``) and read
            slices on demand. The file stays open while the object lives.
        """
        import h5py

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        try:
            f = h5py.File(path, "r")
        except OSError as err:
            raise DataError(f"not a readable HDF5 file ({err})", path) from None
        try:
            if f.attrs.get("format") != _FORMAT:
                raise DataError(f"not a neurodecode Trials file (format={f.attrs.get('format')!r})", path)
            if int(f.attrs["format_version"]) > _FORMAT_VERSION:
                raise DataError(
                    f"written by a newer neurodecode (format {f.attrs['format_version']}); upgrade", path
                )
            if bool(f.attrs["ragged"]):
                flat = f["X"][...]
                off = f["X_offsets"][...]
                X = [flat[off[i]:off[i + 1]].T.copy() for i in range(len(off) - 1)]
            elif lazy:
                X = f["X"]
            else:
                X = f["X"][...]
            y = _read_array(f["y"]) if "y" in f else None
            ch_names = [s.decode() if isinstance(s, bytes) else s for s in f["ch_names"][...]] if "ch_names" in f else None
            positions = f["positions"][...] if "positions" in f else None
            g = f["meta"]
            columns = json.loads(g.attrs["columns"])
            meta = pd.DataFrame({col: _read_column(g[f"c{i}"]) for i, col in enumerate(columns)})
            attrs = {k: f.attrs[k] for k in ("name", "coord_frame") if k in f.attrs}
            trials = cls(
                X, y, meta, sfreq=float(f.attrs["sfreq"]), ch_names=ch_names,
                modality=str(f.attrs["modality"]), positions=positions,
                coord_frame=None if "coord_frame" not in attrs else str(attrs["coord_frame"]),
                name=None if "name" not in attrs else str(attrs["name"]),
            )
        except (KeyError, OSError) as err:
            f.close()
            raise DataError(f"damaged Trials file ({err})", path) from None
        except BaseException:
            f.close()
            raise
        if not (lazy and trials.is_lazy):
            f.close()
        return trials

    # ------------------------------------------------------------- combining
    @staticmethod
    def concatenate(items: Iterable["Trials"]) -> "Trials":
        """Concatenate trials of several subjects; see `concatenate_trials`."""
        return concatenate_trials(items)


def concatenate_trials(items: Iterable[Trials]) -> Trials:
    """Concatenate `Trials` (e.g. across subjects) after checking they agree.

    Modality, sampling rate and channel names must be identical. Trials of
    different lengths give a ragged result. Positions are kept only where all
    inputs have the same ones.
    """
    items = list(items)
    if not items:
        raise ValueError("nothing to concatenate")
    first = items[0]
    for k, t in enumerate(items[1:], start=1):
        if t.modality != first.modality:
            raise ValueError(f"item {k} is {t.modality!r}, item 0 is {first.modality!r}")
        same_rate = (np.isnan(t.sfreq) and np.isnan(first.sfreq)) or np.isclose(t.sfreq, first.sfreq, rtol=1e-9)
        if not same_rate:
            raise ValueError(f"item {k} has sfreq {t.sfreq} Hz, item 0 has {first.sfreq} Hz: resample first")
        if t.ch_names != first.ch_names:
            if t.ch_names is None or first.ch_names is None or len(t.ch_names) != len(first.ch_names):
                raise ValueError(f"item {k} has {t.n_channels} channels, item 0 has {first.n_channels}")
            diff = [(a, b) for a, b in zip(first.ch_names, t.ch_names) if a != b]
            raise ValueError(f"channel names differ between item 0 and item {k}: {diff[:3]}")
        if t.X_ndim != first.X_ndim:
            raise ValueError("cannot concatenate epochs with feature vectors")
        if (t.y is None) != (first.y is None):
            raise ValueError("some items have labels (y) and some do not")
    ragged = any(t.is_ragged for t in items) or (
        first.X_ndim == 3 and len({t.n_times for t in items}) > 1
    )
    if ragged:
        X = [x for t in items for x in (t.X if t.is_ragged else list(t.load_data().X))]
    else:
        X = np.concatenate([t.load_data().X for t in items], axis=0)
    y = None if first.y is None else np.concatenate([t.y for t in items])
    metas = [t.meta.drop(columns="n_times") if t.is_ragged else t.meta for t in items]
    meta = pd.concat(metas, ignore_index=True)
    positions = first.positions
    if positions is not None and not all(
        t.positions is not None and np.array_equal(t.positions, positions, equal_nan=True) for t in items
    ):
        warnings.warn("channel positions differ between items; the result has none", stacklevel=2)
        positions = None
    names = {t.name for t in items}
    return Trials(
        X, y, meta, sfreq=first.sfreq, ch_names=first.ch_names, modality=first.modality,
        positions=positions, coord_frame=first.coord_frame if positions is not None else None,
        name=first.name if len(names) == 1 else None,
    )


# ---------------------------------------------------------------- helpers
def _is_list_like(value) -> bool:
    return isinstance(value, (list, tuple, set, np.ndarray, pd.Series, pd.Index))


def _check_finite(X, what: str) -> None:
    if X.dtype.kind in "fc" and not np.isfinite(X).all():
        bad = np.argwhere(~np.isfinite(X))[0]
        raise DataError(
            f"{what} contains NaN or inf (first at index {tuple(int(i) for i in bad)}); "
            "interpolate or drop bad channels/trials before building Trials"
        )


def _write_array(f, key, arr):
    import h5py

    arr = np.asarray(arr)
    if arr.dtype.kind in "UO":
        ds = f.create_dataset(key, data=arr.astype(object), dtype=h5py.string_dtype())
        ds.attrs["kind"] = "str"
    else:
        ds = f.create_dataset(key, data=arr)
        ds.attrs["kind"] = "array"
    return ds


def _read_array(ds):
    if ds.attrs.get("kind") == "str":
        return np.array([s.decode() if isinstance(s, bytes) else s for s in ds[...]], dtype=str)
    return ds[...]


def _write_column(g, key, series: pd.Series, name: str):
    """Write one meta column so that its values and dtype come back exactly."""
    import h5py

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        ds = g.create_dataset(key, data=series.cat.codes.to_numpy())
        cats = series.cat.categories
        sub = key + "_categories"
        _write_column(g, sub, pd.Series(cats), name + " (categories)")
        ds.attrs["encoding"] = "category"
        ds.attrs["ordered"] = bool(series.cat.ordered)
        return
    if pd.api.types.is_datetime64_any_dtype(dtype):
        if getattr(dtype, "tz", None) is not None:
            raise DataError(f"meta column {name!r}: time-zone aware datetimes cannot be saved; convert to UTC")
        values = series.to_numpy(dtype="datetime64[ns]").view(np.int64)
        ds = g.create_dataset(key, data=values)
        ds.attrs["encoding"] = "datetime"
        ds.attrs["dtype"] = str(dtype)
        return
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        ds = g.create_dataset(key, data=series.to_numpy())
        ds.attrs["encoding"] = "numpy"
        return
    if pd.api.types.is_extension_array_dtype(dtype) and not pd.api.types.is_string_dtype(dtype):
        mask = series.isna().to_numpy()
        kind = "f8" if pd.api.types.is_float_dtype(dtype) else ("?" if pd.api.types.is_bool_dtype(dtype) else "i8")
        values = series.fillna(0).to_numpy(dtype=kind)
        ds = g.create_dataset(key, data=values)
        g.create_dataset(key + "_mask", data=mask)
        ds.attrs["encoding"] = "masked"
        ds.attrs["dtype"] = str(dtype)
        return
    # strings (object or pandas string dtype)
    values = series.to_numpy(dtype=object)
    mask = pd.isna(series).to_numpy()
    non_str = [v for v, m in zip(values, mask) if not m and not isinstance(v, str)]
    if non_str:
        raise DataError(
            f"meta column {name!r} mixes types ({type(non_str[0]).__name__} among strings); "
            "give it one dtype before saving"
        )
    filled = np.where(mask, "", values).astype(object)
    ds = g.create_dataset(key, data=filled, dtype=h5py.string_dtype())
    g.create_dataset(key + "_mask", data=mask)
    ds.attrs["encoding"] = "string"
    ds.attrs["dtype"] = str(dtype)


def _read_column(ds) -> pd.Series:
    enc = ds.attrs["encoding"]
    g = ds.parent
    key = ds.name.rsplit("/", 1)[-1]
    if enc == "numpy":
        return pd.Series(ds[...])
    if enc == "category":
        cats = _read_column(g[key + "_categories"])
        return pd.Series(pd.Categorical.from_codes(ds[...], categories=pd.Index(cats),
                                                   ordered=bool(ds.attrs["ordered"])))
    if enc == "datetime":
        return pd.Series(ds[...].view("datetime64[ns]")).astype(ds.attrs["dtype"])
    mask = g[key + "_mask"][...]
    if enc == "masked":
        s = pd.Series(ds[...]).astype(ds.attrs["dtype"])
        s[mask] = pd.NA
        return s
    values = np.array([v.decode() if isinstance(v, bytes) else v for v in ds[...]], dtype=object)
    values[mask] = None
    dtype = ds.attrs["dtype"]
    s = pd.Series(values, dtype=object)
    return s if dtype == "object" else s.astype(dtype)
