r"""Means of stacked SPD matrices (Euclidean, log-Euclidean, affine-invariant).

Same definitions, initialisation and stopping rules as
:mod:`pyriemann.geometry.mean` (pyRiemann 0.12), batched in torch.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .base import _expm, _logm, _sqrtm_invsqrtm, check_square, like_input, to_tensor

__all__ = ["mean_euclid", "mean_logeuclid", "mean_riemann", "mean_covariance"]


def _check_stack(X: torch.Tensor) -> None:
    check_square(X, "X")
    if X.ndim != 3:
        raise ValueError(f"X must be a stack (n_matrices, n, n), got shape {tuple(X.shape)}")
    if X.shape[0] == 0:
        raise ValueError("X holds no matrices: cannot compute a mean of an empty set")


def _weights(sample_weight, n: int, like: torch.Tensor) -> torch.Tensor:
    if sample_weight is None:
        w = torch.ones(n, dtype=like.dtype, device=like.device)
    else:
        w = to_tensor(sample_weight, device=like.device, dtype=like.dtype)
        if w.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {tuple(w.shape)}")
        if bool((w < 0).any()):
            raise ValueError("sample_weight must be non-negative")
    return w / w.sum()


def _mean_euclid(X: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    if w is None:
        return X.mean(dim=0)
    return torch.tensordot(w, X, dims=([0], [0]))


def _mean_logeuclid(X: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    return _expm(_mean_euclid(_logm(X), w))


def _mean_riemann(X, w, *, tol=10e-9, maxiter=50, init=None):
    if init is None:
        M = _mean_euclid(X, w)
    else:
        M = init
    if w is None:
        w = torch.full((X.shape[0],), 1.0 / X.shape[0], dtype=X.dtype, device=X.device)
    nu = 1.0
    tau = np.finfo(np.float64).max
    for _ in range(maxiter):
        M12, Mm12 = _sqrtm_invsqrtm(M)
        J = torch.tensordot(w, _logm(Mm12 @ X @ Mm12), dims=([0], [0]))
        M = M12 @ _expm(nu * J) @ M12

        crit = float(torch.linalg.matrix_norm(J, ord="fro"))
        h = nu * crit
        if h < tau:
            nu = 0.95 * nu
            tau = h
        else:
            nu = 0.5 * nu
        if crit <= tol or nu <= tol:
            break
    else:
        warnings.warn("Convergence not reached", stacklevel=3)
    return M


def mean_euclid(X, sample_weight=None, *, device=None):
    r"""Weighted arithmetic mean of matrices.

    .. math::
        \mathbf{M} = \sum_i w_i \mathbf{X}_i

    Parameters
    ----------
    X : ndarray or Tensor, shape (n_matrices, n, n)
        Matrices.
    sample_weight : None or array, shape (n_matrices,)
        Non-negative weights (normalised to sum to one); equal when None.
    device : str or torch.device, optional
        Where to compute.

    Returns
    -------
    M : same kind as X, shape (n, n)

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import mean_euclid
    >>> mean_euclid(np.stack([np.eye(2), 3 * np.eye(2)]), device="cpu")
    array([[2., 0.],
           [0., 2.]])
    """
    T = to_tensor(X, device=device)
    _check_stack(T)
    w = None if sample_weight is None else _weights(sample_weight, T.shape[0], T)
    return like_input(_mean_euclid(T, w), X)


def mean_logeuclid(X, sample_weight=None, *, device=None):
    r"""Log-Euclidean mean of SPD matrices.

    .. math::
        \mathbf{M} = \exp \left( \sum_i w_i \log(\mathbf{X}_i) \right)

    Parameters
    ----------
    X : ndarray or Tensor, shape (n_matrices, n, n)
        SPD matrices.
    sample_weight : None or array, shape (n_matrices,)
        Non-negative weights; equal when None.
    device : str or torch.device, optional
        Where to compute.

    Returns
    -------
    M : same kind as X, shape (n, n)

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import mean_logeuclid
    >>> mean_logeuclid(np.stack([np.eye(2), 4 * np.eye(2)]), device="cpu")
    array([[2., 0.],
           [0., 2.]])
    """
    T = to_tensor(X, device=device)
    _check_stack(T)
    w = None if sample_weight is None else _weights(sample_weight, T.shape[0], T)
    return like_input(_mean_logeuclid(T, w), X)


def mean_riemann(X, *, tol=10e-9, maxiter=50, init=None, sample_weight=None, device=None):
    r"""Affine-invariant Riemannian mean (Karcher / Fréchet mean) of SPD matrices.

    The minimiser of :math:`\sum_i w_i \delta_R^2(\mathbf{M}, \mathbf{X}_i)`,
    found by the fixed-point gradient iteration of pyRiemann 0.12 with
    adaptive step :math:`\nu` (start 1; ×0.95 when the step norm decreases,
    ×0.5 otherwise):

    .. math::
        \mathbf{J} = \sum_i w_i \log(\mathbf{M}^{-1/2} \mathbf{X}_i \mathbf{M}^{-1/2})
        \qquad
        \mathbf{M} \leftarrow \mathbf{M}^{1/2} \exp(\nu \mathbf{J}) \mathbf{M}^{1/2}

    starting from the weighted arithmetic mean, until
    :math:`\|\mathbf{J}\|_F \le` ``tol`` or :math:`\nu \le` ``tol``.

    Parameters
    ----------
    X : ndarray or Tensor, shape (n_matrices, n, n)
        SPD matrices.
    tol : float, default=10e-9
        Tolerance on the Frobenius norm of the gradient.
    maxiter : int, default=50
        Maximum number of iterations (a warning is raised when reached).
    init : None or array, shape (n, n)
        Starting point; the arithmetic mean when None.
    sample_weight : None or array, shape (n_matrices,)
        Non-negative weights; equal when None.
    device : str or torch.device, optional
        Where to compute.

    Returns
    -------
    M : same kind as X, shape (n, n)

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import mean_riemann
    >>> mean_riemann(np.stack([np.eye(2), 4 * np.eye(2)]), device="cpu").round(8)
    array([[2., 0.],
           [0., 2.]])
    """
    T = to_tensor(X, device=device)
    _check_stack(T)
    w = _weights(sample_weight, T.shape[0], T)
    M0 = None
    if init is not None:
        M0 = to_tensor(init, device=T.device, dtype=T.dtype)
        if M0.shape != T.shape[1:]:
            raise ValueError(f"init must have shape {tuple(T.shape[1:])}, got {tuple(M0.shape)}")
    return like_input(_mean_riemann(T, w, tol=tol, maxiter=maxiter, init=M0), X)


_MEANS = {"euclid": mean_euclid, "logeuclid": mean_logeuclid, "riemann": mean_riemann}


def mean_covariance(X, metric: str = "riemann", sample_weight=None, *, device=None, **kwargs):
    """Mean of SPD matrices under ``metric`` ("riemann", "logeuclid" or "euclid").

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import mean_covariance
    >>> mean_covariance(np.stack([np.eye(2), 4 * np.eye(2)]), "logeuclid", device="cpu")
    array([[2., 0.],
           [0., 2.]])
    """
    if metric not in _MEANS:
        raise ValueError(f"unknown mean metric {metric!r}; choose one of {sorted(_MEANS)}")
    return _MEANS[metric](X, sample_weight=sample_weight, device=device, **kwargs)


def tensor_mean(X: torch.Tensor, metric: str = "riemann", sample_weight=None, **kwargs):
    """Tensor-in, tensor-out mean used by the estimators (no conversions)."""
    if metric not in _MEANS:
        raise ValueError(f"unknown mean metric {metric!r}; choose one of {sorted(_MEANS)}")
    _check_stack(X)
    w = None if sample_weight is None else _weights(sample_weight, X.shape[0], X)
    if metric == "euclid":
        return _mean_euclid(X, w)
    if metric == "logeuclid":
        return _mean_logeuclid(X, w)
    if w is None:
        w = _weights(None, X.shape[0], X)
    return _mean_riemann(X, w, **kwargs)
