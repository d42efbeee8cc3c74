"""Simulators: shapes, determinism, and that the planted structure is recoverable."""

import numpy as np
import pytest
from scipy.stats import binom
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from neurodecode.registry import load_dataset
from neurodecode.simulation import simulate_eeg, simulate_fmri, simulate_nsd


def _chance_bound(n, p=0.5, alpha=0.01):
    """Accuracy above which a classifier beats chance at level alpha (binomial)."""
    return binom.ppf(1 - alpha, n, p) / n


def _logvar(X):
    return np.log(np.var(X, axis=-1))


def test_eeg_shapes_and_meta():
    t = simulate_eeg(n_subjects=3, n_trials=20, n_channels=8, n_times=64, sfreq=128.0, random_state=0)
    assert t.X.shape == (60, 8, 64)
    assert t.modality == "eeg" and t.sfreq == 128.0
    assert t.ch_names[:3] == ["Fp1", "Fp2", "F7"]
    assert sorted(t.subjects) == [1, 2, 3]
    assert {"subject", "session", "run"} <= set(t.meta.columns)
    assert np.bincount(t.y).tolist() == [30, 30]
    assert np.isfinite(t.X).all()


def test_eeg_determinism():
    a = simulate_eeg(n_subjects=2, n_trials=10, random_state=3)
    b = simulate_eeg(n_subjects=2, n_trials=10, random_state=3)
    c = simulate_eeg(n_subjects=2, n_trials=10, random_state=4)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.allclose(a.X, c.X)


def test_eeg_class_is_decodable_within_subject_and_absent_without_separation():
    t = simulate_eeg(n_subjects=1, n_trials=80, random_state=0)
    acc = cross_val_score(LogisticRegression(), _logvar(t.X), t.y, cv=5).mean()
    assert acc > _chance_bound(80)
    null = simulate_eeg(n_subjects=1, n_trials=80, class_sep=0.0, random_state=0)
    acc0 = cross_val_score(LogisticRegression(), _logvar(null.X), null.y, cv=5).mean()
    assert acc0 < _chance_bound(80)


def test_eeg_subject_shift_makes_transfer_harder():
    def transfer(shift):
        t = simulate_eeg(n_subjects=4, n_trials=60, subject_shift=shift, random_state=1)
        tr, te = t.meta["subject"] != 4, t.meta["subject"] == 4
        clf = LogisticRegression().fit(_logvar(t.X[tr]), t.y[tr])
        return clf.score(_logvar(t.X[te]), t.y[te])

    assert transfer(0.0) > transfer(2.0)


def test_eeg_bad_arguments():
    with pytest.raises(ValueError, match="n_classes"):
        simulate_eeg(n_classes=1)
    with pytest.raises(ValueError, match="n_trials"):
        simulate_eeg(n_trials=0)


def test_fmri_shapes_meta_and_ragged_lengths():
    t, truth = simulate_fmri(n_subjects=12, n_rois=10, n_times=(50, 80), random_state=0, return_truth=True)
    assert isinstance(t.X, list) and len(t.X) == 12
    assert all(x.shape[0] == 10 for x in t.X)
    n_times = t.meta["n_times"].to_numpy()
    assert n_times.min() >= 50 and n_times.max() <= 80 and len(set(n_times)) > 1
    assert {"site", "age", "sex", "mean_fd"} <= set(t.meta.columns)
    assert set(t.meta["site"]) == {"site1", "site2", "site3"}
    assert set(t.meta["sex"]) <= {"M", "F"}
    assert truth["planted_edges"].shape == (4, 2)
    assert (truth["planted_edges"][:, 0] < truth["planted_edges"][:, 1]).all()
    # Groups balanced within site.
    counts = t.meta.assign(y=t.y).groupby("site")["y"].mean()
    assert np.allclose(counts, 0.5)
    fixed = simulate_fmri(n_subjects=4, n_times=60, random_state=0)
    assert fixed.X.shape == (4, 20, 60)


def test_fmri_determinism():
    a = simulate_fmri(n_subjects=5, random_state=7)
    b = simulate_fmri(n_subjects=5, random_state=7)
    for xa, xb in zip(a.X, b.X):
        np.testing.assert_array_equal(xa, xb)
    assert a.meta.equals(b.meta)


def _fisher_corr(t):
    return np.stack([np.arctanh(np.clip(np.corrcoef(x), -0.999999, 0.999999)) for x in t.X])


def test_fmri_planted_edges_have_largest_group_difference():
    t, truth = simulate_fmri(n_subjects=60, random_state=0, return_truth=True)
    Z = _fisher_corr(t)
    diff = Z[t.y == 1].mean(0) - Z[t.y == 0].mean(0)
    iu = np.triu_indices(Z.shape[1], 1)
    order = np.argsort(diff[iu])[::-1]
    top = {(int(iu[0][k]), int(iu[1][k])) for k in order[: len(truth["planted_edges"])]}
    assert top == {tuple(e) for e in truth["planted_edges"].tolist()}


def test_fmri_site_edges_differ_between_sites():
    t, truth = simulate_fmri(n_subjects=60, site_effect=1.0, random_state=0, return_truth=True)
    Z = _fisher_corr(t)
    i, j = truth["site_edges"]["site1"][0]
    s1 = (t.meta["site"] == "site1").to_numpy()
    assert Z[s1, i, j].mean() - Z[~s1, i, j].mean() > 0.2


def test_nsd_shapes_latents_and_retrieval():
    data, truth = simulate_nsd(n_subjects=3, n_stimuli=50, n_trials_per_subject=80, n_voxels=(100, 150),
                               latent_dim=8, noise=0.5, random_state=0, return_truth=True)
    assert sorted(data) == ["subj01", "subj02", "subj03"]
    n_vox = {s: t.X.shape[1] for s, t in data.items()}
    assert all(100 <= v <= 150 for v in n_vox.values()) and len(set(n_vox.values())) > 1
    Z = truth["latents"]
    assert Z.shape == (50, 8)
    for s, t in data.items():
        assert t.X.shape[0] == 80
        assert set(range(50)) <= set(t.meta["stimulus"])
        np.testing.assert_array_equal(t.y, truth["categories"][t.meta["stimulus"]])
        assert truth["maps"][s].shape == (8, n_vox[s])
    # Retrieval: a linear decoder fitted on half the stimuli recovers the latent of the other half.
    t = data["subj01"]
    stim = t.meta["stimulus"].to_numpy()
    train = stim < 25
    W = np.linalg.lstsq(t.X[train], Z[stim[train]], rcond=None)[0]
    pred = t.X[~train] @ W
    sim = np.corrcoef(pred, Z[25:])[: len(pred), len(pred):]
    top1 = (np.argmax(sim, axis=1) + 25 == stim[~train]).mean()
    assert top1 > 5 / 25  # chance is 1/25


def test_nsd_determinism():
    a = simulate_nsd(n_subjects=2, n_stimuli=10, n_trials_per_subject=12, n_voxels=(20, 30), random_state=1)
    b = simulate_nsd(n_subjects=2, n_stimuli=10, n_trials_per_subject=12, n_voxels=(20, 30), random_state=1)
    for s in a:
        np.testing.assert_array_equal(a[s].X, b[s].X)


def test_registry_entries_load_simulations():
    t = load_dataset("sim-eeg", n_subjects=2, n_trials=10, random_state=0)
    assert t.X.shape == (20, 16, 256)
    f = load_dataset("sim-fmri", n_subjects=4, random_state=0)
    assert len(f.X) == 4
    d = load_dataset("sim-nsd", n_subjects=2, n_stimuli=10, n_trials_per_subject=10, n_voxels=20, random_state=0)
    assert set(d) == {"subj01", "subj02"}
