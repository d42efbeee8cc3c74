"""Connectivity: parity with nilearn's ConnectivityMeasure (1e-8) on real and simulated data."""

import warnings

import numpy as np
import pytest
from nilearn.connectome import ConnectivityMeasure
from sklearn.base import clone
from sklearn.covariance import EmpiricalCovariance
from sklearn.utils.estimator_checks import parametrize_with_checks

from neurodecode.preprocessing.connectivity import Connectivity, sym_matrix_to_vec
from neurodecode.simulation import simulate_fmri
from tests.conftest import require_dataset
from tests.sklearn_series_adapter import PARAM_CHECKS, SeriesAdapter

KINDS = ["correlation", "partial correlation", "covariance", "tangent", "precision"]


def _nilearn(kind, train, test, **kw):
    """nilearn on the transposed (T, n_rois) layout."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn warns when its mean hits max_iter
        ref = ConnectivityMeasure(kind=kind, vectorize=True, **kw).fit([x.T for x in train])
        return ref.transform([x.T for x in test])


def _assert_parity(train, test, kinds=KINDS, **kw):
    for kind in kinds:
        for dd in (True, False):
            ours = Connectivity(kind=kind, vectorize=True, discard_diagonal=dd, **kw).fit(train).transform(test)
            ref = _nilearn(kind, train, test, discard_diagonal=dd, **kw)
            assert ours.shape == ref.shape
            np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-8 * max(1.0, np.abs(ref).max()),
                                       err_msg=f"kind={kind}, discard_diagonal={dd}")


def test_parity_simulated_ragged():
    t = simulate_fmri(n_subjects=12, n_rois=8, n_times=(40, 70), random_state=0)
    _assert_parity(t.X[:9], t.X)


def test_parity_custom_estimator_and_array_input():
    t = simulate_fmri(n_subjects=6, n_rois=6, n_times=50, random_state=1)
    assert isinstance(t.X, np.ndarray)
    _assert_parity(t.X, t.X, kinds=["covariance", "correlation", "tangent"], cov_estimator=EmpiricalCovariance())


def _npz_series(path, idx, transpose=True):
    d = np.load(path)
    X, off = d["timeseries"], d["offsets"]
    return [X[off[i]:off[i + 1]].astype(np.float64).T for i in idx]


def test_parity_development_fmri():
    root = require_dataset("development_fmri", "development_fmri_basc064_timeseries.npz")
    series = _npz_series(root / "development_fmri_basc064_timeseries.npz", range(0, 155, 8))
    assert series[0].shape == (64, 168)
    _assert_parity(series[:-4], series)


def test_parity_abide_with_zero_rois():
    root = require_dataset("abide_pcp", "abide_pcp_cpac_filt_noglobal_rois_ho.npz")
    path = root / "abide_pcp_cpac_filt_noglobal_rois_ho.npz"
    d = np.load(path)
    ts, off = d["timeseries"], d["offsets"]
    zero_col = [i for i in range(0, 871, 7) if (np.abs(ts[off[i]:off[i + 1]]).max(0) == 0).any()][:2]
    idx = sorted(set(list(range(0, 871, 97)) + zero_col))  # several sites, ragged lengths, all-zero ROIs
    series = _npz_series(path, idx)
    assert {s.shape[0] for s in series} == {111} and len({s.shape[1] for s in series}) > 1
    _assert_parity(series[:-3], series)


def test_matrix_output_and_mean():
    t = simulate_fmri(n_subjects=5, n_rois=6, random_state=0)
    conn = Connectivity(kind="correlation", vectorize=False).fit(t.X)
    mats = conn.transform(t.X)
    assert mats.shape == (5, 6, 6)
    np.testing.assert_allclose(np.diagonal(mats, axis1=1, axis2=2), 1.0)
    np.testing.assert_allclose(conn.mean_, mats.mean(0), atol=1e-12)
    vec = sym_matrix_to_vec(mats, discard_diagonal=True)
    assert vec.shape == (5, 15)


def test_tangent_is_fitted_on_training_scans_only():
    t = simulate_fmri(n_subjects=10, n_rois=6, random_state=0)
    a = Connectivity(kind="tangent").fit(t.X[:5]).transform(t.X[5:])
    b = Connectivity(kind="tangent").fit(t.X).transform(t.X[5:])
    assert not np.allclose(a, b)


def test_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="kind"):
        Connectivity(kind="coherence").fit([rng.standard_normal((3, 20))])
    with pytest.raises(ValueError, match=r"X\[1\] has 4 ROIs"):
        Connectivity().fit([rng.standard_normal((3, 20)), rng.standard_normal((4, 20))])
    with pytest.raises(ValueError, match="NaN"):
        Connectivity().fit([np.full((3, 20), np.nan)])
    with pytest.raises(ValueError, match="expected \\(n_scans, n_rois, n_times\\)"):
        Connectivity().fit(rng.standard_normal((3, 20)))
    conn = Connectivity().fit([rng.standard_normal((3, 20))])
    with pytest.raises(ValueError, match="fitted on 3"):
        conn.transform([rng.standard_normal((5, 20))])


def test_clone_and_params():
    c = Connectivity(kind="tangent", discard_diagonal=True)
    c2 = clone(c)
    assert c2.get_params()["kind"] == "tangent" and c2.discard_diagonal


# Connectivity reads (n_scans, n_rois, n_times) or ragged lists and rejects 2-D
# tables by design (a 2-D array is ambiguous: one scan or a table). The generic
# checks run through `SeriesAdapter` (tests/sklearn_series_adapter.py), which maps
# each table row to one scan verbatim and calls the real Connectivity, so every
# check exercises its fit/transform, validation, cloning and pickling (no xfail).
@parametrize_with_checks([SeriesAdapter(Connectivity()), SeriesAdapter(Connectivity(kind="tangent"))])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_series_adapter_reaches_the_real_estimator():
    """The adapter must not validate in place of Connectivity: its errors and numbers are Connectivity's."""
    rng = np.random.default_rng(0)
    table = rng.standard_normal((6, 4))
    ad = SeriesAdapter(Connectivity(kind="tangent")).fit(table)
    series = ad._series(table)
    assert series.shape == (6, 3, 4 + 12)
    np.testing.assert_array_equal(series[:, 1, :4], np.roll(table, -1, axis=1))  # row values copied verbatim
    np.testing.assert_allclose(ad.transform(table), Connectivity(kind="tangent").fit(series).transform(series))
    table[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"^X contains NaN or inf$"):  # as_series_list's own message
        ad.transform(table)
    obj = table.astype(object)
    obj[0, 0] = {"a": 1}
    with pytest.raises(TypeError, match="float\\(\\) argument"):  # raised by Connectivity's float64 conversion
        SeriesAdapter(Connectivity()).fit(obj)


# The parameter checks above see the adapter's own parameters; run them on the
# bare estimator too (they never call fit, so no 2-D table reaches it).
@pytest.mark.parametrize("check", PARAM_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_param_checks_on_bare_estimator(check):
    check("Connectivity", Connectivity(kind="tangent", discard_diagonal=True))


_PROPERTIES = ["fit_y_ignored", "params_unchanged", "fit_returns_self", "readonly_memmap", "n_rois_and_shape_error",
               "dtypes", "nan_inf", "pickle", "f_contiguous", "list_input", "fit_transform_equals_transform",
               "sample_order", "subset", "one_scan", "dict_unchanged", "fit_idempotent", "check_is_fitted"]


@pytest.mark.parametrize("kind", ["correlation", "tangent"])
@pytest.mark.parametrize("prop", _PROPERTIES)
def test_sklearn_properties_on_scans(prop, kind, tmp_path):
    """The properties of the 2-D sklearn checks above, on (n_scans, n_rois, n_times) input."""
    import pickle

    import joblib
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    rng = np.random.default_rng(3)
    X = rng.standard_normal((8, 5, 60)) + 0.5 * rng.standard_normal((8, 1, 60))  # correlated ROIs
    est = Connectivity(kind=kind)
    ref = clone(est).fit(X).transform(X)
    if prop == "fit_y_ignored":
        np.testing.assert_allclose(clone(est).fit(X, np.arange(8)).transform(X), ref)
    elif prop == "params_unchanged":
        before = joblib.hash(est.get_params())
        public = {k for k in vars(est) if not k.startswith("_")}
        est.fit(X)
        assert joblib.hash(est.get_params()) == before
        added = {k for k in vars(est) if not k.startswith("_")} - public
        assert added and all(k.endswith("_") for k in added)
    elif prop == "fit_returns_self":
        assert est.fit(X) is est
    elif prop == "readonly_memmap":
        path = tmp_path / "x.npy"
        np.save(path, X)
        Xm = np.load(path, mmap_mode="r")
        np.testing.assert_allclose(clone(est).fit(Xm).transform(Xm), ref, atol=1e-12)
    elif prop == "n_rois_and_shape_error":
        assert clone(est).fit(X).n_rois_ == 5
        with pytest.raises(ValueError, match="fitted on 5"):
            clone(est).fit(X).transform(X[:, :4])
        with pytest.raises(ValueError, match="expected"):
            clone(est).fit(X[:, :, 0])
    elif prop == "dtypes":
        for dtype in (np.float32, np.int64, object):
            out = clone(est).fit(X.astype(dtype)).transform(X.astype(dtype))
            assert out.dtype == np.float64 and out.shape == ref.shape
        np.testing.assert_allclose(clone(est).fit(X.astype(object)).transform(X), ref, atol=1e-12)
    elif prop == "nan_inf":
        for bad in (np.nan, np.inf):
            Xb = X.copy()
            Xb[2, 1, 5] = bad
            with pytest.raises(ValueError, match="NaN or inf"):
                clone(est).fit(Xb)
            with pytest.raises(ValueError, match="NaN or inf"):
                clone(est).fit(X).transform(Xb)
    elif prop == "pickle":
        fitted = clone(est).fit(X)
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).transform(X), fitted.transform(X))
    elif prop == "f_contiguous":
        np.testing.assert_allclose(clone(est).fit(np.asfortranarray(X)).transform(np.asfortranarray(X)), ref,
                                   atol=1e-12)
    elif prop == "list_input":
        as_lists = [x.tolist() for x in X]
        np.testing.assert_allclose(clone(est).fit(as_lists).transform(as_lists), ref, atol=1e-12)
    elif prop == "fit_transform_equals_transform":
        np.testing.assert_allclose(clone(est).fit_transform(X), ref, atol=1e-12)
    elif prop == "sample_order":
        perm = np.random.default_rng(0).permutation(8)
        fitted = clone(est).fit(X)
        np.testing.assert_allclose(fitted.transform(X[perm]), fitted.transform(X)[perm], atol=1e-12)
    elif prop == "subset":
        fitted = clone(est).fit(X)
        np.testing.assert_allclose(np.concatenate([fitted.transform(X[:3]), fitted.transform(X[3:])]),
                                   fitted.transform(X), atol=1e-12)
    elif prop == "one_scan":
        out = clone(est).fit(X[:1]).transform(X[:1])
        assert out.shape == (1, ref.shape[1])
        if kind == "tangent":  # a scan is its own mean: zero tangent vector
            np.testing.assert_allclose(out, 0.0, atol=1e-10)
    elif prop == "dict_unchanged":
        fitted = clone(est).fit(X)
        before = joblib.hash(vars(fitted))
        fitted.transform(X)
        assert joblib.hash(vars(fitted)) == before
    elif prop == "fit_idempotent":
        fitted = clone(est).fit(X[:4]).fit(X)
        np.testing.assert_allclose(fitted.transform(X), ref, atol=1e-12)
    elif prop == "check_is_fitted":
        with pytest.raises(NotFittedError):
            check_is_fitted(clone(est))
        with pytest.raises(NotFittedError):
            clone(est).transform(X)
        check_is_fitted(clone(est).fit(X))


def test_fit_returns_self_and_pickles():
    import pickle

    t = simulate_fmri(n_subjects=4, n_rois=6, random_state=0)
    c = Connectivity(kind="tangent")
    assert c.fit(t.X) is c
    c2 = pickle.loads(pickle.dumps(c))
    np.testing.assert_array_equal(c.transform(t.X), c2.transform(t.X))


# ------------------------------------------------------------------ registered pipelines
CONN_PIPELINES = ["conn-corr-lr", "conn-partial-lr", "conn-tangent-lr", "conn-tangent-svm",
                  "conn-corr-confound-lr", "conn-tangent-confound-lr", "conn-corr-combat-lr",
                  "conn-tangent-combat-lr"]


def test_connectivity_pipelines_registered_and_routed():
    from neurodecode.evaluation.evaluate import _meta_consumers
    from neurodecode.pipelines import get_pipeline_info, list_pipelines, make_pipeline

    assert set(CONN_PIPELINES) <= set(list_pipelines("fmri"))
    for name in CONN_PIPELINES:
        info = get_pipeline_info(name)
        assert info.input_kind == "timeseries" and info.modality == ("fmri",)
        consumers = _meta_consumers(make_pipeline(name))
        # Only the confound variants read meta, and in fit *and* in predict (training coefficients at test).
        if "confound" in name or "combat" in name:
            assert {"fit", "predict", "decision_function"} <= consumers
        else:
            assert consumers == set()
    pipe = make_pipeline("conn-corr-confound-lr", confounds=("site",), C=0.5)
    assert pipe.named_steps["confound"].confounds == ("site",) and pipe.named_steps["classifier"].C == 0.5


def test_connectivity_pipelines_leave_site_out_on_simulated_sites():
    from neurodecode.evaluation import evaluate

    t = simulate_fmri(n_subjects=60, n_rois=10, n_times=(60, 80), n_sites=3, effect_size=0.8, random_state=0)
    rng = np.random.default_rng(0)
    t.meta["age"] = rng.uniform(8, 40, t.n_trials)
    t.meta["sex"] = rng.choice(["M", "F"], t.n_trials)
    t.meta["mean_fd"] = rng.uniform(0.05, 0.3, t.n_trials)
    df = evaluate(["conn-corr-lr", "conn-corr-confound-lr", "conn-tangent-combat-lr"], t, split="leave-site-out",
                  scoring="accuracy", progress=False)
    assert len(df) == 9 and df["score"].between(0, 1).all()
    # The planted effect is decodable across sites with and without confound removal.
    assert df.groupby("pipeline")["score"].mean().min() > 0.6


def test_development_child_vs_adult_tangent_next_to_nilearn():
    """Development fMRI (155 subjects, BASC-64): child vs adult with the registered ``conn-tangent-svm``
    and with nilearn ConnectivityMeasure(tangent) + LinearSVC, side by side on the same five folds
    (SOURCE.md's procedure: StratifiedKFold(5, shuffle, random_state=0), tangent fitted per training fold)."""
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import LinearSVC

    from neurodecode.io.fmri_roi import load_development_fmri
    from neurodecode.pipelines import make_pipeline

    require_dataset("development_fmri", "development_fmri_basc064_timeseries.npz")
    t = load_development_fmri()
    X = [np.asarray(x, dtype=np.float64) for x in t.X]
    y = np.asarray(t.y)
    assert len(X) == 155 and X[0].shape == (64, 168) and int(y.sum()) == 33  # 33 adults
    ours_acc, ref_acc = [], []
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(y)), y):
        est = make_pipeline("conn-tangent-svm").fit([X[i] for i in train], y[train])
        ours_pred = est.predict([X[i] for i in test])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nilearn warns when its mean hits max_iter
            cm = ConnectivityMeasure(kind="tangent", vectorize=True, discard_diagonal=True)
            ref_train = cm.fit_transform([X[i].T for i in train])
            ref_test = cm.transform([X[i].T for i in test])
        # Features equal to nilearn's (1e-8), so the same classifier makes the same predictions.
        ours_test = est.named_steps["connectivity"].transform([X[i] for i in test])
        np.testing.assert_allclose(ours_test, ref_test, rtol=0, atol=1e-8 * np.abs(ref_test).max())
        ref_pred = LinearSVC(C=1.0, max_iter=100000).fit(ref_train, y[train]).predict(ref_test)
        np.testing.assert_array_equal(ours_pred, ref_pred)
        ours_acc.append(np.mean(ours_pred == y[test]))
        ref_acc.append(np.mean(ref_pred == y[test]))
    assert np.mean(ours_acc) == np.mean(ref_acc)
    # Far above the majority class (122/155 = 0.787): the tangent features separate children from adults.
    assert np.mean(ours_acc) > 0.95
