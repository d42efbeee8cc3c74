"""Results store: kill -9 and resume, no duplicated folds, more subjects → only new folds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from neurodecode.evaluation import ResultStore, evaluate
from neurodecode.evaluation.evaluate import TIME_COLUMNS
from neurodecode.simulation import simulate_eeg

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import os, sys, time
    import numpy as np
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from neurodecode.evaluation import evaluate
    from neurodecode.simulation import simulate_eeg

    class SlowLogVar(TransformerMixin, BaseEstimator):
        """Log-variance features; logs each fit; sleeps FIT_DELAY s (not a parameter, so not in the key)."""
        def fit(self, X, y=None):
            with open(os.environ["FIT_LOG"], "a") as f:
                f.write("fit\\n")
            time.sleep(float(os.environ["FIT_DELAY"]))
            self.n_features_in_ = X.shape[1]
            return self
        def transform(self, X):
            return np.log(np.var(X, axis=-1))

    store, out = sys.argv[1], sys.argv[2]
    t = simulate_eeg(n_subjects=5, n_trials=24, n_channels=4, n_times=64, subject_shift=0.3, random_state=0)
    pipes = {"slow-a": make_pipeline(SlowLogVar(), StandardScaler(), LogisticRegression()),
             "slow-b": make_pipeline(SlowLogVar(), StandardScaler(), LogisticRegression(C=0.1))}
    df = evaluate(pipes, t, split="leave-subject-out", store=store, progress=False)
    df.to_pickle(out)
''')

N_FOLDS = 10


def _run(tmp_path, name, delay, log, wait=True):
    script = tmp_path / "run_eval.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, FIT_LOG=str(log), FIT_DELAY=str(delay), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    args = [sys.executable, str(script), str(tmp_path / f"{name}.sqlite"), str(tmp_path / f"{name}.pkl")]
    proc = subprocess.Popen(args, env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if wait:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out.decode()[-3000:]
    return proc


def _n_fits(log):
    return len(log.read_text().splitlines()) if log.exists() else 0


def _drop_times(df):
    return df.drop(columns=list(TIME_COLUMNS))


def test_kill_9_mid_run_then_resume_gives_the_same_table(tmp_path):
    # the reference: one uninterrupted run
    _run(tmp_path, "reference", 0.0, tmp_path / "reference.log")
    reference = pd.read_pickle(tmp_path / "reference.pkl")
    assert len(reference) == N_FOLDS
    assert _n_fits(tmp_path / "reference.log") == N_FOLDS

    # a run killed with SIGKILL after a few folds were committed
    log = tmp_path / "killed.log"
    db = tmp_path / "killed.sqlite"
    proc = _run(tmp_path, "killed", 0.5, log, wait=False)
    deadline = time.time() + 180
    stored = 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                stored = len(ResultStore(db))
            except Exception:  # the schema may not exist yet
                stored = 0
            if stored >= 3:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    at_kill = len(ResultStore(db))
    assert 3 <= at_kill < N_FOLDS
    fits_before = _n_fits(log)
    assert fits_before <= at_kill + 1  # at most the fold in flight is lost

    # resume: only the missing folds are computed, the table is the reference table
    _run(tmp_path, "killed", 0.0, log)
    resumed = pd.read_pickle(tmp_path / "killed.pkl")
    assert _n_fits(log) - fits_before == N_FOLDS - at_kill
    pd.testing.assert_frame_equal(_drop_times(resumed), _drop_times(reference))
    stored = ResultStore(db).to_frame()
    assert len(stored) == N_FOLDS
    assert not stored.duplicated(["pipeline", "fold"]).any()

    # the stored records are the table the resumed run returned
    from_store = stored.set_index("key").loc[resumed["key"]].reset_index()
    assert np.allclose(from_store["score"], resumed["score"])


def logvar_lr():
    return make_pipeline(FunctionTransformer(np.var, kw_args={"axis": -1}), FunctionTransformer(np.log),
                         StandardScaler(), LogisticRegression())


@pytest.fixture(scope="module")
def sim():
    return simulate_eeg(n_subjects=5, n_trials=30, n_channels=4, n_times=64, subject_shift=0.3, random_state=1)


def test_more_subjects_within_session_computes_only_the_new_subject(sim, tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    first = evaluate({"lv": logvar_lr()}, sim.select(subject=[1, 2, 3]), split="within-session",
                     store=store, progress=False)
    assert len(store) == 15
    second = evaluate({"lv": logvar_lr()}, sim.select(subject=[1, 2, 3, 4]), split="within-session",
                      store=store, progress=False)
    assert len(store) == 20
    old = second[second["subject"] != "4"].reset_index(drop=True)
    # the reused folds are the stored ones, wall times and all
    pd.testing.assert_frame_equal(old, first)
    new = second[second["subject"] == "4"]
    assert len(new) == 5 and not set(new["key"]) & set(first["key"])


@pytest.mark.parametrize("split", ["leave-subject-out", "few-shot"])
def test_more_or_other_subjects_never_reuse_cross_subject_folds(sim, tmp_path, split):
    store = ResultStore(tmp_path / "r.sqlite")
    params = {"n_shots": (0, 3)} if split == "few-shot" else None
    a = evaluate({"lv": logvar_lr()}, sim.select(subject=[1, 2, 3]), split=split, split_params=params,
                 store=store, progress=False)
    n = len(store)
    b = evaluate({"lv": logvar_lr()}, sim.select(subject=[1, 2, 3, 4]), split=split, split_params=params,
                 store=store, progress=False)
    c = evaluate({"lv": logvar_lr()}, sim.select(subject=[1, 2, 5]), split=split, split_params=params,
                 store=store, progress=False)
    # every fold's training set changed, so every fold is new
    assert len(store) == n + len(b) + len(c)
    assert not set(a["key"]) & set(b["key"]) and not set(a["key"]) & set(c["key"])
    assert not set(a["fit_seconds"]) & set(b["fit_seconds"])
    # the same request again is read back, not recomputed
    again = evaluate({"lv": logvar_lr()}, sim.select(subject=[1, 2, 3, 4]), split=split, split_params=params,
                     store=store, progress=False)
    pd.testing.assert_frame_equal(again, b)
    assert len(store) == n + len(b) + len(c)


def test_key_changes_with_parameters_data_and_scoring(sim, tmp_path):
    store = tmp_path / "r.sqlite"
    base = evaluate({"lv": logvar_lr()}, sim, store=store, progress=False)
    other_c = evaluate({"lv": logvar_lr().set_params(logisticregression__C=0.5)}, sim, store=store, progress=False)
    assert not set(base["key"]) & set(other_c["key"])
    acc = evaluate({"lv": logvar_lr()}, sim, store=store, scoring="accuracy", progress=False)
    assert not set(base["key"]) & set(acc["key"])
    X = sim.X.copy()
    X[sim.meta["subject"].to_numpy() == 5] *= 1.01
    from neurodecode import Trials

    changed = Trials(X, y=sim.y, meta=sim.meta, sfreq=sim.sfreq, modality="eeg", name=sim.name)
    ws_a = evaluate({"lv": logvar_lr()}, sim, split="within-session", store=store, progress=False)
    ws_b = evaluate({"lv": logvar_lr()}, changed, split="within-session", store=store, progress=False)
    same = ws_a["key"] == ws_b["key"]
    # only subject 5's folds see the changed data
    assert (same == (ws_a["subject"] != "5")).all()


def test_store_round_trip_and_write_once(tmp_path):
    s = ResultStore(tmp_path / "sub" / "x.sqlite")
    rec = {"dataset": "d", "pipeline": "p", "split": "s", "fold": "f", "score": 0.123456789012345,
           "n": np.int64(3), "nan": float("nan")}
    assert s.put("k", rec) is True
    assert s.put("k", {**rec, "score": 0.0}) is False
    got = s.get("k")
    assert got["score"] == rec["score"] and got["n"] == 3 and np.isnan(got["nan"])
    assert s.get("missing") is None
    assert set(s.get_many(["k", "missing"])) == {"k"}
    assert len(s) == 1 and len(s.to_frame()) == 1


def test_writer_commits_each_fold_and_leaves_one_file(tmp_path):
    import sqlite3

    path = tmp_path / "w.sqlite"
    store = ResultStore(path)
    with store.writer():
        assert store.put("a", {"score": 1.0})
        # committed at once: a separate connection (another process resuming) sees it
        assert ResultStore(path).get("a") == {"score": 1.0}
        assert not store.put("a", {"score": 2.0})  # a key is still written once
        assert (tmp_path / "w.sqlite-wal").exists()  # the write-ahead log is in use
    assert store.get("a") == {"score": 1.0}
    # after the run: checkpointed, back to the rollback journal, one self-contained file
    assert not (tmp_path / "w.sqlite-wal").exists()
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    # outside a writer, put works as before
    assert store.put("b", {"score": 0.5}) and len(store) == 2


def test_fingerprint_same_for_blocked_and_interleaved_rows():
    # blocked subjects take the no-copy view path, interleaved ones the fancy-index path:
    # both must hash the same bytes (store keys of earlier runs stay valid)
    from neurodecode.evaluation.store import data_fingerprints

    t = simulate_eeg(n_subjects=3, n_trials=10, n_channels=3, n_times=64, random_state=0)
    subj = t.meta["subject"].to_numpy()
    # interleave subjects (rows s1, s2, s3, s1, s2, s3, ...), keeping each subject's own row order
    blocks = [np.flatnonzero(subj == s) for s in np.unique(subj)]
    order = np.stack(blocks, axis=1).ravel()
    shuffled = t[order]
    assert not (np.diff(np.flatnonzero(shuffled.meta["subject"].to_numpy() == subj[0])) == 1).all()
    assert data_fingerprints(shuffled) == data_fingerprints(t)
