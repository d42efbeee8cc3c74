r"""Matrix functions of stacked SPD matrices, batched in torch.

Every public function accepts a NumPy array or a torch tensor of shape
``(..., n, n)`` and returns the same kind: NumPy in, NumPy out (on the CPU);
torch in, torch out (on the device it was computed on).

NumPy input is converted to float64 and computed on ``device`` (default: the
best available device, CUDA when present). Torch input keeps its floating
dtype and, unless ``device`` is given, its device.

A symmetric matrix function is computed from one batched eigendecomposition
:math:`\mathbf{C} = \mathbf{V} \mathbf{\Lambda} \mathbf{V}^\top`:

.. math::
    f(\mathbf{C}) = \mathbf{V} f(\mathbf{\Lambda}) \mathbf{V}^\top

These are the definitions of :mod:`pyriemann.geometry.base` (pyRiemann 0.12).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "default_device",
    "sqrtm",
    "invsqrtm",
    "logm",
    "expm",
    "powm",
]


def default_device() -> torch.device:
    """Best available torch device: ``cuda`` when present, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_tensor(X, device=None, dtype=None) -> torch.Tensor:
    """Convert an array or tensor to a floating torch tensor.

    NumPy (or array-like) input becomes float64 on ``device`` (default:
    :func:`default_device`). A torch tensor keeps its floating dtype and its
    device unless ``device``/``dtype`` are given; integer tensors become
    float64.
    """
    if isinstance(X, torch.Tensor):
        if dtype is None and not X.is_floating_point():
            dtype = torch.float64
        if device is None and dtype is None:
            return X
        return X.to(device=device if device is not None else X.device,
                    dtype=dtype if dtype is not None else X.dtype)
    device = default_device() if device is None else torch.device(device)
    arr = np.asarray(X)
    if arr.dtype == object:
        raise ValueError("expected a numeric array, got an object array")
    arr = np.ascontiguousarray(arr, dtype=np.float64 if dtype is None else None)
    out = torch.from_numpy(arr)
    if dtype is not None:
        out = out.to(dtype)
    return out.to(device)


def like_input(T: torch.Tensor, like):
    """Return ``T`` as the same kind as ``like``: NumPy for NumPy input."""
    if isinstance(like, torch.Tensor):
        return T
    return T.detach().cpu().numpy()


def check_square(X: torch.Tensor, name: str = "X") -> None:
    """Raise a ValueError unless ``X`` is a stack of square matrices."""
    if X.ndim < 2:
        raise ValueError(f"{name} must be at least 2-D (..., n, n), got shape {tuple(X.shape)}")
    if X.shape[-1] != X.shape[-2]:
        raise ValueError(f"{name} must contain square matrices, got shape {tuple(X.shape)}")


def _check_finite(X: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(X).all()):
        raise ValueError(
            f"{name} contains NaN or infinite values; matrices must be finite SPD matrices "
            "(regularize the covariance estimate, e.g. estimator='oas')."
        )


def _check_positive(eigvals: torch.Tensor, name: str) -> None:
    bad = eigvals.amin(dim=-1) <= 0
    if bool(bad.any()):
        idx = torch.nonzero(bad.reshape(-1)).flatten()[:10].tolist()
        raise ValueError(
            f"{name} is not positive definite: matrices at flat indices {idx} have "
            f"eigenvalues <= 0 (smallest {float(eigvals.amin()):.3g}). Use a shrinkage "
            "covariance estimator ('lwf', 'oas') or regularize the matrices."
        )


# Work (matrices x n^3) a thread must get for the split to pay for the thread start-up:
# eight 64x64 eigendecompositions (~4 ms), or thousands of 8x8 ones.
_MIN_WORK_PER_THREAD = 8 * 64**3


def _threaded_over_batch(fn, C: torch.Tensor):
    """``fn(C)`` for a stack, with the stack split over torch's CPU threads.

    torch's CPU ``eigh``/``eigvalsh`` loop over the batch in one thread (one
    LAPACK call per matrix) whatever ``torch.set_num_threads`` says, and the
    LAPACK call itself barely parallelises at EEG sizes (C <= 128). Each
    matrix is still decomposed by the same single LAPACK call, so the result
    does not depend on how the stack is split; torch releases the GIL inside.
    With one thread (what the harness sets in its workers) this is ``fn(C)``.
    """
    n_threads = torch.get_num_threads()
    if C.device.type != "cpu" or C.ndim < 3 or n_threads < 2:
        return fn(C)
    flat = C.reshape(-1, *C.shape[-2:])
    n_chunks = min(n_threads, flat.shape[0] * flat.shape[-1] ** 3 // _MIN_WORK_PER_THREAD)
    if n_chunks < 2:
        return fn(C)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n_chunks) as pool:
        parts = list(pool.map(fn, torch.tensor_split(flat, n_chunks)))
    batch = C.shape[:-2]
    if isinstance(parts[0], torch.Tensor):
        out = torch.cat(parts)
        return out.reshape(*batch, *out.shape[1:])
    return tuple(torch.cat(p).reshape(*batch, *p[0].shape[1:]) for p in zip(*parts))


def eigh(C: torch.Tensor):
    """``torch.linalg.eigh`` of a stack of symmetric matrices, over all CPU threads (see above)."""
    return _threaded_over_batch(torch.linalg.eigh, C)


def eigvalsh(C: torch.Tensor):
    """``torch.linalg.eigvalsh`` of a stack of symmetric matrices, over all CPU threads."""
    return _threaded_over_batch(torch.linalg.eigvalsh, C)


def eig_operator(C: torch.Tensor, operator, *, positive: bool = True, name: str = "C"):
    """``V operator(Λ) Vᵀ`` for a stack of symmetric tensors (tensor in, tensor out)."""
    check_square(C, name)
    _check_finite(C, name)
    eigvals, eigvecs = eigh(C)
    if positive:
        _check_positive(eigvals, name)
    return (eigvecs * operator(eigvals).unsqueeze(-2)) @ eigvecs.mT


def _public(C, operator, positive, device, name="C"):
    T = to_tensor(C, device=device)
    return like_input(eig_operator(T, operator, positive=positive, name=name), C)


def sqrtm(C, *, device=None):
    r"""Square root of SPD matrices.

    .. math::
        \mathbf{C}^{1/2} = \mathbf{V} \mathbf{\Lambda}^{1/2} \mathbf{V}^\top

    Parameters
    ----------
    C : ndarray or Tensor, shape (..., n, n)
        SPD matrices.
    device : str or torch.device, optional
        Where to compute (default: CUDA if present for NumPy input, the
        tensor's own device for torch input).

    Returns
    -------
    D : same kind as C, shape (..., n, n)

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import sqrtm
    >>> sqrtm(np.diag([4.0, 9.0]), device="cpu")
    array([[2., 0.],
           [0., 3.]])
    """
    return _public(C, torch.sqrt, True, device)


def invsqrtm(C, *, device=None):
    r"""Inverse square root of SPD matrices.

    .. math::
        \mathbf{C}^{-1/2} = \mathbf{V} \mathbf{\Lambda}^{-1/2} \mathbf{V}^\top

    Parameters
    ----------
    C : ndarray or Tensor, shape (..., n, n)
        SPD matrices.
    device : str or torch.device, optional
        Where to compute.

    Returns
    -------
    D : same kind as C, shape (..., n, n)

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import invsqrtm
    >>> invsqrtm(np.diag([4.0, 16.0]), device="cpu")
    array([[0.5 , 0.  ],
           [0.  , 0.25]])
    """
    return _public(C, torch.rsqrt, True, device)


def logm(C, *, device=None):
    r"""Logarithm of SPD matrices.

    .. math::
        \log(\mathbf{C}) = \mathbf{V} \log(\mathbf{\Lambda}) \mathbf{V}^\top

    Parameters
    ----------
    C : ndarray or Tensor, shape (..., n, n)
        SPD matrices.
    device : str or torch.device, optional
        Where to compute.

    Returns
    -------
    D : same kind as C, shape (..., n, n)
        Symmetric matrices.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import logm
    >>> logm(np.eye(2) * np.e, device="cpu")
    array([[1., 0.],
           [0., 1.]])
    """
    return _public(C, torch.log, True, device)


def expm(C, *, device=None):
    r"""Exponential of symmetric matrices.

    .. math::
        \exp(\mathbf{C}) = \mathbf{V} \exp(\mathbf{\Lambda}) \mathbf{V}^\top

    Parameters
    ----------
    C : ndarray or Tensor, shape (..., n, n)
        Symmetric matrices (need not be positive definite).
    device : str or torch.device, optional
        Where to compute.

    Returns
    -------
    D : same kind as C, shape (..., n, n)
        SPD matrices.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import expm
    >>> expm(np.zeros((2, 2)), device="cpu")
    array([[1., 0.],
           [0., 1.]])
    """
    return _public(C, torch.exp, False, device)


def powm(C, alpha: float, *, device=None):
    r"""Power of SPD matrices.

    .. math::
        \mathbf{C}^{\alpha} = \mathbf{V} \mathbf{\Lambda}^{\alpha} \mathbf{V}^\top

    Parameters
    ----------
    C : ndarray or Tensor, shape (..., n, n)
        SPD matrices.
    alpha : float
        The power.
    device : str or torch.device, optional
        Where to compute.

    Returns
    -------
    D : same kind as C, shape (..., n, n)

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.riemann import powm
    >>> powm(np.diag([4.0, 9.0]), -1.0, device="cpu")
    array([[0.25      , 0.        ],
           [0.        , 0.11111111]])
    """
    return _public(C, lambda x: x ** alpha, True, device)


# Tensor-level kernels used by the other modules (no conversion, no copies).
def _sqrtm(C):
    return eig_operator(C, torch.sqrt)


def _invsqrtm(C):
    return eig_operator(C, torch.rsqrt)


def _logm(C):
    return eig_operator(C, torch.log)


def _expm(C):
    return eig_operator(C, torch.exp, positive=False)


def _sqrtm_invsqrtm(C):
    """Both ``C^{1/2}`` and ``C^{-1/2}`` from one eigendecomposition."""
    check_square(C)
    _check_finite(C, "C")
    eigvals, eigvecs = eigh(C)
    _check_positive(eigvals, "C")
    s = torch.sqrt(eigvals)
    return ((eigvecs * s.unsqueeze(-2)) @ eigvecs.mT,
            (eigvecs * (1.0 / s).unsqueeze(-2)) @ eigvecs.mT)
