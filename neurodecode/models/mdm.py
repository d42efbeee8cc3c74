r"""Minimum distance to mean classifiers: :class:`MDM` and :class:`FgMDM`.

Same definitions as :mod:`pyriemann.classification` (pyRiemann 0.12),
computed in batched float64 torch by :mod:`neurodecode.riemann`: each class
is summarised by the mean :math:`\mathbf{M}_k` of its training matrices and
a matrix goes to the class of the nearest mean,

.. math::
    \hat y = \arg\min_k \delta(\mathbf{C}, \mathbf{M}_k), \qquad
    p_k = \operatorname{softmax}_k\left(-\delta^2(\mathbf{C}, \mathbf{M}_k)\right).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..riemann.distance import tensor_distance
from ..riemann.mean import check_solver, tensor_mean
from ._spd import as_spd_tensor, check_metric, check_weights, check_y, to_numpy
from .tangent import FGDA

__all__ = ["MDM", "FgMDM"]


def _softmax(Z: np.ndarray) -> np.ndarray:
    e = np.exp(Z - Z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class MDM(TransformerMixin, ClassifierMixin, BaseEstimator):
    r"""Minimum distance to (Riemannian) mean classifier.

    Parameters
    ----------
    metric : str or dict, default="riemann"
        ``"riemann"``, ``"logeuclid"`` or ``"euclid"`` for both the class
        means and the distances, or ``{"mean": ..., "distance": ...}``.
    device : str or None, default=None
        Torch device (None: CUDA when present).
    solver : {"fixed-point", "newton"}, default="fixed-point"
        Iteration of the Riemannian class means (see
        :class:`~neurodecode.models.tangent.TangentSpace`): pyRiemann's, or a
        Newton iteration to the same fixed point in fewer passes.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
    covmeans_ : ndarray, shape (n_classes, n_channels, n_channels)
        Class means.
    n_features_in_ : int
        Matrix size ``n_channels``.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.models.mdm import MDM
    >>> A = np.random.default_rng(0).standard_normal((20, 3, 30))
    >>> C = A @ A.transpose(0, 2, 1) / 30
    >>> y = np.arange(20) % 2
    >>> MDM(device="cpu").fit(C, y).predict_proba(C).shape
    (20, 2)
    """

    def __init__(self, metric="riemann", device=None, solver="fixed-point"):
        self.metric = metric
        self.device = device
        self.solver = solver

    def _fit_tensor(self, T, y, sample_weight):
        metric_mean, _ = check_metric(self.metric, ("mean", "distance"))
        solver = check_solver(self.solver)
        y = check_y(y, T.shape[0])
        self.classes_ = np.unique(y)
        sw = check_weights(sample_weight, T.shape[0])
        sw = np.ones(T.shape[0]) if sw is None else sw
        means = []
        for c in self.classes_:
            idx = np.flatnonzero(y == c)
            if sw[idx].sum() <= 0:
                raise ValueError(f"class {c!r} has zero total sample_weight: its mean is undefined; "
                                 "drop the class or give its matrices positive weights")
            sel = torch.as_tensor(idx, device=T.device)
            means.append(tensor_mean(T.index_select(0, sel), metric_mean, sample_weight=sw[idx],
                                     solver=solver))
        self.covmeans_ = to_numpy(torch.stack(means))
        self.n_features_in_ = T.shape[1]
        return self

    def fit(self, X, y, sample_weight=None):
        """Estimate one mean per class.

        Parameters
        ----------
        X : ndarray, shape (n_matrices, n_channels, n_channels)
            SPD matrices.
        y : ndarray, shape (n_matrices,)
            Class labels.
        sample_weight : None or ndarray, shape (n_matrices,)
            Weights of the matrices in their class mean.

        Returns
        -------
        self : MDM
        """
        return self._fit_tensor(as_spd_tensor(X, self.device), y, sample_weight)

    def _distances_tensor(self, T):
        _, metric_dist = check_metric(self.metric, ("mean", "distance"))
        M = torch.as_tensor(self.covmeans_, device=T.device)
        # One batched call per class: the class count is small, the trial count is not.
        return torch.stack([tensor_distance(T, M[k], metric_dist) for k in range(M.shape[0])], dim=1)

    def _distances(self, X):
        check_is_fitted(self)
        T = as_spd_tensor(X, self.device, n_channels=self.n_features_in_, owner=type(self).__name__)
        return to_numpy(self._distances_tensor(T))

    def transform(self, X):
        """Distances to each class mean, shape (n_matrices, n_classes)."""
        return self._distances(X)

    def predict(self, X):
        """Class of the nearest mean, shape (n_matrices,)."""
        d = self._distances(X)  # checks fitted state before classes_ is read
        return self.classes_[d.argmin(axis=1)]

    def predict_proba(self, X):
        """Softmax of the negative squared distances, shape (n_matrices, n_classes)."""
        return _softmax(-self._distances(X) ** 2)

    def fit_transform(self, X, y=None, sample_weight=None):
        """Fit the class means and return the distances of ``X`` to them."""
        T = as_spd_tensor(X, self.device)
        self._fit_tensor(T, y, sample_weight)
        return to_numpy(self._distances_tensor(T))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags


class FgMDM(TransformerMixin, ClassifierMixin, BaseEstimator):
    r"""MDM after geodesic filtering (:class:`~neurodecode.models.tangent.FGDA`).

    The matrices are filtered by an LDA in the tangent space and mapped back
    to the manifold, then classified by :class:`MDM` (pyRiemann's ``FgMDM``).
    No ``sample_weight`` (see :class:`~neurodecode.models.tangent.FGDA`).

    Parameters
    ----------
    metric : str or dict, default="riemann"
        Metric for the means, the distances and the tangent map, or a dict
        with keys ``"mean"``, ``"distance"`` and ``"map"``.
    tsupdate : bool, default=False
        Tangent-space update of the filter on the test batch (see
        :class:`~neurodecode.models.tangent.TangentSpace`).
    device : str or None, default=None
        Torch device.

    Attributes
    ----------
    classes_ : ndarray
    fgda_ : FGDA
    mdm_ : MDM

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.models.mdm import FgMDM
    >>> A = np.random.default_rng(0).standard_normal((20, 3, 30))
    >>> C = A @ A.transpose(0, 2, 1) / 30
    >>> y = np.arange(20) % 2
    >>> FgMDM(device="cpu").fit(C, y).predict(C).shape
    (20,)
    """

    def __init__(self, metric="riemann", tsupdate=False, device=None):
        self.metric = metric
        self.tsupdate = tsupdate
        self.device = device

    def _metrics(self):
        if isinstance(self.metric, dict):
            mean, dist, mp = check_metric(self.metric, ("mean", "distance", "map"))
            return {"mean": mean, "map": mp}, {"mean": mean, "distance": dist}
        check_metric(self.metric, ("mean",))
        return self.metric, self.metric

    def fit(self, X, y):
        """Fit the geodesic filter, then the class means of the filtered matrices."""
        T = as_spd_tensor(X, self.device)
        y = check_y(y, T.shape[0])
        ts_metric, mdm_metric = self._metrics()
        self.fgda_ = FGDA(metric=ts_metric, tsupdate=self.tsupdate, device=self.device)
        filtered = self.fgda_.fit_transform(T, y)
        self.mdm_ = MDM(metric=mdm_metric, device=self.device).fit(filtered, y)
        self.classes_ = self.mdm_.classes_
        self.n_features_in_ = T.shape[1]
        return self

    def _filtered(self, X):
        check_is_fitted(self)
        T = as_spd_tensor(X, self.device, n_channels=self.n_features_in_, owner="FgMDM")
        return self.fgda_.transform(T)

    def transform(self, X):
        """Distances of the filtered matrices to each class mean."""
        filtered = self._filtered(X)  # checks fitted state before mdm_ is read
        return self.mdm_.transform(filtered)

    def predict(self, X):
        """Class of the nearest mean after filtering."""
        filtered = self._filtered(X)  # checks fitted state before mdm_ is read
        return self.mdm_.predict(filtered)

    def predict_proba(self, X):
        """Softmax of the negative squared distances after filtering."""
        filtered = self._filtered(X)  # checks fitted state before mdm_ is read
        return self.mdm_.predict_proba(filtered)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags
