r"""Covariance matrices of multichannel trials, all trials in one batched torch call.

Estimators (names and normalisation as in pyRiemann 0.12 /
scikit-learn 1.9), for a trial :math:`\mathbf{X} \in \mathbb{R}^{C \times T}`
with row-centred :math:`\mathbf{X}_c`:

- ``"scm"``: :math:`\mathbf{S} = \mathbf{X}_c \mathbf{X}_c^\top / T`
  (pyRiemann's default, maximum likelihood);
- ``"cov"``: :math:`\mathbf{X}_c \mathbf{X}_c^\top / (T - 1)` (``numpy.cov``);
- ``"lwf"``: Ledoit-Wolf shrinkage :math:`(1 - s) \mathbf{S} + s \mu \mathbf{I}`,
  :math:`\mu = \operatorname{tr}(\mathbf{S}) / C`, with the shrinkage
  :math:`s` of :func:`sklearn.covariance.ledoit_wolf`;
- ``"oas"``: Oracle Approximating Shrinkage, :math:`s` as in
  :func:`sklearn.covariance.oas`;
- ``"shrunk"``: fixed shrinkage ``shrinkage`` applied to ``"scm"``
  (:func:`sklearn.covariance.shrunk_covariance`);
- ``"sch"``: Schäfer-Strimmer shrinkage (pyRiemann's ``covariance_sch``).

Rank-deficient data (a common average reference, fewer samples than
channels, a flat channel) give a covariance that is not positive definite,
which later turns into ``-inf``/NaN in a matrix logarithm. Every result is
therefore checked: a matrix is *rank deficient* when its smallest eigenvalue
is at most ``rank_tol`` times its largest. ``on_rank_deficient="raise"``
(default) refuses with a ValueError naming the trials; ``"regularize"``
repairs those trials only by diagonal loading

.. math::
    \mathbf{C} \leftarrow \mathbf{C} + \epsilon \, \frac{\operatorname{tr}\mathbf{C}}{C} \mathbf{I},
    \qquad \epsilon = \texttt{reg} \;(\text{default } 10^{-5}),

which lifts the zero eigenvalues to :math:`\epsilon` times the mean
variance and leaves the others almost unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from ..riemann.base import eigvalsh, like_input, to_tensor

__all__ = ["covariances", "Covariances", "ESTIMATORS"]

ESTIMATORS = ("scm", "cov", "lwf", "oas", "shrunk", "sch")
_ON_RANK_DEFICIENT = ("raise", "regularize")


def _trace(S):
    return torch.diagonal(S, dim1=-2, dim2=-1).sum(-1)


def _shrink(S, s):
    n = S.shape[-1]
    mu = _trace(S) / n
    eye = torch.eye(n, dtype=S.dtype, device=S.device)
    return (1.0 - s)[..., None, None] * S + (s * mu)[..., None, None] * eye


def _lwf_shrinkage(Xc, S):
    n_times, p = Xc.shape[-1], Xc.shape[-2]
    if p == 1:
        return torch.zeros(S.shape[:-2], dtype=S.dtype, device=S.device)
    mu = _trace(S) / p
    delta_ = (S ** 2).sum((-2, -1))
    beta_ = ((Xc ** 2).sum(-2) ** 2).sum(-1)
    beta = (beta_ / n_times - delta_) / (p * n_times)
    delta = (delta_ - 2.0 * mu * _trace(S) + p * mu ** 2) / p
    beta = torch.minimum(beta, delta)
    return torch.where(beta == 0, torch.zeros_like(beta), beta / delta)


def _oas_shrinkage(S, n_times):
    p = S.shape[-1]
    if p == 1:
        return torch.zeros(S.shape[:-2], dtype=S.dtype, device=S.device)
    alpha = (S ** 2).mean((-2, -1))
    mu2 = (_trace(S) / p) ** 2
    num = alpha + mu2
    den = (n_times + 1) * (alpha - mu2 / p)
    return torch.where(den == 0, torch.ones_like(den), torch.clamp(num / den, max=1.0))


def _sch(X, Xc, S):
    n_times = X.shape[-1]
    std = X.std(-1, correction=0)
    R = (n_times / ((n_times - 1.0) * std[..., :, None] * std[..., None, :])) * S
    Xc2 = Xc ** 2
    var_R = Xc2 @ Xc2.mT - n_times * S ** 2
    var = X.var(-1, correction=0)
    var_R = var_R * (n_times / ((n_times - 1) ** 3 * var[..., :, None] * var[..., None, :]))
    offdiag = 1.0 - torch.eye(S.shape[-1], dtype=S.dtype, device=S.device)
    R = R * offdiag
    var_R = var_R * offdiag
    R2 = (R ** 2).sum((-2, -1))
    gamma = torch.clamp(torch.where(R2 == 0, torch.zeros_like(R2), var_R.sum((-2, -1)) / R2), 0, 1)
    gamma = gamma[..., None, None]
    scale = n_times / (n_times - 1.0)
    return (1.0 - gamma) * scale * S + gamma * scale * torch.diag_embed(torch.diagonal(S, dim1=-2, dim2=-1))


def _centred_scm(X: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """``(X - mean) (X - mean)' / n_times`` per trial, centring a few trials at a time.

    Centring the whole stack at once writes a second copy of the signal
    (hundreds of MB at N=2000, C=64, T=480) that is read back once; a reused
    chunk buffer stays in cache. Same arithmetic, same result.
    """
    n_trials, n_ch, n_times = X.shape
    S = torch.empty((n_trials, n_ch, n_ch), dtype=X.dtype, device=X.device)
    buf = torch.empty((min(chunk, n_trials), n_ch, n_times), dtype=X.dtype, device=X.device)
    for start in range(0, n_trials, chunk):
        block = X[start:start + chunk]
        xc = torch.sub(block, block.mean(-1, keepdim=True), out=buf[:block.shape[0]])
        torch.matmul(xc, xc.mT, out=S[start:start + chunk])
    return S.div_(n_times)


def _estimate(X: torch.Tensor, estimator: str, shrinkage: float) -> torch.Tensor:
    n_times = X.shape[-1]
    if estimator in ("scm", "cov", "oas", "shrunk"):
        # only S is needed: no full centred copy of X
        S = _centred_scm(X)
    else:
        Xc = X - X.mean(-1, keepdim=True)
        S = (Xc @ Xc.mT) / n_times
    if estimator == "scm":
        return S
    if estimator == "cov":
        if n_times < 2:
            raise ValueError("estimator='cov' needs at least 2 time samples per trial")
        return S * (n_times / (n_times - 1.0))
    if estimator == "lwf":
        return _shrink(S, _lwf_shrinkage(Xc, S))
    if estimator == "oas":
        return _shrink(S, _oas_shrinkage(S, n_times))
    if estimator == "shrunk":
        return _shrink(S, torch.full(S.shape[:-2], float(shrinkage), dtype=S.dtype, device=S.device))
    if estimator == "sch":
        return _sch(X, Xc, S)
    raise AssertionError(estimator)


def rank_deficient(C: torch.Tensor, rank_tol: float = 1e-10):
    """Flags and eigenvalues of covariance matrices that are not safely SPD.

    Returns ``(flags, eigvals)``: ``flags[i]`` is True when the smallest
    eigenvalue of ``C[i]`` is at most ``rank_tol`` times its largest (or
    the matrix is all zeros).
    """
    ev = eigvalsh(C)
    top = ev[..., -1]
    return (ev[..., 0] <= rank_tol * top) | (top <= 0), ev


def _surely_well_conditioned(C: torch.Tensor, rank_tol: float) -> torch.Tensor:
    """True where ``C`` is certainly not flagged by :func:`rank_deficient` (a Cholesky test).

    If ``C - rank_tol * trace(C) * I`` has a Cholesky factor, the smallest
    eigenvalue exceeds ``rank_tol * trace(C) >= rank_tol * lambda_max``. A
    Cholesky costs a fraction of an eigenvalue decomposition; the matrices
    it cannot clear go through the exact eigenvalue test.
    """
    n = C.shape[-1]
    shift = (rank_tol * _trace(C)).clamp_min(0)[..., None, None]
    _, info = torch.linalg.cholesky_ex(C - shift * torch.eye(n, dtype=C.dtype, device=C.device))
    return (info == 0) & (_trace(C) > 0)


def _check_params(estimator, shrinkage, on_rank_deficient, reg, trace_norm):
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown covariance estimator {estimator!r}; choose one of {list(ESTIMATORS)}")
    if estimator == "shrunk" and not (0.0 <= float(shrinkage) <= 1.0):
        raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage!r}")
    if on_rank_deficient not in _ON_RANK_DEFICIENT:
        raise ValueError(f"on_rank_deficient must be one of {list(_ON_RANK_DEFICIENT)}, got {on_rank_deficient!r}")
    if not float(reg) > 0:
        raise ValueError(f"reg must be > 0, got {reg!r}")
    if not isinstance(trace_norm, (bool, np.bool_)):
        raise ValueError(f"trace_norm must be True or False, got {trace_norm!r}")


def _as_trial_tensor(X, device):
    T = to_tensor(X, device=device)
    if T.ndim != 3:
        raise ValueError(
            f"X must be trials of shape (n_trials, n_channels, n_times), got shape {tuple(T.shape)}"
        )
    if T.shape[0] == 0 or T.shape[1] == 0 or T.shape[2] == 0:
        raise ValueError(f"X must be non-empty (n_trials, n_channels, n_times), got {tuple(T.shape)}")
    # a sum is finite only if every term is (NaN and inf propagate); it is one
    # pass without the boolean copy of isfinite, which is checked only on failure
    if not bool(torch.isfinite(T.sum())) and not bool(torch.isfinite(T).all()):
        bad = torch.nonzero(~torch.isfinite(T).reshape(T.shape[0], -1).all(-1)).flatten()[:10].tolist()
        raise ValueError(f"X contains NaN or infinite values (trials {bad}); clean or drop those trials first")
    return T


def _covariances_tensor(T, estimator, shrinkage, trace_norm, on_rank_deficient, reg, rank_tol):
    C = _estimate(T, estimator, shrinkage)
    unsure = torch.nonzero(~_surely_well_conditioned(C, rank_tol)).flatten()
    if len(unsure):
        flags_u, ev_u = rank_deficient(C[unsure], rank_tol)
        idx = unsure[flags_u]
        ev = torch.zeros(C.shape[:-1], dtype=C.dtype, device=C.device)
        ev[unsure] = ev_u
    else:
        idx = unsure
    if len(idx):
        n = C.shape[-1]
        if on_rank_deficient == "raise":
            ranks = (ev[idx] > rank_tol * ev[idx, -1:].clamp(min=0)).sum(-1)
            shown = ", ".join(f"trial {i}: rank {r}/{n}" for i, r in
                              zip(idx[:5].tolist(), ranks[:5].tolist()))
            more = f" and {len(idx) - 5} more" if len(idx) > 5 else ""
            raise ValueError(
                f"{len(idx)} of {C.shape[0]} covariance matrices ({estimator!r}) are rank deficient "
                f"({shown}{more}): not positive definite, so their logarithm or inverse is undefined. "
                f"Typical causes: a common average reference (rank n_channels - 1), fewer time samples "
                f"({T.shape[-1]}) than channels ({n}), or a flat channel. Use a shrinkage estimator "
                f"(estimator='lwf' or 'oas'), drop the redundant channel, or pass "
                f"on_rank_deficient='regularize' for diagonal loading."
            )
        load = reg * _trace(C[idx]) / n
        if bool((load <= 0).any()):
            raise ValueError("some trials are all zeros (trace 0): no diagonal loading can make them SPD; drop them")
        C = C.clone()
        C[idx] = C[idx] + load[:, None, None] * torch.eye(n, dtype=C.dtype, device=C.device)
    if trace_norm:
        C = C / _trace(C)[..., None, None]
    return C


def covariances(X, estimator: str = "scm", *, shrinkage: float = 0.1, trace_norm: bool = False,
                on_rank_deficient: str = "raise", reg: float = 1e-5, rank_tol: float = 1e-10,
                device=None):
    r"""Covariance matrices of trials, computed in one batched call.

    Parameters
    ----------
    X : ndarray or Tensor, shape (n_trials, n_channels, n_times), or list of (n_channels, n_times_i)
        Multichannel trials. A list of trials of different lengths (ragged)
        is computed one batch per distinct length.
    estimator : {"scm", "cov", "lwf", "oas", "shrunk", "sch"}, default="scm"
        See the module docstring for the formulas.
    shrinkage : float, default=0.1
        Fixed shrinkage for ``estimator="shrunk"``.
    trace_norm : bool, default=False
        Divide each matrix by its trace.
    on_rank_deficient : {"raise", "regularize"}, default="raise"
        What to do with matrices that are not safely positive definite.
    reg : float, default=1e-5
        Diagonal loading :math:`\epsilon` used by ``"regularize"``.
    rank_tol : float, default=1e-10
        A matrix is rank deficient when
        :math:`\lambda_{\min} \le` ``rank_tol`` :math:`\lambda_{\max}`.
    device : str or torch.device, optional
        Where to compute (default: CUDA when present).

    Returns
    -------
    C : same kind as X, shape (n_trials, n_channels, n_channels)
        SPD matrices (NumPy for NumPy or list input).

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.preprocessing.covariance import covariances
    >>> X = np.random.default_rng(0).standard_normal((10, 4, 100))
    >>> covariances(X, "oas", device="cpu").shape
    (10, 4, 4)
    """
    _check_params(estimator, shrinkage, on_rank_deficient, reg, trace_norm)
    args = (estimator, shrinkage, trace_norm, on_rank_deficient, reg, rank_tol)
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError("X is an empty list of trials")
        arrays = [np.asarray(x, dtype=np.float64) for x in X]
        if any(a.ndim != 2 for a in arrays):
            raise ValueError("each trial in a list must be 2-D (n_channels, n_times)")
        if len({a.shape[0] for a in arrays}) != 1:
            raise ValueError("all trials in a list must have the same number of channels")
        n = arrays[0].shape[0]
        out = np.empty((len(arrays), n, n))
        lengths = np.array([a.shape[1] for a in arrays])
        for length in np.unique(lengths):
            idx = np.flatnonzero(lengths == length)
            T = _as_trial_tensor(np.stack([arrays[i] for i in idx]), device)
            try:
                out[idx] = _covariances_tensor(T, *args).cpu().numpy()
            except ValueError as exc:
                raise ValueError(f"trials of length {length} (list positions {idx[:10].tolist()}...): {exc}") from None
        return out
    T = _as_trial_tensor(X, device)
    return like_input(_covariances_tensor(T, *args), X)


class Covariances(TransformerMixin, BaseEstimator):
    r"""Covariance matrices of multichannel trials (stateless transformer).

    All trials are estimated in one batched torch call; see
    :func:`covariances` and the module docstring for the estimators and the
    handling of rank-deficient data.

    Parameters
    ----------
    estimator : {"scm", "cov", "lwf", "oas", "shrunk", "sch"}, default="scm"
        Same names and normalisation as :class:`pyriemann.estimation.Covariances`.
    shrinkage : float, default=0.1
        Fixed shrinkage for ``estimator="shrunk"``.
    trace_norm : bool, default=False
        Divide each matrix by its trace.
    on_rank_deficient : {"raise", "regularize"}, default="raise"
        Refuse rank-deficient trials with a ValueError that names them, or
        repair them by diagonal loading ``C + reg * tr(C)/n * I``.
    reg : float, default=1e-5
        Diagonal loading for ``"regularize"``.
    device : str or None, default=None
        Torch device (None: CUDA when present). Output is NumPy for NumPy input.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.preprocessing.covariance import Covariances
    >>> X = np.random.default_rng(0).standard_normal((10, 4, 100))
    >>> Covariances("lwf", device="cpu").fit_transform(X).shape
    (10, 4, 4)
    """

    def __init__(self, estimator="scm", shrinkage=0.1, trace_norm=False,
                 on_rank_deficient="raise", reg=1e-5, device=None):
        self.estimator = estimator
        self.shrinkage = shrinkage
        self.trace_norm = trace_norm
        self.on_rank_deficient = on_rank_deficient
        self.reg = reg
        self.device = device

    def fit(self, X, y=None):
        """Check the parameters and the trials; nothing is learned."""
        _check_params(self.estimator, self.shrinkage, self.on_rank_deficient, self.reg, self.trace_norm)
        if isinstance(X, (list, tuple)):
            n_channels = np.asarray(X[0]).shape[0]
        else:
            shape = np.shape(X)
            if len(shape) != 3:
                raise ValueError(
                    f"X must be trials of shape (n_trials, n_channels, n_times), got shape {tuple(shape)}")
            n_channels = shape[1]
        self.n_channels_ = n_channels
        return self

    def transform(self, X):
        """Covariance matrices, shape (n_trials, n_channels, n_channels)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        if isinstance(X, (list, tuple)):
            n_channels = np.asarray(X[0]).shape[0]
        else:
            shape = tuple(np.shape(X))
            if len(shape) != 3:
                raise ValueError(
                    f"X must be trials of shape (n_trials, n_channels, n_times), got shape {shape}")
            n_channels = shape[1]
        if n_channels != self.n_channels_:
            raise ValueError(f"X has {n_channels} channels but Covariances was fitted on {self.n_channels_}")
        return covariances(X, self.estimator, shrinkage=self.shrinkage, trace_norm=self.trace_norm,
                           on_rank_deficient=self.on_rank_deficient, reg=self.reg, device=self.device)
