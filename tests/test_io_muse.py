"""Muse visual cueing study (eeg_notebooks_muse) → Trials: counts from SOURCE.md, resampling, errors."""

from __future__ import annotations

import gzip
import re
import time

import numpy as np
import pandas as pd
import pytest

from conftest import require_dataset
from neurodecode.errors import DataError

FOLDER = "eeg_notebooks_muse"


def _source_table(root):
    """Per-subject usable epochs from SOURCE.md: {subject: ((left, right), (pre_cue, target))}."""
    text = (root / "SOURCE.md").read_text()
    rows = re.findall(r"^\| (subject\d+) \|.*\| (\d+)/(\d+) \| (\d+)/(\d+) \|\s*$", text, re.MULTILINE)
    return {s: ((int(a), int(b)), (int(c), int(d))) for s, a, b, c, d in rows}


@pytest.fixture(scope="module")
def muse_root():
    return require_dataset(FOLDER, "index.csv")


def _counts(trials, first, second):
    ct = pd.crosstab(trials.meta["subject"], trials.y)
    return {s: (int(ct.loc[s].get(first, 0)), int(ct.loc[s].get(second, 0))) for s in ct.index}


def test_source_table_parsed(muse_root):
    table = _source_table(muse_root)
    assert len(table) == 67  # guards the regex: every subject row of SOURCE.md


def test_few_subjects_both_tasks(muse_root):
    from neurodecode.io.muse import load_muse_cueing

    source = _source_table(muse_root)
    # 104: three files (two in session2); 1308: timestamp gap; 1311: one cue only.
    subjects = ["subject101", "subject104", "subject1308"]
    cue = load_muse_cueing("cue", subjects=[101, 104, 1308], use_cache=False)
    assert cue.X.shape[1:] == (4, 256) and cue.sfreq == 256.0
    assert cue.ch_names == ["TP9", "AF7", "AF8", "TP10"] and cue.modality == "eeg"
    assert set(cue.y) == {"cue_left", "cue_right"}
    assert _counts(cue, "cue_left", "cue_right") == {s: source[s][0] for s in subjects}
    runs = cue.meta.query("subject == 'subject104'").groupby("session")["run"].unique()
    assert sorted(runs["session2"]) == ["0", "1"] and list(runs["session1"]) == ["0"]
    assert set(cue.meta.loc[cue.y == "cue_left", "code"]) == {1}
    assert set(cue.meta.loc[cue.y == "cue_right", "code"]) == {2}
    # band-passed µV EEG: zero-mean-ish, tens of µV
    assert 1 < np.median(cue.X.std(axis=2)) < 200

    target = load_muse_cueing("target", subjects=["subject101", "subject1311"], use_cache=False)
    assert _counts(target, "pre_cue", "target") == {s: source[s][1] for s in ["subject101", "subject1311"]}
    assert set(target.meta.loc[target.y == "target", "code"]) <= {11, 12, 21, 22}


def test_all_subjects_match_source(muse_root):
    """Every recording once per task: totals and the per-subject table of SOURCE.md."""
    from neurodecode.io import muse

    source = _source_table(muse_root)
    t0 = time.perf_counter()
    cue = muse.load_muse_cueing("cue")
    target = muse.load_muse_cueing("target")
    print(f"Muse, all 131 recordings, both tasks: {time.perf_counter() - t0:.1f} s")
    assert dict(zip(*np.unique(cue.y, return_counts=True))) == {"cue_left": 2660, "cue_right": 2567}
    assert cue.meta["subject"].nunique() == 66  # subject1311 has no usable cue epoch
    assert dict(zip(*np.unique(target.y, return_counts=True))) == {"pre_cue": 5257, "target": 5158}
    assert target.meta["subject"].nunique() == 67
    from neurodecode import get_dataset, load_dataset

    info = get_dataset("muse-cueing")
    # the registry counts the local copy's subjects, and per task
    assert info.n_subjects == 67
    assert info.subjects_per_task == {"cue": 66, "target": 67}
    # through the registry: same arrays, served from the cache just filled
    assert np.array_equal(load_dataset("muse-cueing", task="target").X, target.X)
    got_cue = _counts(cue, "cue_left", "cue_right")
    got_target = _counts(target, "pre_cue", "target")
    for s, (ab, cd) in source.items():
        assert got_cue.get(s, (0, 0)) == ab, s
        assert got_target[s] == cd, s
    assert target.meta["recording"].nunique() == 131 - 0  # every file gave a pre-cue epoch
    # 131 files in 129 subject/session folders
    assert target.meta.groupby(["subject", "session", "run"]).ngroups == 131

    def no_raw(*args, **kwargs):
        raise AssertionError("the cache hit re-read a CSV")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(muse, "read_muse_csv", no_raw)
        again = muse.load_muse_cueing("cue")
    assert np.array_equal(again.X, cue.X) and np.array_equal(again.y, cue.y)
    pd.testing.assert_frame_equal(again.meta, cue.meta)


def _write_csv(path, t, data, markers, columns=("timestamps", "TP9", "AF7", "AF8", "TP10", "Marker0")):
    frame = pd.DataFrame({"timestamps": t, "TP9": data[0], "AF7": data[1], "AF8": data[2],
                          "TP10": data[3], "Marker0": markers})
    frame[list(columns)].to_csv(path, index=False, float_format="%.3f",
                                compression="gzip" if str(path).endswith(".gz") else None)


def _synthetic(n=256 * 30, seed=0):
    """Muse-like timestamps: a 256 Hz clock rounded to the millisecond (3-4 ms steps)."""
    t0 = 1542732322.086
    t = np.round(t0 + np.arange(n) / 256.0, 3)
    rel = t - t[0]
    data = np.stack([10 * np.sin(2 * np.pi * f * rel) for f in (5.0, 8.0, 10.0, 12.0)])
    markers = np.zeros(n, dtype=int)
    return t, data, markers


def test_resampling_and_event_alignment(tmp_path):
    from neurodecode.io.muse import recording_to_trials

    t, data, markers = _synthetic()
    assert set(np.round(np.diff(t) * 1000).astype(int)) == {3, 4}  # irregular, like the real files
    cue_rows = [2560, 3840, 5120]
    markers[cue_rows] = [1, 2, 1]
    markers[[3200, 4480]] = [21, 12]
    path = tmp_path / "subject9_session1_recording_x.csv.gz"
    _write_csv(path, t, data, markers)

    raw = recording_to_trials(path, "cue", subject="subject9", l_freq=None, h_freq=None)
    assert list(raw.y) == ["cue_left", "cue_right", "cue_left"]
    # Without filtering the epoch is the sine sampled on the uniform grid,
    # starting 51 samples (0.2 s) after the marker's grid sample.
    for k, row in enumerate(cue_rows):
        start = int(round((t[row] - t[0]) * 256)) + 51
        grid = (start + np.arange(256)) / 256.0
        expected = np.stack([10 * np.sin(2 * np.pi * f * grid) for f in (5.0, 8.0, 10.0, 12.0)])
        np.testing.assert_allclose(raw.X[k], expected, atol=0.35)  # 3-decimal CSV + linear interp
    np.testing.assert_allclose(raw.meta["onset"], (t[cue_rows] - t[0]))

    filt = recording_to_trials(path, "cue")
    # 5-12 Hz lie in the 1-30 Hz pass band: filtering keeps the sines.
    np.testing.assert_allclose(filt.X, raw.X, atol=0.5)

    target = recording_to_trials(path, "target", l_freq=None, h_freq=None)
    assert list(target.y) == ["pre_cue", "target", "pre_cue", "target", "pre_cue"]
    assert list(target.meta["code"]) == [1, 21, 2, 12, 1]


def test_gaps_split_segments_and_epochs_stay_inside(tmp_path):
    from neurodecode.io.muse import recording_to_trials

    t, data, markers = _synthetic()
    t = t.copy()
    t[4000:] += 100.0  # a 100-s gap: two segments
    markers[[100, 3990, 4010, 7600]] = [1, 2, 1, 2]  # 100: pre-cue too early; 3990/7600: post-cue past the end
    path = tmp_path / "gap.csv.gz"
    _write_csv(path, t, data, markers)
    cue = recording_to_trials(path, "cue")
    assert list(cue.meta["code"]) == [1, 1]
    np.testing.assert_allclose(cue.meta["onset"], t[[100, 4010]] - t[0])
    target = recording_to_trials(path, "target")
    # 100 (no second before it) and 4010 (right after the gap) have no pre-cue window
    np.testing.assert_allclose(target.meta["onset"], t[[3990, 7600]] - t[0])
    markers[:] = 0
    _write_csv(path, t, data, markers)
    assert recording_to_trials(path, "cue") is None


def test_bad_csvs_raise_dataerror_naming_file(tmp_path):
    from neurodecode.io.muse import read_muse_csv

    t, data, markers = _synthetic(n=2000)
    no_marker = tmp_path / "no_marker.csv.gz"
    _write_csv(no_marker, t, data, markers, columns=("timestamps", "TP9", "AF7", "AF8", "TP10"))
    with pytest.raises(DataError, match="no marker column 'Marker0'") as e:
        read_muse_csv(no_marker)
    assert str(no_marker) in str(e.value)

    good = tmp_path / "good.csv.gz"
    _write_csv(good, t, data, markers)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(DataError, match="truncated or damaged") as e:
        read_muse_csv(cut)
    assert str(cut) in str(e.value)

    backwards = tmp_path / "back.csv"
    t2 = t.copy()
    t2[500] = t2[400]
    _write_csv(backwards, t2, data, markers)
    with pytest.raises(DataError, match="timestamps do not increase at data row 501"):
        read_muse_csv(backwards)

    no_channel = tmp_path / "no_tp10.csv"
    _write_csv(no_channel, t, data, markers, columns=("timestamps", "TP9", "AF7", "AF8", "Marker0"))
    with pytest.raises(DataError, match=r"missing column\(s\) \['TP10'\]"):
        read_muse_csv(no_channel)
    with pytest.raises(DataError, match="not found"):
        read_muse_csv(tmp_path / "absent.csv.gz")


def test_unknown_subject_and_task(muse_root):
    from neurodecode.io.muse import load_muse_cueing, muse_recordings

    with pytest.raises(ValueError, match="subject999"):
        load_muse_cueing("cue", subjects=[999])
    with pytest.raises(ValueError, match="task"):
        load_muse_cueing("cues")
    table = muse_recordings(muse_root)
    assert len(table) == 131 and table["subject"].nunique() == 67
    assert table.groupby(["subject", "session"]).ngroups == 129
    assert all(p.is_file() for p in table["path"])
