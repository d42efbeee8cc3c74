"""Confound removal: nilearn-backed signal cleaning, leak-free sample-level regression, ComBat."""

import numpy as np
import pandas as pd
import pytest
from sklearn import config_context
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from neurodecode.evaluation import evaluate
from neurodecode.evaluation.statistics import chance_bound
from neurodecode.preprocessing.confounds import (
    ComBatHarmonizer,
    ConfoundRegressor,
    SignalCleaner,
    clean_signals,
    confound_columns,
    variance_explained,
)
from neurodecode.trials import Trials
from tests.sklearn_series_adapter import PARAM_CHECKS, SeriesAdapter

MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


def _run(rng, n_times=120, n_rois=6):
    table = pd.DataFrame(rng.standard_normal((n_times, 6)).cumsum(0) * 0.1, columns=MOTION)
    table["white_matter"] = rng.standard_normal(n_times)
    table["csf"] = rng.standard_normal(n_times)
    table["global_signal"] = rng.standard_normal(n_times)
    fd = np.abs(rng.standard_normal(n_times)) * 0.2
    fd[0] = np.nan  # as fMRIPrep writes it
    table["framewise_displacement"] = fd
    mix = rng.standard_normal((n_rois, 9))
    x = rng.standard_normal((n_rois, n_times)) + mix @ table[MOTION + ["white_matter", "csf", "global_signal"]].T.values
    return x, table


# ------------------------------------------------------------------ signal level
def test_confound_columns_strategies():
    cols, friston = confound_columns("motion24+wm_csf+gsr")
    assert cols == MOTION + ["white_matter", "csf", "global_signal"] and friston
    assert confound_columns("none") == ([], False)
    with pytest.raises(ValueError, match="unknown part"):
        confound_columns("motion6+acompcor")


def test_clean_signals_matches_nilearn_per_run():
    from nilearn.signal import clean

    rng = np.random.default_rng(0)
    runs = [_run(rng, n_times=t) for t in (100, 140)]  # ragged
    out = clean_signals([r[0] for r in runs], [r[1] for r in runs], strategy="motion6+wm_csf",
                        tr=[2.0, 2.5], high_pass=0.01, low_pass=0.1)
    for (x, table), o, tr in zip(runs, out, (2.0, 2.5)):
        ref = clean(x.T, confounds=table[MOTION + ["white_matter", "csf"]].values, t_r=tr,
                    high_pass=0.01, low_pass=0.1, detrend=True, standardize="zscore_sample")
        np.testing.assert_allclose(o, ref.T, atol=1e-10)
        assert o.shape == x.shape


@pytest.mark.parametrize("strategy,removed,kept", [
    ("motion6", MOTION, ["white_matter", "global_signal"]),
    ("motion6+wm_csf", MOTION + ["white_matter", "csf"], ["global_signal"]),
    ("motion6+gsr", MOTION + ["global_signal"], ["csf"]),
])
def test_strategies_remove_their_columns_only(strategy, removed, kept):
    rng = np.random.default_rng(1)
    x, table = _run(rng, n_times=300)
    out = clean_signals([x], [table], strategy=strategy, detrend=False, standardize=False)[0]
    centred = out - out.mean(1, keepdims=True)
    for col in removed:  # cleaned series are orthogonal to every regressed column
        c = table[col].to_numpy() - table[col].mean()
        assert np.abs(centred @ c).max() / (np.linalg.norm(centred, axis=1).max() * np.linalg.norm(c)) < 1e-8
    for col in kept:  # and still correlated with the columns left in
        c = table[col].to_numpy()
        assert max(abs(np.corrcoef(row, c)[0, 1]) for row in out) > 0.1


def test_motion24_regresses_derivatives_and_squares():
    rng = np.random.default_rng(2)
    x, table = _run(rng, n_times=300)
    sq = (table["trans_x"] ** 2).to_numpy()
    x = x + 10 * sq
    o6 = clean_signals([x], [table], strategy="motion6", standardize=False, detrend=False)[0]
    o24 = clean_signals([x], [table], strategy="motion24", standardize=False, detrend=False)[0]
    r6 = abs(np.corrcoef(o6[0], sq)[0, 1])
    r24 = abs(np.corrcoef(o24[0], sq)[0, 1])
    assert r6 > 0.1 and r24 < 1e-6


def test_scrubbing_drops_high_fd_volumes():
    rng = np.random.default_rng(3)
    x, table = _run(rng, n_times=150)
    fd = table["framewise_displacement"].fillna(0).to_numpy()
    out = clean_signals([x], [table], strategy="motion6", tr=2.0, fd_threshold=0.2)[0]
    assert out.shape == (x.shape[0], int((fd <= 0.2).sum()))
    with pytest.raises(ValueError, match="volumes left after scrubbing"):
        clean_signals([x], [table], strategy="motion6", fd_threshold=0.0, tr=2.0)


def test_clean_signals_errors():
    rng = np.random.default_rng(4)
    x, table = _run(rng)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['csf'\]"):
        clean_signals([x], [table.drop(columns="csf")], strategy="wm_csf")
    with pytest.raises(ValueError, match="has 119 rows but series_list\\[0\\] has 120"):
        clean_signals([x], [table.iloc[1:]], strategy="motion6")
    with pytest.raises(ValueError, match="tr is needed"):
        clean_signals([x], low_pass=0.1)
    with pytest.raises(ValueError, match="framewise_displacement"):
        clean_signals([x], [table.drop(columns="framewise_displacement")], fd_threshold=0.5, tr=2.0)
    with pytest.raises(ValueError, match="confounds has 2 entries for 1 runs"):
        clean_signals([x], [table, table])


def test_signal_cleaner_reads_meta_through_routing():
    rng = np.random.default_rng(5)
    runs = [_run(rng) for _ in range(3)]
    X = [r[0] for r in runs]
    meta = pd.DataFrame({"confounds": [r[1] for r in runs], "tr": [2.0, 2.0, 2.0]})
    cleaner = SignalCleaner(strategy="motion6", high_pass=0.01)
    direct = cleaner.fit(X, meta=meta).transform(X, meta=meta)
    ref = clean_signals(X, [r[1] for r in runs], strategy="motion6", tr=2.0, high_pass=0.01)
    for a, b in zip(direct, ref):
        np.testing.assert_allclose(a, b)
    from sklearn.pipeline import Pipeline

    from neurodecode.preprocessing.connectivity import Connectivity

    with config_context(enable_metadata_routing=True):
        pipe = Pipeline([("clean", clone(cleaner)), ("conn", Connectivity())]).fit(X, meta=meta)
        feats = pipe.transform(X, meta=meta)
    np.testing.assert_allclose(feats, Connectivity().fit_transform(ref), atol=1e-12)


# ------------------------------------------------------------------ sample level
def _confounded(n=400, n_features=20, real_effect=0.0, seed=0):
    """Features driven by age and site; y = older half (confound only) unless real_effect > 0."""
    rng = np.random.default_rng(seed)
    site = rng.choice(["A", "B", "C", "D"], n)
    age = rng.uniform(6, 40, n) + (site == "B") * 5
    if real_effect:
        y = rng.integers(0, 2, n)
    else:
        y = (age > np.median(age)).astype(int)
    site_shift = pd.Series(site).map({"A": 0.0, "B": 1.0, "C": -1.0, "D": 0.5}).to_numpy()
    X = rng.standard_normal((n, n_features))
    X += ((age - age.mean()) / age.std())[:, None] * rng.uniform(0.5, 1.5, n_features)
    X += site_shift[:, None] * rng.uniform(0.5, 1.5, n_features)
    X[:, :5] += real_effect * y[:, None]
    meta = pd.DataFrame({"subject": np.arange(n).astype(str), "site": site, "age": age})
    return Trials(X, y, meta, sfreq=float("nan"), modality="fmri", name="confounded")


def _pooled_accuracy(pipe, trials):
    df = evaluate({"p": pipe}, trials, split="grouped-kfold", scoring="accuracy", progress=False,
                  split_params={"n_splits": 5})
    return float((df["score"] * df["n_test"]).sum() / df["n_test"].sum())


def test_confound_only_label_falls_to_chance_after_removal():
    t = _confounded()
    bound = chance_bound("accuracy", t.n_trials)
    raw = _pooled_accuracy(make_pipeline(LogisticRegression()), t)
    cleaned = _pooled_accuracy(make_pipeline(ConfoundRegressor(confounds=("age", "site")), LogisticRegression()), t)
    assert raw > 0.75                       # the confound makes the label decodable
    assert cleaned < bound                  # not above chance (binomial, alpha=0.05) once removed in-fold
    assert cleaned > 1 - bound - 0.05       # nor far below chance


def test_real_effect_survives_removal():
    t = _confounded(real_effect=1.0, seed=1)
    bound = chance_bound("accuracy", t.n_trials)
    raw = _pooled_accuracy(make_pipeline(LogisticRegression()), t)
    cleaned = _pooled_accuracy(make_pipeline(ConfoundRegressor(confounds=("age", "site")), LogisticRegression()), t)
    assert cleaned > bound + 0.1
    assert cleaned >= raw - 0.03  # removing nuisance variance does not hurt a real effect


def test_coefficients_come_from_training_rows_only():
    t = _confounded(seed=2)
    X, meta = t.X, t.meta
    train, test = np.arange(300), np.arange(300, 400)
    cr = ConfoundRegressor(confounds=("age", "site")).fit(X[train], meta=meta.iloc[train])
    # Hand-made design on the training rows: centred, scaled age + centred one-hot site.
    m = meta.iloc[train]
    age = m["age"].to_numpy()
    levels = sorted(m["site"].unique())
    onehot = (m["site"].to_numpy()[:, None] == np.array(levels)).astype(float)
    freq = onehot.mean(0)
    D = np.hstack([((age - age.mean()) / age.std())[:, None], onehot - freq])
    sol = np.linalg.lstsq(np.hstack([np.ones((300, 1)), D]), X[train], rcond=None)[0]
    np.testing.assert_allclose(D @ cr.coef_, D @ sol[1:], atol=1e-10)
    # Test rows are corrected with the training coefficients, whatever the test rows hold.
    mt = meta.iloc[test]
    onehot_t = (mt["site"].to_numpy()[:, None] == np.array(levels)).astype(float)
    Dt = np.hstack([((mt["age"].to_numpy() - age.mean()) / age.std())[:, None], onehot_t - freq])
    np.testing.assert_allclose(cr.transform(X[test], meta=mt), X[test] - Dt @ sol[1:], atol=1e-10)
    scrambled = X.copy()
    scrambled[test] = np.random.default_rng(0).standard_normal((100, X.shape[1])) * 100
    cr2 = ConfoundRegressor(confounds=("age", "site")).fit(scrambled[train], meta=meta.iloc[train])
    np.testing.assert_array_equal(cr2.coef_, cr.coef_)
    # Fitted on all rows (the leaky way) the coefficients differ.
    leaky = ConfoundRegressor(confounds=("age", "site")).fit(X, meta=meta)
    assert not np.allclose(leaky.transform(X[test], meta=mt), cr.transform(X[test], meta=mt))
    # Training residuals are exactly orthogonal to the training confounds; test residuals are not forced to be.
    assert np.abs(D.T @ cr.transform(X[train], meta=m)).max() < 1e-8


def test_confound_regressor_unseen_level_and_errors():
    t = _confounded(seed=3)
    X, meta = t.X, t.meta
    train = (meta["site"] != "D").to_numpy()
    cr = ConfoundRegressor(confounds=("site",)).fit(X[train], meta=meta[train])
    out = cr.transform(X[~train], meta=meta[~train])
    # An unseen site gets the training-average site effect removed, i.e. nothing beyond the mean.
    np.testing.assert_allclose(out, X[~train], atol=1e-10)
    with pytest.raises(ValueError, match=r"level\(s\) \['D'\] unseen"):
        ConfoundRegressor(confounds=("site",), handle_unknown="error").fit(
            X[train], meta=meta[train]).transform(X[~train], meta=meta[~train])
    with pytest.raises(ValueError, match="needs meta"):
        ConfoundRegressor().fit(X)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['mean_fd'\]"):
        ConfoundRegressor(confounds=("site", "mean_fd")).fit(X, meta=meta)
    with pytest.raises(ValueError, match="meta has 10 rows but X has 400"):
        ConfoundRegressor(confounds=("site",)).fit(X, meta=meta.iloc[:10])


# ------------------------------------------------------------------ ComBat
def _sites(n_per=40, n_features=30, seed=0, sites=("A", "B", "C", "D")):
    rng = np.random.default_rng(seed)
    site = np.repeat(sites, n_per)
    age = rng.uniform(8, 40, len(site))
    X = rng.standard_normal((len(site), n_features))
    age_effect = rng.uniform(0.5, 1.0, n_features)
    for i, s in enumerate(sites):
        rows = site == s
        X[rows] = X[rows] * (0.5 + 0.5 * i) + rng.normal(2.0 * i - 3, 0.3, n_features)
    X += ((age - 24) / 10)[:, None] * age_effect  # ComBat's model: covariate effects common to all sites
    return X, pd.DataFrame({"site": site, "age": age})


def test_combat_removes_site_variance_and_keeps_covariates():
    X, meta = _sites()
    before = variance_explained(X, meta["site"])
    Xh = ComBatHarmonizer(covariates=("age",)).fit_transform(X, meta=meta)
    after = variance_explained(Xh, meta["site"])
    assert before > 0.5 and after < 0.01
    r_before = np.mean([abs(np.corrcoef(Xh[:, j], meta["age"])[0, 1]) for j in range(X.shape[1])])
    Xno = ComBatHarmonizer().fit_transform(X, meta=meta)
    assert r_before > 0.4
    # Per-site scales are equalised too.
    sd = [Xh[meta["site"] == s].std(0).mean() for s in "ABCD"]
    assert max(sd) / min(sd) < 1.3
    assert variance_explained(Xno, meta["site"]) < 0.01


def test_combat_without_eb_matches_hand_computation():
    X, meta = _sites(n_features=5)
    cb = ComBatHarmonizer(empirical_bayes=False).fit(X, meta=meta)
    site = meta["site"].to_numpy()
    means = np.stack([X[site == s].mean(0) for s in "ABCD"])
    alpha = np.mean(means, axis=0)  # equal site sizes
    sigma = np.sqrt(np.mean((X - means[np.searchsorted(list("ABCD"), site)]) ** 2, axis=0))
    np.testing.assert_allclose(cb.alpha_, alpha, atol=1e-10)
    np.testing.assert_allclose(cb.sigma_, sigma, atol=1e-10)
    Z = (X - alpha) / sigma
    np.testing.assert_allclose(cb.gamma_, np.stack([Z[site == s].mean(0) for s in "ABCD"]), atol=1e-10)
    np.testing.assert_allclose(cb.delta_, np.stack([Z[site == s].var(0, ddof=1) for s in "ABCD"]), atol=1e-10)


def test_combat_unseen_site():
    X, meta = _sites(seed=1, sites=("A", "B", "C", "D", "E"))
    train = (meta["site"] != "E").to_numpy()
    cb = ComBatHarmonizer().fit(X[train], meta=meta[train])
    with pytest.raises(ValueError, match=r"site\(s\) \['E'\] were not in the training rows.*unseen_site='estimate'"):
        cb.transform(X[~train], meta=meta[~train])
    est = ComBatHarmonizer(unseen_site="estimate").fit(X[train], meta=meta[train])
    Xh = np.vstack([est.transform(X[train], meta=meta[train]), est.transform(X[~train], meta=meta[~train])])
    assert variance_explained(Xh, np.r_[meta["site"][train], meta["site"][~train]]) < 0.02
    # Training rows are transformed from training estimates alone: same whatever the test rows are.
    np.testing.assert_array_equal(est.transform(X[train], meta=meta[train]), cb.transform(X[train], meta=meta[train]))
    with pytest.raises(ValueError, match="min_site_rows"):
        est.transform(X[~train][:1], meta=meta[~train].iloc[:1])


def test_combat_in_leave_site_out_pipeline():
    X, meta = _sites(seed=2)
    meta["subject"] = np.arange(len(meta)).astype(str)
    y = (meta["age"] > 24).astype(int).to_numpy()
    t = Trials(X, y, meta, sfreq=float("nan"), modality="fmri", name="sites")
    pipe = make_pipeline(ComBatHarmonizer(covariates=("age",), unseen_site="estimate"), LogisticRegression())
    df = evaluate({"combat": pipe}, t, split="leave-site-out", scoring="accuracy", progress=False)
    assert len(df) == 4 and df["score"].notna().all()


def test_variance_explained():
    assert variance_explained(np.array([[0.0], [0.0], [1.0], [1.0]]), list("aabb")) == 1.0
    rng = np.random.default_rng(0)
    assert variance_explained(rng.standard_normal((1000, 5)), rng.integers(0, 2, 1000)) < 0.01


# ComBatHarmonizer without meta treats all rows as one site, so it takes every generic check.
# SignalCleaner reads ROI series (3-D / ragged) and rejects 2-D tables by design: its
# checks run through `SeriesAdapter` (tests/sklearn_series_adapter.py), which maps each
# table row to one run verbatim and calls the real SignalCleaner (no xfail).
@parametrize_with_checks([ComBatHarmonizer(), SeriesAdapter(SignalCleaner()), SeriesAdapter(SignalCleaner(strategy=None))])
def test_sklearn_compatible(estimator, check):
    check(estimator)


# The parameter checks above see the adapter's own parameters; run them on the bare
# SignalCleaner too (they never call fit, so no 2-D table reaches it).
@pytest.mark.parametrize("check", PARAM_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_param_checks_on_bare_signal_cleaner(check):
    check("SignalCleaner", SignalCleaner(tr=2.0, high_pass=0.01))


def test_confound_regressor_clone_and_params():
    cr = ConfoundRegressor(confounds=("age",), handle_unknown="error")
    assert clone(cr).get_params() == cr.get_params()
    with config_context(enable_metadata_routing=True):
        from sklearn.utils.metadata_routing import get_routing_for_object

        routing = get_routing_for_object(cr)
        assert routing.consumes("fit", ["meta"]) == {"meta"}
        assert routing.consumes("transform", ["meta"]) == {"meta"}
