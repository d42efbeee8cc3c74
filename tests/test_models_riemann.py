"""Riemannian estimators: pyRiemann 0.12 parity (float64, 1e-8), sklearn checks, pipelines."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils import check_array

warnings.filterwarnings("ignore", category=DeprecationWarning)
import pyriemann.classification as pclf  # noqa: E402
import pyriemann.tangentspace as pts  # noqa: E402
from pyriemann.estimation import Covariances as PCovariances  # noqa: E402

from neurodecode.models.alignment import Recentering  # noqa: E402
from neurodecode.models.mdm import MDM, FgMDM  # noqa: E402
from neurodecode.models.tangent import FGDA, TangentSpace  # noqa: E402
from neurodecode.preprocessing.covariance import covariances  # noqa: E402
from neurodecode.simulation import simulate_eeg  # noqa: E402

from conftest import require_dataset  # noqa: E402

torch.set_num_threads(1)
ATOL = 1e-8
METRICS = ["riemann", "logeuclid", "euclid"]


# ------------------------------------------------------------ sklearn checks
def _vectors_to_spd(X):
    """Feature vectors → SPD matrices ``Q diag(exp(asinh x)) Qᵀ`` (Q a fixed rotation per size).

    scikit-learn's checks generate 2-D feature arrays, while the Riemannian
    estimators take stacks of SPD matrices (as pyRiemann's do). This map is
    deterministic, row by row and injective, keeps the number of features as
    the matrix size, and the affine-invariant distance between two images is
    the Euclidean distance between ``asinh`` of the vectors, so the class structure of the
    checks' data survives. Input validation (NaN, complex, sparse, empty) is
    scikit-learn's own ``check_array``.
    """
    X = check_array(X)
    n = X.shape[1]
    Q, _ = np.linalg.qr(np.random.default_rng(n).standard_normal((n, n)))
    # exp(asinh(x)) = x + sqrt(1 + x^2): positive, close to linear for |x| <~ 1
    # (so Euclidean MDM also sees the classes), logarithmic in the tails.
    return (Q * np.exp(np.arcsinh(X))[:, None, :]) @ Q.T


class _SPDInput:
    """Mixin for test-only subclasses: map 2-D check data to SPD matrices first."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.input_tags.three_d_array = False
        return tags


class SPDTangentSpace(_SPDInput, TangentSpace):
    def fit(self, X, y=None, sample_weight=None):
        return super().fit(_vectors_to_spd(X), y, sample_weight)

    def transform(self, X):
        return super().transform(_vectors_to_spd(X))

    def fit_transform(self, X, y=None, sample_weight=None):
        return super().fit_transform(_vectors_to_spd(X), y, sample_weight)


class SPDFGDA(_SPDInput, FGDA):
    def fit(self, X, y):
        return super().fit(_vectors_to_spd(X), y)

    def transform(self, X):
        return super().transform(_vectors_to_spd(X))

    def fit_transform(self, X, y=None):
        return super().fit_transform(_vectors_to_spd(X), y)


class SPDMDM(_SPDInput, MDM):
    def fit(self, X, y, sample_weight=None):
        return super().fit(_vectors_to_spd(X), y, sample_weight)

    def transform(self, X):
        return super().transform(_vectors_to_spd(X))

    def fit_transform(self, X, y=None, sample_weight=None):
        return super().fit_transform(_vectors_to_spd(X), y, sample_weight)

    def predict(self, X):
        return super().predict(_vectors_to_spd(X))

    def predict_proba(self, X):
        return super().predict_proba(_vectors_to_spd(X))


class SPDFgMDM(_SPDInput, FgMDM):
    def fit(self, X, y):
        return super().fit(_vectors_to_spd(X), y)

    def transform(self, X):
        return super().transform(_vectors_to_spd(X))

    def predict(self, X):
        return super().predict(_vectors_to_spd(X))

    def predict_proba(self, X):
        return super().predict_proba(_vectors_to_spd(X))


class SPDRecentering(_SPDInput, Recentering):
    def fit(self, X, y=None, meta=None):
        return super().fit(_vectors_to_spd(X), y, meta)

    def transform(self, X, meta=None):
        return super().transform(_vectors_to_spd(X), meta)

    def fit_transform(self, X, y=None, meta=None):
        return super().fit_transform(_vectors_to_spd(X), y, meta)


def _checked():
    return [
        SPDTangentSpace(device="cpu"),
        SPDTangentSpace(metric="logeuclid", device="cpu"),
        SPDMDM(device="cpu"),
        SPDMDM(metric="logeuclid", device="cpu"),
        SPDMDM(metric="euclid", device="cpu"),
        SPDFgMDM(device="cpu"),
        SPDFGDA(device="cpu"),
        SPDRecentering(device="cpu"),
    ]


@parametrize_with_checks(_checked())
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("est", [TangentSpace(), MDM(), FgMDM(), FGDA(), Recentering()])
def test_clone_and_params_roundtrip(est):
    c = clone(est)
    assert c.get_params() == est.get_params()
    assert not any(k.endswith("_") for k in vars(c))


# ------------------------------------------------------------ parity, simulated
@pytest.fixture(scope="module")
def sim():
    t = simulate_eeg(n_subjects=3, n_trials=40, n_channels=12, n_times=256, random_state=1)
    return t, covariances(t.X, "oas", device="cpu")


def _split(C, y, n_train):
    return C[:n_train], y[:n_train], C[n_train:]


def _assert_ts_parity(C, y, metric, n_train):
    Ctr, _, Cte = _split(C, y, n_train)
    ours = TangentSpace(metric=metric, device="cpu").fit(Ctr)
    ref = pts.TangentSpace(metric=metric).fit(Ctr)
    # Matrices of real EEG are ~1e-10 V^2: compare relative to their scale.
    scale = np.abs(ref.reference_).max()
    np.testing.assert_allclose(ours.reference_ / scale, ref.reference_ / scale, atol=ATOL, rtol=0)
    np.testing.assert_allclose(ours.transform(Cte), ref.transform(Cte), atol=ATOL, rtol=0)
    np.testing.assert_allclose(ours.fit_transform(Ctr), ref.fit_transform(Ctr), atol=ATOL, rtol=0)
    V = ref.transform(Cte)
    np.testing.assert_allclose(ours.inverse_transform(V) / scale, ref.inverse_transform(V) / scale,
                               atol=ATOL, rtol=0)


def _assert_mdm_parity(C, y, metric, n_train):
    Ctr, ytr, Cte = _split(C, y, n_train)
    ours = MDM(metric=metric, device="cpu").fit(Ctr, ytr)
    ref = pclf.MDM(metric=metric).fit(Ctr, ytr)
    scale = np.abs(ref.covmeans_).max()
    np.testing.assert_allclose(ours.covmeans_ / scale, ref.covmeans_ / scale, atol=ATOL, rtol=0)
    np.testing.assert_allclose(ours.transform(Cte), ref.transform(Cte), atol=ATOL, rtol=0)
    np.testing.assert_allclose(ours.predict_proba(Cte), ref.predict_proba(Cte), atol=ATOL, rtol=0)
    np.testing.assert_array_equal(ours.predict(Cte), ref.predict(Cte))


def _assert_fgmdm_parity(C, y, n_train):
    Ctr, ytr, Cte = _split(C, y, n_train)
    ours = FgMDM(device="cpu").fit(Ctr, ytr)
    ref = pclf.FgMDM().fit(Ctr, ytr)
    np.testing.assert_allclose(ours.transform(Cte), ref.transform(Cte), atol=ATOL, rtol=0)
    np.testing.assert_allclose(ours.predict_proba(Cte), ref.predict_proba(Cte), atol=ATOL, rtol=0)
    np.testing.assert_array_equal(ours.predict(Cte), ref.predict(Cte))


def _assert_ts_lr_parity(C, y, n_train):
    Ctr, ytr, Cte = _split(C, y, n_train)
    ours = make_pipeline(TangentSpace(device="cpu"), LogisticRegression()).fit(Ctr, ytr)
    ref = make_pipeline(pts.TangentSpace(), LogisticRegression()).fit(Ctr, ytr)
    np.testing.assert_array_equal(ours.predict(Cte), ref.predict(Cte))
    np.testing.assert_allclose(ours.predict_proba(Cte), ref.predict_proba(Cte), atol=1e-6, rtol=0)


def test_covariances_match_pyriemann_sim(sim):
    t, C = sim
    np.testing.assert_allclose(C, PCovariances("oas").fit_transform(t.X), atol=ATOL, rtol=0)


@pytest.mark.parametrize("metric", METRICS)
def test_tangent_space_matches_pyriemann_sim(sim, metric):
    t, C = sim
    _assert_ts_parity(C, t.y, metric, 80)


def test_tangent_space_dict_metric_and_tsupdate(sim):
    t, C = sim
    metric = {"mean": "logeuclid", "map": "riemann"}
    ours = TangentSpace(metric=metric, tsupdate=True, device="cpu").fit(C[:80])
    ref = pts.TangentSpace(metric=metric, tsupdate=True).fit(C[:80])
    np.testing.assert_allclose(ours.transform(C[80:]), ref.transform(C[80:]), atol=ATOL, rtol=0)
    # tsupdate really re-centres on the test batch: the batch mean maps to ~0
    no_update = TangentSpace(metric=metric, device="cpu").fit(C[:80]).transform(C[80:])
    assert np.abs(no_update - ours.transform(C[80:])).max() > 1e-3


@pytest.mark.parametrize("metric", METRICS)
def test_mdm_matches_pyriemann_sim(sim, metric):
    t, C = sim
    _assert_mdm_parity(C, t.y, metric, 80)


def test_mdm_multiclass_and_sample_weight(rng):
    t = simulate_eeg(n_subjects=1, n_trials=60, n_channels=6, n_classes=3, random_state=2)
    C = covariances(t.X, "lwf", device="cpu")
    w = rng.uniform(0.5, 2.0, size=len(C))
    ours = MDM(device="cpu").fit(C, t.y, sample_weight=w)
    ref = pclf.MDM().fit(C, t.y, sample_weight=w)
    np.testing.assert_allclose(ours.predict_proba(C), ref.predict_proba(C), atol=ATOL, rtol=0)
    assert ours.predict_proba(C).shape == (60, 3)
    assert (ours.predict(C) == t.y).mean() > 0.6  # class information is in the covariance


def test_fgmdm_matches_pyriemann_sim(sim):
    t, C = sim
    _assert_fgmdm_parity(C, t.y, 80)


def test_ts_lr_matches_pyriemann_sim(sim):
    t, C = sim
    _assert_ts_lr_parity(C, t.y, 80)


def test_inputs_are_checked():
    C = np.stack([np.eye(3)] * 4)
    with pytest.raises(ValueError, match="square matrices"):
        TangentSpace().fit(np.ones((4, 3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        MDM().fit(np.full((4, 3, 3), np.nan), [0, 1, 0, 1])
    mdm = MDM(device="cpu").fit(C, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="expecting 3 features"):
        mdm.predict(np.stack([np.eye(4)] * 2))
    with pytest.raises(ValueError, match="metric"):
        MDM(metric="wasserstein").fit(C, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="not positive definite"):
        TangentSpace(device="cpu").fit(np.stack([np.diag([1.0, 1.0, -1.0])] * 4))


# ------------------------------------------------------------ re-centering
def test_recentering_whitens_each_subject():
    t = simulate_eeg(n_subjects=3, n_trials=30, n_channels=6, subject_shift=1.5, random_state=3)
    C = covariances(t.X, "oas", device="cpu")
    rc = Recentering(device="cpu")
    out = rc.fit_transform(C, meta=t.meta)
    from neurodecode.riemann import mean_riemann

    for s in np.unique(t.meta["subject"]):
        sel = (t.meta["subject"] == s).to_numpy()
        np.testing.assert_allclose(mean_riemann(out[sel], device="cpu"), np.eye(6), atol=1e-7)
    # each subject's own mean, not a global one: the same matrices whitened together differ
    assert np.abs(Recentering(device="cpu").fit_transform(C) - out).max() > 1e-2


def test_recentering_held_out_subject_uses_its_own_unlabeled_trials():
    t = simulate_eeg(n_subjects=3, n_trials=30, n_channels=6, subject_shift=1.5, random_state=4)
    C = covariances(t.X, "oas", device="cpu")
    train = (t.meta["subject"] != 3).to_numpy()
    rc = Recentering(device="cpu").fit(C[train], meta=t.meta[train].reset_index(drop=True))
    assert set(rc.means_) == {1, 2}
    test_meta = t.meta[~train].reset_index(drop=True)
    out = rc.transform(C[~train], meta=test_meta)
    from neurodecode.riemann import mean_riemann

    np.testing.assert_allclose(mean_riemann(out, device="cpu"), np.eye(6), atol=1e-7)
    # a subject seen in fit keeps its training mean (test trials of a seen subject are not used)
    first = np.flatnonzero(train)[:5]
    assert (t.meta["subject"].to_numpy()[first] == 1).all()
    seen = rc.transform(C[first], meta=t.meta.iloc[first].reset_index(drop=True))
    from neurodecode.riemann import invsqrtm

    W = invsqrtm(rc.means_[1], device="cpu")
    np.testing.assert_allclose(seen, W @ C[first] @ W, atol=1e-10)
    with pytest.raises(ValueError, match="no column 'subject'"):
        rc.transform(C[~train], meta=pd.DataFrame({"x": np.zeros((~train).sum())}))
    with pytest.raises(ValueError, match="rows"):
        rc.transform(C[~train], meta=test_meta.iloc[:3])


def test_recentering_meta_reaches_it_through_routing():
    import sklearn

    t = simulate_eeg(n_subjects=3, n_trials=20, n_channels=6, random_state=5)
    pipe = make_pipeline(Recentering(device="cpu"), TangentSpace(device="cpu"), LogisticRegression())
    C = covariances(t.X, "oas", device="cpu")
    with sklearn.config_context(enable_metadata_routing=True):
        pipe.fit(C, t.y, meta=t.meta)
        proba = pipe.predict_proba(C, meta=t.meta)
    assert set(pipe[0].means_) == {1, 2, 3}
    assert proba.shape == (60, 2)


# ------------------------------------------------------------ real data parity
def _physionet_epochs(subjects, n_trials=24):
    """Band-passed 8-32 Hz, [0, 3] s left/right imagery epochs read with MNE (as MOABB does)."""
    import mne

    root = require_dataset("mne_data", "MNE-eegbci-data")
    mne.set_log_level("ERROR")
    out = []
    for s in subjects:
        files = [root / "MNE-eegbci-data/files/eegmmidb/1.0.0" / f"S{s:03d}" / f"S{s:03d}R{r:02d}.edf"
                 for r in (4, 8, 12)]
        raw = mne.concatenate_raws([mne.io.read_raw_edf(f, preload=True) for f in files])
        raw.filter(8.0, 32.0, method="iir", picks="eeg")
        events, ids = mne.events_from_annotations(raw, event_id={"T1": 1, "T2": 2})
        ep = mne.Epochs(raw, events, ids, tmin=0.0, tmax=3.0, baseline=None, preload=True)
        out.append((ep.get_data()[:n_trials], ep.events[:n_trials, 2]))
    return out


@pytest.fixture(scope="module")
def physionet():
    return _physionet_epochs([1, 2, 7])


def test_parity_on_physionet(physionet):
    for X, y in physionet:
        C = covariances(X, "oas", device="cpu")
        Cp = PCovariances("oas").fit_transform(X)
        scale = np.abs(Cp).max()
        np.testing.assert_allclose(C / scale, Cp / scale, atol=ATOL, rtol=0)
        n_train = 16
        for metric in ("riemann", "logeuclid"):
            _assert_ts_parity(Cp, y, metric, n_train)
            _assert_mdm_parity(Cp, y, metric, n_train)
        # FGDA's shrinkage LDA solves a dense n_ts x n_ts system (2080 for 64 channels,
        # tens of seconds for both libraries): check it on 16 of the channels.
        _assert_fgmdm_parity(Cp[:, :16, :16], y, n_train)
        _assert_ts_lr_parity(Cp, y, n_train)


def test_parity_on_dog1():
    require_dataset("kaggle_seizure_dog1", "dog1_ictal_interictal.npz")
    from neurodecode.io.seizure import load_dog1_seizure

    t = load_dog1_seizure()
    # ictal clips and interictal clips from several runs; float32 storage -> float64 compute
    idx = np.r_[np.flatnonzero(t.y == 1)[::6], np.flatnonzero(t.y == 0)[::12]]
    X = t.X[idx].astype(np.float64)
    y = t.y[idx]
    perm = np.random.default_rng(0).permutation(len(idx))
    X, y = X[perm], y[perm]
    C = covariances(X, "oas", device="cpu")
    Cp = PCovariances("oas").fit_transform(X)
    scale = np.abs(Cp).max()
    np.testing.assert_allclose(C / scale, Cp / scale, atol=ATOL, rtol=0)
    from pyriemann.geometry.distance import distance as pdistance
    # pyRiemann 0.12's mean_covariance ignores metric= and sample_weight= (it calls
    # gmean(X, metric="riemann", sample_weight=None)); gmean is the reference.
    from pyriemann.geometry.mean import gmean as pmean

    from neurodecode.riemann import distance as ndistance
    from neurodecode.riemann import mean_covariance as nmean

    for metric in METRICS:
        M = pmean(Cp, metric=metric)
        np.testing.assert_allclose(nmean(Cp, metric, device="cpu") / scale, M / scale, atol=ATOL, rtol=0)
        np.testing.assert_allclose(ndistance(Cp, M, metric, device="cpu"), pdistance(Cp, M, metric),
                                   atol=ATOL * max(1.0, np.abs(pdistance(Cp, M, metric)).max()), rtol=0)
    n_train = len(y) // 2
    for metric in METRICS:
        _assert_ts_parity(Cp, y, metric, n_train)
        _assert_mdm_parity(Cp, y, metric, n_train)
    _assert_fgmdm_parity(Cp, y, n_train)
    _assert_ts_lr_parity(Cp, y, n_train)



# ------------------------------------------------------------ Newton solver
def _assert_newton_parity(C, y, n_train):
    """solver="newton": pyRiemann's results to 1e-8 through another iteration path."""
    Ctr, ytr, Cte = _split(C, y, n_train)
    ref = pts.TangentSpace().fit(Ctr)
    scale = np.abs(ref.reference_).max()
    ours = TangentSpace(solver="newton", device="cpu")
    F = ours.fit_transform(Ctr)
    np.testing.assert_allclose(ours.reference_ / scale, ref.reference_ / scale, atol=ATOL, rtol=0)
    np.testing.assert_allclose(F, ref.transform(Ctr), atol=ATOL, rtol=0)
    # the reused last-iteration logs are the log map at the stored reference
    np.testing.assert_allclose(F, ours.transform(Ctr), atol=1e-10, rtol=0)
    np.testing.assert_allclose(ours.transform(Cte), ref.transform(Cte), atol=ATOL, rtol=0)
    np.testing.assert_allclose(TangentSpace(solver="newton", device="cpu").fit(Ctr).reference_,
                               ours.reference_, atol=1e-14 * scale, rtol=0)
    mdm = MDM(solver="newton", device="cpu").fit(Ctr, ytr)
    pmdm = pclf.MDM().fit(Ctr, ytr)
    mscale = np.abs(pmdm.covmeans_).max()
    np.testing.assert_allclose(mdm.covmeans_ / mscale, pmdm.covmeans_ / mscale, atol=ATOL, rtol=0)
    np.testing.assert_allclose(mdm.transform(Cte), pmdm.transform(Cte), atol=ATOL, rtol=0)
    np.testing.assert_allclose(mdm.predict_proba(Cte), pmdm.predict_proba(Cte), atol=ATOL, rtol=0)
    np.testing.assert_array_equal(mdm.predict(Cte), pmdm.predict(Cte))


def test_newton_solver_matches_pyriemann_sim(sim):
    t, C = sim
    _assert_newton_parity(C, t.y, 80)


def test_newton_solver_matches_pyriemann_on_physionet(physionet):
    for X, y in physionet:
        _assert_newton_parity(PCovariances("oas").fit_transform(X), y, 16)


def test_newton_solver_matches_pyriemann_on_dog1():
    require_dataset("kaggle_seizure_dog1", "dog1_ictal_interictal.npz")
    from neurodecode.io.seizure import load_dog1_seizure

    t = load_dog1_seizure()
    idx = np.r_[np.flatnonzero(t.y == 1)[::6], np.flatnonzero(t.y == 0)[::12]]
    perm = np.random.default_rng(0).permutation(len(idx))
    X, y = t.X[idx].astype(np.float64)[perm], t.y[idx][perm]
    _assert_newton_parity(PCovariances("oas").fit_transform(X), y, len(y) // 2)


def test_solver_is_checked(sim):
    t, C = sim
    with pytest.raises(ValueError, match="solver"):
        TangentSpace(solver="bfgs", device="cpu").fit(C)
    with pytest.raises(ValueError, match="solver"):
        MDM(solver="bfgs", device="cpu").fit(C, t.y)


# ------------------------------------------------------------ registered pipelines
PIPELINES = ["cov-ts-lr", "cov-ts-svm", "cov-mdm", "cov-fgmdm", "recentered-cov-ts-lr",
             "recentered-cov-mdm", "xdawncov-ts-lr"]


@pytest.fixture(scope="module")
def sim_small():
    return simulate_eeg(n_subjects=3, n_trials=40, n_channels=8, n_times=128, class_sep=1.5,
                        subject_shift=0.3, random_state=6)


@pytest.mark.parametrize("name", PIPELINES)
def test_registered_pipeline_builds_clones_fits(name, sim_small):
    import sklearn

    from neurodecode.pipelines import list_pipelines, make_pipeline as make_registered

    assert name in list_pipelines("eeg")
    pipe = make_registered(name, device="cpu")
    c = clone(pipe)
    assert c.get_params(deep=False).keys() == pipe.get_params(deep=False).keys()
    t = sim_small
    train = (t.meta["subject"] != 3).to_numpy()
    with sklearn.config_context(enable_metadata_routing=True):
        kw_tr = {"meta": t.meta[train].reset_index(drop=True)} if name.startswith("recentered") else {}
        kw_te = {"meta": t.meta[~train].reset_index(drop=True)} if name.startswith("recentered") else {}
        c.fit(t.X[train], t.y[train], **kw_tr)
        pred = c.predict(t.X[~train], **kw_te)
    assert pred.shape == ((~train).sum(),)
    assert set(np.unique(pred)) <= set(np.unique(t.y))
    # within the training subjects the class information (covariance) must be learned
    with sklearn.config_context(enable_metadata_routing=True):
        acc = (c.predict(t.X[train], **kw_tr) == t.y[train]).mean()
    assert acc > 0.7, acc


def test_pipeline_options_reach_steps():
    from neurodecode.pipelines import make_pipeline as make_registered

    p = make_registered("cov-ts-lr", estimator="lwf", C=0.25, metric="logeuclid")
    assert p.get_params()["cov__estimator"] == "lwf"
    assert p.get_params()["lr__C"] == 0.25
    assert p.get_params()["ts__metric"] == "logeuclid"
    assert make_registered("cov-ts-svm", C=3.0).get_params()["svm__C"] == 3.0
    assert make_registered("xdawncov-ts-lr", nfilter=2).get_params()["xdawncov__nfilter"] == 2


def test_recentering_helps_leave_subject_out_in_the_harness():
    from neurodecode.evaluation.evaluate import _meta_consumers, evaluate
    from neurodecode.pipelines import make_pipeline as make_registered

    assert {"fit", "predict", "predict_proba"} <= _meta_consumers(make_registered("recentered-cov-mdm"))
    assert _meta_consumers(make_registered("cov-mdm")) == set()
    # Same mixing for everyone, but each subject's amplitude differs (electrode impedance,
    # skull thickness): a shift that per-subject re-centering removes exactly.
    t = simulate_eeg(n_subjects=4, n_trials=40, n_channels=8, n_times=128, class_sep=0.5,
                     subject_shift=0.0, random_state=7)
    gain = np.array([1.0, 30.0, 1 / 30, 100.0])[t.meta["subject"].to_numpy() - 1]
    t = t._replace(X=t.X * gain[:, None, None])
    res = evaluate({"plain": make_registered("cov-mdm", device="cpu"),
                    "recentered": make_registered("recentered-cov-mdm", device="cpu")},
                   t, split="leave-subject-out", scoring="accuracy", progress=False)
    mean = res.groupby("pipeline")["score"].mean()
    # without alignment the class means of the other subjects sit at the wrong scale
    assert mean["recentered"] > mean["plain"] + 0.2, mean
    assert mean["recentered"] > 0.8, mean


def test_benchmark_script_runs_small(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "riemann.py"
    spec = importlib.util.spec_from_file_location("bench_riemann", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(["--n-trials", "40", "--n-channels", "6", "--n-times", "160", "--runs", "1"])
    out = capsys.readouterr().out
    assert "| total |" in out
    assert "MDM predictions equal (fixed-point): True" in out
    assert "MDM predictions equal (newton): True" in out


def test_newton_mean_stops_at_the_rounding_floor_of_near_singular_acms(physionet):
    """High-order ACMs of real EEG are near-singular: the gradient norm of the Karcher
    equation bottoms out near 1e-10-1e-9 (rounding in the logarithms), above the Newton
    solver's 1e-10 target. The solver stops once it is below pyRiemann's test (1e-8) and
    no longer halving, and returns its best iterate, instead of backtracking to maxiter."""
    from neurodecode.preprocessing.augmented import augmented_covariances
    from neurodecode.riemann import mean as nm

    X, _ = physionet[0]
    C = torch.as_tensor(augmented_covariances(X[:, :21], 8, 3, "cov", device="cpu"))
    w = torch.full((len(C),), 1.0 / len(C), dtype=torch.float64)
    crits, real = [], nm._whitened_eigh

    def spy(Xs, M):
        L, ev, V = real(Xs, M)
        crits.append(float(torch.linalg.matrix_norm(nm._weighted_eig_sum(V, w[:, None] * torch.log(ev)))))
        return L, ev, V

    nm._whitened_eigh = spy
    try:
        M = nm._mean_riemann_newton(C, w)
    finally:
        nm._whitened_eigh = real
    assert len(crits) <= 8, crits  # 16 passes without the stall rule (backtracking at the floor)
    assert min(crits) <= 1e-8  # pyRiemann's own convergence test
    _, ev, V = nm._whitened_eigh(C, M)
    at_returned = float(torch.linalg.matrix_norm(nm._weighted_eig_sum(V, w[:, None] * torch.log(ev))))
    np.testing.assert_allclose(at_returned, min(crits), rtol=1e-3)  # the best iterate is returned
