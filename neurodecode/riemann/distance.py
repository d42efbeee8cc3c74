r"""Distances between SPD matrices (affine-invariant, log-Euclidean, Euclidean).

Definitions of :mod:`pyriemann.geometry.distance` (pyRiemann 0.12), batched
in torch. ``A`` and ``B`` broadcast over their leading dimensions, so the
distances of ``n_matrices`` matrices to one reference are one call.
"""

from __future__ import annotations

import torch

from .base import _check_finite, _invsqrtm, _logm, check_square, eigvalsh, like_input, to_tensor

__all__ = ["distance_riemann", "distance_logeuclid", "distance_euclid", "distance"]


def _pair(A, B, device):
    TA = to_tensor(A, device=device)
    TB = to_tensor(B, device=TA.device, dtype=TA.dtype)
    check_square(TA, "A")
    check_square(TB, "B")
    if TA.shape[-1] != TB.shape[-1]:
        raise ValueError(f"A and B must have equal matrix sizes, got {tuple(TA.shape)} and {tuple(TB.shape)}")
    try:
        torch.broadcast_shapes(TA.shape[:-2], TB.shape[:-2])
    except RuntimeError as exc:
        raise ValueError(f"A {tuple(TA.shape)} and B {tuple(TB.shape)} have incompatible dimensions") from exc
    return TA, TB


def _distance_riemann(A: torch.Tensor, B: torch.Tensor, squared: bool = False) -> torch.Tensor:
    _check_finite(A, "A")
    _check_finite(B, "B")
    if B.ndim == 2:
        # One reference: whiten once, then one batched eigvalsh.
        Bm12 = _invsqrtm(B)
        ev = eigvalsh(Bm12 @ A @ Bm12)
    else:
        L = torch.linalg.cholesky(B)
        Y = torch.linalg.solve_triangular(L, A, upper=False)
        Z = torch.linalg.solve_triangular(L, Y.mT, upper=False).mT
        ev = eigvalsh(Z)
    if bool((ev <= 0).any()):
        raise ValueError("A is not positive definite: distance_riemann needs SPD matrices")
    d2 = (torch.log(ev) ** 2).sum(dim=-1)
    return d2 if squared else torch.sqrt(d2)


def _distance_logeuclid(A, B, squared=False):
    d = torch.linalg.matrix_norm(_logm(A) - _logm(B), ord="fro")
    return d ** 2 if squared else d


def _distance_euclid(A, B, squared=False):
    d = torch.linalg.matrix_norm(A - B, ord="fro")
    return d ** 2 if squared else d


_DISTANCES = {"riemann": _distance_riemann, "logeuclid": _distance_logeuclid,
              "euclid": _distance_euclid}


def distance_riemann(A, B, squared: bool = False, *, device=None):
    r"""Affine-invariant Riemannian distance between SPD matrices.

    .. math::
        \delta_R(\mathbf{A}, \mathbf{B}) =
        \left( \sum_i \log^2 \lambda_i(\mathbf{B}^{-1} \mathbf{A}) \right)^{1/2}

    with :math:`\lambda_i` the generalised eigenvalues of the pencil (A, B).

    Parameters
    ----------
    A, B : ndarray or Tensor, shape (..., n, n)
        SPD matrices; leading dimensions broadcast.
    squared : bool, default=False
        Return the squared distance.
    device : str or torch.device, optional
        Where to compute.

    Returns
    -------
    d : same kind as A, shape (...)

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import distance_riemann
    >>> float(distance_riemann(np.eye(2) * np.e, np.eye(2), device="cpu")) ** 2
    2.0000000000000004
    """
    TA, TB = _pair(A, B, device)
    return like_input(_distance_riemann(TA, TB, squared), A)


def distance_logeuclid(A, B, squared: bool = False, *, device=None):
    r"""Log-Euclidean distance between SPD matrices.

    .. math::
        \delta_{LE}(\mathbf{A}, \mathbf{B}) = \| \log \mathbf{A} - \log \mathbf{B} \|_F

    Parameters
    ----------
    A, B : ndarray or Tensor, shape (..., n, n)
        SPD matrices; leading dimensions broadcast.
    squared : bool, default=False
        Return the squared distance.
    device : str or torch.device, optional
        Where to compute.

    Returns
    -------
    d : same kind as A, shape (...)

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import distance_logeuclid
    >>> round(float(distance_logeuclid(np.eye(2) * np.e, np.eye(2), device="cpu")) ** 2, 12)
    2.0
    """
    TA, TB = _pair(A, B, device)
    return like_input(_distance_logeuclid(TA, TB, squared), A)


def distance_euclid(A, B, squared: bool = False, *, device=None):
    r"""Euclidean (Frobenius) distance :math:`\|\mathbf{A} - \mathbf{B}\|_F`.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import distance_euclid
    >>> float(distance_euclid(2 * np.eye(2), np.eye(2), device="cpu")) ** 2
    2.0000000000000004
    """
    TA, TB = _pair(A, B, device)
    return like_input(_distance_euclid(TA, TB, squared), A)


def distance(A, B, metric: str = "riemann", squared: bool = False, *, device=None):
    """Distance under ``metric`` ("riemann", "logeuclid" or "euclid").

    As in pyRiemann, a stack ``A`` (n_matrices, n, n) against one matrix ``B``
    (n, n) returns shape (n_matrices, 1).

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import distance
    >>> distance(np.stack([np.eye(2), np.eye(2)]), np.eye(2), device="cpu")
    array([[0.],
           [0.]])
    """
    if metric not in _DISTANCES:
        raise ValueError(f"unknown distance metric {metric!r}; choose one of {sorted(_DISTANCES)}")
    TA, TB = _pair(A, B, device)
    d = _DISTANCES[metric](TA, TB, squared)
    if TA.ndim == 3 and TB.ndim == 2:
        d = d[..., None]
    return like_input(d, A)


def tensor_distance(A: torch.Tensor, B: torch.Tensor, metric: str = "riemann",
                    squared: bool = False) -> torch.Tensor:
    """Tensor-in, tensor-out distance used by the estimators."""
    if metric not in _DISTANCES:
        raise ValueError(f"unknown distance metric {metric!r}; choose one of {sorted(_DISTANCES)}")
    return _DISTANCES[metric](A, B, squared)
