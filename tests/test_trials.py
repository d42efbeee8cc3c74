"""The Trials container: validation, slicing, concatenation, exact HDF5 round trip."""

import h5py
import numpy as np
import pandas as pd
import pytest

from neurodecode import DataError, Trials, concatenate_trials


def make_trials(rng, n=12, n_ch=4, n_t=50, subjects=(1, 2, 3)):
    sub = np.repeat(subjects, n // len(subjects))
    meta = pd.DataFrame({
        "subject": sub,
        "session": ["s1"] * n,
        "run": np.tile(["0", "1"], n // 2),
        "age": rng.uniform(10, 40, n),
        "sex": pd.Categorical(rng.choice(["F", "M"], n)),
        "site": pd.Series(rng.choice(["A", "B"], n), dtype="string"),
        "mean_fd": pd.array([0.1] * (n - 1) + [None], dtype="Float64"),
        "good": rng.random(n) > 0.5,
        "when": pd.date_range("2020-01-01", periods=n, freq="h"),
    })
    return Trials(rng.standard_normal((n, n_ch, n_t)), y=np.tile([0, 1], n // 2), meta=meta,
                  sfreq=128.0, ch_names=[f"C{i}" for i in range(n_ch)], modality="eeg",
                  positions=rng.standard_normal((n_ch, 3)), coord_frame="head", name="toy")


def test_shape_properties_and_repr(rng):
    t = make_trials(rng)
    assert (t.n_trials, t.n_channels, t.n_times) == (12, 4, 50)
    assert t.subjects == [1, 2, 3]
    assert list(t.meta.columns[:3]) == ["subject", "session", "run"]
    r = repr(t)
    assert "12 trials × 4 channels × 50 times" in r and "3 subjects" in r and "0 ×6" in r


@pytest.mark.parametrize("kwargs, match", [
    (dict(y=[0, 1, 2]), "len\\(y\\) = 3 but X has 5 trials"),
    (dict(ch_names=["a", "b"]), "ch_names has 2 names but X has 3 channels"),
    (dict(ch_names=["a", "a", "b"]), "not unique"),
    (dict(meta=pd.DataFrame({"subject": [1, 2]})), "meta has 2 rows but X has 5"),
    (dict(positions=np.zeros((2, 3))), "positions has shape"),
])
def test_validation_errors(rng, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Trials(rng.standard_normal((5, 3, 10)), sfreq=100, modality="eeg", **kwargs)


def test_nan_and_bad_shapes_are_refused(rng):
    X = rng.standard_normal((5, 3, 10))
    X[2, 1, 4] = np.nan
    with pytest.raises(DataError, match=r"NaN or inf \(first at index \(2, 1, 4\)\)"):
        Trials(X, sfreq=100, modality="eeg")
    with pytest.raises(ValueError, match="expected \\(n_trials"):
        Trials(rng.standard_normal(5), sfreq=100, modality="eeg")
    with pytest.raises(ValueError, match="modality"):
        Trials(rng.standard_normal((5, 3)), sfreq=100, modality="meg")


def test_slicing_and_select(rng):
    t = make_trials(rng)
    sub = t.select(subject=2)
    assert sub.n_trials == 4 and set(sub.meta["subject"]) == {2}
    np.testing.assert_array_equal(sub.X, t.X[4:8])
    masked = t[t.meta["good"].to_numpy()]
    assert masked.n_trials == int(t.meta["good"].sum())
    picked = t[[5, 1]]
    np.testing.assert_array_equal(picked.X[0], t.X[5])
    np.testing.assert_array_equal(picked.y, t.y[[5, 1]])
    assert t[::2].n_trials == 6
    assert set(t.split_by("subject")) == {1, 2, 3}
    with pytest.raises(KeyError, match="no column 'nope'"):
        t.select(nope=1)
    with pytest.raises(IndexError, match="empty"):
        t.select(subject=99)


def test_concatenate_checks_channels(rng):
    a, b = make_trials(rng, subjects=(1, 2, 3)), make_trials(rng, subjects=(4, 5, 6))
    c = concatenate_trials([a, b])
    assert c.n_trials == 24 and c.subjects == [1, 2, 3, 4, 5, 6]
    bad = Trials(b.X, b.y, b.meta, sfreq=128, ch_names=["C0", "C1", "X2", "C3"], modality="eeg")
    with pytest.raises(ValueError, match="channel names differ"):
        concatenate_trials([a, bad])
    slow = Trials(b.X, b.y, b.meta, sfreq=100, ch_names=b.ch_names, modality="eeg")
    with pytest.raises(ValueError, match="resample"):
        concatenate_trials([a, slow])


def test_hdf5_round_trip_is_exact(rng, tmp_path):
    t = make_trials(rng)
    path = t.save(tmp_path / "t.h5")
    u = Trials.load(path)
    assert u.X.dtype == t.X.dtype
    np.testing.assert_array_equal(u.X, t.X)
    np.testing.assert_array_equal(u.y, t.y)
    pd.testing.assert_frame_equal(u.meta, t.meta)
    assert (u.sfreq, u.ch_names, u.modality, u.coord_frame, u.name) == (
        t.sfreq, t.ch_names, t.modality, t.coord_frame, t.name)
    np.testing.assert_array_equal(u.positions, t.positions)


def test_ragged_round_trip_and_crop(rng, tmp_path):
    X = [rng.standard_normal((5, n)).astype(np.float32) for n in (30, 42, 30)]
    t = Trials(X, y=np.array(["a", "b", "a"]), meta=pd.DataFrame({"subject": ["s1", "s2", "s3"]}),
               sfreq=0.5, modality="fmri")
    assert t.is_ragged and list(t.n_times) == [30, 42, 30]
    u = Trials.load(t.save(tmp_path / "r.h5"))
    assert u.is_ragged
    for a, b in zip(t.X, u.X):
        np.testing.assert_array_equal(a, b)
    pd.testing.assert_frame_equal(u.meta, t.meta)
    np.testing.assert_array_equal(u.y, t.y)
    c = t.crop_times()
    assert c.X.shape == (3, 5, 30) and "n_times" not in c.meta
    assert t[[1]].n_times.tolist() == [42]


def test_lazy_features(rng, tmp_path):
    t = Trials(rng.standard_normal((20, 7)), y=rng.standard_normal(20), sfreq=np.nan, modality="fmri")
    path = t.save(tmp_path / "f.h5")
    lazy = Trials.load(path, lazy=True)
    assert lazy.is_lazy and isinstance(lazy.X, h5py.Dataset)
    np.testing.assert_array_equal(lazy[[7, 3, 3]].X, t.X[[7, 3, 3]])
    np.testing.assert_array_equal(lazy.load_data().X, t.X)


def test_load_rejects_foreign_or_damaged_files(rng, tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match="junk.h5: not a readable HDF5 file"):
        Trials.load(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(DataError, match="not a neurodecode Trials file"):
        Trials.load(other)
    good = make_trials(rng).save(tmp_path / "good.h5")
    data = good.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.h5"):
        Trials.load(tmp_path / "cut.h5")


def test_save_is_atomic(rng, tmp_path, monkeypatch):
    t = make_trials(rng)
    target = tmp_path / "t.h5"
    t.save(target)
    before = target.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr("neurodecode.trials._write_column", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        t.save(target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.h5"]
