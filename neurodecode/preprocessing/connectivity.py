"""Functional connectivity features from ROI time series.

`Connectivity` is the neurodecode counterpart of
``nilearn.connectome.ConnectivityMeasure``: same kinds, same estimator,
same vectorisation, same numbers (to 1e-8, tested), but it reads **our**
layout — a list of ``(n_rois, n_times_i)`` arrays (ragged) or an
``(n_scans, n_rois, n_times)`` array, i.e. ``Trials.X`` as is — where nilearn
expects ``(n_times, n_rois)`` per subject.

The tangent-space kind reuses the project's Riemannian engine
(`neurodecode.riemann`): the reference mean is iterated with the engine's
batched torch kernels (``_invsqrtm``, ``_logm``, ``_sqrtm``, ``_expm``) and
the scans are mapped with `neurodecode.riemann.log_map`. Only the *iteration*
of the mean is nilearn's own (`geometric_mean_nilearn`), not the engine's
`~neurodecode.riemann.mean_riemann`: nilearn stops at a loose tolerance
(``||L||_F / n^2 < 1e-7``), so reaching its point — not the exact fixed
point — is what 1e-8 parity with ``ConnectivityMeasure`` requires.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.covariance import LedoitWolf
from sklearn.utils.validation import check_is_fitted

from ..riemann import invsqrtm, log_map
from ..riemann.base import _expm, _invsqrtm, _logm, _sqrtm

__all__ = [
    "Connectivity",
    "as_series_list",
    "sym_matrix_to_vec",
    "cov_to_corr",
    "prec_to_partial",
    "geometric_mean_nilearn",
    "KINDS",
]

KINDS = ("correlation", "partial correlation", "covariance", "tangent", "precision")


def as_series_list(X, name="X"):
    """Check ROI series in our layout and return a list of float64 ``(n_rois, n_times_i)`` arrays.

    Parameters
    ----------
    X : list of ndarray (n_rois, n_times_i) or ndarray (n_scans, n_rois, n_times)
    name : str
        Argument name used in error messages.

    Returns
    -------
    series : list of ndarray
    """
    if scipy.sparse.issparse(X):
        raise TypeError(f"{name} is a sparse matrix; sparse input is not supported: pass dense "
                        "(n_scans, n_rois, n_times) arrays or a list of (n_rois, n_times_i) arrays")
    if isinstance(X, np.ndarray):
        # Content checks come before the shape check so that complex, empty or
        # non-finite input is reported as such whatever its shape.
        if np.iscomplexobj(X):
            raise ValueError(f"Complex data not supported: {name} has dtype {X.dtype}")
        if X.size == 0:
            raise ValueError(f"{name} is empty: 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
        if X.dtype.kind in "fiub" and not np.isfinite(X).all():
            raise ValueError(f"{name} contains NaN or inf")
        if X.ndim != 3:
            # A lone scan passed as a 2-D array is the usual cause: say how to fix it.
            hint = f". Reshape your data with {name}[np.newaxis] if it is one scan" if X.ndim == 2 else ""
            raise ValueError(
                f"{name} has shape {X.shape}; expected (n_scans, n_rois, n_times) "
                f"or a list of (n_rois, n_times_i) arrays{hint}"
            )
        series = list(X)
    elif isinstance(X, (list, tuple)):
        series = list(X)
    else:
        raise TypeError(f"{name} must be an ndarray or a list of arrays, got {type(X).__name__}")
    if len(series) == 0:
        raise ValueError(f"{name} is empty: no scans")
    out = []
    for i, x in enumerate(series):
        if np.iscomplexobj(x):
            raise ValueError(f"Complex data not supported: {name}[{i}] is complex")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"{name}[{i}] has shape {x.shape}; expected (n_rois, n_times)")
        if x.shape[0] != np.shape(series[0])[0]:
            raise ValueError(f"{name}[{i}] has {x.shape[0]} ROIs but {name}[0] has {np.shape(series[0])[0]}")
        if x.shape[1] < 2:
            raise ValueError(f"{name}[{i}] has {x.shape[1]} time point(s); at least 2 are needed")
        if not np.isfinite(x).all():
            raise ValueError(f"{name}[{i}] contains NaN or inf")
        out.append(x)
    return out


def sym_matrix_to_vec(matrices, discard_diagonal=False):
    r"""Vectorise the lower triangle of stacked symmetric matrices (nilearn's order).

    Row-major lower triangle; with the diagonal kept, diagonal entries are
    divided by :math:`\sqrt 2` so that the Euclidean norm of the vector is
    :math:`\|M\|_F / \sqrt 2`-consistent with nilearn.

    Parameters
    ----------
    matrices : ndarray (..., n, n)
    discard_diagonal : bool

    Returns
    -------
    vectors : ndarray (..., n (n + 1) / 2) or (..., n (n - 1) / 2)

    Examples
    --------
    >>> import numpy as np
    >>> sym_matrix_to_vec(np.array([[1., 2.], [2., 3.]]), discard_diagonal=True)
    array([2.])
    """
    matrices = np.asarray(matrices)
    n = matrices.shape[-1]
    rows, cols = np.tril_indices(n, k=-1 if discard_diagonal else 0)
    vec = matrices[..., rows, cols]
    if not discard_diagonal:
        vec = vec / np.where(rows == cols, np.sqrt(2.0), 1.0)
    return vec


def cov_to_corr(covariances):
    r"""Correlation matrices :math:`D^{-1/2} C D^{-1/2}` from stacked covariances (unit diagonal forced)."""
    covariances = np.asarray(covariances)
    d = 1.0 / np.sqrt(np.diagonal(covariances, axis1=-2, axis2=-1))
    corr = covariances * d[..., :, None] * d[..., None, :]
    idx = np.arange(corr.shape[-1])
    corr[..., idx, idx] = 1.0
    return corr


def prec_to_partial(precisions):
    r"""Partial correlations :math:`-P_{ij} / \sqrt{P_{ii} P_{jj}}` from stacked precisions (unit diagonal)."""
    partial = -cov_to_corr(precisions)
    idx = np.arange(partial.shape[-1])
    partial[..., idx, idx] = 1.0
    return partial


def _zscore_sample(x):
    """nilearn's ``standardize_signal(..., standardize="zscore_sample")`` along time (axis 0)."""
    x = x - x.mean(axis=0)
    std = x.std(axis=0, ddof=1)
    std[std < np.finfo(np.float64).eps] = 1.0
    return x / std


def geometric_mean_nilearn(covariances, max_iter=30, tol=1e-7):
    r"""Riemannian (affine-invariant) mean with nilearn's exact iteration.

    Gradient descent of Fletcher & Joshi (2007), as in nilearn's
    ``_geometric_mean``: start from the arithmetic mean :math:`G`, then

    .. math::

        L = \frac1N \sum_k \log(G^{-1/2} C_k G^{-1/2}), \qquad
        G \leftarrow G^{1/2} \exp(\eta L) G^{1/2}

    halving :math:`\eta` whenever :math:`\|L\|_F` increases, and stopping when
    :math:`\|L\|_F / n^2 <` ``tol``. Reproducing the same iterates (not only
    the same fixed point) is what makes tangent features equal nilearn's to 1e-8.

    Parameters
    ----------
    covariances : ndarray (n_matrices, n, n)
    max_iter : int
    tol : float

    Returns
    -------
    mean : ndarray (n, n)
    """
    # One conversion to a float64 CPU tensor, then the engine's tensor kernels
    # (eigh-based, positivity checked) for every iterate.
    covs = torch.as_tensor(np.asarray(covariances, dtype=np.float64))
    gmean = covs.mean(dim=0)
    norm_old, step = np.inf, 1.0
    norm = np.inf
    for _ in range(max_iter):
        isqrt = _invsqrtm(gmean)
        logs_mean = _logm(isqrt @ covs @ isqrt).mean(dim=0)
        norm = float(torch.linalg.norm(logs_mean))
        sqrt = _sqrtm(gmean)
        gmean = sqrt @ _expm(step * logs_mean) @ sqrt
        if norm < norm_old:
            norm_old = norm
        elif norm > norm_old:
            step /= 2.0
            norm = norm_old
        if norm / gmean.numel() < tol:
            break
    return gmean.numpy()


class Connectivity(TransformerMixin, BaseEstimator):
    r"""Connectivity matrices (vectorised) from ROI time series in neurodecode's layout.

    For each scan :math:`x \in \mathbb R^{n_{rois} \times T}` a covariance
    :math:`C` is estimated (Ledoit–Wolf by default) from :math:`x^\top`, then

    * ``"covariance"``: :math:`C`;
    * ``"correlation"``: the covariance of the z-scored series (``ddof=1``)
      rescaled to unit diagonal (``standardize=True``, as nilearn);
    * ``"partial correlation"``: :math:`-P_{ij}/\sqrt{P_{ii}P_{jj}}`, :math:`P = C^{-1}`;
    * ``"precision"``: :math:`C^{-1}`;
    * ``"tangent"``: :math:`\log(\bar C^{-1/2} C \bar C^{-1/2})` where
      :math:`\bar C` is the geometric mean of the **training** covariances
      (learned in `fit`, nilearn's iteration), Varoquaux et al. (2010).

    Parameters
    ----------
    kind : {"correlation", "partial correlation", "covariance", "tangent", "precision"}
    vectorize : bool
        Return the lower triangle as a vector (nilearn's order; diagonal
        divided by :math:`\sqrt2` when kept) instead of matrices.
    discard_diagonal : bool
        Drop the diagonal when vectorising.
    cov_estimator : estimator or None
        A scikit-learn covariance estimator (``fit`` + ``covariance_``);
        ``None`` means ``LedoitWolf(store_precision=False)``, nilearn's default.
    standardize : bool
        z-score each series before estimating the correlation (correlation kind only).

    Attributes
    ----------
    cov_estimator_ : estimator
    mean_ : ndarray (n_rois, n_rois)
        Mean connectivity of the training scans (geometric mean of the
        covariances for ``"tangent"``).
    whitening_ : ndarray (n_rois, n_rois) or None
        :math:`\bar C^{-1/2}` for ``"tangent"``.
    n_rois_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.standard_normal((5, 80)), rng.standard_normal((5, 120))]   # ragged
    >>> Connectivity(kind="correlation", vectorize=True, discard_diagonal=True).fit_transform(X).shape
    (2, 10)
    """

    def __init__(self, kind="correlation", vectorize=True, discard_diagonal=False, cov_estimator=None,
                 standardize=True):
        self.kind = kind
        self.vectorize = vectorize
        self.discard_diagonal = discard_diagonal
        self.cov_estimator = cov_estimator
        self.standardize = standardize

    def _covariances(self, series):
        est = self.cov_estimator_
        if self.kind == "correlation":
            prep = _zscore_sample if self.standardize else (lambda x: x)
            return np.stack([clone(est).fit(prep(x.T)).covariance_ for x in series])
        return np.stack([clone(est).fit(x.T).covariance_ for x in series])

    def _connectivity(self, covs):
        if self.kind == "correlation":
            return cov_to_corr(covs)
        if self.kind in ("covariance", "tangent"):
            return covs
        prec = np.linalg.inv(covs)
        return prec if self.kind == "precision" else prec_to_partial(prec)

    def fit(self, X, y=None):
        """Estimate the reference (mean) connectivity from training scans.

        Parameters
        ----------
        X : list of ndarray (n_rois, n_times_i) or ndarray (n_scans, n_rois, n_times)
        y : ignored

        Returns
        -------
        self
        """
        self._fit_transform(X, fit=True)
        return self

    def fit_transform(self, X, y=None):
        return self._fit_transform(X, fit=True)

    def transform(self, X):
        """Connectivity of each scan, shape ``(n_scans, n_features)`` or ``(n_scans, n_rois, n_rois)``."""
        check_is_fitted(self, "cov_estimator_")
        return self._fit_transform(X, fit=False)

    def _fit_transform(self, X, fit):
        series = as_series_list(X)
        if fit:
            if self.kind not in KINDS:
                raise ValueError(f"kind={self.kind!r}: expected one of {KINDS}")
            if self.cov_estimator is None:
                self.cov_estimator_ = LedoitWolf(store_precision=False)
            elif not hasattr(self.cov_estimator, "fit"):
                raise ValueError(
                    f"cov_estimator={self.cov_estimator!r}: expected an estimator with fit() and covariance_"
                )
            else:
                self.cov_estimator_ = clone(self.cov_estimator)
            self.n_rois_ = series[0].shape[0]
        elif series[0].shape[0] != self.n_rois_:
            raise ValueError(f"X has {series[0].shape[0]} ROIs; this Connectivity was fitted on {self.n_rois_}")
        covs = self._covariances(series)
        conn = self._connectivity(covs)
        if fit:
            if self.kind == "tangent":
                self.mean_ = self._geometric_mean(covs)
                self.whitening_ = invsqrtm(self.mean_, device="cpu")
            else:
                mean = conn.mean(axis=0)
                self.mean_ = 0.5 * (mean + mean.T)
                self.whitening_ = None
        if self.kind == "tangent":
            conn = log_map(covs, self.mean_, metric="riemann", device="cpu")
        if self.vectorize:
            return sym_matrix_to_vec(conn, discard_diagonal=self.discard_diagonal)
        return conn

    @staticmethod
    def _geometric_mean(covs):
        return geometric_mean_nilearn(covs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Output is always float64 (covariances are estimated in float64),
        # whatever the input dtype: nothing is preserved.
        tags.transformer_tags.preserves_dtype = []
        tags.input_tags.allow_nan = False
        return tags
