"""iEEG loaders: EDF + electrode table, BIDS iEEG, Dog_1 seizure clips.

Counts, names and coordinate ranges come from ieeg_mne_misc/SOURCE.md and
kaggle_seizure_dog1/SOURCE.md.
"""

from __future__ import annotations

import collections
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import require_dataset
from neurodecode.errors import DataError
from neurodecode.io.ieeg import (
    load_mne_ecog,
    load_mne_seeg,
    raw_to_trials,
    read_bids_ieeg,
    read_electrodes_tsv,
    read_ieeg_edf,
)
from neurodecode.io.seizure import load_dog1_seizure, load_kaggle_clips, read_kaggle_clip

SHAFTS = {"L'": 14, "F'": 14, "G'": 16, "N'": 12, "O'": 16, "X'": 16}


@pytest.fixture(scope="module")
def misc():
    return require_dataset("ieeg_mne_misc", "seeg/sample_seeg.edf")


@pytest.fixture(scope="module")
def dog1():
    return require_dataset("kaggle_seizure_dog1", "dog1_ictal_interictal.npz")


def _seeg_raw(misc):
    return read_ieeg_edf(misc / "seeg" / "sample_seeg.edf", misc / "seeg" / "sample_seeg_electrodes.tsv",
                         units="mm", coord_frame="mni_tal", ch_type="seeg")


# ------------------------------------------------------------------ ECoG
def test_ecog_edf_types_positions_annotation(misc):
    raw = read_ieeg_edf(misc / "ecog" / "sample_ecog.edf", misc / "ecog" / "sample_ecog_electrodes.tsv",
                        units="m", coord_frame="head", ch_type="ecog")
    assert len(raw.ch_names) == 78
    assert raw.info["sfreq"] == pytest.approx(999.4121105232217, rel=1e-12)
    assert raw.n_times == 21658
    types = dict(zip(raw.ch_names, raw.get_channel_types()))
    assert [n for n, t in types.items() if t == "ecog"] == [f"C{i}" for i in range(1, 65)]
    assert sorted(n for n, t in types.items() if t == "ecg") == ["EKGL", "EKGR"]
    assert sorted(n for n, t in types.items() if t == "misc") == sorted(
        [f"BTM{i}" for i in range(1, 7)] + [f"BTP{i}" for i in range(1, 7)])
    pos = raw.get_montage().get_positions()
    assert pos["coord_frame"] == "head" and len(pos["ch_pos"]) == 64
    xyz = np.array(list(pos["ch_pos"].values()))
    np.testing.assert_allclose(xyz.min(0), [-0.0705, -0.0674, 0.0372], atol=1e-9)
    np.testing.assert_allclose(xyz.max(0), [-0.0109, 0.0016, 0.1035], atol=1e-9)
    onsets = raw.annotations.onset[raw.annotations.description == "eeg sz start"]
    np.testing.assert_allclose(onsets, [10.2287], atol=1e-3)


def test_load_mne_ecog_windows_labelled_around_onset(misc):
    t = load_mne_ecog()
    assert t.modality == "ieeg" and t.name == "mne-ecog"
    assert t.ch_names == [f"C{i}" for i in range(1, 65)]
    assert t.X.shape == (20, 64, 999)          # round(1.0 * 999.412) samples per window
    assert t.sfreq == pytest.approx(999.4121105232217)
    assert collections.Counter(t.y) == {"pre": 10, "post": 10}
    onset = 10.2287
    starts = t.meta["onset"].to_numpy()
    stops = starts + 999 / t.sfreq
    assert np.all(stops[t.y == "pre"] <= onset + 1e-3) and np.all(starts[t.y == "post"] >= onset - 1e-3)
    assert t.positions.shape == (64, 3) and np.isfinite(t.positions).all() and t.coord_frame == "head"
    # a window's samples are the raw samples at its onset
    raw = read_ieeg_edf(misc / "ecog" / "sample_ecog.edf", ch_type="ecog")
    s = int(round(starts[3] * t.sfreq))
    np.testing.assert_array_equal(t.X[3], raw.get_data(picks=t.ch_names)[:, s:s + 999])


def test_ecog_all_channels_nan_rows(misc):
    t = load_mne_ecog(picks=None, window=2.0, step=1.0)
    assert t.n_channels == 78
    has = ~np.isnan(t.positions).any(axis=1)
    assert has.sum() == 64
    assert sorted(np.array(t.ch_names)[~has]) == sorted(
        [f"BTM{i}" for i in range(1, 7)] + [f"BTP{i}" for i in range(1, 7)] + ["EKGL", "EKGR"])
    assert t.n_times == int(round(2.0 * t.sfreq))


# ------------------------------------------------------------------ sEEG
def test_seeg_edf_and_registry_loader(misc):
    raw = _seeg_raw(misc)
    assert len(raw.ch_names) == 98 and raw.info["sfreq"] == 1000.0 and raw.n_times == 20000
    c = collections.Counter(raw.get_channel_types())
    assert c == {"seeg": 88, "misc": 8, "ecg": 2}
    t = load_mne_seeg()
    assert t.X.shape == (20, 88, 1000) and t.y is None and t.coord_frame == "mni_tal"
    shafts = collections.Counter(n.split("'")[0] + "'" for n in t.ch_names)
    assert shafts == SHAFTS
    table = pd.read_csv(misc / "seeg" / "sample_seeg_electrodes.tsv", sep="\t").set_index("name")
    np.testing.assert_allclose(t.positions, table.loc[t.ch_names, ["x", "y", "z"]].to_numpy() / 1000, atol=1e-12)
    mm = t.positions * 1000
    assert mm[:, 0].min() == pytest.approx(-53.8, abs=0.05) and mm[:, 2].max() == pytest.approx(80.7, abs=0.05)
    full = load_mne_seeg(picks=None)
    assert full.n_channels == 98 and (~np.isnan(full.positions).any(axis=1)).sum() == 88


def test_seeg_epochs_around_annotations(misc):
    t = raw_to_trials(_seeg_raw(misc), event_id={"test annotation": 1, "test mark": 2}, tmin=-0.5, tmax=0.5)
    assert t.X.shape == (3, 98, 1001)
    assert t.y.tolist() == [1, 2, 1]
    np.testing.assert_allclose(t.meta["onset"], [5.0, 7.0, 10.0])
    assert t.meta["kind"].tolist() == ["test annotation", "test mark", "test annotation"]
    with pytest.raises(ValueError, match="absent from the recording"):
        raw_to_trials(_seeg_raw(misc), event_id={"seizure": 1})


def test_bids_roundtrip(misc, tmp_path):
    mne_bids = pytest.importorskip("mne_bids")
    raw = _seeg_raw(misc)
    bids_path = mne_bids.BIDSPath(subject="pat01", session="test", task="rest", root=tmp_path, datatype="ieeg")
    mne_bids.write_raw_bids(raw, bids_path, format="EDF", allow_preload=True, verbose="error")
    back = read_bids_ieeg(tmp_path, "pat01", session="test", task="rest")
    assert len(back.ch_names) == 98 and len(back.annotations) == 3
    t = raw_to_trials(back, picks=None)
    has = ~np.isnan(t.positions).any(axis=1)
    assert has.sum() == 88 and t.coord_frame == "mni_tal"
    ref = raw.get_montage().get_positions()["ch_pos"]
    np.testing.assert_allclose(t.positions[has], np.array([ref[n] for n in np.array(t.ch_names)[has]]),
                               atol=1e-9)
    with pytest.raises(DataError, match="no iEEG recording"):
        read_bids_ieeg(tmp_path, "pat02")
    with pytest.raises(DataError, match="dataset_description"):
        read_bids_ieeg(tmp_path / "sub-pat01", "pat01")


# ------------------------------------------------------------ bad tables / files
@pytest.mark.parametrize("text, match", [
    ("name\tx\ty\nC1\t0.1\t0.2\n", r"lacks column\(s\) \['z'\]"),
    ("name\tx\ty\tz\nC1\t0.1\tabc\t0.3\n", "'y' is not a number for contact 'C1'"),
    ("name\tx\ty\tz\nC1\t0.1\t0.2\t0.3\nC1\t0.1\t0.2\t0.3\n", "twice"),
])
def test_bad_electrode_table(tmp_path, text, match):
    path = tmp_path / "bad_electrodes.tsv"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as err:
        read_electrodes_tsv(path)
    assert str(path) in str(err.value)


def test_table_na_positions_and_units(tmp_path):
    path = tmp_path / "e.tsv"
    path.write_text("name\tx\ty\tz\nA1\t10\t20\t30\nA2\tn/a\tn/a\tn/a\n")
    table = read_electrodes_tsv(path, units="mm")
    np.testing.assert_allclose(table.loc[0, ["x", "y", "z"]].to_numpy(float), [0.01, 0.02, 0.03])
    assert table.loc[1, ["x", "y", "z"]].isna().all()


def test_table_channel_not_in_recording(misc, tmp_path):
    table = pd.read_csv(misc / "ecog" / "sample_ecog_electrodes.tsv", sep="\t")
    table.loc[0, "name"] = "ZZ99"
    path = tmp_path / "electrodes.tsv"
    table.to_csv(path, sep="\t", index=False)
    with pytest.raises(DataError, match="absent from sample_ecog.edf.*ZZ99") as err:
        read_ieeg_edf(misc / "ecog" / "sample_ecog.edf", path)
    assert str(path) in str(err.value)


def test_corrupted_edf(misc, tmp_path):
    src = (misc / "seeg" / "sample_seeg.edf").read_bytes()
    crlf = tmp_path / "crlf.edf"
    crlf.write_bytes(src.replace(b"\n", b"\r\n"))
    with pytest.raises(DataError, match="line endings were converted") as err:
        read_ieeg_edf(crlf)
    assert str(crlf) in str(err.value)
    trunc = tmp_path / "trunc.edf"
    trunc.write_bytes(src[:-1000])
    with pytest.raises(DataError, match="truncated"):
        read_ieeg_edf(trunc)
    junk = tmp_path / "junk.edf"
    junk.write_bytes(b"0" * 100)
    with pytest.raises(DataError, match="shorter than an EDF header"):
        read_ieeg_edf(junk)
    with pytest.raises(DataError, match="not found"):
        read_ieeg_edf(tmp_path / "missing.edf")


# --------------------------------------------------------------- Dog_1 clips
def test_dog1_counts_groups(dog1):
    t = load_dog1_seizure()
    assert t.X.shape == (596, 16, 400) and t.X.dtype == np.float32
    assert t.sfreq == 399.609756097561 and t.modality == "ieeg" and t.name == "dog1-seizure"
    assert collections.Counter(t.y.tolist()) == {1: 178, 0: 418}
    assert t.ch_names == [f"NVC0905_22_002_Ecog_c{i:03d}" for i in range(1, 17)]
    m = t.meta
    assert set(m["subject"]) == {"Dog_1"}
    assert (m.loc[t.y == 1, "kind"] == "ictal").all() and (m.loc[t.y == 0, "kind"] == "interictal").all()
    assert sorted(m["group"].unique()) == list(range(16))
    ictal_sizes = m[m["kind"] == "ictal"].groupby("group").size().tolist()
    assert ictal_sizes == [31, 35, 33, 41, 38]
    assert (m[m["kind"] == "interictal"].groupby("group").size() == 38).all()
    assert m.loc[m["kind"] == "interictal", "latency"].isna().all()
    lat = m.loc[m["kind"] == "ictal", "latency"]
    assert lat.min() == 0 and lat.max() <= 40
    first = m[(m["kind"] == "ictal") & (m["latency"] == 0)]["segment_index"].tolist()
    assert first == [1, 32, 67, 100, 141]
    # session/run come from the grouping: one run per seizure or interictal run
    assert m.groupby("run")["group"].nunique().max() == 1


def test_dog1_cache_roundtrip(dog1):
    a = load_dog1_seizure(use_cache=True)
    b = load_dog1_seizure(use_cache=True)
    np.testing.assert_array_equal(a.X, b.X)
    pd.testing.assert_frame_equal(a.meta, b.meta)


def test_kaggle_mat_matches_npz(dog1):
    t = load_dog1_seizure()
    for kind in ("ictal", "interictal"):
        clip = read_kaggle_clip(dog1 / "mat" / f"Dog_1_{kind}_segment_1.mat")
        assert clip.kind == kind and clip.segment_index == 1 and clip.subject == "Dog_1"
        assert clip.sfreq == 399.609756097561 and clip.ch_names == t.ch_names
        row = np.flatnonzero(((t.meta["kind"] == kind) & (t.meta["segment_index"] == 1)).to_numpy())[0]
        scale = np.abs(clip.data).max()
        assert np.abs(clip.data - t.X[row]).max() <= 1e-4 * scale
        assert np.abs(clip.data - t.X[row]).max() <= 6.7e-6 * 1.01
        assert np.abs(clip.data.mean(axis=1)).max() < 1e-9
    ictal = read_kaggle_clip(dog1 / "mat" / "Dog_1_ictal_segment_1.mat")
    assert ictal.latency == 0.0
    test = read_kaggle_clip(dog1 / "mat" / "Dog_1_test_segment_1.mat")
    assert test.kind == "test" and test.latency is None and test.data.shape == (16, 400)
    trials = load_kaggle_clips(sorted((dog1 / "mat").glob("*.mat")))
    assert trials.n_trials == 3 and trials.y.tolist() == [1, 0, -1]


def test_kaggle_bad_files(dog1, tmp_path):
    text = tmp_path / "Dog_1_ictal_segment_2.mat"
    text.write_text("not a mat file at all")
    with pytest.raises(DataError, match="MAT") as err:
        read_kaggle_clip(text)
    assert str(text) in str(err.value)
    good = (dog1 / "mat" / "Dog_1_ictal_segment_1.mat").read_bytes()
    trunc = tmp_path / "Dog_1_ictal_segment_3.mat"
    trunc.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError) as err:
        read_kaggle_clip(trunc)
    assert str(trunc) in str(err.value)
    scipy_io = pytest.importorskip("scipy.io")
    nofreq = tmp_path / "Dog_1_ictal_segment_4.mat"
    scipy_io.savemat(nofreq, {"data": np.zeros((16, 400))})
    with pytest.raises(DataError, match="freq"):
        read_kaggle_clip(nofreq)
    shutil.copy(dog1 / "mat" / "Dog_1_ictal_segment_1.mat", tmp_path / "renamed.mat")
    clip = read_kaggle_clip(tmp_path / "renamed.mat")
    assert clip.kind is None and clip.segment_index is None
