r"""Tangent-space features of SPD matrices: :class:`TangentSpace` and :class:`FGDA`.

Same definitions as :mod:`pyriemann.tangentspace` (pyRiemann 0.12), computed
in batched float64 torch by :mod:`neurodecode.riemann`. For a reference
:math:`\mathbf{C}_\text{ref}` (the mean of the training matrices) a matrix
:math:`\mathbf{C}` maps to

.. math::
    \mathbf{t} = \text{upper}\left(\log(\mathbf{C}_\text{ref}^{-1/2} \mathbf{C}
    \mathbf{C}_\text{ref}^{-1/2})\right)

(``metric="riemann"``), the upper triangle with off-diagonal entries
weighted by :math:`\sqrt 2`, a vector of length :math:`n(n+1)/2`.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.utils.validation import check_is_fitted

from ..riemann.mean import check_solver, tensor_mean, tensor_mean_riemann_logs
from ..riemann.tangentspace import _exp_map, _log_map, _unupper, _upper
from ._spd import as_spd_tensor, check_metric, check_weights, check_y, resolve_device, to_numpy

__all__ = ["TangentSpace", "FGDA"]


class TangentSpace(TransformerMixin, BaseEstimator):
    r"""Project SPD matrices to the tangent space at the mean of the training matrices.

    Parameters
    ----------
    metric : str or dict, default="riemann"
        ``"riemann"``, ``"logeuclid"`` or ``"euclid"``, used both for the
        reference mean and for the log map; a dict ``{"mean": ..., "map": ...}``
        chooses them separately (as in pyRiemann).
    tsupdate : bool, default=False
        Re-estimate the reference on the matrices passed to ``transform``
        (covariate-shift correction, Barachant et al. 2013). It uses the
        unlabeled test matrices as one batch, so predictions then depend on
        which trials are transformed together.
    device : str or None, default=None
        Torch device (None: CUDA when present).
    solver : {"fixed-point", "newton"}, default="fixed-point"
        Iteration of the Riemannian mean. "fixed-point": pyRiemann's, so the
        same reference to rounding. "newton": the same fixed point to a
        tighter tolerance in about a third of the eigendecomposition passes,
        and ``fit_transform`` reuses the last pass as the tangent vectors;
        results differ from pyRiemann's by pyRiemann's convergence error
        (see ``docs/benchmarks.md``, "Riemannian engine").

    Attributes
    ----------
    reference_ : ndarray, shape (n_channels, n_channels)
        Mean of the training matrices.
    n_features_in_ : int
        Matrix size ``n_channels``.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.models.tangent import TangentSpace
    >>> A = np.random.default_rng(0).standard_normal((20, 3, 30))
    >>> C = A @ A.transpose(0, 2, 1) / 30
    >>> TangentSpace(device="cpu").fit_transform(C).shape
    (20, 6)
    """

    def __init__(self, metric="riemann", tsupdate=False, device=None, solver="fixed-point"):
        self.metric = metric
        self.tsupdate = tsupdate
        self.device = device
        self.solver = solver

    def _fit_tensor(self, T, sample_weight):
        metric_mean, _ = check_metric(self.metric, ("mean", "map"))
        sw = check_weights(sample_weight, T.shape[0])
        ref = tensor_mean(T, metric_mean, sample_weight=sw, solver=check_solver(self.solver))
        self.reference_ = to_numpy(ref)
        self.n_features_in_ = T.shape[1]
        return ref

    def fit(self, X, y=None, sample_weight=None):
        """Estimate the reference matrix (mean of ``X`` under the mean metric).

        Parameters
        ----------
        X : ndarray, shape (n_matrices, n_channels, n_channels)
            SPD matrices.
        y : ignored
        sample_weight : None or ndarray, shape (n_matrices,)
            Weights of the matrices in the mean.

        Returns
        -------
        self : TangentSpace
        """
        self._fit_tensor(as_spd_tensor(X, self.device), sample_weight)
        return self

    def _transform_tensor(self, T, ref):
        _, metric_map = check_metric(self.metric, ("mean", "map"))
        return _upper(_log_map(T, ref, metric_map))

    def _reference_for(self, T):
        if self.tsupdate:
            metric_mean, _ = check_metric(self.metric, ("mean", "map"))
            return tensor_mean(T, metric_mean, solver=check_solver(self.solver))
        return torch.as_tensor(self.reference_, device=T.device)

    def transform(self, X):
        """Tangent vectors, shape (n_matrices, n_channels (n_channels + 1) / 2)."""
        check_is_fitted(self)
        T = as_spd_tensor(X, self.device, n_channels=self.n_features_in_, owner="TangentSpace")
        return to_numpy(self._transform_tensor(T, self._reference_for(T)))

    def fit_transform(self, X, y=None, sample_weight=None):
        """Fit the reference on ``X`` and return its tangent vectors.

        With ``solver="newton"`` and the Riemannian mean and map, the mean's last iteration already
        holds :math:`\log(\mathbf{C}_\text{ref}^{-1/2} \mathbf{C}_i
        \mathbf{C}_\text{ref}^{-1/2})` for the returned reference, so no
        further eigendecomposition pass is made (same vectors as
        ``fit(X).transform(X)`` to rounding).
        """
        T = as_spd_tensor(X, self.device)
        if (check_solver(self.solver) == "newton"
                and check_metric(self.metric, ("mean", "map")) == ("riemann", "riemann")):
            sw = check_weights(sample_weight, T.shape[0])
            ref, logs = tensor_mean_riemann_logs(T, sample_weight=sw)
            self.reference_ = to_numpy(ref)
            self.n_features_in_ = T.shape[1]
            return to_numpy(_upper(logs))
        ref = self._fit_tensor(T, sample_weight)
        return to_numpy(self._transform_tensor(T, ref))

    def inverse_transform(self, X):
        """SPD matrices from tangent vectors at ``reference_`` (inverse of ``transform``)."""
        check_is_fitted(self)
        _, metric_map = check_metric(self.metric, ("mean", "map"))
        V = torch.as_tensor(np.asarray(X, dtype=np.float64), device=resolve_device(self.device))
        if V.ndim != 2:
            raise ValueError(f"X must be tangent vectors (n_matrices, n_ts), got shape {tuple(V.shape)}")
        n = self.n_features_in_
        if V.shape[1] != n * (n + 1) // 2:
            raise ValueError(f"X has {V.shape[1]} features, but TangentSpace is expecting "
                             f"{n * (n + 1) // 2} tangent coordinates ({n}x{n} matrices)")
        ref = torch.as_tensor(self.reference_, device=V.device)
        return to_numpy(_exp_map(_unupper(V), ref, metric_map))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags


class FGDA(TransformerMixin, BaseEstimator):
    r"""Fisher geodesic discriminant analysis: LDA filtering in the tangent space.

    The matrices are mapped to the tangent space at their mean
    (:class:`TangentSpace`), a shrinkage LDA (``solver="lsqr"``,
    ``shrinkage="auto"``, ``n_classes - 1`` components) is fitted there, the
    tangent vectors are projected on the span of its discriminant directions
    :math:`\mathbf{W}^\top (\mathbf{W}\mathbf{W}^\top)^{+} \mathbf{W}` and
    mapped back to the manifold (Barachant et al. 2010); pyRiemann's
    ``FGDA``.

    ``sample_weight`` is not accepted: the shrinkage LDA takes no weights,
    and weighting only the reference mean (what pyRiemann 0.12 does) is not
    the same as repeating trials, so it would silently mean something else.

    Parameters
    ----------
    metric : str or dict, default="riemann"
        As in :class:`TangentSpace`.
    tsupdate : bool, default=False
        As in :class:`TangentSpace`.
    device : str or None, default=None
        Torch device.

    Attributes
    ----------
    classes_ : ndarray
        Class labels.
    ts_ : TangentSpace
        The fitted tangent space.
    filter_ : ndarray, shape (n_ts, n_ts)
        Projection applied to the tangent vectors.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.models.tangent import FGDA
    >>> A = np.random.default_rng(0).standard_normal((20, 3, 30))
    >>> C = A @ A.transpose(0, 2, 1) / 30
    >>> FGDA(device="cpu").fit_transform(C, np.arange(20) % 2).shape
    (20, 3, 3)
    """

    def __init__(self, metric="riemann", tsupdate=False, device=None):
        self.metric = metric
        self.tsupdate = tsupdate
        self.device = device

    def _fit(self, X, y):
        T = as_spd_tensor(X, self.device)
        y = check_y(y, T.shape[0])
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"FGDA needs at least 2 classes to fit its LDA filter, got {len(self.classes_)} class")
        self.ts_ = TangentSpace(metric=self.metric, tsupdate=self.tsupdate, device=self.device)
        ts = self.ts_.fit_transform(T)
        lda = LinearDiscriminantAnalysis(n_components=len(self.classes_) - 1, solver="lsqr",
                                         shrinkage="auto")
        lda.fit(ts, y)
        W = lda.coef_.copy()
        self.filter_ = W.T @ np.linalg.pinv(W @ W.T) @ W
        self.n_features_in_ = T.shape[1]
        return ts

    def _retro_project(self, ts):
        return self.ts_.inverse_transform(ts @ self.filter_)

    def fit(self, X, y):
        """Fit the reference matrix and the LDA filter."""
        self._fit(X, y)
        return self

    def transform(self, X):
        """Filtered SPD matrices, shape (n_matrices, n_channels, n_channels)."""
        check_is_fitted(self)
        T = as_spd_tensor(X, self.device, n_channels=self.n_features_in_, owner="FGDA")
        return self._retro_project(self.ts_.transform(T))

    def fit_transform(self, X, y=None):
        """Fit and filter ``X``."""
        return self._retro_project(self._fit(X, y))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.required = True
        return tags
