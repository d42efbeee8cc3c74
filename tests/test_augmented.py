"""Augmented covariances: block path == naive embedding == MOABB + pyRiemann."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from neurodecode.preprocessing.augmented import (
    ACM_ESTIMATORS,
    AugmentedCovariances,
    augmented_covariance_grid,
    augmented_covariances,
    augmented_covariances_naive,
    time_delay_embedding,
)
from tests.sklearn_series_adapter import SeriesAdapter

GRID = [(1, 1), (1, 4), (2, 1), (2, 3), (3, 2), (4, 5), (5, 1), (7, 3)]


def _signals(rng, n=6, c=4, t=160, offset=0.0):
    # AR(2)-coloured noise with channel mixing: lagged blocks are far from zero
    e = rng.standard_normal((n, c, t + 50))
    x = np.zeros_like(e)
    for k in range(2, e.shape[-1]):
        x[..., k] = 1.2 * x[..., k - 1] - 0.5 * x[..., k - 2] + e[..., k]
    mix = rng.standard_normal((c, c))
    return np.einsum("ij,njt->nit", mix, x[..., 50:]) + offset


def _assert_close(a, b, tol=1e-10):
    scale = max(np.abs(b).max(), 1e-300)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)


def test_embedding_matches_moabb(rng):
    from moabb.pipelines.features import AugmentedDataset

    X = _signals(rng)
    for order, lag in GRID:
        ref = AugmentedDataset(order=order, lag=lag).fit(X, None).transform(X)
        got = time_delay_embedding(X, order, lag)
        assert got.shape == ref.shape
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("estimator", ACM_ESTIMATORS)
def test_fast_path_equals_naive(rng, estimator):
    X = _signals(rng, offset=3.0)
    grid = augmented_covariance_grid(X, [o for o, _ in GRID], [lag for _, lag in GRID],
                                     estimator=estimator)
    for order, lag in GRID:
        naive = augmented_covariances_naive(X, order, lag, estimator)
        _assert_close(grid[(order, lag)], naive)
        _assert_close(augmented_covariances(X, order, lag, estimator), naive)


def test_order_one_keeps_every_sample(rng):
    # MOABB returns X unchanged for order 1, so the lag must not crop anything
    X = _signals(rng)
    expected = np.stack([np.cov(x) for x in X])
    for lag in (1, 7):
        _assert_close(augmented_covariances(X, 1, lag), expected)


@pytest.mark.parametrize("estimator", ["cov", "scm", "corr", "oas", "lwf"])
def test_equals_moabb_and_pyriemann(rng, estimator):
    from moabb.pipelines.features import AugmentedDataset
    from pyriemann.estimation import Covariances

    X = _signals(rng, n=4, c=3, t=120)
    for order, lag in [(1, 1), (2, 2), (3, 1), (4, 3), (6, 2)]:
        ref = Covariances(estimator).fit_transform(
            AugmentedDataset(order=order, lag=lag).fit(X, None).transform(X)
        )
        got = AugmentedCovariances(order=order, lag=lag, estimator=estimator).fit_transform(X)
        _assert_close(got, ref)


def test_real_physionet_subject_matches_moabb():
    from conftest import require_dataset

    root = require_dataset("mne_data", "MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf")
    import mne
    from moabb.pipelines.features import AugmentedDataset
    from pyriemann.estimation import Covariances

    raw = mne.io.read_raw_edf(
        root / "MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf", preload=True, verbose=False
    )
    raw.filter(8.0, 32.0, verbose=False)
    data = raw.get_data(picks=list(range(21)))
    X = np.stack([data[:, i * 480 : i * 480 + 481] for i in range(10)])  # volts, like MOABB
    for order, lag in [(1, 1), (4, 3), (8, 10)]:
        ref = Covariances("cov").fit_transform(AugmentedDataset(order, lag).fit(X, None).transform(X))
        _assert_close(AugmentedCovariances(order=order, lag=lag).fit_transform(X), ref)


def test_bad_arguments_are_named(rng):
    X = _signals(rng, t=40)
    with pytest.raises(ValueError, match="order"):
        AugmentedCovariances(order=0).fit(X)
    with pytest.raises(ValueError, match="order=5 and lag=10"):
        AugmentedCovariances(order=5, lag=10).fit(X)
    with pytest.raises(ValueError, match="estimator='huber'"):
        AugmentedCovariances(estimator="huber").fit(X)
    with pytest.raises(ValueError, match="3-D"):
        AugmentedCovariances().fit(X[0])
    X_nan = X.copy()
    X_nan[0, 0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        AugmentedCovariances().fit(X_nan)
    est = AugmentedCovariances(order=2).fit(X)
    with pytest.raises(ValueError, match="channels"):
        est.transform(X[:, :2])


def test_clone_and_params():
    est = AugmentedCovariances(order=3, lag=2, estimator="oas")
    assert clone(est).get_params() == est.get_params()


def test_sklearn_contract(rng):
    import pickle

    from sklearn.exceptions import NotFittedError

    X = _signals(rng)
    est = AugmentedCovariances(order=2, lag=3)
    with pytest.raises(NotFittedError):
        est.transform(X)
    assert est.fit(X) is est
    assert est.n_channels_ == X.shape[1]
    out = est.transform(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).transform(X), out)
    est.set_params(order=3)
    assert est.fit_transform(X).shape == (X.shape[0], 3 * X.shape[1], 3 * X.shape[1])


# sklearn's generic checks feed 2-D (n_samples, n_features) data; a transformer of
# 3-D epochs declares three_d_array only, and sklearn then skips them by design.
# `SeriesAdapter` (tests/sklearn_series_adapter.py) maps each table row verbatim to
# one (n_channels, n_times) epoch and calls the real AugmentedCovariances, so the
# generic checks run too (no expected failures).


@parametrize_with_checks([AugmentedCovariances(order=2, lag=1), SeriesAdapter(AugmentedCovariances(order=2, lag=1))])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_whole_moabb_grid_embedding_parity(rng):
    # the benchmark's full order 1-10 x lag 1-10 grid: same embedded signal as MOABB
    from moabb.pipelines.features import AugmentedDataset

    X = _signals(rng, n=2, c=2, t=130)
    for order in range(1, 11):
        for lag in range(1, 11):
            ref = AugmentedDataset(order=order, lag=lag).fit(X, None).transform(X)
            np.testing.assert_array_equal(time_delay_embedding(X, order, lag), ref)


def test_whole_grid_fast_path_equals_naive(rng):
    X = _signals(rng, n=3, c=3, t=140, offset=-2.0)
    grid = augmented_covariance_grid(X, range(1, 11), range(1, 11))
    assert len(grid) == 100
    for (order, lag), covs in grid.items():
        _assert_close(covs, augmented_covariances_naive(X, order, lag))


def test_auto_order_lag_transform_equals_naive(rng):
    X = _signals(rng, n=4, c=3, t=400)
    est = AugmentedCovariances(order="auto", lag="auto", max_order=4, max_lag=6).fit(X)
    assert 1 <= est.order_ <= 4 and 1 <= est.lag_ <= 6
    _assert_close(est.transform(X), augmented_covariances_naive(X, est.order_, est.lag_))
    assert clone(est).get_params() == est.get_params()
    assert not hasattr(clone(est), "order_")
