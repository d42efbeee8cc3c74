"""Unsupervised per-subject alignment: Stretching (RPA step 2), GroupStandardScaler, the
rpa-cov-ts-lr / recentered-cov-zts-lr pipelines; pyRiemann TLCenter/TLScale parity (1e-8),
sklearn checks, and the leakage guarantee (a held-out subject's labels are never read)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

warnings.filterwarnings("ignore", category=DeprecationWarning)
from pyriemann.transfer import TLCenter, TLScale, encode_domains  # noqa: E402

from neurodecode.models.alignment import (  # noqa: E402
    GroupStandardScaler,
    Recentering,
    Stretching,
    identity_tangent_space,
)
from neurodecode.preprocessing.covariance import covariances  # noqa: E402
from neurodecode.riemann import distance_riemann, mean_riemann, powm  # noqa: E402
from neurodecode.simulation import simulate_eeg  # noqa: E402

from conftest import require_dataset  # noqa: E402
from test_models_riemann import _SPDInput, _vectors_to_spd  # noqa: E402

torch.set_num_threads(1)
ATOL = 1e-8


# ------------------------------------------------------------ sklearn checks
class SPDStretching(_SPDInput, Stretching):
    def fit(self, X, y=None, meta=None):
        return super().fit(_vectors_to_spd(X), y, meta)

    def transform(self, X, meta=None):
        return super().transform(_vectors_to_spd(X), meta)

    def fit_transform(self, X, y=None, meta=None):
        return super().fit_transform(_vectors_to_spd(X), y, meta)


@parametrize_with_checks([SPDStretching(device="cpu"), SPDStretching(centered_data=True, device="cpu"),
                          GroupStandardScaler(), GroupStandardScaler(with_std=False)])
def test_sklearn_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------------ data
@pytest.fixture(scope="module")
def shifted():
    """4 subjects whose covariances differ by a subject-specific mixing and spread."""
    t = simulate_eeg(n_subjects=4, n_trials=30, n_channels=6, n_times=200, class_sep=1.0,
                     subject_shift=1.0, random_state=11)
    C = covariances(t.X, "oas", device="cpu")
    # a per-subject power changes each subject's dispersion (what stretching removes)
    power = np.array([0.5, 1.0, 1.7, 2.5])[t.meta["subject"].to_numpy() - 1]
    C = np.stack([powm(c, p, device="cpu") for c, p in zip(C, power)])
    return C, t.y, t.meta


def _pyriemann_per_domain(C, meta, stretch, centered):
    """pyRiemann's TL estimators applied to each subject as its own domain (reference)."""
    dom = meta["subject"].astype(str).to_numpy()
    dummy = np.zeros(len(C), dtype=int)  # labels are not used by TLCenter/TLScale
    X_enc, y_enc = encode_domains(C.copy(), dummy, dom)
    if not stretch:
        return TLCenter(target_domain="").fit_transform(X_enc, y_enc)
    return TLScale(target_domain="", centered_data=centered).fit_transform(X_enc.copy(), y_enc)


# ------------------------------------------------------------ pyRiemann parity
@pytest.mark.parametrize("centered", [True, False])
def test_stretching_equals_pyriemann_tlscale(shifted, centered):
    C, _, meta = shifted
    X = Recentering(device="cpu").fit_transform(C, meta=meta) if centered else C
    ours = Stretching(centered_data=centered, device="cpu").fit_transform(X, meta=meta)
    ref = _pyriemann_per_domain(X, meta, stretch=True, centered=centered)
    np.testing.assert_allclose(ours, ref, atol=ATOL, rtol=0)
    st = Stretching(centered_data=centered, device="cpu").fit(X, meta=meta)
    ref_scales = TLScale(target_domain="", centered_data=centered).fit(
        *encode_domains(X.copy(), np.zeros(len(X), dtype=int), meta["subject"].astype(str).to_numpy())).scales_
    for s, d in st.dispersions_.items():
        assert d == pytest.approx(ref_scales[str(s)], rel=1e-10)


def test_recentering_equals_pyriemann_tlcenter(shifted):
    C, _, meta = shifted
    ours = Recentering(device="cpu").fit_transform(C, meta=meta)
    np.testing.assert_allclose(ours, _pyriemann_per_domain(C, meta, stretch=False, centered=False),
                               atol=ATOL, rtol=0)


def test_stretching_parity_on_physionet():
    """Real data: PhysionetMI S1-S3 OAS covariances, each subject a domain."""
    require_dataset("mne_data", "MNE-eegbci-data")
    from neurodecode.io.moabb_data import load_physionet_mi

    t = load_physionet_mi(subjects=[1, 2, 3])
    C = covariances(np.asarray(t.X[:, :16], dtype=np.float64), "oas", device="cpu")
    R = Recentering(device="cpu").fit_transform(C, meta=t.meta)
    np.testing.assert_allclose(R, _pyriemann_per_domain(C, t.meta, False, False), atol=ATOL, rtol=0)
    for centered, X in ((True, R), (False, C)):
        ours = Stretching(centered_data=centered, device="cpu").fit_transform(X, meta=t.meta)
        ref = _pyriemann_per_domain(X, t.meta, True, centered)
        scale = np.abs(ref).max()
        np.testing.assert_allclose(ours / scale, ref / scale, atol=ATOL, rtol=0)


# ------------------------------------------------------------ what the steps do
def test_stretching_sets_each_subject_dispersion_and_keeps_its_mean(shifted):
    C, _, meta = shifted
    out = Stretching(final_dispersion=2.0, device="cpu").fit_transform(C, meta=meta)
    before = []
    for s in np.unique(meta["subject"]):
        sel = (meta["subject"] == s).to_numpy()
        M = mean_riemann(C[sel], device="cpu")
        d_before = np.mean(distance_riemann(C[sel], M, squared=True, device="cpu"))
        before.append(d_before)
        M_out = mean_riemann(out[sel], device="cpu")
        np.testing.assert_allclose(M_out, M, atol=1e-6 * np.abs(M).max())
        d = np.mean(distance_riemann(out[sel], M, squared=True, device="cpu"))
        assert d == pytest.approx(2.0, rel=1e-8)
    assert np.ptp(before) > 1.0  # the subjects did differ in dispersion


def test_held_out_subject_stretched_by_its_own_rows(shifted):
    C, _, meta = shifted
    train = (meta["subject"] != 4).to_numpy()
    R = Recentering(device="cpu").fit_transform(C, meta=meta)
    st = Stretching(centered_data=True, device="cpu").fit(R[train], meta=meta[train].reset_index(drop=True))
    assert set(st.dispersions_) == {1, 2, 3}
    out = st.transform(R[~train], meta=meta[~train].reset_index(drop=True))
    d = np.mean(distance_riemann(out, np.eye(6), squared=True, device="cpu"))
    assert d == pytest.approx(1.0, rel=1e-8)
    # a seen subject keeps its training dispersion: its test rows alone are not re-estimated
    first = np.flatnonzero(train)[:4]
    seen = st.transform(R[first], meta=meta.iloc[first].reset_index(drop=True))
    p = np.sqrt(1.0 / st.dispersions_[1])
    np.testing.assert_allclose(seen, powm(R[first], p, device="cpu"), atol=1e-10)
    with pytest.raises(ValueError, match="no column 'subject'"):
        st.transform(R[~train], meta=pd.DataFrame({"x": np.zeros((~train).sum())}))
    with pytest.raises(ValueError, match="final_dispersion"):
        Stretching(final_dispersion=0.0, device="cpu").fit_transform(C)


def test_zero_dispersion_group_left_unchanged():
    C = np.stack([np.diag([1.0, 2.0, 3.0])] * 3)
    out = Stretching(device="cpu").fit_transform(C)
    np.testing.assert_allclose(out, C, atol=1e-12)


def test_group_standard_scaler_per_subject():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5)) * np.repeat([1.0, 5.0, 0.2], 20)[:, None] + np.repeat([0, 3, -7], 20)[:, None]
    meta = pd.DataFrame({"subject": np.repeat(["a", "b", "c"], 20)})
    train = (meta["subject"] != "c").to_numpy()
    sc = GroupStandardScaler().fit(X[train], meta=meta[train].reset_index(drop=True))
    out = sc.transform(X, meta=meta)
    for s in "abc":
        sel = (meta["subject"] == s).to_numpy()
        np.testing.assert_allclose(out[sel].mean(0), 0, atol=1e-12)
        np.testing.assert_allclose(out[sel].std(0), 1, atol=1e-12)
    # without meta: one group = sklearn's StandardScaler
    from sklearn.preprocessing import StandardScaler

    np.testing.assert_allclose(GroupStandardScaler().fit_transform(X), StandardScaler().fit_transform(X),
                               atol=1e-12)


def test_identity_tangent_space_is_tangent_space_at_identity(shifted):
    from neurodecode.riemann import tangent_space

    C, _, meta = shifted
    R = Recentering(device="cpu").fit_transform(C, meta=meta)
    np.testing.assert_allclose(identity_tangent_space(R), tangent_space(R, np.eye(6), device="cpu"),
                               atol=1e-10)


# ------------------------------------------------------------ leakage: labels never read
@pytest.mark.parametrize("name", ["rpa-cov-ts-lr", "recentered-cov-zts-lr", "cov-zts-lr"])
def test_held_out_labels_never_used(name):
    """The held-out subject's predictions do not change when its labels (even when they sit in
    a ``meta`` column the pipeline receives) are permuted, or when another subject's unlabeled
    trials are transformed together with it; and they do change when its trials change."""
    from neurodecode.pipelines import make_pipeline

    t = simulate_eeg(n_subjects=4, n_trials=30, n_channels=6, n_times=160, class_sep=1.0,
                     subject_shift=0.8, random_state=21)
    meta = t.meta.assign(label=t.y)  # a label column in meta: it must not be read
    subj = meta["subject"].to_numpy()
    train, test, other = subj <= 2, subj == 3, subj == 4
    pipe = make_pipeline(name, device="cpu")
    with sklearn.config_context(enable_metadata_routing=True):
        pipe.fit(t.X[train], t.y[train], meta=meta[train].reset_index(drop=True))
        m_test = meta[test].reset_index(drop=True)
        p = pipe.predict_proba(t.X[test], meta=m_test)
        shuffled = m_test.assign(label=np.random.default_rng(0).permutation(m_test["label"].to_numpy()))
        p_shuffled = pipe.predict_proba(t.X[test], meta=shuffled)
        both = test | other
        p_both = pipe.predict_proba(t.X[both], meta=meta[both].reset_index(drop=True))
        # fitted statistics do not depend on the training labels either
        pipe2 = clone(pipe).fit(t.X[train], np.random.default_rng(1).permutation(t.y[train]),
                                meta=meta[train].reset_index(drop=True))
        p_changed = pipe.predict_proba(t.X[test][::-1][:15], meta=m_test.iloc[:15])
    np.testing.assert_array_equal(p, p_shuffled)
    np.testing.assert_allclose(p_both[test[both]], p, atol=1e-10)
    for step in ("recenter", "stretch", "zscore"):
        if step in pipe.named_steps:
            a, b = pipe.named_steps[step], pipe2.named_steps[step]
            for attr in ("means_", "dispersions_", "scales_"):
                if hasattr(a, attr):
                    for g in getattr(a, attr):
                        np.testing.assert_allclose(getattr(a, attr)[g], getattr(b, attr)[g], atol=1e-12)
    # the subject statistics really come from the rows given (a different batch changes them)
    assert np.abs(p_changed - p[::-1][:15]).max() > 1e-6


def test_harness_leave_subject_out_shuffled_labels_at_chance():
    from scipy.stats import binomtest

    from neurodecode.evaluation import evaluate
    from neurodecode.pipelines import make_pipeline

    t = simulate_eeg(n_subjects=4, n_trials=60, n_channels=6, n_times=160, class_sep=1.0,
                     subject_shift=0.5, random_state=22)
    y = np.random.default_rng(3).permutation(t.y)
    t = t._replace(y=y)
    res = evaluate({n: make_pipeline(n, device="cpu")
                    for n in ("rpa-cov-ts-lr", "recentered-cov-zts-lr", "cov-zts-lr")},
                   t, split="leave-subject-out", scoring="accuracy", progress=False)
    for name, g in res.groupby("pipeline"):
        n = int(g["n_test"].sum())
        k = int(round((g["score"] * g["n_test"]).sum()))
        assert binomtest(k, n, 0.5).pvalue > 0.01, (name, k, n)


def test_alignments_help_leave_subject_out_in_the_harness():
    """Each subject's electrodes have their own gains (impedance): an unsupervised per-subject
    alignment removes most of that shift and beats no alignment in leave-subject-out."""
    from neurodecode.evaluation import evaluate
    from neurodecode.pipelines import make_pipeline

    t = simulate_eeg(n_subjects=4, n_trials=40, n_channels=6, n_times=200, class_sep=0.8,
                     subject_shift=0.0, random_state=23)
    gains = np.exp(np.random.default_rng(23).uniform(-2, 2, size=(4, 6)))
    t = t._replace(X=t.X * gains[t.meta["subject"].to_numpy() - 1][:, :, None])
    res = evaluate({"plain": make_pipeline("cov-ts-lr", device="cpu"),
                    "rpa": make_pipeline("rpa-cov-ts-lr", device="cpu"),
                    "zts": make_pipeline("recentered-cov-zts-lr", device="cpu")},
                   t, split="leave-subject-out", scoring="accuracy", progress=False)
    mean = res.groupby("pipeline")["score"].mean()
    assert mean["rpa"] > mean["plain"] + 0.2, mean
    assert mean["zts"] > mean["plain"] + 0.2, mean
    assert min(mean["rpa"], mean["zts"]) > 0.9, mean


@pytest.mark.parametrize("name", ["rpa-cov-ts-lr", "recentered-cov-zts-lr", "cov-zts-lr"])
def test_registered_alignment_pipelines(name):
    from neurodecode.evaluation.evaluate import _meta_consumers
    from neurodecode.pipelines import list_pipelines, make_pipeline

    assert name in list_pipelines("eeg")
    pipe = make_pipeline(name, C=0.5, estimator="lwf", device="cpu")
    assert pipe.get_params()["lr__C"] == 0.5 and pipe.get_params()["cov__estimator"] == "lwf"
    assert clone(pipe).get_params(deep=False).keys() == pipe.get_params(deep=False).keys()
    # the harness must pass meta to fit and to the response methods
    assert {"fit", "predict", "predict_proba"} <= _meta_consumers(pipe)
    if name == "rpa-cov-ts-lr":
        assert make_pipeline(name, final_dispersion=2.0).get_params()["stretch__final_dispersion"] == 2.0
