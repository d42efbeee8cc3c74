"""benchmarks/real_common.py: leave-subject-out folds run in chunks of test subjects add up to the full run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from neurodecode.evaluation import ResultStore, evaluate
from neurodecode.simulation import simulate_eeg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import real_common as rc  # noqa: E402


def _logvar(X):
    return np.log(np.var(X, axis=-1))


def test_chunks_of_test_subjects_reuse_the_full_runs_keys(tmp_path):
    t = simulate_eeg(n_subjects=5, n_trials=20, n_channels=4, n_times=64, random_state=1)
    pipe = {"lv-lr": make_pipeline(FunctionTransformer(_logvar), LogisticRegression())}
    db = tmp_path / "s.sqlite"
    first = evaluate(pipe, t, split=rc.loso_scorable(["1", "2"]), scoring="roc_auc", store=db, progress=False)
    assert sorted(first["subject"]) == ["1", "2"]
    # every fold still trains on all five subjects
    assert (first["n_train"] == 80).all()
    full = evaluate(pipe, t, split=rc.loso_scorable(), scoring="roc_auc", store=db, progress=False)
    assert len(full) == 5 and len(ResultStore(db)) == 5  # only the 3 missing folds were added
    reused = full.set_index("subject").loc[["1", "2"]]
    np.testing.assert_array_equal(reused["key"].to_numpy(), first["key"].to_numpy())
    np.testing.assert_array_equal(reused["fit_seconds"].to_numpy(), first["fit_seconds"].to_numpy())
    # and a store-free full run scores the same
    fresh = evaluate(pipe, t, split=rc.loso_scorable(), scoring="roc_auc", progress=False)
    np.testing.assert_allclose(fresh["score"].to_numpy(), full["score"].to_numpy())
