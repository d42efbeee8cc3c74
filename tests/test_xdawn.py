"""Batched Xdawn / Xdawn covariances: pyRiemann 0.12 parity, training-fold-only fit, speed, sklearn checks."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from neurodecode.preprocessing.xdawn import Xdawn, XdawnCovariances

from conftest import require_dataset
from tests.sklearn_series_adapter import SeriesAdapter

pyriemann = pytest.importorskip("pyriemann")


def _erp_trials(rng, n=60, c=4, t=128, classes=("a", "b"), amp=1.0):
    """Noise trials with a class-specific evoked bump (an ERP) in a few channels."""
    y = np.repeat(np.asarray(classes), n // len(classes))
    X = rng.standard_normal((len(y), c, t))
    for k, cls in enumerate(classes):
        bump = np.exp(-0.5 * ((np.arange(t) - (30 + 20 * k)) / 5.0) ** 2)
        X[y == cls, k % c, :] += amp * bump
    return X, y


CONFIGS = [
    dict(nfilter=2, estimator="oas", xdawn_estimator="oas"),  # the Muse SOURCE.md reference
    dict(nfilter=4, estimator="oas"),
    dict(nfilter=4, estimator="lwf", xdawn_estimator="lwf"),
    dict(nfilter=2, estimator="scm"),
    dict(nfilter=2, estimator="cov", xdawn_estimator="oas"),
    dict(nfilter=3, estimator="oas", xdawn_estimator="scm"),
    dict(nfilter=2, estimator="oas", applyfilters=False),
    dict(nfilter=1, estimator="oas", classes=["b"]),
]


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_xdawncovariances_equals_pyriemann(kw, rng):
    from pyriemann.estimation import XdawnCovariances as PyXdawnCovariances

    X, y = _erp_trials(rng, n=60, c=5)
    ours = XdawnCovariances(device="cpu", **kw).fit(X[:40], y[:40])
    ref = PyXdawnCovariances(**kw).fit(X[:40], y[:40])
    np.testing.assert_allclose(ours.P_, ref.P_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.transform(X[40:]), ref.transform(X[40:]), rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.fit_transform(X, y), ref.fit_transform(X, y), rtol=0, atol=1e-8)


def test_xdawn_filters_equal_pyriemann_three_classes(rng):
    from pyriemann.spatialfilters import Xdawn as PyXdawn

    X, y = _erp_trials(rng, n=90, c=6, classes=(1, 2, 3))
    baseline = np.cov(rng.standard_normal((6, 500)))
    for kw in (dict(nfilter=2), dict(nfilter=3, estimator="oas"), dict(nfilter=2, baseline_cov=baseline)):
        ours, ref = Xdawn(**kw).fit(X, y), PyXdawn(**kw).fit(X, y)
        for attr in ("filters_", "patterns_", "evokeds_"):
            np.testing.assert_allclose(getattr(ours, attr), getattr(ref, attr), rtol=0, atol=1e-8)
        np.testing.assert_allclose(ours.transform(X), ref.transform(X), rtol=0, atol=1e-8)


def test_prototypes_come_from_training_trials_only(rng):
    X, y = _erp_trials(rng, n=60)
    est = XdawnCovariances(nfilter=2, estimator="oas", device="cpu").fit(X[:40], y[:40])
    before = est.P_.copy()
    # transforming other trials (a test fold) must not change what was learned
    X_test = X[40:] * 100.0
    est.transform(X_test)
    np.testing.assert_array_equal(est.P_, before)
    # and refitting on different trials does change it (the prototypes are learned, not fixed)
    other = clone(est).fit(X[20:], y[20:])
    assert np.abs(other.P_ - before).max() > 1e-3


def test_erp_information_reaches_the_covariance(rng):
    # the class ERPs are invisible to a plain covariance at this amplitude but not to the
    # trial-prototype cross-covariance block: the mean of that block differs between classes
    X, y = _erp_trials(rng, n=200, amp=3.0)
    C = XdawnCovariances(nfilter=2, estimator="oas", device="cpu").fit(X, y).transform(X)
    cross = C[:, :4, 4:]  # prototypes (rows) x filtered trial (columns)
    diff = np.abs(cross[y == "a"].mean(0) - cross[y == "b"].mean(0)).max()
    assert diff > 0.05, diff


def test_shapes_and_clear_errors(rng):
    X, y = _erp_trials(rng, n=20, c=4, t=64)
    C = XdawnCovariances(nfilter=3, estimator="oas", device="cpu").fit(X, y).transform(X)
    assert C.shape == (20, 12, 12)
    C = XdawnCovariances(nfilter=3, applyfilters=False, estimator="oas", device="cpu").fit(X, y).transform(X)
    assert C.shape == (20, 10, 10)
    assert np.all(np.linalg.eigvalsh(C) > 0)
    est = XdawnCovariances(device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="channels"):
        est.transform(X[:, :3])
    with pytest.raises(ValueError, match="time samples"):
        est.transform(X[:, :, :32])
    with pytest.raises(ValueError, match="shape"):
        XdawnCovariances().fit(X[0], y[:1])
    with pytest.raises(ValueError, match="nfilter"):
        XdawnCovariances(nfilter=0).fit(X, y)
    with pytest.raises(ValueError, match="estimator"):
        XdawnCovariances(xdawn_estimator="nope").fit(X, y)
    with pytest.raises(ValueError, match="no training trial"):
        Xdawn(classes=["a", "zz"]).fit(X, y)


def test_singular_scm_stack_is_regularized_or_refused(rng):
    # 4 filters per class on 4 channels: 8 filtered rows from 4 channels, so the plain
    # sample covariance of [P; filtered X] is singular (rank <= 12 of 16)
    X, y = _erp_trials(rng, n=20, c=4, t=64)
    C = XdawnCovariances(nfilter=4, estimator="scm", device="cpu").fit(X, y).transform(X)
    assert np.all(np.linalg.eigvalsh(C)[:, 0] > 0)
    with pytest.raises(ValueError, match="rank deficient"):
        XdawnCovariances(nfilter=4, estimator="scm", on_rank_deficient="raise",
                         device="cpu").fit(X, y).transform(X)


def test_batched_is_much_faster_than_pyriemann(rng):
    # pyRiemann calls sklearn's oas once per trial; ours is one batched call. The margin
    # asserted (3x) is far below the measured one (~40x) so machine load cannot flip it.
    from pyriemann.estimation import XdawnCovariances as PyXdawnCovariances

    X, y = _erp_trials(rng, n=600, c=4, t=256)
    kw = dict(nfilter=2, estimator="oas", xdawn_estimator="oas")
    t0 = time.process_time()
    ours = XdawnCovariances(device="cpu", **kw).fit(X, y).transform(X)
    t_ours = time.process_time() - t0
    t0 = time.process_time()
    ref = PyXdawnCovariances(**kw).fit(X, y).transform(X)
    t_ref = time.process_time() - t0
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-8)
    assert t_ours * 3 < t_ref, (t_ours, t_ref)


def test_real_muse_parity():
    root = require_dataset("eeg_notebooks_muse", "SOURCE.md")
    from pyriemann.estimation import XdawnCovariances as PyXdawnCovariances

    from neurodecode.io.muse import load_muse_cueing

    t = load_muse_cueing("target", subjects=[101, 102, 103], root=root)
    X, y = np.asarray(t.X), np.asarray(t.y)
    train = (t.meta["subject"] != "subject103").to_numpy()
    kw = dict(nfilter=2, estimator="oas", xdawn_estimator="oas")
    ours = XdawnCovariances(device="cpu", **kw).fit(X[train], y[train]).transform(X[~train])
    ref = PyXdawnCovariances(**kw).fit(X[train], y[train]).transform(X[~train])
    # microvolt-scale EEG: entries up to ~1e3, so 1e-8 is relative to the largest entry
    scale = np.abs(ref).max()
    assert np.abs(ours - ref).max() <= 1e-8 * scale, (np.abs(ours - ref).max(), scale)


def test_registered_pipeline_uses_the_batched_step():
    from neurodecode.pipelines import make_pipeline

    pipe = make_pipeline("xdawncov-ts-lr")
    step = pipe.named_steps["xdawncov"]
    assert isinstance(step, XdawnCovariances)
    # the Muse SOURCE.md reference configuration
    assert (step.nfilter, step.estimator, step.xdawn_estimator) == (2, "oas", "oas")


class _SupervisedSeriesAdapter(SeriesAdapter):
    """`SeriesAdapter` for a transformer that needs labels in fit (tests only)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


@parametrize_with_checks([XdawnCovariances(device="cpu"), Xdawn(),
                          _SupervisedSeriesAdapter(XdawnCovariances(nfilter=1, estimator="oas", device="cpu")),
                          _SupervisedSeriesAdapter(Xdawn(nfilter=1))])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_recentered_xdawn_pipeline_routes_meta_and_fits():
    import sklearn

    from neurodecode.evaluation.evaluate import _meta_consumers
    from neurodecode.pipelines import make_pipeline
    from neurodecode.simulation import simulate_eeg

    pipe = make_pipeline("recentered-xdawncov-ts-lr", device="cpu")
    assert isinstance(pipe.named_steps["xdawncov"], XdawnCovariances)
    assert {"fit", "predict", "predict_proba"} <= _meta_consumers(pipe)
    t = simulate_eeg(n_subjects=3, n_trials=40, n_channels=6, n_times=128, class_sep=1.5, random_state=2)
    train = (t.meta["subject"] != 3).to_numpy()
    with sklearn.config_context(enable_metadata_routing=True):
        pipe.fit(t.X[train], t.y[train], meta=t.meta[train].reset_index(drop=True))
        proba = pipe.predict_proba(t.X[~train], meta=t.meta[~train].reset_index(drop=True))
    assert proba.shape == ((~train).sum(), 2) and np.allclose(proba.sum(1), 1)
