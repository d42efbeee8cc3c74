r"""Tangent space of the SPD manifold: log/exp maps and vectorisation.

Definitions of :mod:`pyriemann.geometry.tangentspace` (pyRiemann 0.12),
batched in torch. A tangent vector is the upper triangle (row-major, as
``numpy.triu_indices``) of the mapped matrix with off-diagonal entries
multiplied by :math:`\sqrt{2}`, so the Euclidean norm of the vector equals
the Frobenius norm of the matrix.
"""

from __future__ import annotations

import math

import torch

from .base import (
    _check_finite,
    _expm,
    _invsqrtm,
    _logm,
    _sqrtm,
    check_square,
    like_input,
    to_tensor,
)

__all__ = [
    "upper",
    "unupper",
    "log_map",
    "exp_map",
    "tangent_space",
    "untangent_space",
]


def _upper(X: torch.Tensor) -> torch.Tensor:
    n = X.shape[-1]
    rows, cols = torch.triu_indices(n, n, device=X.device)
    coeffs = torch.full(rows.shape, math.sqrt(2.0), dtype=X.dtype, device=X.device)
    coeffs[rows == cols] = 1.0
    return coeffs * X[..., rows, cols]


def _unupper(T: torch.Tensor) -> torch.Tensor:
    m = T.shape[-1]
    n = int((math.sqrt(1 + 8 * m) - 1) / 2)
    if n * (n + 1) // 2 != m:
        raise ValueError(f"a tangent vector of length {m} does not come from a square matrix")
    rows, cols = torch.triu_indices(n, n, device=T.device)
    coeffs = torch.full(rows.shape, 1.0 / math.sqrt(2.0), dtype=T.dtype, device=T.device)
    coeffs[rows == cols] = 1.0
    X = torch.zeros((*T.shape[:-1], n, n), dtype=T.dtype, device=T.device)
    vals = T * coeffs
    X[..., rows, cols] = vals
    X[..., cols, rows] = vals
    return X


def _fdd(d, fct, fctder, atol=1e-12, rtol=1e-12):
    di, dj = d[..., :, None], d[..., None, :]
    close = torch.isclose(di, dj, atol=atol, rtol=rtol)
    safe = torch.where(close, torch.ones_like(di - dj), di - dj)
    return torch.where(close, fctder(di).expand_as(safe), (fct(di) - fct(dj)) / safe)


def _ddexpm(X, Cref):
    d, V = torch.linalg.eigh(Cref)
    return V @ (_fdd(d, torch.exp, torch.exp) * (V.mT @ X @ V)) @ V.mT


def _ddlogm(X, Cref):
    d, V = torch.linalg.eigh(Cref)
    return V @ (_fdd(d, torch.log, torch.reciprocal) * (V.mT @ X @ V)) @ V.mT


def _log_map(X, Cref, metric):
    if metric == "riemann":
        Cm12 = _invsqrtm(Cref)
        return _logm(Cm12 @ X @ Cm12)
    if metric == "logeuclid":
        logC = _logm(Cref)
        return _ddexpm(_logm(X) - logC, logC)
    if metric == "euclid":
        return X - Cref
    raise ValueError(f"unknown tangent-space metric {metric!r}; choose 'riemann', 'logeuclid' or 'euclid'")


def _exp_map(X, Cref, metric):
    if metric == "riemann":
        C12 = _sqrtm(Cref)
        return C12 @ _expm(X) @ C12
    if metric == "logeuclid":
        return _expm(_logm(Cref) + _ddlogm(X, Cref))
    if metric == "euclid":
        return X + Cref
    raise ValueError(f"unknown tangent-space metric {metric!r}; choose 'riemann', 'logeuclid' or 'euclid'")


def _check_ref(X: torch.Tensor, Cref: torch.Tensor):
    check_square(X, "X")
    check_square(Cref, "Cref")
    if X.shape[-1] != Cref.shape[-1]:
        raise ValueError(f"X matrices are {X.shape[-1]}x{X.shape[-1]} but Cref is "
                         f"{Cref.shape[-1]}x{Cref.shape[-1]}")
    _check_finite(X, "X")


def upper(X, *, device=None):
    r"""Weighted upper triangle of symmetric matrices.

    .. math::
        \text{upper}(\mathbf{X}) = [X_{11}, \sqrt{2} X_{12}, \dots, \sqrt{2} X_{1n},
        X_{22}, \dots, X_{nn}]

    Parameters
    ----------
    X : ndarray or Tensor, shape (..., n, n)
    device : str or torch.device, optional

    Returns
    -------
    T : same kind as X, shape (..., n (n + 1) / 2)

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import upper
    >>> upper(np.array([[1.0, 2.0], [2.0, 3.0]]), device="cpu").round(6)
    array([1.      , 2.828427, 3.      ])
    """
    T = to_tensor(X, device=device)
    check_square(T, "X")
    return like_input(_upper(T), X)


def unupper(T, *, device=None):
    """Inverse of :func:`upper`: symmetric matrices from weighted upper triangles.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import unupper
    >>> unupper(np.array([1.0, 2 * np.sqrt(2), 3.0]), device="cpu")
    array([[1., 2.],
           [2., 3.]])
    """
    TT = to_tensor(T, device=device)
    return like_input(_unupper(TT), T)


def log_map(X, Cref, *, metric: str = "riemann", device=None):
    r"""Project SPD matrices to the tangent space at ``Cref``.

    riemann: :math:`\log(\mathbf{C}^{-1/2} \mathbf{X} \mathbf{C}^{-1/2})`;
    logeuclid: :math:`D\exp_{\log \mathbf{C}}[\log \mathbf{X} - \log \mathbf{C}]`;
    euclid: :math:`\mathbf{X} - \mathbf{C}`.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import log_map
    >>> log_map(np.eye(2) * np.e, np.eye(2), device="cpu")
    array([[1., 0.],
           [0., 1.]])
    """
    TX = to_tensor(X, device=device)
    TC = to_tensor(Cref, device=TX.device, dtype=TX.dtype)
    _check_ref(TX, TC)
    return like_input(_log_map(TX, TC, metric), X)


def exp_map(X, Cref, *, metric: str = "riemann", device=None):
    r"""Map tangent matrices at ``Cref`` back to the SPD manifold (inverse of :func:`log_map`).

    riemann: :math:`\mathbf{C}^{1/2} \exp(\mathbf{X}) \mathbf{C}^{1/2}`.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import exp_map
    >>> exp_map(np.zeros((2, 2)), 2 * np.eye(2), device="cpu")
    array([[2., 0.],
           [0., 2.]])
    """
    TX = to_tensor(X, device=device)
    TC = to_tensor(Cref, device=TX.device, dtype=TX.dtype)
    return like_input(_exp_map(TX, TC, metric), X)


def tangent_space(X, Cref, *, metric: str = "riemann", device=None):
    r"""Tangent vectors of SPD matrices at the reference ``Cref``.

    .. math::
        \mathbf{t}_i = \text{upper}\left( \log(\mathbf{C}_{\text{ref}}^{-1/2}
        \mathbf{X}_i \mathbf{C}_{\text{ref}}^{-1/2}) \right)

    for ``metric="riemann"`` (see :func:`log_map` for the others).

    Parameters
    ----------
    X : ndarray or Tensor, shape (..., n, n)
        SPD matrices.
    Cref : ndarray or Tensor, shape (n, n)
        Reference SPD matrix.
    metric : {"riemann", "logeuclid", "euclid"}, default="riemann"
    device : str or torch.device, optional

    Returns
    -------
    T : same kind as X, shape (..., n (n + 1) / 2)

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import tangent_space
    >>> tangent_space(np.eye(2)[None] * np.e, np.eye(2), device="cpu")
    array([[1., 0., 1.]])
    """
    TX = to_tensor(X, device=device)
    TC = to_tensor(Cref, device=TX.device, dtype=TX.dtype)
    _check_ref(TX, TC)
    return like_input(_upper(_log_map(TX, TC, metric)), X)


def untangent_space(T, Cref, *, metric: str = "riemann", device=None):
    r"""SPD matrices from tangent vectors at ``Cref`` (inverse of :func:`tangent_space`).

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import untangent_space
    >>> untangent_space(np.zeros((1, 3)), 2 * np.eye(2), device="cpu")
    array([[[2., 0.],
            [0., 2.]]])
    """
    TT = to_tensor(T, device=device)
    TC = to_tensor(Cref, device=TT.device, dtype=TT.dtype)
    return like_input(_exp_map(_unupper(TT), TC, metric), T)
