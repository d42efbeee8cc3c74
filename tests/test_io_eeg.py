"""EEG loaders: MOABB PhysionetMI offline (+ cache), raw files through MNE → Trials."""

from __future__ import annotations

import socket
import time

import numpy as np
import pandas as pd
import pytest

from conftest import require_dataset
from neurodecode.errors import DataError

# SOURCE.md (mne_data): left_hand / right_hand epochs per subject, subjects 1-15.
PHYSIONET_COUNTS = {
    1: (23, 22), 2: (23, 22), 3: (23, 22), 4: (23, 22), 5: (21, 24), 6: (24, 21), 7: (23, 22),
    8: (22, 23), 9: (24, 21), 10: (24, 21), 11: (23, 22), 12: (21, 24), 13: (23, 22),
    14: (22, 23), 15: (23, 22),
}
LONG_RUNS = {1, 3, 7}  # 20,000-sample runs; every other subject: 19,680


class _ConnectCounter:
    """Replaces socket.connect: records and refuses every internet connection."""

    def __init__(self):
        self.calls = []
        self.original = socket.socket.connect

    def __call__(self, sock, address, *args, **kwargs):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            self.calls.append(address)
            raise ConnectionRefusedError(f"test blocks the network ({address!r})")
        return self.original(sock, address, *args, **kwargs)


@pytest.fixture(scope="module")
def physionet():
    """Subjects 1-15 loaded once from the raw EDF files, with the network refused."""
    require_dataset("mne_data", "MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf")
    from neurodecode.io.moabb_data import load_physionet_mi

    counter = _ConnectCounter()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", counter)
        # conftest sets these for MOABB; the loader must not depend on them.
        mp.delenv("MOABB_DOWNLOAD_PROVIDER", raising=False)
        mp.delenv("MNE_DATASETS_EEGBCI_PATH", raising=False)
        t0, c0 = time.perf_counter(), time.process_time()
        trials = load_physionet_mi(subjects=range(1, 16), use_cache=True)
        seconds = (time.perf_counter() - t0, time.process_time() - c0)
    return trials, counter.calls, seconds


def test_physionet_counts_match_source(physionet):
    trials, connects, seconds = physionet
    assert connects == [], f"network attempted: {connects[:3]}"
    wall, cpu = seconds
    print(f"PhysionetMI S1-15 from raw: {wall:.1f} s wall, {cpu:.1f} s CPU")
    # Offline MOABB retries cost minutes of waiting; the CPU time of a clean
    # local read is ~25 s (wall time depends on how busy the machine is).
    assert cpu < 60
    assert trials.X.shape == (675, 64, 481)
    assert trials.sfreq == 160.0
    assert trials.modality == "eeg" and trials.name == "physionet-mi"
    assert len(trials.ch_names) == 64 and "C3" in trials.ch_names and "Cz" in trials.ch_names
    labels, counts = np.unique(trials.y, return_counts=True)
    assert dict(zip(labels, counts)) == {"left_hand": 342, "right_hand": 333}
    per = pd.crosstab(trials.meta["subject"], trials.y)
    assert sorted(per.index) == list(range(1, 16))
    for subject, (left, right) in PHYSIONET_COUNTS.items():
        assert (per.loc[subject, "left_hand"], per.loc[subject, "right_hand"]) == (left, right)
    # MOABB's meta as MOABB returns it: one session, runs '0', '1', '2'.
    assert set(trials.meta["session"]) == {"0"}
    runs = {s: sorted(set(g)) for s, g in trials.meta.groupby("subject")["run"]}
    assert all(r == ["0", "1", "2"] for r in runs.values()), runs
    # Positions from the standard montage, head frame, metres; none missing.
    assert trials.positions.shape == (64, 3) and np.isfinite(trials.positions).all()
    assert trials.coord_frame == "head"
    assert 0.05 < np.median(np.linalg.norm(trials.positions, axis=1)) < 0.15
    # µV like MOABB's arrays: band-passed EEG has amplitudes of tens of µV.
    assert 1 < np.std(trials.X) < 200


def test_physionet_raw_run_lengths():
    root = require_dataset("mne_data", "MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf")
    import mne

    from neurodecode.io.moabb_data import physionet_mi_files

    for subject in range(1, 16):
        for path in physionet_mi_files(subject, [4, 8, 12], root):
            raw = mne.io.read_raw_edf(path, preload=False, verbose="error")
            assert raw.info["sfreq"] == 160.0
            assert len([c for c in raw.ch_names]) == 64
            assert raw.n_times == (20000 if subject in LONG_RUNS else 19680), path.name


def test_physionet_cache_hit_is_identical_and_skips_raw(physionet, monkeypatch):
    trials, _, _ = physionet
    import neurodecode.io.moabb_data as md

    def no_raw(*args, **kwargs):
        raise AssertionError("the cache hit went back to MOABB / the raw files")

    monkeypatch.setattr(md, "from_moabb", no_raw)
    t0 = time.perf_counter()
    again = md.load_physionet_mi(subjects=range(1, 16))
    print(f"PhysionetMI S1-15 from cache: {time.perf_counter() - t0:.2f} s")
    assert np.array_equal(again.X, trials.X)
    assert np.array_equal(again.y, trials.y)
    pd.testing.assert_frame_equal(again.meta, trials.meta)
    assert again.ch_names == trials.ch_names
    assert np.array_equal(again.positions, trials.positions)
    # A subset is served from the same per-subject entries.
    sub = md.load_physionet_mi(subjects=[2, 7])
    assert np.array_equal(sub.X, trials.X[trials.meta["subject"].isin([2, 7]).to_numpy()])


def test_from_moabb_equals_moabb_arrays(physionet):
    """Our X is exactly what MOABB's paradigm.get_data returns (same units, order, labels)."""
    trials, _, _ = physionet
    from moabb.datasets import PhysionetMI
    from moabb.paradigms import LeftRightImagery

    from neurodecode.io.moabb_data import from_moabb, moabb_offline

    ds = PhysionetMI(imagined=True, executed=False)
    ds.feet_runs = []
    with moabb_offline():
        X, y, meta = LeftRightImagery().get_data(dataset=ds, subjects=[3])
    ours = from_moabb(PhysionetMI(imagined=True, executed=False), LeftRightImagery(), [3],
                      use_cache=False)
    np.testing.assert_allclose(ours.X, X, rtol=1e-12, atol=1e-9)
    assert list(ours.y) == list(y)
    assert np.array_equal(ours.X, trials.select(subject=3).X)
    for col in ("subject", "session", "run"):
        assert list(ours.meta[col]) == list(meta[col])


def test_missing_runs_raise_dataerror_naming_file(tmp_path, monkeypatch):
    src = require_dataset("mne_data", "MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf")
    import os

    from neurodecode.io.moabb_data import PHYSIONET_SUBDIR, load_physionet_mi

    sub = tmp_path / PHYSIONET_SUBDIR / "S001"
    sub.mkdir(parents=True)
    os.symlink(src / PHYSIONET_SUBDIR / "S001" / "S001R04.edf", sub / "S001R04.edf")
    monkeypatch.setenv("MNE_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"S001R08\.edf.*not available locally"):
        load_physionet_mi(subjects=[1])


def test_moabb_offline_refuses_downloads_fast():
    """A file MOABB would download is a DataError at once; internet sockets are refused."""
    require_dataset("mne_data", "MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf")
    import os

    from moabb.datasets import PhysionetMI

    from neurodecode.io.moabb_data import NetworkBlockedError, moabb_offline

    before = {k: os.environ.get(k) for k in ("MOABB_DOWNLOAD_PROVIDER", "MNE_DATA")}
    ds = PhysionetMI(imagined=True, executed=False)
    t0 = time.perf_counter()
    with moabb_offline():
        assert os.environ["MOABB_DOWNLOAD_PROVIDER"] == "upstream"
        with pytest.raises(DataError, match=r"S001R06\.edf.*not available locally"):
            ds._load_data(1, runs=[6])  # imagined hands/feet run: not in the shared copy
        assert ds._load_data(1, runs=[4])[0].endswith("S001R04.edf")
        with pytest.raises(NetworkBlockedError):
            socket.create_connection(("192.0.2.1", 443), timeout=5)  # TEST-NET-1, never routed
    assert time.perf_counter() - t0 < 10
    assert {k: os.environ.get(k) for k in before} == before  # environment restored
    assert socket.socket.connect is _ConnectCounter().original  # socket restored


def test_registry_loads_physionet(physionet):
    from neurodecode import get_dataset, load_dataset

    trials, _, _ = physionet
    info = get_dataset("physionet-mi")
    assert info.is_available()
    one = load_dataset("physionet-mi", subjects=[5])
    assert np.array_equal(one.X, trials.select(subject=5).X)
    assert trials.meta["subject"].nunique() == info.n_subjects


def test_feet_classes_need_runs_that_are_absent():
    require_dataset("mne_data", "MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf")
    from neurodecode.io.moabb_data import load_physionet_mi

    with pytest.raises(DataError, match=r"S001R06\.edf"):
        load_physionet_mi(subjects=[1], events=("left_hand", "feet"), use_cache=False)


# ------------------------------------------------------------------ raw files
SFREQ = 128.0
CH = ["Fz", "Cz", "Pz", "Oz", "C3", "C4"]


def _make_raw(n_seconds=20, stim=False):
    import mne

    rng = np.random.default_rng(0)
    data = rng.standard_normal((len(CH), int(n_seconds * SFREQ))) * 20e-6
    info = mne.create_info(CH, SFREQ, "eeg")
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_montage("standard_1020", verbose="error")
    # 'left' at 2 and 10 s, 'right' at 6 s, one 'left' too close to the end
    # for a 1-s epoch, and a BAD segment that must not become a class.
    raw.set_annotations(mne.Annotations([2.0, 6.0, 10.0, 19.5, 14.0], [0.5, 0.5, 0.5, 0.1, 1.0],
                                        ["left", "right", "left", "left", "BAD_blink"]))
    return raw


@pytest.fixture
def raw():
    return _make_raw()


@pytest.mark.parametrize("fmt, filename", [("edf", "rec.edf"), ("bdf", "rec.bdf"),
                                           ("fif", "rec_raw.fif"), ("brainvision", "rec.vhdr")])
def test_read_and_epoch_each_format(raw, tmp_path, fmt, filename):
    from neurodecode.io.eeg_raw import raw_to_epochs_trials, read_raw_eeg

    path = tmp_path / filename
    if fmt == "fif":
        raw.save(path, verbose="error")
    else:
        raw.export(path, fmt=fmt, verbose="error")
    back = read_raw_eeg(path)
    assert back.ch_names[:len(CH)] == CH
    assert back.info["sfreq"] == SFREQ
    trials = raw_to_epochs_trials(path, tmin=0.0, tmax=1.0 - 1 / SFREQ, subject="s7", run="2")
    # the 19.5-s 'left' epoch runs past the end and is dropped; BAD is no class
    prefix = "Comment/" if fmt == "brainvision" else ""  # MNE reads BrainVision markers so
    assert list(trials.y) == [prefix + c for c in ("left", "right", "left")]
    assert trials.X.shape == (3, len(CH), int(SFREQ))
    assert trials.ch_names == CH and trials.sfreq == SFREQ
    assert set(trials.meta["subject"]) == {"s7"} and set(trials.meta["run"]) == {"2"}
    np.testing.assert_allclose(trials.meta["onset"], [2.0, 6.0, 10.0])
    # the samples survive the file format (EDF: 16-bit, so a quantisation error)
    expected = raw.get_data()[:, int(6 * SFREQ):int(7 * SFREQ)]
    tol = 0.02 * np.abs(expected).max() if fmt in ("edf", "brainvision") else 1e-9
    np.testing.assert_allclose(trials.X[1], expected, atol=tol)
    if fmt == "fif":  # only FIF stores the montage
        assert trials.positions is not None and np.isfinite(trials.positions).all()


def test_epoch_options(raw):
    import mne

    from neurodecode.io.eeg_raw import raw_to_epochs_trials

    t = raw_to_epochs_trials(raw, ["right"], tmin=-0.5, tmax=0.5)
    assert list(t.y) == ["right"] and t.X.shape == (1, 6, 129)
    assert t.positions.shape == (6, 3) and np.isfinite(t.positions).all()
    t = raw_to_epochs_trials(raw, {"left": 5}, tmin=0, tmax=0.5, baseline=(0, 0.1))
    assert list(t.meta["code"]) == [5, 5]
    np.testing.assert_allclose(t.X[:, :, :13].mean(axis=2), 0, atol=1e-12)
    # An epoch overlapping a BAD annotation is rejected.
    bad = raw.copy()
    bad.annotations.append(10.2, 0.2, "BAD_move")
    assert list(raw_to_epochs_trials(bad, tmax=0.99).meta["onset"]) == [2.0, 6.0]
    with pytest.raises(ValueError, match="absent"):
        raw_to_epochs_trials(raw, ["up"])
    # Stim-channel events.
    stim = mne.io.RawArray(np.zeros((1, raw.n_times)), mne.create_info(["STI"], SFREQ, "stim"),
                           verbose="error")
    stim._data[0, [256, 768]] = [3, 4]
    with_stim = raw.copy().add_channels([stim], force_update_info=True)
    t = raw_to_epochs_trials(with_stim, {"a": 3, "b": 4}, stim_channel="STI", tmax=0.5)
    assert list(t.y) == ["a", "b"] and t.ch_names == CH


def _assert_names_file(excinfo, path, *words):
    msg = str(excinfo.value)
    assert str(path) in msg, msg
    for w in words:
        assert w in msg, msg
    # ours, not a library traceback re-raised with another type
    assert excinfo.type is DataError


def test_corrupt_files_give_clear_errors(raw, tmp_path):
    from neurodecode.io.eeg_raw import read_raw_eeg

    edf = tmp_path / "ok.edf"
    raw.export(edf, fmt="edf", verbose="error")
    data = edf.read_bytes()
    crlf = tmp_path / "crlf.edf"
    crlf.write_bytes(data.replace(b"\n", b"\r\n"))
    with pytest.raises(DataError) as e:
        read_raw_eeg(crlf)
    _assert_names_file(e, crlf, "\\r\\n")
    cut = tmp_path / "cut.edf"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as e:
        read_raw_eeg(cut)
    _assert_names_file(e, cut, "truncated")

    bdf = tmp_path / "ok.bdf"
    raw.export(bdf, fmt="bdf", verbose="error")
    cut = tmp_path / "cut.bdf"
    cut.write_bytes(bdf.read_bytes()[:-1000])  # MNE alone reads this silently, shorter
    with pytest.raises(DataError) as e:
        read_raw_eeg(cut)
    _assert_names_file(e, cut, "truncated")

    fif = tmp_path / "ok_raw.fif"
    raw.save(fif, verbose="error")
    for n in (fif.stat().st_size // 2, 100, 10):
        cut = tmp_path / f"cut{n}_raw.fif"
        cut.write_bytes(fif.read_bytes()[:n])
        with pytest.raises(DataError) as e:
            read_raw_eeg(cut)
        _assert_names_file(e, cut)
    junk = tmp_path / "junk_raw.fif"
    junk.write_bytes(b"this is not a fif file at all" * 10)
    with pytest.raises(DataError, match="not a FIF file"):
        read_raw_eeg(junk)

    vhdr = tmp_path / "bv.vhdr"
    raw.export(vhdr, fmt="brainvision", verbose="error")
    eeg = tmp_path / "bv.eeg"
    full = eeg.read_bytes()
    eeg.write_bytes(full[:-3])
    with pytest.raises(DataError) as e:
        read_raw_eeg(vhdr)
    _assert_names_file(e, eeg, "truncated")
    frame = len(CH) * 4
    eeg.write_bytes(full[: (len(full) // 2 // frame) * frame])  # whole samples, but markers past the end
    with pytest.raises(DataError) as e:
        read_raw_eeg(vhdr)
    _assert_names_file(e, eeg, "truncated")
    eeg.unlink()
    with pytest.raises(DataError) as e:
        read_raw_eeg(vhdr)
    _assert_names_file(e, eeg, "missing")

    for name in ("garbage.set", "garbage.gdf"):
        bad = tmp_path / name
        bad.write_bytes(b"\x00\x01 not an EEG file " * 50)
        with pytest.raises(DataError) as e:
            read_raw_eeg(bad)
        _assert_names_file(e, bad, "cannot read as")


def test_missing_and_unknown_files(tmp_path):
    from neurodecode.io.eeg_raw import read_raw_eeg

    with pytest.raises(DataError) as e:
        read_raw_eeg(tmp_path / "absent.edf")
    _assert_names_file(e, tmp_path / "absent.edf", "not found")
    odd = tmp_path / "rec.xyz"
    odd.write_text("x")
    with pytest.raises(DataError) as e:
        read_raw_eeg(odd)
    _assert_names_file(e, odd, "unknown EEG file type", ".edf")
    empty = tmp_path / "empty.edf"
    empty.write_bytes(b"")
    with pytest.raises(DataError) as e:
        read_raw_eeg(empty)
    _assert_names_file(e, empty, "empty")


def test_real_physionet_edf_through_mne_reader(tmp_path):
    """A real EDF+ run through read_raw_eeg/raw_to_epochs_trials, and its CRLF-damaged copy."""
    root = require_dataset("mne_data", "MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf")
    from neurodecode.io.eeg_raw import raw_to_epochs_trials, read_raw_eeg
    from neurodecode.io.moabb_data import physionet_mi_files

    path = physionet_mi_files(1, [4], root)[0]
    raw = read_raw_eeg(path)
    assert raw.n_times == 20000 and len(raw.ch_names) == 64
    trials = raw_to_epochs_trials(raw, tmin=0.0, tmax=3.0, subject="1")
    counts = dict(zip(*np.unique(trials.y, return_counts=True)))
    assert counts["T0"] == 15 and counts["T1"] + counts["T2"] == 15  # SOURCE.md: every run
    assert trials.X.shape[1:] == (64, 481)
    # The corruption SOURCE.md found in a third copy of S001: \n -> \r\n.
    bad = tmp_path / "S001R04.edf"
    bad.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    with pytest.raises(DataError, match=r"line endings were converted") as e:
        read_raw_eeg(bad)
    assert str(bad) in str(e.value)
