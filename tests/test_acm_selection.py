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


# ---------------------------------------------------------------------------------------------
# ACMGridSearch
# ---------------------------------------------------------------------------------------------
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from neurodecode.models.acm_search import ACMGridSearch  # noqa: E402

SMALL = dict(orders=(1, 2, 4), lags=(1, 3), Cs=(0.5, 1.0), device="cpu")


def _hard_eeg(n_trials=60, n_channels=6, n_times=200, seed=0):
    from neurodecode.simulation import simulate_eeg

    tr = simulate_eeg(n_subjects=1, n_trials=n_trials, n_channels=n_channels, n_times=n_times,
                      class_sep=0.15, noise=1.0, random_state=seed)
    return tr.X, tr.y


def _moabb_grid(grid, cv, scoring="roc_auc"):
    from moabb.pipelines.features import AugmentedDataset
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    pipe = make_pipeline(AugmentedDataset(), Covariances("cov"), TangentSpace(metric="riemann"),
                         SVC(kernel="linear"))
    params = {"augmenteddataset__order": list(grid["orders"]),
              "augmenteddataset__lag": list(grid["lags"]), "svc__C": list(grid["Cs"])}
    return GridSearchCV(pipe, params, cv=cv, scoring=scoring)


def test_grid_search_equals_moabb_gridsearchcv():
    X, y = _hard_eeg()
    ours = ACMGridSearch(**SMALL, cv=3).fit(X, y)
    ref = _moabb_grid(SMALL, cv=3).fit(X, y)
    # same candidates in the same order, same fold scores, same choice, same refit
    got = [(p["lag"], p["order"], p["C"]) for p in ours.cv_results_["params"]]
    exp = [(p["augmenteddataset__lag"], p["augmenteddataset__order"], p["svc__C"])
           for p in ref.cv_results_["params"]]
    assert got == exp
    for k in range(3):
        np.testing.assert_allclose(ours.cv_results_[f"split{k}_test_score"],
                                   ref.cv_results_[f"split{k}_test_score"], atol=1e-9)
    assert ours.best_params_ == {"order": ref.best_params_["augmenteddataset__order"],
                                 "lag": ref.best_params_["augmenteddataset__lag"],
                                 "C": ref.best_params_["svc__C"]}
    assert 0.5 < ours.best_score_ < 1.0  # a task where the grid matters, not a trivial one
    np.testing.assert_allclose(ours.decision_function(X), ref.best_estimator_.decision_function(X),
                               atol=1e-8)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))


def test_grid_search_lr_and_accuracy():
    X, y = _hard_eeg(seed=1)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    ours = ACMGridSearch(orders=(1, 3), lags=(2,), Cs=(1.0,), classifier="lr", scoring="accuracy",
                         cv=cv, device="cpu").fit(X, y)
    assert ours.predict_proba(X).shape == (len(X), 2)
    assert ours.cv_results_["mean_test_score"].shape == (2,)
    assert not hasattr(ACMGridSearch(classifier="svm"), "predict_proba")


def test_grid_search_no_leak(monkeypatch):
    """Every reference (Riemannian mean) is fitted on inner-train rows only; scores on a
    held-out set do not depend on the held-out rows beyond their own predictions."""
    import neurodecode.models.acm_search as mod

    X, y = _hard_eeg()
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    splits = list(cv.split(X, y))
    seen, refits = [], []
    real_karcher, real_mean = mod._karcher_tangent, mod._mean_riemann

    def spy_karcher(covs, *args, **kwargs):
        seen.append(covs.shape[0])
        return real_karcher(covs, *args, **kwargs)

    def spy_mean(covs, *args, **kwargs):
        refits.append(covs.shape[0])
        return real_mean(covs, *args, **kwargs)

    monkeypatch.setattr(mod, "_karcher_tangent", spy_karcher)
    monkeypatch.setattr(mod, "_mean_riemann", spy_mean)
    ACMGridSearch(orders=(1, 2), lags=(1, 2), Cs=(1.0,), cv=splits, device="cpu").fit(X, y)
    # 2 orders x 2 lags x 4 folds inner references, each on the fold's train rows, then the refit
    train_sizes = [len(tr) for tr, _ in splits]
    assert seen == train_sizes * 4 and refits == [len(X)]
    monkeypatch.setattr(mod, "_karcher_tangent", real_karcher)
    monkeypatch.setattr(mod, "_mean_riemann", real_mean)
    # outer level: the selected model does not depend on rows it was not trained on
    train, test = splits[0]
    a = ACMGridSearch(orders=(1, 2), lags=(1, 2), Cs=(1.0,), cv=3, device="cpu").fit(X[train], y[train])
    X_alt = X.copy()
    X_alt[test] *= 50.0
    b = ACMGridSearch(orders=(1, 2), lags=(1, 2), Cs=(1.0,), cv=3, device="cpu").fit(
        X_alt[train], y[train])
    np.testing.assert_array_equal(a.reference_, b.reference_)
    np.testing.assert_array_equal(a.decision_function(X[test]), b.decision_function(X[test]))


def test_grid_search_infeasible_members_are_nan():
    X, y = _hard_eeg(n_channels=8, n_times=40)
    # order 4 x 8 channels = 32 dimensions from 40 - 4*lag samples: lag 3 leaves 28 < 32
    est = ACMGridSearch(orders=(1, 4, 20), lags=(1, 3), Cs=(1.0,), cv=3, device="cpu").fit(X, y)
    res = est.cv_results_
    bad = (res["param_order"] == 4) & (res["param_lag"] == 3)
    assert np.isnan(res["mean_test_score"][bad]).all()
    assert "positive definite" in res["error"][bad][0]
    too_long = res["param_order"] == 20
    assert np.isnan(res["mean_test_score"][too_long]).all()
    assert res["rank_test_score"][bad].min() > res["rank_test_score"][~bad & ~too_long].max()
    assert (est.order_, est.lag_) in {(1, 1), (1, 3), (4, 1)}


def test_grid_search_errors_are_named():
    X, y = _hard_eeg(n_times=30)
    with pytest.raises(ValueError, match="classifier"):
        ACMGridSearch(classifier="rf", **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="inner_reference"):
        ACMGridSearch(inner_reference="euclid", **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="C must be > 0"):
        ACMGridSearch(orders=(1,), lags=(1,), Cs=(0.0,), device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="no \\(order, lag\\)"):
        ACMGridSearch(orders=(10,), lags=(5,), Cs=(1.0,), device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="3-D"):
        ACMGridSearch(**SMALL).fit(X[:, 0], y)
    est = ACMGridSearch(orders=(1,), lags=(1,), Cs=(1.0,), cv=3, device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="channels"):
        est.predict(X[:, :3])


def test_grid_search_sklearn_contract():
    import pickle

    from sklearn.exceptions import NotFittedError

    X, y = _hard_eeg()
    est = ACMGridSearch(orders=(1, 2), lags=(1,), Cs=(1.0,), cv=3, device="cpu")
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        est.predict(X)
    assert est.fit(X, y) is est
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), est.predict(X))
    y_str = np.where(y == 0, "left", "right")
    est_str = clone(est).fit(X, y_str)
    assert set(est_str.predict(X)) <= {"left", "right"}
    assert est_str.best_params_ == est.best_params_
    assert 0.0 <= est.score(X, y) <= 1.0


# sklearn's generic checks feed 2-D data; an estimator of 3-D epochs declares three_d_array
# only and sklearn skips them by design; the contract is asserted in the test above.
@parametrize_with_checks([ACMGridSearch(orders=(1, 2), lags=(1,), Cs=(1.0,), cv=3, device="cpu")])
def test_grid_search_sklearn_compatible(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------------------------------
# ACMClassifier and registered pipelines
# ---------------------------------------------------------------------------------------------
from neurodecode.models.acm_search import ACMClassifier  # noqa: E402
from tests.sklearn_series_adapter import SeriesClassifierAdapter  # noqa: E402


def test_acm_classifier_equals_moabb_pipeline():
    from moabb.pipelines.features import AugmentedDataset
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    X, y = _hard_eeg()
    train, test = np.arange(40), np.arange(40, 60)
    ours = ACMClassifier(order=3, lag=2, C=0.5, device="cpu").fit(X[train], y[train])
    ref = make_pipeline(AugmentedDataset(3, 2), Covariances("cov"), TangentSpace(metric="riemann"),
                        SVC(kernel="linear", C=0.5)).fit(X[train], y[train])
    np.testing.assert_allclose(ours.transform(X[test]), ref[:-1].transform(X[test]), atol=1e-8)
    np.testing.assert_allclose(ours.decision_function(X[test]), ref.decision_function(X[test]),
                               atol=1e-8)


def test_acm_classifier_auto_and_errors(rng):
    X, y = _hard_eeg(n_times=160)
    clf = ACMClassifier(order="auto", lag="auto", max_order=4, max_lag=5, device="cpu").fit(X, y)
    assert (clf.order_, clf.lag_) == select_order_lag(X, 4, 5)
    with pytest.raises(ValueError, match="positive definite"):
        ACMClassifier(order=4, lag=1, device="cpu").fit(X[..., :22], y)
    with pytest.raises(ValueError, match="C must be > 0"):
        ACMClassifier(C=0, device="cpu").fit(X, y)


def test_registered_acm_pipelines():
    from neurodecode.pipelines import get_pipeline_info, list_pipelines, make_pipeline

    names = {"acm-ts-svm", "acm-grid-ts-svm", "acm-mdop-ts-svm"}
    assert names <= set(list_pipelines("eeg")) and names <= set(list_pipelines("ieeg"))
    assert not names & set(list_pipelines("fmri"))
    assert get_pipeline_info("acm-ts-svm").modality == ("eeg", "ieeg")
    X, y = _hard_eeg()
    for name, opts in [("acm-ts-svm", {"order": 2}), ("acm-mdop-ts-svm", {"max_order": 3}),
                       ("acm-grid-ts-svm", {"orders": (1, 2), "lags": (1,), "Cs": (1.0,), "cv": 3})]:
        est = make_pipeline(name, device="cpu", **opts)
        assert clone(est).get_params() == est.get_params()
        assert est.fit(X, y).predict(X).shape == y.shape


# ACMClassifier declares three_d_array only, so sklearn skips its generic checks on the bare
# estimator (SkipTestWarning). `SeriesClassifierAdapter` (tests/sklearn_series_adapter.py) maps
# each table row verbatim to one epoch and calls the real ACMClassifier, so they run;
# ACMClassifier is also a transformer (tangent vectors), so sklearn's transformer checks run as well.


@parametrize_with_checks([SeriesClassifierAdapter(ACMClassifier(order=2, lag=1, device="cpu"))])
def test_acm_classifier_generic_checks_through_adapter(estimator, check):
    check(estimator)


@parametrize_with_checks([ACMClassifier(order=2, lag=1, device="cpu")])
def test_acm_classifier_sklearn_compatible(estimator, check):
    check(estimator)


def _naive_logeuclid_features(covs, train):
    """Log-Euclidean tangent space per fold, the slow way: scipy logm of every trial again for
    every fold, the fold's train mean of the logs subtracted, pyRiemann's upper (the flat
    log-Euclidean chart; pyRiemann's TangentSpace(logeuclid) also applies D exp, not used here)."""
    import scipy.linalg
    from pyriemann.utils.tangentspace import upper

    logs = np.stack([np.real(scipy.linalg.logm(c)) for c in covs])
    centre = np.mean([logs[i] for i in train], axis=0)
    return upper(logs - centre)


def test_shared_logeuclid_equals_naive_and_never_touches_inner_test_rows(monkeypatch):
    """The shared mode's fold kernels equal the naive per-fold log-Euclidean tangent space to
    1e-10, every fold centre is built from exactly the inner-train rows, and changing the
    inner-test rows changes nothing in the training kernel."""
    import torch

    import neurodecode.models.acm_search as mod
    from neurodecode.preprocessing.augmented import augmented_covariances

    X, y = _hard_eeg()
    splits = list(StratifiedKFold(4, shuffle=True, random_state=0).split(X, y))
    covs = np.asarray(augmented_covariances(X, order=2, lag=2))
    U = mod._upper(mod._spd_logm(torch.as_tensor(covs))).numpy()
    gram = U @ U.T
    for train, test in splits:
        F = _naive_logeuclid_features(covs, train)
        K_tr, K_te = mod._shared_fold_kernels(U, gram, mod._train_centre(U, train), train, test)
        np.testing.assert_allclose(K_tr, F[train] @ F[train].T, rtol=0, atol=1e-10)
        np.testing.assert_allclose(K_te, F[test] @ F[train].T, rtol=0, atol=1e-10)
        # inner-test rows replaced: centre and training kernel unchanged
        U_alt = U.copy()
        U_alt[test] = 1e3 * np.random.default_rng(0).standard_normal(U_alt[test].shape)
        m_alt = mod._train_centre(U_alt, train)
        np.testing.assert_array_equal(m_alt, mod._train_centre(U, train))
        K_alt, _ = mod._shared_fold_kernels(U_alt, U_alt @ U_alt.T, m_alt, train, test)
        np.testing.assert_allclose(K_alt, K_tr, rtol=0, atol=1e-9)

    # spy: the fit centres every fold on exactly that fold's train rows, runs no Karcher
    seen, karcher = [], []
    real_centre = mod._train_centre

    def spy_centre(U, train):
        seen.append(np.sort(np.asarray(train)))
        return real_centre(U, train)

    monkeypatch.setattr(mod, "_train_centre", spy_centre)
    monkeypatch.setattr(mod, "_karcher_tangent", lambda *a, **k: karcher.append(1))
    fast = ACMGridSearch(orders=(1, 2), lags=(1, 2), Cs=(0.5, 1.0), cv=splits, device="cpu",
                         inner_reference="shared_logeuclid").fit(X, y)
    assert not karcher
    expected = [np.sort(tr) for tr, _ in splits] * 4
    assert len(seen) == len(expected)
    for a, b in zip(seen, expected):
        np.testing.assert_array_equal(a, b)
    # fold scores equal the naive per-fold log-Euclidean tangent space + linear SVC
    from sklearn.metrics import roc_auc_score
    from sklearn.svm import SVC

    i = fast.best_index_
    p = fast.best_params_
    covs = np.asarray(augmented_covariances(X, order=p["order"], lag=p["lag"]))
    for k, (train, test) in enumerate(splits):
        F = _naive_logeuclid_features(covs, train)
        clf = SVC(kernel="linear", C=p["C"]).fit(F[train], y[train])
        naive = roc_auc_score(y[test], clf.decision_function(F[test]))
        assert abs(fast.cv_results_[f"split{k}_test_score"][i] - naive) < 1e-10


def test_shared_then_exact_picks_like_the_exact_search(monkeypatch):
    """Screening = the shared mode's scores; re-scored members = the exact mode's scores;
    the pick equals the exact pick when the exact best member is among the top_k screened;
    every Karcher reference is fitted on inner-train rows only."""
    import neurodecode.models.acm_search as mod

    X, y = _hard_eeg()
    splits = list(StratifiedKFold(4, shuffle=True, random_state=0).split(X, y))
    kw = dict(orders=(1, 2, 4), lags=(1, 3), Cs=(0.5, 1.0), cv=splits, device="cpu")
    exact = ACMGridSearch(**kw).fit(X, y)
    shared = ACMGridSearch(inner_reference="shared_logeuclid", **kw).fit(X, y)
    n_members = 6
    # top_k = every member: identical to the exact search
    full = ACMGridSearch(inner_reference="shared_then_exact", top_k=n_members, **kw).fit(X, y)
    for k in range(4):
        # re-scored with the Newton solver: the same per-fold Riemannian references to ~1e-10
        np.testing.assert_allclose(full.cv_results_[f"split{k}_test_score"],
                                   exact.cv_results_[f"split{k}_test_score"], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(full.cv_results_[f"screen_split{k}_test_score"],
                                      shared.cv_results_[f"split{k}_test_score"])
    assert full.best_params_ == exact.best_params_ and full.cv_results_["rescored"].all()

    seen = []
    real_karcher = mod._karcher_tangent_newton

    def spy_karcher(covs, *args, **kwargs):
        seen.append(covs.shape[0])
        return real_karcher(covs, *args, **kwargs)

    monkeypatch.setattr(mod, "_karcher_tangent_newton", spy_karcher)
    for top_k in (1, 2, 3):
        seen.clear()
        est = ACMGridSearch(inner_reference="shared_then_exact", top_k=top_k, **kw).fit(X, y)
        res = est.cv_results_
        resc = res["rescored"]
        members = {(p["order"], p["lag"]) for p, r in zip(res["params"], resc) if r}
        order1 = sorted(m for m in members if m[0] == 1)
        # top_k distinct members x 2 Cs; order 1 (no delays: one ACM for every lag) counts once
        assert len(members) - max(len(order1) - 1, 0) == top_k and resc.sum() == 2 * len(members)
        assert order1 in ([], [(1, 1), (1, 3)])  # scored once, shared by both lags
        if order1:
            i1 = [i for i, p in enumerate(res["params"]) if p["order"] == 1]
            np.testing.assert_array_equal(res["mean_test_score"][i1[:2]], res["mean_test_score"][i1[2:]])
        assert seen == [len(tr) for tr, _ in splits] * top_k  # inner-train rows only
        # re-scored members carry the exact scores, the others NaN and the last rank
        np.testing.assert_allclose(res["mean_test_score"][resc],
                                   exact.cv_results_["mean_test_score"][resc], rtol=0, atol=1e-9)
        assert np.isnan(res["mean_test_score"][~resc]).all()
        assert res["rank_test_score"][~resc].min() > res["rank_test_score"][resc].max()
        # the re-scored members are the best screened ones
        screen_best = {}
        for p, m in zip(res["params"], res["screen_mean_test_score"]):
            key = (p["order"], p["lag"])
            screen_best[key] = max(screen_best.get(key, -np.inf), m)
        chosen = {(p["order"], p["lag"]) for p, r in zip(res["params"], resc) if r}
        assert min(screen_best[c] for c in chosen) >= max(
            [v for c, v in screen_best.items() if c not in chosen], default=-np.inf)
        exact_best = (exact.best_params_["order"], exact.best_params_["lag"])
        if exact_best in chosen:
            assert est.best_params_ == exact.best_params_
            assert abs(est.best_score_ - exact.best_score_) < 1e-9
        else:
            assert est.best_score_ <= exact.best_score_
    with pytest.raises(ValueError, match="top_k"):
        ACMGridSearch(inner_reference="shared_then_exact", top_k=0, **kw).fit(X, y)


def test_fast_precomputed_svc_equals_sklearn_svc(rng):
    from sklearn.svm import SVC

    import neurodecode.models.acm_search as mod

    F = rng.standard_normal((40, 12))
    y = np.where(F[:, 0] + 0.5 * rng.standard_normal(40) > 0, "right", "left")
    K = F @ F.T
    tr, te = np.arange(30), np.arange(30, 40)
    for C in (0.01, 0.5, 1.5, 100.0):
        fast = mod._PrecomputedBinarySVC(C).fit(K[np.ix_(tr, tr)], y[tr])
        ref = SVC(kernel="precomputed", C=C).fit(K[np.ix_(tr, tr)], y[tr])
        np.testing.assert_array_equal(fast.classes_, ref.classes_)
        np.testing.assert_allclose(fast.decision_function(K[np.ix_(te, tr)]),
                                   ref.decision_function(K[np.ix_(te, tr)]), rtol=0, atol=1e-12)
        np.testing.assert_array_equal(fast.predict(K[np.ix_(te, tr)]), ref.predict(K[np.ix_(te, tr)]))
    # only where it gives SVC's numbers
    assert isinstance(mod._svm_precomputed(1.0, y, None, "roc_auc"), mod._PrecomputedBinarySVC)
    assert isinstance(mod._svm_precomputed(1.0, y, None, "f1_macro"), SVC)
    assert isinstance(mod._svm_precomputed(1.0, np.arange(40) % 3, None, "accuracy"), SVC)
