"""NIfTI + atlas loaders (nilearn maskers) and NSD-style HDF5 betas, on synthetic files."""

from __future__ import annotations

import warnings

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from neurodecode import DataError, Trials
from neurodecode.io.fmri_nifti import load_nifti_events, load_nifti_rois, read_events, read_nifti

SHAPE = (6, 5, 4)
TR = 2.0
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])


def _atlas() -> np.ndarray:
    """Three labelled ROIs (values 1, 2, 7) and background 0."""
    atlas = np.zeros(SHAPE, dtype=np.int16)
    atlas[:2] = 1
    atlas[2:4, :3] = 2
    atlas[4:, 2:] = 7
    return atlas


def _scan(signals: dict, n_times: int, rng, noise=0.01) -> np.ndarray:
    """4D data whose voxels of label v carry signals[v] plus small noise."""
    atlas = _atlas()
    data = rng.standard_normal(SHAPE + (n_times,)) * noise
    for value, sig in signals.items():
        data[atlas == value] += sig
    return data.astype(np.float32)


def _save(path, data, affine=AFFINE, tr=TR):
    img = nib.Nifti1Image(data, affine)
    if data.ndim == 4:
        img.header.set_zooms(tuple(np.abs(np.diag(affine)[:3])) + (tr,))
        img.header.set_xyzt_units("mm", "sec")
    nib.save(img, path)
    return path


@pytest.fixture
def nifti_files(tmp_path, rng):
    """Two runs of different lengths with planted per-ROI signals, and the atlas."""
    atlas_path = _save(tmp_path / "atlas.nii.gz", _atlas())
    runs, planted = [], []
    for i, n_times in enumerate((30, 24)):
        t = np.arange(n_times)
        sig = {1: np.sin(t / (3 + i)), 2: np.cos(t / 5) * 2, 7: t / n_times - 0.5}
        path = _save(tmp_path / f"sub-0{i + 1}_task-rest_bold.nii.gz", _scan(sig, n_times, rng))
        runs.append(path)
        planted.append(np.stack([sig[1], sig[2], sig[7]]))
    return runs, atlas_path, planted


def _masker_output(path, atlas_path, **kwargs):
    from nilearn.maskers import NiftiLabelsMasker

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NiftiLabelsMasker(str(atlas_path), standardize=None, **kwargs).fit_transform(str(path))


def test_labels_equal_masker_and_planted_signal(nifti_files):
    runs, atlas_path, planted = nifti_files
    t = load_nifti_rois(runs, atlas_path, labels=["a", "b"])
    assert isinstance(t, Trials) and t.is_ragged and t.modality == "fmri"
    assert t.ch_names == ["1", "2", "7"]
    assert t.meta["n_times"].tolist() == [30, 24]
    assert t.meta["subject"].tolist() == ["sub-01_task-rest_bold", "sub-02_task-rest_bold"]
    assert t.sfreq == pytest.approx(1 / TR) and t.meta["tr"].tolist() == [TR, TR]
    assert t.y.tolist() == ["a", "b"]
    for x, run, truth in zip(t.X, runs, planted):
        np.testing.assert_allclose(x, _masker_output(run, atlas_path).T, rtol=1e-6, atol=1e-6)
        # Mean of many voxels: noise 0.01 per voxel leaves < 0.02 error.
        assert np.abs(x - truth).max() < 0.02


def test_confounds_regressed_by_masker(nifti_files, rng):
    runs, atlas_path, _ = nifti_files
    conf = [rng.standard_normal((30, 2)), None]
    t = load_nifti_rois(runs, atlas_path, confounds=conf)
    expected = _masker_output(runs[0], atlas_path).T
    # confounds change the series (regression) yet keep the masker's answer exactly
    from nilearn.maskers import NiftiLabelsMasker

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = NiftiLabelsMasker(str(atlas_path), standardize=None, t_r=TR).fit_transform(
            str(runs[0]), confounds=conf[0])
    np.testing.assert_allclose(t.X[0], ref.T, rtol=1e-6, atol=1e-6)
    assert not np.allclose(t.X[0], expected)
    with pytest.raises(DataError, match="rows but the image has 24 volumes"):
        load_nifti_rois(runs, atlas_path, confounds=[None, np.zeros((10, 1))])


def test_maps_masker(nifti_files, tmp_path):
    runs, atlas_path, planted = nifti_files
    atlas = _atlas()
    maps = np.stack([(atlas == v).astype(np.float32) for v in (1, 2, 7)], axis=-1)
    maps_path = _save(tmp_path / "maps.nii.gz", maps)
    t = load_nifti_rois(runs[:1], maps_path, kind="maps", roi_names=["A", "B", "C"])
    assert t.ch_names == ["A", "B", "C"]
    # Binary, non-overlapping maps: the regression equals the ROI mean.
    np.testing.assert_allclose(t.X[0], _masker_output(runs[0], atlas_path).T, atol=1e-5)
    assert np.abs(t.X[0] - planted[0]).max() < 0.02


def test_events_windows(nifti_files):
    runs, atlas_path, planted = nifti_files
    ev = pd.DataFrame({"onset": [0.0, 10.0, 20.0, 56.0], "duration": [4.0, 4.0, 4.0, 4.0],
                       "trial_type": ["face", "house", "face", "house"], "rt": [0.5, 0.6, 0.7, 0.8]})
    with pytest.warns(UserWarning, match="dropped 1 event"):
        t = load_nifti_events(runs[:1], atlas_path, [ev], tmin=0, tmax=8)
    assert t.X.shape == (3, 3, 4)
    assert t.y.tolist() == ["face", "house", "face"]
    assert t.meta["start_volume"].tolist() == [0, 5, 10]
    assert t.meta["rt"].tolist() == [0.5, 0.6, 0.7]
    full = load_nifti_rois(runs[:1], atlas_path).X[0]
    np.testing.assert_array_equal(t.X[1], full[:, 5:9])
    assert np.abs(t.X[2] - planted[0][:, 10:14]).max() < 0.02
    # the same through load_nifti_rois(events=...)
    with pytest.warns(UserWarning):
        t2 = load_nifti_rois(runs[:1], atlas_path, events=[ev], tmax=8)
    np.testing.assert_array_equal(t2.X, t.X)
    with pytest.raises(DataError, match="needs volumes"):
        load_nifti_events(runs[:1], atlas_path, [ev], tmax=8, on_outside="raise")


def test_events_tsv_and_bad_tables(tmp_path):
    path = tmp_path / "sub-01_events.tsv"
    path.write_text("onset\tduration\ttrial_type\n0\t2\tleft\n4\tn/a\tright\n")
    with pytest.raises(DataError, match="sub-01_events.tsv.*'duration' has missing"):
        read_events(path)
    path.write_text("onset\tduration\n0\t2\n")
    with pytest.raises(DataError, match="sub-01_events.tsv.*lacks column.*trial_type"):
        read_events(path)
    with pytest.raises(DataError, match="events file not found"):
        read_events(tmp_path / "nope.tsv")


def test_missing_and_corrupted_files(nifti_files, tmp_path):
    runs, atlas_path, _ = nifti_files
    with pytest.raises(DataError, match="missing_bold.nii.gz: image file not found"):
        load_nifti_rois([tmp_path / "missing_bold.nii.gz"], atlas_path)
    with pytest.raises(DataError, match="nope.nii.gz: labels atlas file not found"):
        load_nifti_rois(runs, tmp_path / "nope.nii.gz")
    # truncated gzip: the header reads, the data do not
    raw = runs[0].read_bytes()
    cut = tmp_path / "cut_bold.nii.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="cut_bold.nii.gz: .*truncated"):
        load_nifti_rois([cut], atlas_path)
    junk = tmp_path / "junk_bold.nii"
    junk.write_bytes(b"not a nifti file at all" * 20)
    with pytest.raises(DataError, match="junk_bold.nii: not a readable NIfTI image"):
        load_nifti_rois([junk], atlas_path)


def test_not_4d_and_grid_mismatch(nifti_files, tmp_path, rng):
    runs, atlas_path, _ = nifti_files
    vol = _save(tmp_path / "single_volume.nii.gz", rng.standard_normal(SHAPE).astype(np.float32))
    with pytest.raises(DataError, match="single_volume.nii.gz: image has shape .*expected a 4D"):
        load_nifti_rois([vol], atlas_path)
    big = _save(tmp_path / "other_grid_bold.nii.gz",
                rng.standard_normal((8, 8, 8, 10)).astype(np.float32))
    with pytest.raises(DataError, match=r"other_grid_bold.nii.gz: image grid \(8, 8, 8\).*atlas.nii.gz"):
        load_nifti_rois([big], atlas_path)
    shifted = _save(tmp_path / "shifted_bold.nii.gz", read_nifti(runs[0]).get_fdata().astype(np.float32),
                    affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    with pytest.raises(DataError, match="shifted_bold.nii.gz: .*does not match"):
        load_nifti_rois([shifted], atlas_path)
    # On purpose: nilearn resamples the atlas onto the image.
    t = load_nifti_rois([big], atlas_path, resampling_target="data")
    assert t.X[0].shape[1] == 10
    with pytest.raises(DataError, match="atlas.*expected a 3D"):
        load_nifti_rois(runs, runs[0])


def test_tr_from_header_and_override(nifti_files, tmp_path, rng):
    runs, atlas_path, _ = nifti_files
    other = _save(tmp_path / "tr3_bold.nii.gz", _scan({1: np.zeros(12)}, 12, rng), tr=3.0)
    t = load_nifti_rois([runs[0], other], atlas_path, subjects=["s1", "s2"], runs=["1", "1"])
    assert t.meta["tr"].tolist() == [2.0, 3.0] and np.isnan(t.sfreq)
    assert t.meta["subject"].tolist() == ["s1", "s2"]
    t = load_nifti_rois([runs[0], other], atlas_path, tr=2.5)
    assert t.sfreq == pytest.approx(0.4)


# ----------------------------------------------------------------- NSD betas
from neurodecode.io.nsd import NSDBetas, load_nsd, write_nsd_hdf5  # noqa: E402
from neurodecode.simulation import simulate_nsd  # noqa: E402


@pytest.fixture
def sim():
    return simulate_nsd(n_subjects=3, n_stimuli=20, n_trials_per_subject=30, n_voxels=(40, 70),
                        random_state=0)


def test_nsd_roundtrip_is_lazy_and_exact(sim, tmp_path):
    path = write_nsd_hdf5(tmp_path / "nsd.h5", sim)
    with NSDBetas(path) as nsd:
        assert nsd.subjects == ["subj01", "subj02", "subj03"]
        assert nsd.n_voxels == {s: t.X.shape[1] for s, t in sim.items()}
        assert len(set(nsd.n_voxels.values())) > 1  # voxel counts differ per subject
        for s, ref in sim.items():
            t = nsd.trials(s)
            assert t.is_lazy and isinstance(t.X, h5py.Dataset)
            np.testing.assert_array_equal(t.X[:5], ref.X[:5])        # a slice read on demand
            np.testing.assert_array_equal(t.load_data().X, ref.X)    # float64 kept exactly
            np.testing.assert_array_equal(t.y, ref.y)
            np.testing.assert_array_equal(t.meta["stimulus"], ref.meta["stimulus"])
            assert t.meta["session"].tolist() == ref.meta["session"].tolist()
            assert t.meta["subject"].eq(s).all() and np.isnan(t.sfreq)
            assert nsd.trials(s, target="stimulus").y.tolist() == ref.meta["stimulus"].tolist()
        assert "subj02" in nsd and len(nsd) == 3
    with pytest.raises(ValueError, match="closed"):
        nsd.trials("subj01")


def test_nsd_file_not_fully_read(sim, tmp_path):
    """Opening and slicing reads a few chunks, not the betas of every subject."""
    big = simulate_nsd(n_subjects=2, n_stimuli=50, n_trials_per_subject=400, n_voxels=2000, random_state=1)
    path = write_nsd_hdf5(tmp_path / "big.h5", big, compression=None)
    with NSDBetas(path) as nsd:
        t = nsd.trials("subj02")
        ds = t.X
        assert ds.chunks is not None and ds.chunks[0] < ds.shape[0]
        row = t.X[123]
        np.testing.assert_array_equal(row, big["subj02"].X[123])
        sub = t[np.array([3, 7, 11])]  # Trials slicing keeps working on the lazy dataset
        np.testing.assert_array_equal(np.asarray(sub.X), big["subj02"].X[[3, 7, 11]])


def test_nsd_roi_and_per_subject_files(sim, tmp_path):
    masks = {s: np.arange(t.X.shape[1]) % 3 == 0 for s, t in sim.items()}
    folder = tmp_path / "per_subject"
    for s, t in sim.items():
        write_nsd_hdf5(folder / f"{s}.h5", {s: t}, rois={s: {"v1": masks[s]}})
    # a folder of files, each holding one subject group
    data = load_nsd(folder, roi="v1")
    assert sorted(data) == sorted(sim)
    for s, t in data.items():
        assert not t.is_lazy and t.X.shape == (30, masks[s].sum())
        np.testing.assert_array_equal(t.X, sim[s].X[:, masks[s]])
        assert (t.meta["roi"] == "v1").all()
    with pytest.raises(KeyError, match="no ROI 'v2'"):
        load_nsd(folder, roi="v2")
    # one subject at the file root, name from the attribute
    root = tmp_path / "root.h5"
    with h5py.File(root, "w") as f:
        f.attrs["subject"] = "subjX"
        f["betas"] = sim["subj01"].X
        f["stimulus"] = sim["subj01"].meta["stimulus"].to_numpy()
    data = load_nsd(root, lazy=False)
    assert list(data) == ["subjX"] and not data["subjX"].is_lazy
    np.testing.assert_array_equal(data["subjX"].y, sim["subj01"].meta["stimulus"])


def test_nsd_errors(sim, tmp_path):
    with pytest.raises(DataError, match="nope.h5: NSD betas file not found"):
        NSDBetas(tmp_path / "nope.h5")
    path = write_nsd_hdf5(tmp_path / "nsd.h5", sim)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataError, match="cut.h5: .*truncated"):
        NSDBetas(cut)
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["subj01/betas"] = np.zeros((5, 3))
        f["subj01/stimulus"] = np.arange(4)
    with pytest.raises(DataError, match=r"bad.h5: /subj01/stimulus has shape \(4,\) but betas has 5"):
        NSDBetas(bad)
    with h5py.File(bad, "w") as f:
        f["subj01/betas"] = np.zeros((5, 3))
    with pytest.raises(DataError, match="bad.h5: /subj01 has no 'stimulus'"):
        NSDBetas(bad)
    with h5py.File(bad, "w") as f:
        f["subj01/stimulus"] = np.arange(5)
    with pytest.raises(DataError, match="bad.h5: group /subj01 has no 'betas'"):
        NSDBetas(bad)
    with h5py.File(bad, "w") as f:
        f["subj01/betas"] = np.zeros((5, 3))
        f["subj01/stimulus"] = np.arange(5)
        f["subj01/roi/v1"] = np.ones(4, dtype=bool)
    with pytest.raises(DataError, match="roi/v1 has shape .* 3 voxels"):
        NSDBetas(bad)
    with NSDBetas(path) as nsd, pytest.raises(KeyError, match="unknown subject 'subj09'"):
        nsd.trials("subj09")


def test_scaled_int16_and_unknown_tr_unit(tmp_path, rng):
    """Header scaling (scl_slope/inter) is applied once; a TR without unit is flagged."""
    atlas_path = _save(tmp_path / "atlas.nii.gz", _atlas())
    raw = rng.integers(-1000, 1000, SHAPE + (10,)).astype(np.int16)
    img = nib.Nifti1Image(raw, AFFINE)
    img.header.set_slope_inter(0.5, 10.0)
    nib.save(img, tmp_path / "scaled_bold.nii.gz")  # no TR, no time unit
    with pytest.warns(UserWarning, match="scaled_bold.nii.gz: header gives pixdim.4. = 1 with no time unit"):
        t = load_nifti_rois([tmp_path / "scaled_bold.nii.gz"], atlas_path)
    expected = (raw[_atlas() == 2] * 0.5 + 10.0).mean(axis=0)
    np.testing.assert_allclose(t.X[0][1], expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert load_nifti_rois([tmp_path / "scaled_bold.nii.gz"], atlas_path, tr=2.0).sfreq == 0.5


def test_load_nsd_lazy_survives_reader_gc(sim, tmp_path):
    import gc

    path = write_nsd_hdf5(tmp_path / "nsd.h5", sim)
    data = load_nsd(path, subjects=["subj03"])
    gc.collect()  # the NSDBetas object is gone; its lazy datasets still read
    assert list(data) == ["subj03"] and data["subj03"].is_lazy and data["subj03"].name == "nsd"
    np.testing.assert_array_equal(data["subj03"].X[-3:], sim["subj03"].X[-3:])
    # a lazy Trials saves to the Trials HDF5 format like any other
    back = Trials.load(data["subj03"].save(tmp_path / "t.h5"))
    np.testing.assert_array_equal(back.X, sim["subj03"].X)
