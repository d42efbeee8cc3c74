r"""Riemannian re-centering (alignment) of each subject's SPD matrices.

Each subject's matrices are whitened by that subject's own mean
(Zanini et al. 2018, "Transfer learning: a Riemannian geometry framework
with applications to brain-computer interfaces"):

.. math::
    \mathbf{C} \mapsto \mathbf{M}_s^{-1/2} \mathbf{C} \mathbf{M}_s^{-1/2},

so every subject's mean becomes the identity and the between-subject shift
of the covariances is removed before a classifier trained on other subjects
sees them.

**Unsupervised, so allowed on the held-out subject.** :math:`\mathbf{M}_s`
uses no labels. For a subject that was not in the training data (the
held-out subject of a leave-subject-out split), ``transform`` computes
:math:`\mathbf{M}_s` from that subject's *unlabeled* trials passed to
``transform``; no label of a test trial is ever read. This assumes that the
test trials of a new subject arrive as a batch (or that a calibration block
of its unlabeled trials is available), which is the standard setting of
Riemannian transfer learning. Subjects seen in ``fit`` keep the mean of
their training trials, so within-subject splits do not use test trials.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..riemann.base import _invsqrtm
from ..riemann.mean import tensor_mean
from ._spd import as_spd_tensor, check_metric, to_numpy

__all__ = ["Recentering"]

_ALL = "__all__"


class Recentering(TransformerMixin, BaseEstimator):
    r"""Whiten each subject's SPD matrices by that subject's own mean.

    Parameters
    ----------
    metric : {"riemann", "logeuclid", "euclid"}, default="riemann"
        Metric of the subject means.
    group_column : str, default="subject"
        Column of ``meta`` that defines the groups (e.g. ``"session"``, ``"site"``).
    device : str or None, default=None
        Torch device.

    Notes
    -----
    ``meta`` (a DataFrame aligned with the rows of ``X``, with the column
    ``group_column``) reaches ``fit`` and ``transform`` through scikit-learn
    metadata routing: both methods request it by default, so inside a
    :class:`~sklearn.pipeline.Pipeline` with
    ``sklearn.set_config(enable_metadata_routing=True)`` it suffices to call
    ``pipe.fit(X, y, meta=meta)`` and ``pipe.predict(X, meta=meta)``.
    With ``meta=None`` all rows are one group. Groups not seen in ``fit``
    (for example the held-out subject) are whitened by the mean of their own
    unlabeled rows in ``transform`` (see the module docstring).

    Attributes
    ----------
    means_ : dict
        Group value → mean of its training matrices (key ``"__all__"`` when
        fitted without ``meta``).
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from neurodecode.models.alignment import Recentering
    >>> A = np.random.default_rng(0).standard_normal((20, 3, 30))
    >>> C = A @ A.transpose(0, 2, 1) / 30
    >>> meta = pd.DataFrame({"subject": np.repeat([1, 2], 10)})
    >>> Recentering(device="cpu").fit_transform(C, meta=meta).shape
    (20, 3, 3)
    """

    __metadata_request__fit = {"meta": True}
    __metadata_request__transform = {"meta": True}

    def __init__(self, metric="riemann", group_column="subject", device=None):
        self.metric = metric
        self.group_column = group_column
        self.device = device

    def _groups(self, meta, n):
        if meta is None:
            return np.full(n, _ALL, dtype=object)
        if not isinstance(meta, pd.DataFrame):
            raise TypeError(f"meta must be a pandas DataFrame, got {type(meta).__name__}")
        if self.group_column not in meta.columns:
            raise ValueError(f"meta has no column {self.group_column!r} (columns: {list(meta.columns)}); "
                             "Recentering needs it to know which rows belong to which subject")
        if len(meta) != n:
            raise ValueError(f"meta has {len(meta)} rows but X has {n} matrices; they must be aligned")
        return meta[self.group_column].to_numpy()

    def _means(self, T, groups):
        (metric,) = check_metric(self.metric, ("mean",))
        out = {}
        for g in pd.unique(groups):
            sel = torch.as_tensor(np.flatnonzero(groups == g), device=T.device)
            out[g] = tensor_mean(T.index_select(0, sel), metric)
        return out

    def _apply(self, T, groups, means):
        out = torch.empty_like(T)
        for g in pd.unique(groups):
            idx = torch.as_tensor(np.flatnonzero(groups == g), device=T.device)
            W = _invsqrtm(means[g])
            out[idx] = W @ T.index_select(0, idx) @ W
        return out

    def fit(self, X, y=None, meta=None):
        """Compute the mean of each group's training matrices (labels are not used)."""
        T = as_spd_tensor(X, self.device)
        groups = self._groups(meta, T.shape[0])
        self.means_ = {g: to_numpy(M) for g, M in self._means(T, groups).items()}
        self.n_features_in_ = T.shape[1]
        return self

    def transform(self, X, meta=None):
        """Re-centred matrices; unseen groups are whitened by the mean of their own rows."""
        check_is_fitted(self)
        T = as_spd_tensor(X, self.device, n_channels=self.n_features_in_, owner="Recentering")
        groups = self._groups(meta, T.shape[0])
        means = {g: torch.as_tensor(M, device=T.device) for g, M in self.means_.items()
                 if np.any(groups == g)}
        unseen = np.array([g not in self.means_ for g in groups], dtype=bool)
        if unseen.any():
            sel = torch.as_tensor(np.flatnonzero(unseen), device=T.device)
            means.update(self._means(T.index_select(0, sel), groups[unseen]))
        return to_numpy(self._apply(T, groups, means))

    def fit_transform(self, X, y=None, meta=None):
        """Fit the group means on ``X`` and re-centre ``X`` with them."""
        T = as_spd_tensor(X, self.device)
        groups = self._groups(meta, T.shape[0])
        means = self._means(T, groups)
        self.means_ = {g: to_numpy(M) for g, M in means.items()}
        self.n_features_in_ = T.shape[1]
        return to_numpy(self._apply(T, groups, means))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags
