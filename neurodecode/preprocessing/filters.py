"""Band-pass, notch, resampling and filter banks for EEG / iEEG epochs, on ``mne.filter``.

Functions take an array ``(..., n_times)`` (the last axis is time) with its
``sfreq``, or a `neurodecode.trials.Trials` (its ``sfreq`` is read, and a
`Trials` with the new ``sfreq`` is returned). The transformers
(`BandPass`, `Notch`, `Resample`, `FilterBank`) wrap them for scikit-learn
pipelines: they learn nothing (each epoch is filtered alone), so they cannot
leak across folds.

Filtering is MNE's (zero-phase FIR by default, ``method="iir"`` for a
4th-order Butterworth applied forward-backward); the numbers equal
``mne.filter.filter_data`` / ``notch_filter`` / ``resample`` called directly.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ..trials import Trials

__all__ = ["bandpass", "notch", "resample", "filter_bank", "BandPass", "Notch", "Resample", "FilterBank"]


def _unpack(X, sfreq, who):
    if isinstance(X, Trials):
        if sfreq is not None and not np.isclose(sfreq, X.sfreq):
            raise ValueError(f"{who}: sfreq={sfreq} disagrees with the Trials' sfreq={X.sfreq}")
        if isinstance(X.X, list):
            raise ValueError(f"{who}: ragged Trials (fMRI scans) are not filtered here; "
                             "use neurodecode.preprocessing.confounds.clean_signals")
        return np.asarray(X.X, dtype=np.float64), float(X.sfreq), X
    if sfreq is None or not np.isfinite(sfreq) or sfreq <= 0:
        raise ValueError(f"{who}: sfreq={sfreq!r}: a positive sampling rate (Hz) is needed for an array")
    # check_array: clear errors for sparse, complex, empty, 1-D, NaN/inf input;
    # at least 2 time samples on axis 1 of 2-D input.
    X = check_array(X, dtype=np.float64, allow_nd=True, ensure_min_features=2, input_name="X")
    if X.shape[-1] < 2:
        raise ValueError(f"{who}: X has shape {X.shape}; the last axis (time) needs at least 2 samples")
    return X, float(sfreq), None


def _repack(out, sfreq, trials):
    if trials is None:
        return out
    return Trials(out, trials.y, trials.meta, sfreq=sfreq, ch_names=trials.ch_names, modality=trials.modality,
                  positions=trials.positions, coord_frame=trials.coord_frame, name=trials.name)


def bandpass(X, l_freq, h_freq, sfreq=None, method="fir", **kwargs):
    """Band-pass (``l_freq`` and ``h_freq``), high-pass (``h_freq=None``) or low-pass (``l_freq=None``).

    Parameters
    ----------
    X : ndarray (..., n_times) or Trials
    l_freq, h_freq : float or None
        Edges in Hz.
    sfreq : float
        Sampling rate (read from a `Trials`).
    method : {"fir", "iir"}
        MNE's method; ``"iir"`` is a 4th-order Butterworth, zero-phase.
    **kwargs
        Passed to ``mne.filter.filter_data`` (``l_trans_bandwidth``, ``iir_params``…).

    Returns
    -------
    ndarray or Trials

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(1000) / 250.0
    >>> x = np.sin(2 * np.pi * 10 * t) + np.sin(2 * np.pi * 60 * t)
    >>> y = bandpass(x[None], 8, 12, sfreq=250.0)
    >>> bool(np.abs(y[0, 250:-250] - np.sin(2 * np.pi * 10 * t[250:-250])).max() < 0.05)
    True
    """
    import mne

    data, sfreq, trials = _unpack(X, sfreq, "bandpass")
    out = mne.filter.filter_data(data, sfreq, l_freq, h_freq, method=method, verbose="error", copy=True, **kwargs)
    return _repack(out, sfreq, trials)


def notch(X, freqs, sfreq=None, method="fir", **kwargs):
    """Remove line noise at ``freqs`` (Hz; harmonics must be listed) with ``mne.filter.notch_filter``."""
    import mne

    data, sfreq, trials = _unpack(X, sfreq, "notch")
    freqs = np.atleast_1d(np.asarray(freqs, dtype=np.float64))
    if (freqs >= sfreq / 2).any():
        raise ValueError(f"notch: freqs={freqs.tolist()} must be below Nyquist ({sfreq / 2} Hz)")
    out = mne.filter.notch_filter(data, sfreq, freqs, method=method, verbose="error", copy=True, **kwargs)
    return _repack(out, sfreq, trials)


def resample(X, new_sfreq, sfreq=None, **kwargs):
    """Resample the time axis to ``new_sfreq`` with ``mne.filter.resample`` (anti-aliased)."""
    import mne

    data, sfreq, trials = _unpack(X, sfreq, "resample")
    if not new_sfreq or new_sfreq <= 0:
        raise ValueError(f"resample: new_sfreq={new_sfreq!r} must be positive")
    out = mne.filter.resample(data, up=float(new_sfreq), down=sfreq, verbose="error", **kwargs)
    return _repack(out, float(new_sfreq), trials)


def filter_bank(X, bands, sfreq=None, stack="channels", method="iir", **kwargs):
    """Band-pass ``X`` in each band of ``bands`` and stack the results.

    Parameters
    ----------
    X : ndarray (n_epochs, n_channels, n_times), (n_epochs, n_times) (one channel) or Trials
    bands : sequence of (l_freq, h_freq)
    stack : {"channels", "bands"}
        ``"channels"``: ``(n_epochs, n_bands * n_channels, n_times)`` (band
        major: all channels of band 0, then band 1…), which covariance
        estimators read as one block-diagonal-friendly matrix; ``"bands"``:
        ``(n_epochs, n_bands, n_channels, n_times)`` (arrays only). The band
        axis is inserted before the channel axis (second to last).
    method : {"iir", "fir"}
        IIR by default: narrow low bands need very long FIR filters.

    Returns
    -------
    ndarray or Trials
        A `Trials` (``stack="channels"``) gets channel names ``"<ch>@<lo>-<hi>Hz"``.
    """
    data, sfreq, trials = _unpack(X, sfreq, "filter_bank")
    bands = [tuple(b) for b in bands]
    if not bands or any(len(b) != 2 for b in bands):
        raise ValueError(f"filter_bank: bands={bands!r}: expected a non-empty list of (l_freq, h_freq)")
    if data.ndim < 2:
        raise ValueError(f"filter_bank: X has shape {data.shape}; expected (..., n_channels, n_times)")
    if data.ndim == 2:
        # Rows are epochs of a single channel: keep rows as samples, so the
        # bands become the channel axis of a (n_epochs, n_bands, n_times) output.
        data = data[:, None, :]
    outs = [bandpass(data, lo, hi, sfreq=sfreq, method=method, **kwargs) for lo, hi in bands]
    if stack == "bands":
        if trials is not None:
            raise ValueError("filter_bank: stack='bands' returns 4-D arrays; pass an array, not Trials")
        return np.stack(outs, axis=-3)
    if stack != "channels":
        raise ValueError(f"filter_bank: stack={stack!r}: expected 'channels' or 'bands'")
    out = np.concatenate(outs, axis=-2)  # the channel axis
    if trials is None:
        return out
    names = [f"{ch}@{lo:g}-{hi:g}Hz" for lo, hi in bands for ch in trials.ch_names]
    positions = None if trials.positions is None else np.tile(trials.positions, (len(bands), 1))
    return Trials(out, trials.y, trials.meta, sfreq=sfreq, ch_names=names, modality=trials.modality,
                  positions=positions, coord_frame=trials.coord_frame, name=trials.name)


class _Stateless(TransformerMixin, BaseEstimator):
    """Filters learn nothing from the data; `fit` checks the parameters and the input shape.

    Arrays only (a pipeline passes ``Trials.X``); ``n_features_in_`` is the
    size of axis 1 (channels of an epoch array).
    """

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64, allow_nd=True, ensure_min_features=2)
        _unpack(X, self.sfreq, type(self).__name__)
        return self

    def _checked(self, X):
        check_is_fitted(self)
        # n_features_in_ first (ensure_min_features=1), the time-length check follows in the function.
        return validate_data(self, X, dtype=np.float64, allow_nd=True, ensure_min_features=1, reset=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # always float64 out
        return tags


class BandPass(_Stateless):
    """`bandpass` as a transformer.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((4, 3, 500))
    >>> BandPass(8, 30, sfreq=250.0).fit_transform(X).shape
    (4, 3, 500)
    """

    def __init__(self, l_freq=None, h_freq=None, sfreq=None, method="fir"):
        self.l_freq = l_freq
        self.h_freq = h_freq
        self.sfreq = sfreq
        self.method = method

    def transform(self, X):
        return bandpass(self._checked(X), self.l_freq, self.h_freq, sfreq=self.sfreq, method=self.method)


class Notch(_Stateless):
    """`notch` as a transformer (``freqs`` e.g. ``(50, 100)``)."""

    def __init__(self, freqs=(50.0,), sfreq=None, method="fir"):
        self.freqs = freqs
        self.sfreq = sfreq
        self.method = method

    def transform(self, X):
        return notch(self._checked(X), self.freqs, sfreq=self.sfreq, method=self.method)


class Resample(_Stateless):
    """`resample` as a transformer."""

    def __init__(self, new_sfreq=None, sfreq=None):
        self.new_sfreq = new_sfreq
        self.sfreq = sfreq

    def transform(self, X):
        return resample(self._checked(X), self.new_sfreq, sfreq=self.sfreq)


class FilterBank(_Stateless):
    """`filter_bank` as a transformer (default: 4-Hz bands from 4 to 40 Hz, FBCSP style)."""

    def __init__(self, bands=((4, 8), (8, 12), (12, 16), (16, 20), (20, 24), (24, 28), (28, 32), (32, 36),
                              (36, 40)), sfreq=None, stack="channels", method="iir"):
        self.bands = bands
        self.sfreq = sfreq
        self.stack = stack
        self.method = method

    def transform(self, X):
        return filter_bank(self._checked(X), self.bands, sfreq=self.sfreq, stack=self.stack, method=self.method)
