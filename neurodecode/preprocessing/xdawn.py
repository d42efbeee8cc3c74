r"""Xdawn spatial filters and Xdawn prototype ("ERP") covariances, batched.

For ERP decoding, a trial's covariance alone ignores the phase-locked
response. The Xdawn covariance of Barachant (DecMeg 2014, as in
:class:`pyriemann.estimation.XdawnCovariances`) stacks the class-averaged
responses (prototypes) on top of each trial before estimating the
covariance, so the cross-covariance between a trial and each prototype
(how much the trial looks like the class ERP) enters the matrix:

1. **fit** (training fold only). :math:`\mathbf{C}_x` is the covariance of
   all training samples concatenated (``xdawn_estimator``). For each class
   :math:`k`, the prototype :math:`\mathbf{P}_k` is the mean of its training
   trials; the Xdawn filters are the generalized eigenvectors of
   :math:`(\operatorname{cov}(\mathbf{P}_k), \mathbf{C}_x)` by decreasing
   eigenvalue, each normalised to unit norm, the first ``nfilter`` kept:
   :math:`\mathbf{V}_k`. The stored prototype is :math:`\mathbf{V}_k^\top \mathbf{P}_k`.
2. **transform**. Each trial is filtered with all kept filters
   (``applyfilters=True``), the filtered prototypes are stacked on top, and
   the covariance (``estimator``) of the stacked signal is returned:
   a :math:`(2 K n_f) \times (2 K n_f)` matrix for :math:`K` classes.

Why not pyRiemann's own class: it estimates each trial's covariance with a
separate call to :func:`sklearn.covariance.oas` (input validation included),
about 10 ms per trial here, so a 10 000-trial Muse leave-one-subject-out
fold spent minutes in Python overhead for 8 x 8 matrices. Here the filter
fit is a few small dense products and the transform is one batched torch
call (`neurodecode.preprocessing.covariance.covariances`). Results equal
pyRiemann 0.12 to 1e-8 (tests/test_xdawn.py).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from scipy.linalg import eigh
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

from ..riemann.base import to_tensor
from .covariance import ESTIMATORS, _check_params, _covariances_tensor, _estimate

__all__ = ["Xdawn", "XdawnCovariances"]


def _check_trials(X, name="X"):
    # sklearn's validation: rejects sparse, complex, object and non-finite input with its messages
    X = check_array(X, allow_nd=True, ensure_2d=False, dtype=np.float64, input_name=name)
    if X.ndim != 3:
        raise ValueError(f"{name} must be trials of shape (n_trials, n_channels, n_times), got shape {X.shape}. "
                         "Reshape your data: a single trial x is x[None]")
    if 0 in X.shape:
        raise ValueError(f"{name} must be non-empty (n_trials, n_channels, n_times), got {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return X


def _check_fitted_trials(est, X):
    """``X`` checked as trials with the channel count ``est`` was fitted on."""
    check_is_fitted(est)
    X = _check_trials(X)
    if X.shape[1] != est.n_channels_:
        raise ValueError(f"X has {X.shape[1]} channels but {type(est).__name__} was fitted on "
                         f"{est.n_channels_}")
    return X


def _one_cov(x, estimator):
    """Covariance (``estimator``) of one (n_channels, n_samples) signal, NumPy, as estimated (no repair).

    A singular signal covariance makes `scipy.linalg.eigh` fail with a clear
    LinAlgError, as in pyRiemann; a singular prototype covariance is valid.
    """
    return _estimate(torch.from_numpy(np.ascontiguousarray(x)[None]), estimator, 0.1)[0].numpy()


def _fit_xdawn(X, y, nfilter, classes, estimator, baseline_cov) -> dict:
    """Xdawn filters, patterns and filtered prototypes (pyRiemann 0.12's definition).

    A function rather than a nested `Xdawn` estimator so that `XdawnCovariances`
    creates no new estimator object in ``fit`` (the harness compares the
    class-level state of a pipeline's steps before and after ``fit``).
    """
    if not isinstance(nfilter, Integral) or isinstance(nfilter, bool) or nfilter < 1:
        raise ValueError(f"nfilter must be a positive integer, got {nfilter!r}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown covariance estimator {estimator!r}; choose one of {list(ESTIMATORS)}")
    X = _check_trials(X)
    if y is None:
        raise ValueError("Xdawn requires y to be passed, but the target y is None (the prototypes are "
                         "class averages)")
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have one label per trial ({X.shape[0]}), got shape {y.shape}")
    n_trials, n_channels, n_times = X.shape
    classes_ = np.unique(y) if classes is None else np.asarray(classes)
    if baseline_cov is None:
        # all training samples of all trials as one long signal (sample order is irrelevant)
        Cx = _one_cov(X.transpose(1, 0, 2).reshape(n_channels, n_trials * n_times), estimator)
    else:
        Cx = np.asarray(baseline_cov, dtype=np.float64)
        if Cx.shape != (n_channels, n_channels):
            raise ValueError(f"baseline_cov must have shape {(n_channels, n_channels)}, got {Cx.shape}")
    filters, patterns, evokeds = [], [], []
    for c in classes_:
        sel = y == c
        if not sel.any():
            raise ValueError(f"class {c!r} of `classes` has no training trial")
        P = X[sel].mean(axis=0)
        evals, evecs = eigh(_one_cov(P, estimator), Cx)
        evecs = evecs[:, np.argsort(evals)[::-1]]
        evecs /= np.linalg.norm(evecs, axis=0)
        A = np.linalg.pinv(evecs.T)
        filters.append(evecs[:, :nfilter].T)
        patterns.append(A[:, :nfilter].T)
        evokeds.append(evecs[:, :nfilter].T @ P)
    return {"classes_": classes_, "filters_": np.concatenate(filters, axis=0),
            "patterns_": np.concatenate(patterns, axis=0), "evokeds_": np.concatenate(evokeds, axis=0),
            "n_channels_": n_channels, "n_times_": n_times}


class _SupervisedEpochsTags:
    """Tags shared by the Xdawn estimators: 3-D trials in, labels required to fit."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.two_d_array = False
        tags.target_tags.required = True
        tags.requires_fit = True
        return tags


class Xdawn(_SupervisedEpochsTags, TransformerMixin, BaseEstimator):
    """Xdawn spatial filters, learned per class from the training trials.

    Same definition as :class:`pyriemann.spatialfilters.Xdawn` (0.12).

    Parameters
    ----------
    nfilter : int, default=4
        Filters kept per class (at most ``n_channels``).
    classes : list or None, default=None
        Classes whose prototypes are used (None: all classes seen in ``fit``).
    estimator : {"scm", "cov", "lwf", "oas", "shrunk", "sch"}, default="scm"
        Covariance estimator for the signal and prototype covariances.
    baseline_cov : ndarray of shape (n_channels, n_channels) or None
        Signal covariance to use instead of the training data's.

    Attributes
    ----------
    classes_ : ndarray
        Classes with a prototype.
    filters_ : ndarray, shape (n_classes * nfilter, n_channels)
        Spatial filters (rows), class by class.
    patterns_ : ndarray, shape (n_classes * nfilter, n_channels)
        Corresponding spatial patterns.
    evokeds_ : ndarray, shape (n_classes * nfilter, n_times)
        Filtered class prototypes.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.preprocessing.xdawn import Xdawn
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.standard_normal((20, 4, 64)), np.repeat([0, 1], 10)
    >>> Xdawn(nfilter=2).fit(X, y).transform(X).shape
    (20, 4, 64)
    """

    def __init__(self, nfilter=4, classes=None, estimator="scm", baseline_cov=None):
        self.nfilter = nfilter
        self.classes = classes
        self.estimator = estimator
        self.baseline_cov = baseline_cov

    def fit(self, X, y):
        """Learn the filters and prototypes from training trials ``X`` with labels ``y``."""
        fitted = _fit_xdawn(X, y, self.nfilter, self.classes, self.estimator, self.baseline_cov)
        for name, value in fitted.items():
            setattr(self, name, value)
        return self

    def transform(self, X):
        """Spatially filtered trials, shape (n_trials, n_classes * nfilter, n_times)."""
        X = _check_fitted_trials(self, X)
        return self.filters_ @ X


class XdawnCovariances(_SupervisedEpochsTags, TransformerMixin, BaseEstimator):
    """Xdawn prototype covariances (ERP covariances on Xdawn-filtered signals).

    Same definition and output as :class:`pyriemann.estimation.XdawnCovariances`
    (0.12), computed in one batched call. Prototypes and filters are learned
    in ``fit`` only (training fold).

    Parameters
    ----------
    nfilter : int, default=4
        Xdawn filters per class.
    applyfilters : bool, default=True
        Filter the trials too (else only the prototypes are filtered and the
        raw channels are stacked under them).
    classes : list or None, default=None
        Classes whose prototypes are used (None: all).
    estimator : {"scm", "cov", "lwf", "oas", "shrunk", "sch"}, default="scm"
        Covariance estimator of the stacked signals.
    xdawn_estimator : same choices, default="scm"
        Covariance estimator inside `Xdawn`.
    baseline_cov : ndarray or None
        Signal covariance for `Xdawn` (None: from the training data).
    on_rank_deficient : {"raise", "regularize"}, default="regularize"
        What to do with stacked covariances that are not safely SPD
        (`neurodecode.preprocessing.covariance`). Stacking more filtered rows
        than there are channels makes ``"scm"`` matrices singular; pyRiemann
        returns them as they are, which later fails in a matrix logarithm.
    device : str or None, default=None
        Torch device of the covariance step (None: CUDA when present).

    Attributes
    ----------
    classes_ : ndarray
        Classes with a prototype.
    filters_, patterns_ : ndarray, shape (n_classes * nfilter, n_channels)
        Xdawn spatial filters and patterns (as in `Xdawn`).
    P_ : ndarray, shape (n_classes * nfilter, n_times)
        Filtered class prototypes (`Xdawn`'s ``evokeds_``).

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.preprocessing.xdawn import XdawnCovariances
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.standard_normal((20, 4, 64)), np.repeat([0, 1], 10)
    >>> XdawnCovariances(nfilter=2, estimator="oas", device="cpu").fit(X, y).transform(X).shape
    (20, 8, 8)
    """

    def __init__(self, nfilter=4, applyfilters=True, classes=None, estimator="scm",
                 xdawn_estimator="scm", baseline_cov=None, on_rank_deficient="regularize", device=None):
        self.nfilter = nfilter
        self.applyfilters = applyfilters
        self.classes = classes
        self.estimator = estimator
        self.xdawn_estimator = xdawn_estimator
        self.baseline_cov = baseline_cov
        self.on_rank_deficient = on_rank_deficient
        self.device = device

    def fit(self, X, y):
        """Learn the Xdawn filters and the class prototypes on the training trials."""
        _check_params(self.estimator, 0.1, self.on_rank_deficient, 1e-5, False)
        fitted = _fit_xdawn(X, y, self.nfilter, self.classes, self.xdawn_estimator, self.baseline_cov)
        self.classes_ = fitted["classes_"]
        self.filters_ = fitted["filters_"]
        self.patterns_ = fitted["patterns_"]
        self.P_ = fitted["evokeds_"]
        self.n_channels_ = fitted["n_channels_"]
        return self

    def transform(self, X):
        """Covariances of ``[P_; filtered X]``, shape (n_trials, n, n)."""
        X = _check_fitted_trials(self, X)
        if X.shape[2] != self.P_.shape[1]:
            raise ValueError(f"X has {X.shape[2]} time samples but the prototypes have {self.P_.shape[1]}")
        T = to_tensor(X, device=self.device)
        if self.applyfilters:
            T = to_tensor(self.filters_, device=T.device) @ T
        P = to_tensor(self.P_, device=T.device).expand(T.shape[0], -1, -1)
        C = _covariances_tensor(torch.cat([P, T], dim=1), self.estimator, 0.1, False,
                                self.on_rank_deficient, 1e-5, 1e-10)
        return C.detach().cpu().numpy()
