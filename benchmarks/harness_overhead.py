"""Harness overhead: `evaluate` against a bare scikit-learn loop on the same folds.

Both sides fit the same pipeline on the same leave-one-subject-out folds of
the same simulated EEG and compute the same ROC-AUC; the bare side is
``sklearn.model_selection.cross_val_score`` with the folds passed as ``cv``.
`evaluate` adds what the bare loop does not do: resolving and checking the
pipeline (clone-is-unfitted, class-state leak check), metadata routing,
per-fold timing, the tidy table and, with ``--store``, hashing the data and
committing every fold to SQLite. Each side is timed ``--repeats`` times
(interleaved, so machine load hits both alike); the medians are compared.

Run (numbers in docs/benchmarks.md, "Harness overhead")::

    OMP_NUM_THREADS=1 python benchmarks/harness_overhead.py --repeats 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# benchmark the checkout this script is in, not whatever neurodecode is installed
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402


def make_cov_ts_lr():
    """cov-ts-lr from the registry when installed, else the same pipeline from pyRiemann."""
    from neurodecode.pipelines import list_pipelines, make_pipeline

    if "cov-ts-lr" in list_pipelines():
        return "cov-ts-lr (neurodecode)", make_pipeline("cov-ts-lr")
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline as sk_pipeline

    return "cov-ts-lr (pyRiemann)", sk_pipeline(Covariances("oas"), TangentSpace(), LogisticRegression())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--times", type=int, default=256)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from neurodecode.evaluation import evaluate
    from neurodecode.evaluation.splits import get_split
    from neurodecode.simulation import simulate_eeg

    trials = simulate_eeg(n_subjects=args.subjects, n_trials=args.trials, n_channels=args.channels,
                          n_times=args.times, random_state=0)
    name, pipe = make_cov_ts_lr()
    folds = [(tr, te) for tr, te, _ in get_split("leave-subject-out").split(trials)]

    def bare():
        return cross_val_score(pipe, trials.X, trials.y, cv=folds, scoring="roc_auc")

    def harness(store=None):
        return evaluate({"p": pipe}, trials, split="leave-subject-out", scoring="roc_auc",
                        progress=False, store=store)["score"].to_numpy()

    # warm-up (imports, first-call costs) and a check that both compute the same scores
    assert np.allclose(bare(), harness(), atol=1e-12), "bare loop and evaluate disagree"

    times = {"bare cross_val_score": [], "evaluate": [], "evaluate + store": []}
    for _ in range(args.repeats):
        for label in times:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                if label == "bare cross_val_score":
                    bare()
                elif label == "evaluate":
                    harness()
                else:
                    harness(store=os.path.join(tmp, "r.sqlite"))
                times[label].append(time.perf_counter() - t0)

    # The store's own costs, timed alone (less exposed to machine load than the totals)
    from neurodecode.evaluation.store import ResultStore, data_fingerprints

    t0 = time.perf_counter()
    data_fingerprints(trials)
    t_fp = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultStore(os.path.join(tmp, "r.sqlite"))
        t0 = time.perf_counter()
        for i in range(len(folds)):
            store.put(f"k{i}", {"score": 0.5, "fold": i})
        t_put = (time.perf_counter() - t0) / len(folds)

    base = statistics.median(times["bare cross_val_score"])
    print(f"pipeline: {name}; {len(folds)} leave-subject-out folds of "
          f"{args.subjects}x{args.trials} trials x {args.channels} ch x {args.times} samples; "
          f"median of {args.repeats} runs")
    for label, values in times.items():
        med = statistics.median(values)
        extra = "" if label.startswith("bare") else f"   overhead {100 * (med - base) / base:+.1f} %"
        print(f"  {label:<22} {med:8.3f} s{extra}")
    print(f"  store costs alone: data fingerprint {t_fp:.3f} s per run, commit {1000 * t_put:.1f} ms per fold "
          f"({100 * (t_fp + len(folds) * t_put) / base:.1f} % of the bare loop)")


if __name__ == "__main__":
    main()
