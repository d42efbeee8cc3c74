"""Automatic choice of the ACM ``order`` and ``lag`` from the data (MDOP / Takens route).

Takens' theorem says a delay embedding of a scalar observation reconstructs
the state space of the system that produced it when the embedding dimension
is large enough. The classical recipe (used by Carrara & Papadopoulo's
"MDOP" alternative to grid search) picks the two embedding parameters from
the signal alone, with no labels:

* **delay** (``lag``): the first local minimum of the average mutual
  information between :math:`x_t` and :math:`x_{t+\\tau}` (Fraser & Swinney,
  1986), estimated with a 2-D histogram; or, with ``delay_method="autocorr"``,
  the first zero crossing of the autocorrelation (first drop below
  :math:`1/e` when it never crosses zero);
* **embedding dimension** (``order``): the smallest dimension whose fraction
  of false nearest neighbours is below a threshold (Kennel, Brown & Abarbanel,
  1992), neighbours found with a k-d tree (``scipy.spatial.cKDTree``).

Multichannel epochs are handled as a population of scalar series (one per
trial and channel); a seeded random subset of them keeps the cost small, and
the curves (mutual information against delay, false-neighbour fraction
against dimension) are averaged over that subset before the choice is made.

References
----------
Fraser, A. M. & Swinney, H. L. (1986). Independent coordinates for strange
attractors from mutual information. Phys. Rev. A 33, 1134.

Kennel, M. B., Brown, R. & Abarbanel, H. D. I. (1992). Determining embedding
dimension for phase-space reconstruction using a geometrical construction.
Phys. Rev. A 45, 3403.

Carrara, I. & Papadopoulo, T. (2023). Classification of BCI-EEG based on the
augmented covariance matrix. arXiv:2302.04508.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from scipy.spatial import cKDTree
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

__all__ = [
    "MDOPSelector",
    "autocorrelation_delay",
    "average_mutual_information",
    "false_nearest_neighbours",
    "mutual_information_delay",
    "select_order_lag",
]

DELAY_METHODS = ("ami", "autocorr")


def _as_series(X) -> np.ndarray:
    """Any of (T,), (C, T), (n, C, T) → a 2-D stack of scalar series (n_series, T)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 0 or X.ndim > 3:
        raise ValueError(
            f"X must be a series (n_times,), (n_channels, n_times) or epochs "
            f"(n_trials, n_channels, n_times); got shape {X.shape}"
        )
    series = X.reshape(-1, X.shape[-1])
    if not np.isfinite(series).all():
        raise ValueError("X contains NaN or infinite values; clean or interpolate them first")
    return series


def _subsample(series: np.ndarray, max_series, random_state) -> np.ndarray:
    # flat series carry no dynamics (and break the normalisations below)
    series = series[series.std(axis=-1) > 0]
    if series.shape[0] == 0:
        raise ValueError("every series in X is constant: no delay or dimension can be chosen")
    if max_series is not None and series.shape[0] > max_series:
        rng = check_random_state(random_state)
        series = series[np.sort(rng.choice(series.shape[0], max_series, replace=False))]
    return series


def _check_positive_int(value, name):
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def average_mutual_information(X, max_lag=20, n_bins=16, *, max_series=64, random_state=0):
    """Average mutual information I(x_t; x_{t+tau}) for tau = 0 .. max_lag.

    Histogram estimator on ``n_bins`` equal-width bins per series (each series
    binned over its own range), in nats, averaged over the (sub-sampled)
    series.

    Parameters
    ----------
    X : array, shape (n_times,), (n_channels, n_times) or (n_trials, n_channels, n_times)
    max_lag : int
        Largest delay, in samples.
    n_bins : int
        Histogram bins per axis.
    max_series : int or None
        At most this many (trial, channel) series are used, drawn with
        ``random_state``; None uses them all.
    random_state : int, RandomState or None

    Returns
    -------
    ami : ndarray, shape (max_lag + 1,)
        ``ami[tau]``; ``ami[0]`` is the entropy of the binned signal.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.sin(2 * np.pi * np.arange(4000) / 40) + 0.1 * rng.standard_normal(4000)
    >>> ami = average_mutual_information(x, max_lag=20)
    >>> int(np.argmin(ami))  # a quarter of the 40-sample period
    10
    """
    max_lag = _check_positive_int(max_lag, "max_lag")
    n_bins = _check_positive_int(n_bins, "n_bins")
    series = _subsample(_as_series(X), max_series, random_state)
    n_series, T = series.shape
    if max_lag >= T - 1:
        raise ValueError(f"max_lag={max_lag} needs series longer than {max_lag + 1} samples, got {T}")
    lo = series.min(axis=1, keepdims=True)
    hi = series.max(axis=1, keepdims=True)
    codes = np.minimum(((series - lo) / (hi - lo) * n_bins).astype(np.int64), n_bins - 1)
    ami = np.zeros(max_lag + 1)
    offsets = (np.arange(n_series) * n_bins * n_bins)[:, None]
    for tau in range(max_lag + 1):
        a = codes[:, : T - tau]
        b = codes[:, tau:]
        # one bincount for all series: joint histogram of series i lives at offset i*n_bins^2
        joint = np.bincount((offsets + a * n_bins + b).ravel(),
                            minlength=n_series * n_bins * n_bins)
        pab = joint.reshape(n_series, n_bins, n_bins) / (T - tau)
        pa = pab.sum(axis=2, keepdims=True)
        pb = pab.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(pab > 0, pab * np.log(pab / (pa * pb)), 0.0)
        ami[tau] = terms.sum(axis=(1, 2)).mean()
    return ami


def _first_local_minimum(curve: np.ndarray):
    """Index >= 1 of the first local minimum of ``curve`` (None if it only decreases)."""
    for k in range(1, len(curve) - 1):
        if curve[k] <= curve[k - 1] and curve[k] < curve[k + 1]:
            return k
    return None


def mutual_information_delay(X, max_lag=20, n_bins=16, *, max_series=64, random_state=0):
    """Delay at the first local minimum of the average mutual information.

    When the curve has no local minimum up to ``max_lag``, the first delay at
    which it drops below ``ami[0] / e`` is used, else ``max_lag``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.sin(2 * np.pi * np.arange(4000) / 40) + 0.1 * rng.standard_normal(4000)
    >>> mutual_information_delay(x, max_lag=20)
    10
    """
    ami = average_mutual_information(X, max_lag, n_bins, max_series=max_series,
                                     random_state=random_state)
    tau = _first_local_minimum(ami)
    if tau is None:
        below = np.flatnonzero(ami[1:] < ami[0] / np.e)
        tau = int(below[0]) + 1 if below.size else max_lag
    return int(tau)


def autocorrelation_delay(X, max_lag=20, *, max_series=64, random_state=0):
    """Delay at the first zero of the average autocorrelation (else its first drop below 1/e).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(4000)
    >>> autocorrelation_delay(np.sin(2 * np.pi * t / 40), max_lag=20)
    10
    """
    max_lag = _check_positive_int(max_lag, "max_lag")
    series = _subsample(_as_series(X), max_series, random_state)
    T = series.shape[1]
    if max_lag >= T - 1:
        raise ValueError(f"max_lag={max_lag} needs series longer than {max_lag + 1} samples, got {T}")
    z = (series - series.mean(axis=1, keepdims=True)) / series.std(axis=1, keepdims=True)
    acf = np.array([(z[:, : T - k] * z[:, k:]).mean() for k in range(max_lag + 1)])
    # the crossing itself: the delay whose |acf| is closest to zero around the sign change
    for k in range(1, max_lag + 1):
        if acf[k] <= 0:
            return int(k if abs(acf[k]) <= abs(acf[k - 1]) else max(k - 1, 1))
    below = np.flatnonzero(acf[1:] < 1 / np.e)
    return int(below[0]) + 1 if below.size else max_lag


def _embed_scalar(x: np.ndarray, dim: int, lag: int) -> np.ndarray:
    n = x.shape[0] - (dim - 1) * lag
    return np.stack([x[k * lag : k * lag + n] for k in range(dim)], axis=1)


def false_nearest_neighbours(X, lag, max_dim=10, *, rtol=15.0, atol=2.0, theiler=None,
                             max_series=16, max_points=1000, random_state=0):
    """Fraction of false nearest neighbours for dimensions 1 .. max_dim (Kennel 1992).

    For each point :math:`y_d(t)` of the ``d``-dimensional delay embedding,
    its nearest neighbour :math:`y_d(s)` (outside the Theiler window
    :math:`|t-s| \\le` ``theiler``, which excludes neighbours that are close
    only because they are close in time) is *false* when adding the next
    coordinate separates them:

    * :math:`|x_{t+d\\tau} - x_{s+d\\tau}| / R_d > ` ``rtol`` (criterion 1), or
    * :math:`R_{d+1} / \\sigma_x > ` ``atol`` (criterion 2),

    with :math:`R_d` the neighbour distance and :math:`\\sigma_x` the series'
    standard deviation.

    Parameters
    ----------
    X : array, shape (n_times,), (n_channels, n_times) or (n_trials, n_channels, n_times)
    lag : int
        Embedding delay, in samples.
    max_dim : int
        Largest dimension tested.
    rtol, atol : float
        Kennel's thresholds (15 and 2 in the paper).
    theiler : int or None
        Temporal exclusion window, in samples; None uses ``lag``.
    max_series : int or None
        At most this many (trial, channel) series, drawn with ``random_state``.
    max_points : int or None
        At most this many reference points per series (evenly spaced).
    random_state : int, RandomState or None

    Returns
    -------
    fnn : ndarray, shape (max_dim,)
        ``fnn[d - 1]`` is the false-neighbour fraction at dimension ``d``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.empty(3000); x[:2] = 0.1
    >>> for t in range(2, 3000):  # Henon map, x-coordinate
    ...     x[t] = 1 - 1.4 * x[t - 1] ** 2 + 0.3 * x[t - 2]
    >>> fnn = false_nearest_neighbours(x[100:], lag=1, max_dim=4)
    >>> bool(fnn[0] > 0.5 and fnn[1] < 0.05)
    True
    """
    lag = _check_positive_int(lag, "lag")
    max_dim = _check_positive_int(max_dim, "max_dim")
    theiler = lag if theiler is None else int(theiler)
    series = _subsample(_as_series(X), max_series, random_state)
    T = series.shape[1]
    if T - max_dim * lag < 10:
        raise ValueError(
            f"series of {T} samples are too short for dimension {max_dim + 1} at lag {lag}"
        )
    false_counts = np.zeros(max_dim)
    totals = np.zeros(max_dim)
    for x in series:
        sigma = x.std()
        for d in range(1, max_dim + 1):
            # points that have a (d+1)-th coordinate
            n = T - d * lag
            emb = _embed_scalar(x, d, lag)[:n]
            nxt = x[d * lag : d * lag + n]
            ref = np.arange(n)
            if max_points is not None and n > max_points:
                ref = np.linspace(0, n - 1, max_points).astype(np.int64)
            k = min(n, 2 * theiler + 2)
            dist, idx = cKDTree(emb).query(emb[ref], k=k)
            dist = dist.reshape(len(ref), k)
            idx = idx.reshape(len(ref), k)
            ok = np.abs(idx - ref[:, None]) > theiler
            has = ok.any(axis=1)
            first = np.argmax(ok, axis=1)
            rows = np.flatnonzero(has)
            nn = idx[rows, first[rows]]
            r_d = dist[rows, first[rows]]
            keep = r_d > 0  # duplicated points give no information
            rows, nn, r_d = rows[keep], nn[keep], r_d[keep]
            gap = np.abs(nxt[ref[rows]] - nxt[nn])
            r_next = np.sqrt(r_d**2 + gap**2)
            false = (gap / r_d > rtol) | (r_next / sigma > atol)
            false_counts[d - 1] += false.sum()
            totals[d - 1] += len(rows)
    return np.divide(false_counts, totals, out=np.ones(max_dim), where=totals > 0)


def select_order_lag(X, max_order=10, max_lag=10, *, delay_method="ami", n_bins=16,
                     fnn_threshold=0.02, rtol=15.0, atol=2.0, max_series=32, max_points=500,
                     random_state=0, return_curves=False):
    """Choose the ACM ``(order, lag)`` from the signal (MDOP / Takens route).

    ``lag`` is the delay from :func:`mutual_information_delay` (or
    :func:`autocorrelation_delay`), capped at ``max_lag``; ``order`` is the
    smallest embedding dimension whose false-nearest-neighbour fraction
    (:func:`false_nearest_neighbours` at that lag) is at most
    ``fnn_threshold``; when none reaches it, the dimension where the fraction
    stops decreasing by more than 10 % of its first value, capped at
    ``max_order``. No label is used, so this may run on unlabeled data.

    Parameters
    ----------
    X : array, shape (n_trials, n_channels, n_times) (or one series / one trial)
    max_order, max_lag : int
        Upper bounds of the answer (the ACM grid's ranges).
    delay_method : {"ami", "autocorr"}
    n_bins : int
        Histogram bins of the mutual-information estimator.
    fnn_threshold : float
        False-neighbour fraction regarded as "unfolded".
    rtol, atol : float
        Kennel's criteria.
    max_series, max_points : int or None
        Sub-sampling of (trial, channel) series and reference points, for speed.
    random_state : int, RandomState or None
        Seeds the sub-sampling.
    return_curves : bool
        Also return ``{"delay_curve": ..., "fnn": ...}``.

    Returns
    -------
    order, lag : int
    curves : dict, only when ``return_curves``

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> phases = rng.uniform(0, 6, (4, 3, 1))
    >>> X = np.sin(2 * np.pi * np.arange(2000) / 24 + phases) + 0.1 * rng.standard_normal((4, 3, 2000))
    >>> select_order_lag(X, max_order=6, max_lag=10)[1]  # a quarter of the period
    6
    """
    max_order = _check_positive_int(max_order, "max_order")
    max_lag = _check_positive_int(max_lag, "max_lag")
    if delay_method not in DELAY_METHODS:
        raise ValueError(f"delay_method={delay_method!r}; choose one of {DELAY_METHODS}")
    if delay_method == "ami":
        # look a little beyond max_lag so a minimum at max_lag itself is recognised
        curve = average_mutual_information(X, max_lag + 1, n_bins, max_series=max_series,
                                           random_state=random_state)
        lag = _first_local_minimum(curve)
        if lag is None:
            below = np.flatnonzero(curve[1:] < curve[0] / np.e)
            lag = int(below[0]) + 1 if below.size else max_lag
    else:
        curve = None
        lag = autocorrelation_delay(X, max_lag, max_series=max_series, random_state=random_state)
    lag = int(min(max(lag, 1), max_lag))
    fnn = false_nearest_neighbours(X, lag, max_order, rtol=rtol, atol=atol,
                                   max_series=max_series, max_points=max_points,
                                   random_state=random_state)
    hits = np.flatnonzero(fnn <= fnn_threshold)
    if hits.size:
        order = int(hits[0]) + 1
    else:
        # no dimension unfolds the data fully (noise keeps some neighbours false):
        # stop where adding a dimension no longer helps much
        drops = -np.diff(fnn)
        flat = np.flatnonzero(drops < 0.1 * fnn[0])
        order = int(flat[0]) + 1 if flat.size else max_order
    order = int(min(max(order, 1), max_order))
    if return_curves:
        return order, lag, {"delay_curve": curve, "fnn": fnn}
    return order, lag


class MDOPSelector(BaseEstimator):
    """Estimator wrapper of :func:`select_order_lag` (learns ``order_`` and ``lag_`` in fit).

    Parameters
    ----------
    max_order, max_lag : int, default=10
    delay_method : {"ami", "autocorr"}, default="ami"
    fnn_threshold : float, default=0.02
    max_series : int or None, default=32
    random_state : int or None, default=0

    Attributes
    ----------
    order_, lag_ : int
        The chosen embedding.
    fnn_ : ndarray, shape (max_order,)
        False-neighbour fraction by dimension at ``lag_``.
    delay_curve_ : ndarray or None
        Average mutual information by delay (``delay_method="ami"``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.sin(2 * np.pi * np.arange(2000) / 24) + 0.1 * rng.standard_normal((2, 2, 2000))
    >>> sel = MDOPSelector(max_order=6).fit(X)
    >>> sel.lag_
    6
    """

    def __init__(self, max_order=10, max_lag=10, delay_method="ami", fnn_threshold=0.02,
                 max_series=32, random_state=0):
        self.max_order = max_order
        self.max_lag = max_lag
        self.delay_method = delay_method
        self.fnn_threshold = fnn_threshold
        self.max_series = max_series
        self.random_state = random_state

    def fit(self, X, y=None):
        self.order_, self.lag_, curves = select_order_lag(
            X, self.max_order, self.max_lag, delay_method=self.delay_method,
            fnn_threshold=self.fnn_threshold, max_series=self.max_series,
            random_state=self.random_state, return_curves=True,
        )
        self.fnn_ = curves["fnn"]
        self.delay_curve_ = curves["delay_curve"]
        return self
