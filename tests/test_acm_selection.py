"""ACM order/lag selection (MDOP / Takens) and the ACM grid search."""

from __future__ import annotations

import numpy as np
import pytest

from neurodecode.preprocessing.augmented import AugmentedCovariances, augmented_covariances
from neurodecode.preprocessing.embedding_selection import (
    MDOPSelector,
    autocorrelation_delay,
    average_mutual_information,
    false_nearest_neighbours,
    mutual_information_delay,
    select_order_lag,
)


def _noisy_sines(rng, period, n=5, c=3, t=4000, noise=0.1):
    phases = rng.uniform(0, 2 * np.pi, (n, c, 1))
    return np.sin(2 * np.pi * np.arange(t) / period + phases) + noise * rng.standard_normal((n, c, t))


def _henon(n=3000):
    x = np.empty(n + 100)
    x[:2] = 0.1
    y_prev = 0.0
    for t in range(1, n + 100):
        x_new = 1 - 1.4 * x[t - 1] ** 2 + y_prev
        y_prev = 0.3 * x[t - 1]
        x[t] = x_new
    return x[100:]


def _lorenz(n=5000, dt=0.01):
    # classical RK4 (fast and deterministic; the attractor is what matters, not the trajectory)
    def f(s):
        x, y, z = s
        return np.array([10 * (y - x), x * (28 - z) - y, x * y - 8 / 3 * z])

    s = np.array([1.0, 1.0, 1.0])
    out = np.empty(n + 2000)
    for k in range(n + 2000):
        k1 = f(s)
        k2 = f(s + dt / 2 * k1)
        k3 = f(s + dt / 2 * k2)
        k4 = f(s + dt * k3)
        s = s + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        out[k] = s[0]
    return out[2000:]


@pytest.mark.parametrize("period", [24, 40])
def test_delay_is_quarter_period_of_a_sine(rng, period):
    X = _noisy_sines(rng, period)
    quarter = period // 4
    assert abs(mutual_information_delay(X, max_lag=period // 2) - quarter) <= 1
    assert abs(autocorrelation_delay(X, max_lag=period // 2) - quarter) <= 1
    ami = average_mutual_information(X, max_lag=period // 2)
    # the mutual information of a delayed copy is largest at no delay
    assert ami[0] == ami.max()


def test_henon_needs_two_dimensions():
    fnn = false_nearest_neighbours(_henon(), lag=1, max_dim=5)
    assert fnn[0] > 0.5  # a 1-D projection folds the attractor
    assert fnn[1] < 0.02
    order, lag = select_order_lag(_henon()[None, None], max_order=6, max_lag=1)
    assert (order, lag) == (2, 1)


def test_lorenz_needs_three_dimensions():
    x = _lorenz()
    order, lag, curves = select_order_lag(x, max_order=8, max_lag=40, return_curves=True)
    # Fraser & Swinney's first AMI minimum for Lorenz x at dt=0.01 is about 0.16-0.18 time units
    assert 12 <= lag <= 20
    assert order == 3
    assert curves["fnn"][0] > 0.5 and curves["fnn"][2] <= 0.02


def test_white_noise_has_no_low_dimension(rng):
    X = rng.standard_normal((4, 4, 800))
    fnn = false_nearest_neighbours(X, lag=1, max_dim=4)
    # far above a deterministic system at the same dimension (Lorenz: 0 at d=3)
    assert np.all(fnn > 0.1)


def test_selection_is_seeded_and_bounded(rng):
    X = _noisy_sines(rng, 40, n=20, c=8, t=1000, noise=0.5)
    a = select_order_lag(X, max_order=3, max_lag=4, max_series=5, random_state=1)
    b = select_order_lag(X, max_order=3, max_lag=4, max_series=5, random_state=1)
    assert a == b
    assert 1 <= a[0] <= 3 and 1 <= a[1] <= 4


def test_selection_errors_are_named(rng):
    with pytest.raises(ValueError, match="max_lag"):
        select_order_lag(rng.standard_normal((2, 2, 100)), max_lag=0)
    with pytest.raises(ValueError, match="delay_method"):
        select_order_lag(rng.standard_normal((2, 2, 100)), delay_method="foo")
    with pytest.raises(ValueError, match="constant"):
        select_order_lag(np.ones((2, 2, 100)))
    X = rng.standard_normal((2, 2, 100))
    X[0, 0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        select_order_lag(X)


def test_mdop_selector_and_auto_augmented_covariances(rng):
    X = _noisy_sines(rng, 24, n=6, c=3, t=600)
    sel = MDOPSelector(max_order=5, max_lag=8).fit(X)
    assert sel.lag_ == select_order_lag(X, 5, 8)[1]
    est = AugmentedCovariances(order="auto", lag="auto", max_order=5, max_lag=8).fit(X)
    assert (est.order_, est.lag_) == (sel.order_, sel.lag_)
    np.testing.assert_array_equal(est.transform(X), augmented_covariances(X, est.order_, est.lag_))
    # a fixed order with an automatic lag keeps the fixed one
    est = AugmentedCovariances(order=2, lag="auto", max_lag=8).fit(X)
    assert est.order_ == 2 and est.lag_ == sel.lag_
    # learned in fit, from the training rows only: transform does not re-select
    est_train = AugmentedCovariances(order="auto", lag="auto", max_order=5, max_lag=8).fit(X[:3])
    lag_train = est_train.lag_
    est_train.transform(rng.standard_normal((2, 3, 600)))
    assert est_train.lag_ == lag_train
