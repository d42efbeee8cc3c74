"""Input checks shared by the Riemannian estimators (private).

The estimators keep their fitted state as NumPy float64 arrays (picklable,
inspectable) and convert to torch tensors only to compute.
"""

from __future__ import annotations

import numpy as np
import torch

from ..riemann.base import default_device

_METRICS = ("riemann", "logeuclid", "euclid")


def resolve_device(device) -> torch.device:
    return default_device() if device is None else torch.device(device)


def as_spd_tensor(X, device, *, name="X", n_channels=None, owner="estimator") -> torch.Tensor:
    """``X`` as a float64 tensor of shape (n_matrices, n, n), checked.

    Raises a ValueError for anything that is not a non-empty stack of finite
    square matrices, or whose matrix size differs from ``n_channels``.
    """
    if isinstance(X, torch.Tensor):
        T = X.detach().to(device=resolve_device(device), dtype=torch.float64)
    else:
        arr = np.asarray(X)
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{name} must be a numeric array of SPD matrices, got dtype {arr.dtype}")
        if np.iscomplexobj(arr):
            raise ValueError(f"{name} must be real-valued (complex HPD matrices are not supported)")
        arr = np.asarray(arr, dtype=np.float64)
        # torch.from_numpy warns on read-only arrays; a copy is cheap next to an eigh.
        if not arr.flags.writeable or not arr.flags.c_contiguous:
            arr = np.array(arr, dtype=np.float64, order="C")
        T = torch.from_numpy(arr).to(resolve_device(device))
    if T.ndim != 3 or T.shape[1] != T.shape[2]:
        raise ValueError(
            f"{name} must be a stack of square matrices (n_matrices, n_channels, n_channels), "
            f"got shape {tuple(T.shape)}; compute covariances first (neurodecode.preprocessing."
            "covariance.Covariances)")
    if T.shape[0] == 0 or T.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(T.shape)}): need at least one matrix")
    if not bool(torch.isfinite(T).all()):
        raise ValueError(f"{name} contains NaN or infinite values; matrices must be finite SPD matrices")
    if n_channels is not None and T.shape[1] != n_channels:
        raise ValueError(f"{name} has {T.shape[1]} features, but {owner} is expecting {n_channels} "
                         f"features as input (it was fitted on {n_channels}x{n_channels} matrices, "
                         f"got {T.shape[1]}x{T.shape[1]})")
    return T


def check_metric(metric, keys):
    """Split ``metric`` (a name, or a dict with ``keys``) into one name per key."""
    if isinstance(metric, str):
        names = {k: metric for k in keys}
    elif isinstance(metric, dict):
        missing = [k for k in keys if k not in metric]
        if missing:
            raise ValueError(f"metric dict must have keys {list(keys)}; missing {missing}")
        names = {k: metric[k] for k in keys}
    else:
        raise TypeError(f"metric must be a str or a dict, got {type(metric).__name__}")
    for k, v in names.items():
        if v not in _METRICS:
            raise ValueError(f"unknown {k} metric {v!r}; choose one of {list(_METRICS)}")
    return tuple(names[k] for k in keys)


def check_y(y, n):
    """Class labels as a 1-D array aligned with ``n`` matrices (sklearn's messages)."""
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import column_or_1d

    if y is None:
        raise ValueError("requires y to be passed, but the target y is None")
    y = column_or_1d(y, warn=True)
    if y.shape[0] != n:
        raise ValueError(f"X has {n} matrices but y has {y.shape[0]} labels")
    check_classification_targets(y)
    return y


def check_weights(sample_weight, n):
    """Non-negative weights of shape (n,) with a positive sum, or None."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite and non-negative")
    if w.sum() <= 0:
        raise ValueError("sample_weight is zero for every matrix: cannot compute a mean with all weights zero")
    return w


def to_numpy(T: torch.Tensor) -> np.ndarray:
    return T.detach().cpu().numpy()
