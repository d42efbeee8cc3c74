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

Beyond re-centering (the first step of Riemannian Procrustes analysis,
Rodrigues et al. 2019), this module holds two further unsupervised per-subject
steps:

* :class:`Stretching` - per-subject dispersion stretching (RPA's second
  step): each subject's matrices are moved along the geodesics from their
  mean, :math:`\mathbf{C} \mapsto \mathbf{C}^{\sqrt{d_\text{final}/d_s}}`
  (after re-centering), so that the mean squared Riemannian distance to the
  mean (the dispersion :math:`d_s`) is the same for every subject;
  numerically equal to :class:`pyriemann.transfer.TLScale` per domain;
* :class:`GroupStandardScaler` - per-subject standardisation of tangent
  vectors (each feature z-scored with the subject's own mean and standard
  deviation); with :func:`identity_tangent_space` after :class:`Recentering`
  it gives per-subject tangent spaces at each subject's own mean.

RPA's third step (rotation, :class:`pyriemann.transfer.TLRotate`) aligns the
class means of the target subject with those of the sources; it needs labels
of the target subject, so it is not available for a held-out subject whose
labels are unknown, and is not implemented here.

Like :class:`Recentering`, both read only ``meta[group_column]`` and never a
label: groups not seen in ``fit`` use the statistics of their own unlabeled
rows passed to ``transform``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ..riemann.base import _invsqrtm, _logm, _sqrtm_invsqrtm, eig_operator
from ..riemann.distance import tensor_distance
from ..riemann.mean import tensor_mean
from ..riemann.tangentspace import _upper
from ._spd import as_spd_tensor, check_metric, to_numpy

__all__ = ["Recentering", "Stretching", "GroupStandardScaler", "identity_tangent_space"]

_ALL = "__all__"


def _group_labels(meta, n, group_column, owner):
    """``meta[group_column]`` as an array of ``n`` group labels (one group when ``meta`` is None)."""
    if meta is None:
        return np.full(n, _ALL, dtype=object)
    if not isinstance(meta, pd.DataFrame):
        raise TypeError(f"meta must be a pandas DataFrame, got {type(meta).__name__}")
    if group_column not in meta.columns:
        raise ValueError(f"meta has no column {group_column!r} (columns: {list(meta.columns)}); "
                         f"{owner} needs it to know which rows belong to which subject")
    if len(meta) != n:
        raise ValueError(f"meta has {len(meta)} rows but X has {n} rows; they must be aligned")
    return meta[group_column].to_numpy()


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
        return _group_labels(meta, n, self.group_column, "Recentering")

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


_TINY_DISPERSION = 1e-20


def _powm(T, alpha):
    return eig_operator(T, lambda x: x ** alpha)


class Stretching(TransformerMixin, BaseEstimator):
    r"""Stretch each subject's SPD matrices to a common dispersion (RPA step 2).

    For each group :math:`s` (a subject), the dispersion
    :math:`d_s = \frac{1}{n_s}\sum_i \delta^2(\mathbf{C}_i, \mathbf{M}_s)` is the
    mean squared distance of its matrices to their Riemannian mean
    :math:`\mathbf{M}_s`; every matrix is moved along the geodesic from
    :math:`\mathbf{M}_s` by the power :math:`p_s = \sqrt{d_\text{final}/d_s}`:

    .. math::
        \mathbf{C} \mapsto \mathbf{M}_s^{1/2}\left(\mathbf{M}_s^{-1/2}
        \mathbf{C}\mathbf{M}_s^{-1/2}\right)^{p_s}\mathbf{M}_s^{1/2},

    so that (with the Riemannian metric) each subject's dispersion becomes
    ``final_dispersion`` and its mean is unchanged (Rodrigues et al. 2019,
    "Riemannian Procrustes analysis: transfer learning for brain-computer
    interfaces"). Labels are never used; a group not seen in ``fit`` (the
    held-out subject) is stretched with the dispersion of its own unlabeled
    rows passed to ``transform``, as :class:`Recentering` does.

    Parameters
    ----------
    final_dispersion : float, default=1.0
        Dispersion of every group after stretching.
    centered_data : bool, default=False
        True when the matrices were re-centred to the identity beforehand
        (e.g. by :class:`Recentering`): the mean is then taken to be the
        identity and no mean is computed.
    metric : {"riemann", "logeuclid", "euclid"}, default="riemann"
        Distance used for the dispersion (the group mean is always the
        Riemannian mean, as in pyRiemann's ``TLScale``). The stretch is a
        geodesic operation only for ``"riemann"``.
    group_column : str, default="subject"
        Column of ``meta`` that defines the groups.
    device : str or None, default=None
        Torch device.

    Attributes
    ----------
    dispersions_ : dict
        Group value → dispersion of its training matrices (key ``"__all__"``
        when fitted without ``meta``).
    means_ : dict
        Group value → Riemannian mean of its training matrices (identity when
        ``centered_data=True``).
    n_features_in_ : int

    Notes
    -----
    Equal (to round-off) to :class:`pyriemann.transfer.TLScale` with
    ``final_dispersion`` and ``centered_data`` applied to each domain;
    ``meta`` reaches ``fit`` and ``transform`` through metadata routing, as
    for :class:`Recentering`. A group whose dispersion is zero (one matrix, or
    identical matrices; below 1e-20 in practice) is left unchanged.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from neurodecode.models.alignment import Recentering, Stretching
    >>> A = np.random.default_rng(0).standard_normal((20, 3, 30))
    >>> C = A @ A.transpose(0, 2, 1) / 30
    >>> meta = pd.DataFrame({"subject": np.repeat([1, 2], 10)})
    >>> R = Recentering(device="cpu").fit_transform(C, meta=meta)
    >>> st = Stretching(centered_data=True, device="cpu").fit(R, meta=meta)
    >>> sorted(st.dispersions_)
    [1, 2]
    """

    __metadata_request__fit = {"meta": True}
    __metadata_request__transform = {"meta": True}

    def __init__(self, final_dispersion=1.0, centered_data=False, metric="riemann",
                 group_column="subject", device=None):
        self.final_dispersion = final_dispersion
        self.centered_data = centered_data
        self.metric = metric
        self.group_column = group_column
        self.device = device

    def _stats(self, T, groups):
        """(mean, dispersion) of each group of ``T`` (labels are not used)."""
        (metric,) = check_metric(self.metric, ("distance",))
        out = {}
        for g in pd.unique(groups):
            sel = torch.as_tensor(np.flatnonzero(groups == g), device=T.device)
            Tg = T.index_select(0, sel)
            if self.centered_data:
                M = torch.eye(T.shape[-1], dtype=T.dtype, device=T.device)
            else:
                M = tensor_mean(Tg, "riemann")
            d2 = tensor_distance(Tg, M.expand_as(Tg), metric, squared=True)
            out[g] = (M, float(d2.mean()))
        return out

    def _apply(self, T, groups, stats):
        if not float(self.final_dispersion) > 0:
            raise ValueError(f"final_dispersion must be positive, got {self.final_dispersion!r}")
        out = torch.empty_like(T)
        for g in pd.unique(groups):
            idx = torch.as_tensor(np.flatnonzero(groups == g), device=T.device)
            M, disp = stats[g]
            Tg = T.index_select(0, idx)
            # Nothing to stretch (a single matrix, or identical ones): squared distances of
            # round-off size (<= 1e-20, i.e. distances <= 1e-10) must not give a huge power.
            if disp <= _TINY_DISPERSION:
                out[idx] = Tg
                continue
            p = float(np.sqrt(self.final_dispersion / disp))
            if self.centered_data:
                out[idx] = _powm(Tg, p)
            else:
                S, W = _sqrtm_invsqrtm(M)
                out[idx] = S @ _powm(W @ Tg @ W, p) @ S
        return out

    def _store(self, stats, n):
        self.means_ = {g: to_numpy(M) for g, (M, _) in stats.items()}
        self.dispersions_ = {g: d for g, (_, d) in stats.items()}
        self.n_features_in_ = n

    def fit(self, X, y=None, meta=None):
        """Compute each group's mean and dispersion (labels are not used)."""
        T = as_spd_tensor(X, self.device)
        self._store(self._stats(T, _group_labels(meta, T.shape[0], self.group_column, "Stretching")),
                    T.shape[1])
        return self

    def transform(self, X, meta=None):
        """Stretched matrices; unseen groups use the dispersion of their own rows."""
        check_is_fitted(self)
        T = as_spd_tensor(X, self.device, n_channels=self.n_features_in_, owner="Stretching")
        groups = _group_labels(meta, T.shape[0], self.group_column, "Stretching")
        stats = {g: (torch.as_tensor(self.means_[g], device=T.device), self.dispersions_[g])
                 for g in pd.unique(groups) if g in self.dispersions_}
        unseen = np.array([g not in self.dispersions_ for g in groups], dtype=bool)
        if unseen.any():
            sel = torch.as_tensor(np.flatnonzero(unseen), device=T.device)
            stats.update(self._stats(T.index_select(0, sel), groups[unseen]))
        return to_numpy(self._apply(T, groups, stats))

    def fit_transform(self, X, y=None, meta=None):
        """Fit the group statistics on ``X`` and stretch ``X`` with them."""
        T = as_spd_tensor(X, self.device)
        groups = _group_labels(meta, T.shape[0], self.group_column, "Stretching")
        stats = self._stats(T, groups)
        self._store(stats, T.shape[1])
        return to_numpy(self._apply(T, groups, stats))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags


def identity_tangent_space(X):
    r"""Tangent vectors at the identity: :math:`\text{upper}(\log \mathbf{C})`.

    After :class:`Recentering` each subject's mean is the identity, so this is
    each subject's tangent space at its own mean (no reference is fitted: use
    it in a pipeline through :class:`sklearn.preprocessing.FunctionTransformer`).
    Off-diagonal entries are weighted by :math:`\sqrt 2`, as in
    :class:`~neurodecode.models.tangent.TangentSpace`.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.models.alignment import identity_tangent_space
    >>> identity_tangent_space(np.eye(3)[None] * np.e).round(6)
    array([[1., 0., 0., 1., 0., 1.]])
    """
    T = as_spd_tensor(X, None)
    return to_numpy(_upper(_logm(T)))


class GroupStandardScaler(TransformerMixin, BaseEstimator):
    """Standardise features within each group (subject): per-group z-score.

    Each group's features are centred on the group's own mean and divided by
    the group's own standard deviation (a feature with zero spread is only
    centred, as in :class:`sklearn.preprocessing.StandardScaler`). Labels
    are never used; a group not seen in ``fit`` (the held-out subject) is
    standardised with the statistics of its own unlabeled rows passed to
    ``transform``.

    Parameters
    ----------
    with_std : bool, default=True
        Divide by the per-group standard deviation (else only centre).
    group_column : str, default="subject"
        Column of ``meta`` that defines the groups.

    Attributes
    ----------
    means_, scales_ : dict
        Group value → per-feature mean / standard deviation of its training
        rows (key ``"__all__"`` when fitted without ``meta``).
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from neurodecode.models.alignment import GroupStandardScaler
    >>> X = np.arange(12.0).reshape(6, 2)
    >>> meta = pd.DataFrame({"subject": [1, 1, 1, 2, 2, 2]})
    >>> GroupStandardScaler().fit_transform(X, meta=meta)[:, 0].round(3)
    array([-1.225,  0.   ,  1.225, -1.225,  0.   ,  1.225])
    """

    __metadata_request__fit = {"meta": True}
    __metadata_request__transform = {"meta": True}

    def __init__(self, with_std=True, group_column="subject"):
        self.with_std = with_std
        self.group_column = group_column

    def _check(self, X, reset):
        X = validate_data(self, X, reset=reset, dtype=np.float64)
        return X

    def _stats(self, X, groups):
        out = {}
        for g in pd.unique(groups):
            Xg = X[groups == g]
            mu = Xg.mean(axis=0)
            sd = Xg.std(axis=0) if self.with_std else np.ones(X.shape[1])
            sd = np.where(sd > np.finfo(np.float64).eps * np.maximum(np.abs(mu), 1.0), sd, 1.0)
            out[g] = (mu, sd)
        return out

    def _apply(self, X, groups, stats):
        out = np.empty_like(X)
        for g in pd.unique(groups):
            sel = groups == g
            mu, sd = stats[g]
            out[sel] = (X[sel] - mu) / sd
        return out

    def _store(self, stats):
        self.means_ = {g: mu for g, (mu, _) in stats.items()}
        self.scales_ = {g: sd for g, (_, sd) in stats.items()}

    def fit(self, X, y=None, meta=None):
        """Per-group mean and standard deviation of each feature (labels are not used)."""
        X = self._check(X, reset=True)
        self._store(self._stats(X, _group_labels(meta, X.shape[0], self.group_column,
                                                 "GroupStandardScaler")))
        return self

    def transform(self, X, meta=None):
        """Standardised features; unseen groups use the statistics of their own rows."""
        check_is_fitted(self)
        X = self._check(X, reset=False)
        groups = _group_labels(meta, X.shape[0], self.group_column, "GroupStandardScaler")
        stats = {g: (self.means_[g], self.scales_[g]) for g in pd.unique(groups) if g in self.means_}
        unseen = np.array([g not in self.means_ for g in groups], dtype=bool)
        if unseen.any():
            stats.update(self._stats(X[unseen], groups[unseen]))
        return self._apply(X, groups, stats)

    def fit_transform(self, X, y=None, meta=None):
        """Fit the per-group statistics on ``X`` and standardise ``X`` with them."""
        X = self._check(X, reset=True)
        groups = _group_labels(meta, X.shape[0], self.group_column, "GroupStandardScaler")
        stats = self._stats(X, groups)
        self._store(stats)
        return self._apply(X, groups, stats)
