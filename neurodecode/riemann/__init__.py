"""Riemannian geometry of SPD matrices, batched in torch.

Pure functions over stacked matrices ``(..., n, n)`` with the definitions of
pyRiemann 0.12 (``pyriemann.geometry``): matrix functions, means, distances,
tangent-space maps. NumPy in → NumPy out, torch in → torch out; float64 by
default; computed on the best available device (``device=`` to choose).
The estimators in :mod:`neurodecode.preprocessing` and
:mod:`neurodecode.models` are thin layers on top of these.
"""

from .base import default_device, expm, invsqrtm, logm, powm, sqrtm
from .distance import distance, distance_euclid, distance_logeuclid, distance_riemann
from .mean import mean_covariance, mean_euclid, mean_logeuclid, mean_riemann
from .tangentspace import exp_map, log_map, tangent_space, unupper, untangent_space, upper

__all__ = [
    "default_device",
    "sqrtm",
    "invsqrtm",
    "logm",
    "expm",
    "powm",
    "mean_euclid",
    "mean_logeuclid",
    "mean_riemann",
    "mean_covariance",
    "distance",
    "distance_riemann",
    "distance_logeuclid",
    "distance_euclid",
    "upper",
    "unupper",
    "log_map",
    "exp_map",
    "tangent_space",
    "untangent_space",
]
