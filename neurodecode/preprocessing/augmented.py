"""Augmented covariance matrices (ACM): time-delay embedding + covariance.

The augmented covariance of Carrara & Papadopoulo (2023) is the covariance of
a time-delay embedded signal. For a trial :math:`X \\in \\mathbb{R}^{C\\times T}`,
an ``order`` :math:`m \\ge 2` and a ``lag`` :math:`\\ell`, MOABB's
``AugmentedDataset`` stacks :math:`m` delayed copies

.. math::
    \\tilde X = \\begin{bmatrix} X_{[0,\\,L)} \\\\ X_{[\\ell,\\,\\ell+L)} \\\\ \\vdots \\\\
    X_{[(m-1)\\ell,\\,(m-1)\\ell+L)} \\end{bmatrix}, \\qquad L = T - m\\ell,

(copy :math:`p` is ``X[:, p*lag : -(order-p)*lag]``; for ``order == 1`` the
signal is returned unchanged, all :math:`T` samples) and the ACM is a
covariance estimate of :math:`\\tilde X`, a :math:`(mC)\\times(mC)` matrix.

Fast path. Block :math:`(p, q)` (:math:`q \\ge p`, :math:`d = (q-p)\\ell`)
of the uncentred scatter matrix is

.. math::
    S_{pq} = \\sum_{t=p\\ell}^{p\\ell+L-1} x_t\\, x_{t+d}^\\top
           = G_d - H_d(p\\ell) - R_d\\big((m-q)\\ell\\big),

with :math:`G_d = \\sum_{t=0}^{T-d-1} x_t x_{t+d}^\\top` the full lagged product,
:math:`H_d(a)` its first :math:`a` terms and :math:`R_d(s)` its last
:math:`s` terms. :math:`G_d` is computed once per distinct :math:`d` for the
whole grid; heads and tails are short (at most ``max(order) * lag``
samples) and are accumulated once per (lag, :math:`q-p`) for all orders. The
block means come from a cumulative sum over time, so centring is exact for
every order's own window. A whole order x lag grid therefore costs little
more than the lagged products of its largest lag span, instead of one
(mC)^2 L product per member.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

__all__ = [
    "ACM_ESTIMATORS",
    "AugmentedCovariances",
    "augmented_covariance_grid",
    "augmented_covariances",
    "augmented_covariances_naive",
    "iter_augmented_covariance_grid",
    "time_delay_embedding",
]

#: covariance estimators supported on the augmented signal (pyRiemann names):
#: "cov" (unbiased, numpy.cov), "scm" (1/N), "corr", "oas", "lwf".
ACM_ESTIMATORS = ("cov", "scm", "corr", "oas", "lwf")


def _default_device(device=None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_order_lag(order, lag, n_times: int) -> tuple[int, int]:
    for name, value in (("order", order), ("lag", lag)):
        if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    order, lag = int(order), int(lag)
    n_kept = n_times if order == 1 else n_times - order * lag
    if n_kept < 2:
        raise ValueError(
            f"order={order} and lag={lag} leave {n_kept} samples of the {n_times} in each "
            f"trial (the embedding keeps n_times - order*lag); use a smaller order or lag"
        )
    return order, lag


def _check_estimator(estimator: str) -> str:
    if estimator not in ACM_ESTIMATORS:
        raise ValueError(
            f"estimator={estimator!r} is not supported for augmented covariances; "
            f"choose one of {ACM_ESTIMATORS}"
        )
    return estimator


def _as_tensor(X, device=None, dtype=torch.float64) -> torch.Tensor:
    if isinstance(X, torch.Tensor):
        out = X.to(device=_default_device(device) if device is not None else X.device, dtype=dtype)
    else:
        X = np.asarray(X)
        if X.ndim != 3:
            raise ValueError(
                f"X must be a 3-D array (n_trials, n_channels, n_times), got shape {X.shape}; "
                "Reshape your data: one epoch is X[np.newaxis]"
            )
        out = torch.as_tensor(np.array(X, dtype=np.float64, order="C"), dtype=dtype,
                              device=_default_device(device))
    if out.ndim != 3:
        raise ValueError(
            f"X must be a 3-D array (n_trials, n_channels, n_times), got shape {tuple(out.shape)}; "
            "Reshape your data: one epoch is X[np.newaxis]"
        )
    if not bool(torch.isfinite(out).all()):
        raise ValueError("X contains NaN or infinite values; clean or interpolate them first")
    return out


def time_delay_embedding(X, order: int = 1, lag: int = 1):
    """Stack ``order`` delayed copies of each trial (MOABB ``AugmentedDataset``).

    Parameters
    ----------
    X : ndarray or torch.Tensor, shape (..., n_channels, n_times)
        Multi-channel time series.
    order : int
        Number of copies; ``order == 1`` returns ``X`` unchanged.
    lag : int
        Delay between consecutive copies, in samples.

    Returns
    -------
    X_emb : same type as X, shape (..., order * n_channels, n_times - order * lag)
        Copy ``p`` is ``X[..., p*lag : n_times - (order-p)*lag]``.

    Examples
    --------
    >>> import numpy as np
    >>> time_delay_embedding(np.arange(6.0)[None, None], order=2, lag=1)
    array([[[0., 1., 2., 3.],
            [1., 2., 3., 4.]]])
    """
    n_times = X.shape[-1]
    order, lag = _check_order_lag(order, lag, n_times)
    if order == 1:
        return X
    pieces = [X[..., p * lag : n_times - (order - p) * lag] for p in range(order)]
    if isinstance(X, torch.Tensor):
        return torch.cat(pieces, dim=-2)
    return np.concatenate(pieces, axis=-2)


def _finish_covariance(
    scatter: torch.Tensor, n_samples: int, estimator: str, fourth: torch.Tensor | None = None
) -> torch.Tensor:
    """Turn a centred scatter matrix sum_k z_k z_k^T into the requested estimate.

    ``fourth`` is sum_k ||z_k||^4 per trial, needed only by Ledoit-Wolf.
    The shrinkage formulas are scikit-learn's ``oas`` and
    ``ledoit_wolf_shrinkage`` written for a batch of scatter matrices.
    """
    n_features = scatter.shape[-1]
    if estimator == "cov":
        return scatter / (n_samples - 1)
    emp = scatter / n_samples
    if estimator == "scm":
        return emp
    if estimator == "corr":
        cov = scatter / (n_samples - 1)
        std = torch.sqrt(torch.diagonal(cov, dim1=-2, dim2=-1))
        return cov / (std[..., :, None] * std[..., None, :])
    eye = torch.eye(n_features, dtype=emp.dtype, device=emp.device)
    trace = torch.diagonal(emp, dim1=-2, dim2=-1).sum(-1)
    mu = trace / n_features
    if n_features == 1:
        return emp
    if estimator == "oas":
        alpha = (emp**2).mean(dim=(-2, -1))
        num = alpha + mu**2
        den = (n_samples + 1) * (alpha - mu**2 / n_features)
        shrink = torch.where(den == 0, torch.ones_like(den), torch.clamp(num / den, max=1.0))
    else:  # lwf
        delta_ = (emp**2).sum(dim=(-2, -1))
        beta = (fourth / n_samples - delta_) / (n_features * n_samples)
        delta = (delta_ - 2.0 * mu * trace + n_features * mu**2) / n_features
        beta = torch.minimum(beta, delta)
        shrink = torch.where(beta == 0, torch.zeros_like(beta), beta / delta)
    shrink = shrink[..., None, None]
    return (1.0 - shrink) * emp + shrink * mu[..., None, None] * eye


def _signal_covariances(Z: torch.Tensor, estimator: str) -> torch.Tensor:
    """Covariance estimates of a batch of signals ``Z`` (n, D, L), the direct way."""
    Zc = Z - Z.mean(-1, keepdim=True)
    scatter = Zc @ Zc.mT
    fourth = (Zc**2).sum(-2).square().sum(-1) if estimator == "lwf" else None
    return _finish_covariance(scatter, Z.shape[-1], estimator, fourth)


def augmented_covariances_naive(X, order: int = 1, lag: int = 1, estimator: str = "cov",
                                *, device=None) -> np.ndarray:
    """Reference ACM: build the embedded signal, then its covariance.

    Parameters
    ----------
    X : ndarray, shape (n_trials, n_channels, n_times)
    order, lag : int
        Embedding parameters (see :func:`time_delay_embedding`).
    estimator : {"cov", "scm", "corr", "oas", "lwf"}
        Covariance estimator, with pyRiemann's meaning.

    Returns
    -------
    covs : ndarray, shape (n_trials, order * n_channels, order * n_channels)

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((3, 2, 50))
    >>> augmented_covariances_naive(X, order=3, lag=2).shape
    (3, 6, 6)
    """
    _check_estimator(estimator)
    Xt = _as_tensor(X, device)
    Z = time_delay_embedding(Xt, order, lag)
    return _signal_covariances(Z, estimator).cpu().numpy()


class _LaggedMoments:
    """Cache of lagged products of one batch of trials, shared by a whole grid."""

    def __init__(self, X: torch.Tensor):
        # Covariances do not depend on a constant per-channel offset; removing the
        # trial mean first keeps the "scatter - L m m^T" centring well conditioned.
        self.X = X - X.mean(-1, keepdim=True)
        n, C, T = self.X.shape
        self.n_times = T
        self.cumsum = torch.cat(
            [torch.zeros((n, C, 1), dtype=X.dtype, device=X.device), self.X.cumsum(-1)], dim=-1
        )
        self._full: dict[int, torch.Tensor] = {}

    def products(self, d: int, start: int, stop: int) -> torch.Tensor:
        """sum_{t=start}^{stop-1} x_t x_{t+d}^T."""
        X = self.X
        return X[..., start:stop] @ X[..., start + d : stop + d].mT

    def full(self, d: int) -> torch.Tensor:
        if d not in self._full:
            self._full[d] = self.products(d, 0, self.n_times - d)
        return self._full[d]

    def heads_tails(self, d: int, lag: int, n_heads: int, n_tails: int):
        """Heads H[j] (first j*lag terms, j < n_heads) and tails R[s] (last s*lag, s <= n_tails)."""
        zero = torch.zeros_like(self.full(d))
        heads = [zero]
        for j in range(1, n_heads):
            heads.append(heads[-1] + self.products(d, (j - 1) * lag, j * lag))
        end = self.n_times - d
        tails = [zero]
        for s in range(1, n_tails + 1):
            tails.append(tails[-1] + self.products(d, end - s * lag, end - (s - 1) * lag))
        return heads, tails

    def block_means(self, order: int, lag: int, n_kept: int) -> torch.Tensor:
        """Means of every copy over its own window, stacked: (n, order*C)."""
        cs = self.cumsum
        means = [(cs[..., p * lag + n_kept] - cs[..., p * lag]) / n_kept for p in range(order)]
        return torch.cat(means, dim=-1)

    def fourth_moment(self, order: int, lag: int, n_kept: int, means: torch.Tensor) -> torch.Tensor:
        """sum_k ||z_k - m||^4 of the centred embedded vectors (Ledoit-Wolf needs it)."""
        C = self.X.shape[1]
        sq = torch.zeros(self.X.shape[0], n_kept, dtype=self.X.dtype, device=self.X.device)
        for p in range(order):
            seg = self.X[..., p * lag : p * lag + n_kept] - means[:, p * C : (p + 1) * C, None]
            sq += (seg**2).sum(-2)
        return sq.square().sum(-1)


def iter_augmented_covariance_grid(
    X, orders: Iterable[int], lags: Iterable[int], estimator: str = "cov", *, device=None
) -> Iterator[tuple[tuple[int, int], torch.Tensor]]:
    """Yield ``((order, lag), covs)`` for every grid member, reusing lagged products.

    Parameters
    ----------
    X : ndarray or torch.Tensor, shape (n_trials, n_channels, n_times)
    orders, lags : iterable of int
        The grid; members are yielded lag by lag, orders ascending.
    estimator : {"cov", "scm", "corr", "oas", "lwf"}
    device : str or torch.device, optional
        Default: CUDA when available, else CPU.

    Yields
    ------
    key : tuple (order, lag)
    covs : torch.Tensor float64, shape (n_trials, order*C, order*C)
        Equal (to rounding) to :func:`augmented_covariances_naive`.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((4, 3, 100))
    >>> [key for key, _ in iter_augmented_covariance_grid(X, [1, 2], [1, 3])]
    [(1, 1), (2, 1), (1, 3), (2, 3)]
    """
    _check_estimator(estimator)
    Xt = _as_tensor(X, device)
    orders = sorted({int(o) for o in orders})
    lags = sorted({int(lag) for lag in lags})
    if not orders or not lags:
        raise ValueError("orders and lags must each hold at least one value")
    T = Xt.shape[-1]
    for o in orders:
        for lag in lags:
            _check_order_lag(o, lag, T)
    moments = _LaggedMoments(Xt)
    n, C, _ = Xt.shape
    max_order = max(orders)
    for lag in lags:
        heads_tails = {
            k: moments.heads_tails(k * lag, lag, max_order - k, max_order - k)
            for k in range(max_order if max_order > 1 else 0)
        }
        for order in orders:
            if order == 1:
                n_kept = T
                scatter = moments.full(0)
                means = moments.block_means(1, lag, T)
            else:
                n_kept = T - order * lag
                scatter = torch.empty((n, order * C, order * C), dtype=Xt.dtype, device=Xt.device)
                for k in range(order):
                    heads, tails = heads_tails[k]
                    G = moments.full(k * lag)
                    for p in range(order - k):
                        q = p + k
                        block = G - heads[p] - tails[order - q]
                        scatter[:, p * C : (p + 1) * C, q * C : (q + 1) * C] = block
                        if k:
                            scatter[:, q * C : (q + 1) * C, p * C : (p + 1) * C] = block.mT
                means = moments.block_means(order, lag, n_kept)
            centred = scatter - n_kept * means[:, :, None] * means[:, None, :]
            fourth = (
                moments.fourth_moment(order, lag, n_kept, means) if estimator == "lwf" else None
            )
            yield (order, lag), _finish_covariance(centred, n_kept, estimator, fourth)


def augmented_covariance_grid(
    X, orders: Sequence[int], lags: Sequence[int], estimator: str = "cov", *, device=None
) -> dict[tuple[int, int], np.ndarray]:
    """All ACMs of an order x lag grid at once (fast path), as numpy arrays.

    Keeps every member in memory; for large grids iterate
    :func:`iter_augmented_covariance_grid` instead.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((4, 3, 100))
    >>> grid = augmented_covariance_grid(X, orders=[1, 2, 3], lags=[1, 2])
    >>> grid[(3, 2)].shape
    (4, 9, 9)
    """
    return {
        key: covs.cpu().numpy()
        for key, covs in iter_augmented_covariance_grid(X, orders, lags, estimator, device=device)
    }


def augmented_covariances(X, order: int = 1, lag: int = 1, estimator: str = "cov",
                          *, device=None) -> np.ndarray:
    """ACMs of one (order, lag) by the block (fast) path.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((3, 2, 50))
    >>> np.allclose(augmented_covariances(X, 3, 2), augmented_covariances_naive(X, 3, 2))
    True
    """
    ((_, covs),) = iter_augmented_covariance_grid(X, [order], [lag], estimator, device=device)
    return covs.cpu().numpy()


class AugmentedCovariances(TransformerMixin, BaseEstimator):
    """Augmented covariance matrices (time-delay embedding + covariance).

    Equals MOABB's ``AugmentedDataset(order, lag)`` followed by pyRiemann's
    ``Covariances(estimator)``, computed by the block path (no embedded
    signal is built). Stateless: ``fit`` only checks the input.

    Parameters
    ----------
    order : int or "auto", default=1
        Number of delayed copies (embedding dimension). ``"auto"``: chosen in
        ``fit`` by false nearest neighbours
        (:func:`~neurodecode.preprocessing.embedding_selection.select_order_lag`).
    lag : int or "auto", default=1
        Delay between copies, in samples. ``"auto"``: first minimum of the
        average mutual information, chosen in ``fit``.
    estimator : {"cov", "scm", "corr", "oas", "lwf"}, default="cov"
        Covariance estimator (pyRiemann names; MOABB's ACM pipelines use "cov").
    device : str or None, default=None
        Torch device; None picks CUDA when available, else CPU.
    max_order, max_lag : int, default=10
        Upper bounds of the automatic choice (ignored for fixed values).
    random_state : int or None, default=0
        Seeds the sub-sampling of series used by the automatic choice.

    Attributes
    ----------
    n_channels_ : int
        Channels seen in ``fit``.
    order_, lag_ : int
        The embedding used by ``transform`` (learned from the training data
        when ``"auto"``, so it stays inside the training fold).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((5, 4, 200))
    >>> AugmentedCovariances(order=3, lag=2).fit_transform(X).shape
    (5, 12, 12)
    """

    def __init__(self, order=1, lag=1, estimator="cov", device=None, max_order=10, max_lag=10,
                 random_state=0):
        self.order = order
        self.lag = lag
        self.estimator = estimator
        self.device = device
        self.max_order = max_order
        self.max_lag = max_lag
        self.random_state = random_state

    def _validate(self, X, reset):
        X = check_array(X, allow_nd=True, ensure_2d=False, dtype=np.float64,
                        input_name="X")
        if X.ndim != 3:
            raise ValueError(
                f"X must be a 3-D array (n_trials, n_channels, n_times), got shape {X.shape}; "
                "Reshape your data: one epoch is X[np.newaxis]"
            )
        _check_estimator(self.estimator)
        if reset:
            # "auto" is resolved in fit; check fixed values (with a placeholder for auto ones)
            order = 1 if self.order == "auto" else self.order
            lag = 1 if self.lag == "auto" else self.lag
            _check_order_lag(order, lag, X.shape[-1])
        else:
            _check_order_lag(self.order_, self.lag_, X.shape[-1])
        return X

    def fit(self, X, y=None):
        X = self._validate(X, reset=True)
        order, lag = self.order, self.lag
        if order == "auto" or lag == "auto":
            from .embedding_selection import select_order_lag

            auto_order, auto_lag = select_order_lag(
                X, self.max_order, self.max_lag, random_state=self.random_state
            )
            order = auto_order if order == "auto" else order
            lag = auto_lag if lag == "auto" else lag
            # a short trial cannot hold every (order, lag) the signal asks for
            while order > 1 and X.shape[-1] - order * lag < 2:
                order -= 1
        _check_order_lag(order, lag, X.shape[-1])
        self.order_, self.lag_ = int(order), int(lag)
        self.n_channels_ = X.shape[1]
        return self

    def transform(self, X):
        check_is_fitted(self, "n_channels_")
        X = self._validate(X, reset=False)
        if X.shape[1] != self.n_channels_:
            raise ValueError(
                f"X has {X.shape[1]} channels but AugmentedCovariances was fitted with "
                f"{self.n_channels_}"
            )
        return augmented_covariances(X, self.order_, self.lag_, self.estimator, device=self.device)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.two_d_array = False
        tags.requires_fit = True
        return tags
