r"""Means of stacked SPD matrices (Euclidean, log-Euclidean, affine-invariant).

Same definitions, initialisation and stopping rules as
:mod:`pyriemann.geometry.mean` (pyRiemann 0.12), batched in torch.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .base import _expm, _logm, _sqrtm_invsqrtm, check_square, eigh, like_input, to_tensor

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


def _weighted_eig_sum(V: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    r"""Symmetrised :math:`\sum_i \mathbf{V}_i \operatorname{diag}(\mathbf{s}_i) \mathbf{V}_i^\top`.

    Written as one GEMM over all eigenvectors, :math:`\sum_{i,j} s_{ij}
    \mathbf{v}_{ij} \mathbf{v}_{ij}^\top`: a batched product followed by a
    sum (what ``einsum`` does here) costs ~4x more on the CPU.
    """
    n_mat, n = V.shape[0], V.shape[-1]
    cols = V.mT.reshape(n_mat * n, n)  # row (i, j) is the eigenvector v_ij
    J = (cols * s.reshape(n_mat * n, 1)).mT @ cols
    return 0.5 * (J + J.mT)


def _mean_riemann(X, w, *, tol=10e-9, maxiter=50, init=None):
    """pyRiemann 0.12's fixed-point iteration, with the same iterates computed more cheaply.

    pyRiemann whitens by :math:`\mathbf{M}^{-1/2}` and updates
    :math:`\mathbf{M}^{1/2}\exp(\nu\mathbf{J})\mathbf{M}^{1/2}`. With the
    Cholesky factor :math:`\mathbf{M} = \mathbf{L}\mathbf{L}^\top` and
    :math:`\mathbf{M}^{1/2} = \mathbf{L}\mathbf{Q}` (:math:`\mathbf{Q}`
    orthogonal), the gradient in the triangular frame is
    :math:`\mathbf{Q}\mathbf{J}\mathbf{Q}^\top` and the update is exactly
    :math:`\mathbf{L}\exp(\nu\mathbf{Q}\mathbf{J}\mathbf{Q}^\top)\mathbf{L}^\top`
    with the same Frobenius norm: the same sequence of means (to rounding),
    without the eigendecomposition of :math:`\mathbf{M}` and with the
    weighted sum of logarithms as one contraction.
    """
    if init is None:
        M = _mean_euclid(X, w)
    else:
        M = init
    if w is None:
        w = torch.full((X.shape[0],), 1.0 / X.shape[0], dtype=X.dtype, device=X.device)
    nu = 1.0
    tau = np.finfo(np.float64).max
    for _ in range(maxiter):
        L, ev, V = _whitened_eigh(X, M)
        J = _weighted_eig_sum(V, w[:, None] * torch.log(ev))
        M = L @ _expm(nu * J) @ L.mT

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


# pyRiemann's stopping test for the Karcher mean (its ``tol=10e-9``); the Newton solver aims
# 100x lower and accepts this once its steps stop making progress (rounding floor).
_STALL_TOL = 1e-8


def _newton_direction(ev, V, w, J, cg_iters):
    r"""Approximate Newton step :math:`\mathbf{D}` of the Karcher equation by conjugate gradients.

    At the whitened matrices :math:`\mathbf{Y}_i = \mathbf{V}_i \mathbf{\Lambda}_i
    \mathbf{V}_i^\top`, moving the mean by :math:`\exp(\mathbf{D})` changes the
    gradient :math:`\mathbf{J}` to first order by
    :math:`-\mathcal{A}[\mathbf{D}]` with

    .. math::
        \mathcal{A}[\mathbf{D}] = \sum_i w_i \mathbf{V}_i \left(\mathbf{G}_i \circ
        (\mathbf{V}_i^\top \mathbf{D} \mathbf{V}_i)\right) \mathbf{V}_i^\top,
        \quad (G_i)_{jk} = \frac{\log\lambda_j - \log\lambda_k}{\lambda_j - \lambda_k}
        \frac{\lambda_j + \lambda_k}{2}

    (Daleckii-Krein derivative of the logarithm), a symmetric positive
    operator with eigenvalues >= 1 that equals the identity when every
    :math:`\mathbf{Y}_i` is the identity: the plain fixed-point iteration is
    this Newton step with :math:`\mathcal{A}` replaced by the identity. Solving
    :math:`\mathcal{A}[\mathbf{D}] = \mathbf{J}` (a few CG steps, only GEMMs
    on the eigenvectors that the gradient needed anyway) gives quadratic
    instead of linear convergence. Only the step changes: the fixed point
    (:math:`\mathbf{J} = 0`) and the stopping test are the exact ones.
    """
    li, lj = ev.unsqueeze(-1), ev.unsqueeze(-2)
    diff = li - lj
    close = diff.abs() <= 1e-10 * li.abs().maximum(lj.abs())
    logev = torch.log(ev)
    dd = torch.where(close, 1.0 / li.expand_as(diff),
                     (logev.unsqueeze(-1) - logev.unsqueeze(-2)) / torch.where(close, torch.ones_like(diff), diff))
    # The operator only shapes the step (the gradient and the stopping test
    # stay float64), so it runs in float32: half the GEMM time.
    G = (dd * (li + lj) * (0.5 * w)[:, None, None]).to(torch.float32)
    n_mat, n = V.shape[0], V.shape[-1]
    Vf = V.to(torch.float32)
    Vt_rows = Vf.mT.contiguous().reshape(n_mat * n, n)  # [V_1'; V_2'; ...]

    def apply(D):
        VtD = (Vt_rows @ D.to(torch.float32)).reshape(n_mat, n, n)  # V_i' D, one GEMM
        H = G * (VtD @ Vf)
        Zt = (H @ Vt_rows.reshape(n_mat, n, n)).reshape(n_mat * n, n)  # (V_i H_i)'
        out = (Zt.mT @ Vt_rows).to(J.dtype)  # sum_i V_i H_i V_i', one GEMM
        return 0.5 * (out + out.mT)

    x = torch.zeros_like(J)
    r = J.clone()
    p = r.clone()
    rs = float((r * r).sum())
    stop = 1e-24 * rs
    for _ in range(cg_iters):
        Ap = apply(p)
        pAp = float((p * Ap).sum())
        if pAp <= 0:
            break
        a = rs / pAp
        x = x + a * p
        r = r - a * Ap
        rs_new = float((r * r).sum())
        if rs_new <= stop:
            break
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x


def _whitened_eigh(X, M):
    """Cholesky factor ``L`` of ``M`` and the eigendecomposition of ``L^-1 X_i L^-T``.

    Congruence by any square-root factor of ``M`` gives matrices with the
    eigenvalues of ``M^-1/2 X_i M^-1/2``; the triangular one costs one small
    Cholesky and an inverse instead of an eigendecomposition of ``M``.
    """
    L, info = torch.linalg.cholesky_ex(M)
    if int(info) != 0:
        raise ValueError("the Riemannian mean iterate is not positive definite; "
                         "the matrices must be SPD (use a shrinkage covariance estimator)")
    Li = torch.linalg.solve_triangular(L, torch.eye(M.shape[-1], dtype=M.dtype, device=M.device),
                                       upper=False)
    Y = Li @ X @ Li.mT
    ev, V = eigh(Y)
    if bool((ev[..., 0] <= 0).any()):
        raise ValueError("a matrix is not positive definite: the Riemannian mean needs SPD matrices "
                         "(use a shrinkage covariance estimator, e.g. 'oas')")
    return L, ev, V


def _mean_riemann_newton(X, w, *, tol=1e-10, maxiter=50, cg_iters=4, return_logs=False,
                         init=None):
    r"""Affine-invariant mean by a Riemannian Newton iteration (fast path of the estimators).

    The same fixed point as :func:`mean_riemann` (the matrix where the
    gradient :math:`\mathbf{J} = \sum_i w_i \log(\mathbf{M}^{-1/2}\mathbf{X}_i
    \mathbf{M}^{-1/2})` vanishes), the same start (weighted arithmetic mean)
    and the same test :math:`\|\mathbf{J}\|_F \le` ``tol``, but (1) the
    whitening is by the Cholesky factor of the iterate, (2) the step is an
    approximate Newton step (:func:`_newton_direction`) instead of the
    gradient, so 3-4 eigendecomposition passes reach a gradient norm below
    1e-10 where the fixed-point iteration needs ~9 passes for 1e-8, and (3)
    the iterate *at which* the gradient was measured is returned, so its
    whitened logarithms are, when ``return_logs``, the tangent vectors
    (in the symmetric ``M^-1/2`` frame) of ``X`` at the returned mean.
    A step that does not decrease the gradient norm is halved (backtracking),
    so the iteration cannot diverge. On near-singular matrices the gradient
    cannot reach ``tol``: rounding in the logarithms leaves a floor (~1e-9 for
    200x200 ACMs with condition numbers ~1e7). Once the norm is below
    pyRiemann's own test (1e-8) and a step fails to halve it, the iteration
    stops; in every case the iterate with the smallest gradient norm is
    returned.
    """
    if w is None:
        w = torch.full((X.shape[0],), 1.0 / X.shape[0], dtype=X.dtype, device=X.device)
    M = _mean_euclid(X, w) if init is None else init
    prev = best = None
    for _ in range(maxiter):
        L, ev, V = _whitened_eigh(X, M)
        logev = torch.log(ev)
        J = _weighted_eig_sum(V, w[:, None] * logev)
        crit = float(torch.linalg.matrix_norm(J, ord="fro"))
        if best is None or crit < best[0]:
            best = (crit, M, L, ev, logev, V)
        if crit <= tol:
            break
        if prev is not None and prev[0] <= _STALL_TOL and crit > 0.5 * prev[0]:
            # Newton steps shrink the gradient by orders of magnitude until it hits the
            # rounding floor of the logarithms (~1e-9 for the near-singular 200x200 ACMs of
            # an order-10 grid member): below pyRiemann's own test a step that does not even
            # halve it has reached that floor, and further passes only repeat it
            break
        if prev is not None and crit >= prev[0]:
            # no decrease: halve the previous step from the previous iterate
            crit_prev, L_prev, D_prev = prev
            if float(torch.linalg.matrix_norm(D_prev, ord="fro")) <= tol:
                break
            D_prev = 0.5 * D_prev
            prev = (crit_prev, L_prev, D_prev)
            M = L_prev @ _expm(D_prev) @ L_prev.mT
            continue
        D = _newton_direction(ev, V, w, J, cg_iters)
        prev = (crit, L, D)
        M = L @ _expm(D) @ L.mT
    else:
        warnings.warn("Convergence not reached", stacklevel=3)
    _, M, L, ev, logev, V = best  # the iterate with the smallest gradient, and its pass
    if not return_logs:
        return M
    # back to the symmetric frame: M^{1/2} = L Q with Q orthogonal, and
    # log(M^-1/2 X M^-1/2) = Q' log(L^-1 X L^-T) Q
    M12, _ = _sqrtm_invsqrtm(M)
    Q = torch.linalg.solve_triangular(L, M12, upper=False)
    W = Q.mT @ V
    return M, (W * logev.unsqueeze(-2)) @ W.mT


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


SOLVERS = ("fixed-point", "newton")


def check_solver(solver) -> str:
    """Validate the Riemannian-mean solver name of an estimator."""
    if solver not in SOLVERS:
        raise ValueError(f"solver={solver!r}; choose one of {list(SOLVERS)}")
    return solver


def tensor_mean(X: torch.Tensor, metric: str = "riemann", sample_weight=None, *,
                solver: str = "fixed-point", **kwargs):
    """Tensor-in, tensor-out mean used by the estimators (no conversions).

    For ``metric="riemann"``, ``solver`` picks the iteration:
    ``"fixed-point"`` is pyRiemann's (same iterates, so the same matrix to
    rounding); ``"newton"`` (:func:`_mean_riemann_newton`) reaches the same
    fixed point to a tighter tolerance (gradient norm <= 1e-10) in about a
    third of the eigendecomposition passes. The two answers differ by
    pyRiemann's own convergence error (its stopping rule is
    ``||J|| <= 1e-8``).
    """
    if metric not in _MEANS:
        raise ValueError(f"unknown mean metric {metric!r}; choose one of {sorted(_MEANS)}")
    check_solver(solver)
    _check_stack(X)
    w = None if sample_weight is None else _weights(sample_weight, X.shape[0], X)
    if metric == "euclid":
        return _mean_euclid(X, w)
    if metric == "logeuclid":
        return _mean_logeuclid(X, w)
    if w is None:
        w = _weights(None, X.shape[0], X)
    if solver == "newton":
        return _mean_riemann_newton(X, w, **kwargs)
    return _mean_riemann(X, w, **kwargs)


def tensor_mean_riemann_logs(X: torch.Tensor, sample_weight=None, **kwargs):
    """Riemannian mean ``M`` of a stack and ``log(M^-1/2 X_i M^-1/2)`` from its last iteration.

    Tensor in, tensor out (as :func:`tensor_mean`); the tangent-space
    ``fit_transform`` uses it to skip the separate log-map pass.
    """
    _check_stack(X)
    w = _weights(sample_weight, X.shape[0], X)
    return _mean_riemann_newton(X, w, return_logs=True, **kwargs)
