"""Harness overhead: `evaluate` (with its results store) against a bare scikit-learn loop on the same folds.

Both sides fit the same pipeline on the same leave-one-subject-out folds of
the same trials and compute the same ROC-AUC (asserted equal before timing);
the bare side is ``sklearn.model_selection.cross_val_score`` with the folds
passed as ``cv``. `evaluate` adds what the bare loop does not do: resolving
and checking the pipeline (clone-is-unfitted, class-state leak check),
metadata routing, per-fold timing, the tidy table and, with a store, hashing
the data and committing every fold to SQLite. The headline harness number
**includes the store** (a fresh SQLite file per run, so every fold is
computed and committed); ``evaluate`` without a store is timed too.

Measurement design (the machine is shared and loaded, so noise is the enemy):

* the variants are **interleaved**, and their order rotates from one repeat to
  the next (a Latin square: every variant takes every position equally often),
  so drifting machine load hits all variants alike;
* each variant runs ``--repeats`` times (default 9, at least 7); the table
  gives the **median** wall time (``time.perf_counter``) and the median
  **process CPU time** (``time.process_time``: this process, all threads;
  less sensitive to other jobs than wall time), the overhead of the medians,
  and the median of the **per-repeat paired ratios** (harness / bare of the
  same repeat, which cancels slow load changes);
* threads are pinned to 1 (``OMP``/``OPENBLAS``/``MKL`` and torch).

Workloads (``--workloads``):

* ``physionet``: cov-ts-lr on real PhysionetMI subjects 1-5 (MOABB
  ``LeftRightImagery``: 64 channels, 481 samples, 45 trials per subject),
  leave-one-subject-out (5 folds);
* ``sim``: cov-ts-lr on simulated EEG (`neurodecode.simulation.simulate_eeg`,
  10 subjects x 60 trials x 16 channels x 256 samples), leave-one-subject-out
  (10 folds);
* ``sim-small``: the previous session's tiny case (8 x 40 x 8 x 128, folds of
  ~0.3 s), where fixed per-fold costs weigh most.

Run (numbers in docs/benchmarks.md, "Harness overhead")::

    python benchmarks/harness_overhead.py --repeats 9
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
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402

VARIANTS = ("bare cross_val_score", "evaluate + store", "evaluate (no store)")


def load_workload(name):
    """``(description, trials)`` for a workload name."""
    if name == "physionet":
        from neurodecode.io.moabb_data import load_physionet_mi

        t = load_physionet_mi(subjects=range(1, 6))
        return "PhysionetMI S1-5 (real; 5 x 45 trials x 64 ch x 481 samples)", t
    from neurodecode.simulation import simulate_eeg

    if name == "sim":
        shape = dict(n_subjects=10, n_trials=60, n_channels=16, n_times=256)
    elif name == "sim-small":
        shape = dict(n_subjects=8, n_trials=40, n_channels=8, n_times=128)
    else:
        raise SystemExit(f"unknown workload {name!r}; choose physionet, sim, sim-small")
    t = simulate_eeg(**shape, random_state=0)
    return (f"simulated EEG ({shape['n_subjects']} x {shape['n_trials']} trials x {shape['n_channels']} ch x "
            f"{shape['n_times']} samples)"), t


def measure(trials, pipe, repeats):
    """Per-variant lists of (wall, cpu) seconds, interleaved in a rotating order."""
    from neurodecode.evaluation import evaluate
    from neurodecode.evaluation.splits import get_split

    folds = [(tr, te) for tr, te, _ in get_split("leave-subject-out").split(trials)]
    X, y = np.asarray(trials.X), np.asarray(trials.y)

    def bare():
        return cross_val_score(pipe, X, y, cv=folds, scoring="roc_auc")

    def harness(store):
        return evaluate({"p": pipe}, trials, split="leave-subject-out", scoring="roc_auc",
                        progress=False, store=store)["score"].to_numpy()

    # warm-up (imports, first-call costs) and a check that both compute the same scores
    with tempfile.TemporaryDirectory() as tmp:
        a, b = bare(), harness(os.path.join(tmp, "r.sqlite"))
    assert np.allclose(a, b, atol=1e-12), f"bare loop and evaluate disagree: {a} vs {b}"

    times = {v: [] for v in VARIANTS}
    for r in range(repeats):
        order = VARIANTS[r % 3:] + VARIANTS[:r % 3]
        for variant in order:
            with tempfile.TemporaryDirectory() as tmp:  # a fresh store: every fold computed and committed
                store = os.path.join(tmp, "r.sqlite") if variant == "evaluate + store" else None
                w0, c0 = time.perf_counter(), time.process_time()
                if variant.startswith("bare"):
                    bare()
                else:
                    harness(store)
                times[variant].append((time.perf_counter() - w0, time.process_time() - c0))
    return len(folds), times


def store_costs(trials, n_folds):
    """The store's own costs, timed alone as `evaluate` pays them.

    Per run: the data fingerprint, and opening the store plus its writer
    session (table check, switch to WAL, final checkpoint); per fold: one
    committed, fsynced transaction inside the writer.
    """
    from neurodecode.evaluation.store import ResultStore, data_fingerprints

    t0 = time.perf_counter()
    data_fingerprints(trials)
    t_fp = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = ResultStore(os.path.join(tmp, "r.sqlite"))
        with store.writer():
            t1 = time.perf_counter()
            for i in range(n_folds):
                store.put(f"k{i}", {"score": 0.5, "fold": i})
            t2 = time.perf_counter()
        t3 = time.perf_counter()
    return t_fp, (t1 - t0) + (t3 - t2), (t2 - t1) / n_folds


def summarize(times):
    """Rows: variant, median wall/cpu, overhead of medians, median paired ratio."""
    base = times[VARIANTS[0]]
    base_w = statistics.median(w for w, _ in base)
    base_c = statistics.median(c for _, c in base)
    rows = []
    for v in VARIANTS:
        w = statistics.median(x for x, _ in times[v])
        c = statistics.median(x for _, x in times[v])
        row = {"variant": v, "wall": w, "cpu": c}
        if v != VARIANTS[0]:
            row["wall_over"] = 100 * (w - base_w) / base_w
            row["cpu_over"] = 100 * (c - base_c) / base_c
            row["wall_ratio"] = 100 * (statistics.median(h[0] / b[0] for h, b in zip(times[v], base)) - 1)
            row["cpu_ratio"] = 100 * (statistics.median(h[1] / b[1] for h, b in zip(times[v], base)) - 1)
        rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="runs per variant (at least 7)")
    parser.add_argument("--workloads", default="physionet,sim,sim-small")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "harness_overhead.md"))
    args = parser.parse_args(argv)
    if args.repeats < 7:
        raise SystemExit("--repeats must be at least 7 (medians of fewer runs are too noisy here)")

    import torch

    torch.set_num_threads(1)
    from neurodecode.pipelines import make_pipeline

    lines = ["# Harness overhead", "", f"Command: `python benchmarks/harness_overhead.py {' '.join(argv or sys.argv[1:])}`",
             "", f"Load average at start: {os.getloadavg()[0]:.1f}", "",
             "| workload | folds | variant | wall median | CPU median | wall overhead (medians) | "
             "CPU overhead (medians) | wall overhead (median paired ratio) | CPU overhead (median paired ratio) |",
             "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for wl in args.workloads.split(","):
        desc, trials = load_workload(wl)
        pipe = make_pipeline("cov-ts-lr")
        t0 = time.perf_counter()
        n_folds, times = measure(trials, pipe, args.repeats)
        total = time.perf_counter() - t0
        rows = summarize(times)
        t_fp, t_open, t_put = store_costs(trials, n_folds)
        print(f"{desc}: cov-ts-lr, {n_folds} leave-subject-out folds, {args.repeats} interleaved repeats "
              f"({total:.0f} s)")
        for row in rows:
            over = "" if "wall_over" not in row else (
                f"   overhead wall {row['wall_over']:+.1f} % cpu {row['cpu_over']:+.1f} % | paired "
                f"wall {row['wall_ratio']:+.1f} % cpu {row['cpu_ratio']:+.1f} %")
            print(f"  {row['variant']:<22} wall {row['wall']:8.3f} s  cpu {row['cpu']:8.3f} s{over}")
            cells = ["", "", "", ""] if "wall_over" not in row else [
                f"{row['wall_over']:+.1f} %", f"{row['cpu_over']:+.1f} %",
                f"{row['wall_ratio']:+.1f} %", f"{row['cpu_ratio']:+.1f} %"]
            lines.append(f"| {desc} | {n_folds} | {row['variant']} | {row['wall']:.3f} s | {row['cpu']:.3f} s | "
                         + " | ".join(cells) + " |")
        base = rows[0]["wall"]
        note = (f"{desc}: store alone = data fingerprint {t_fp:.3f} s + open/close {1000 * t_open:.0f} ms per run, "
                f"commit {1000 * t_put:.1f} ms per fold "
                f"({100 * (t_fp + t_open + n_folds * t_put) / base:.1f} % of the bare loop's median wall time)")
        print("  " + note)
        notes.append(note)
        raw = {v: [(round(w, 4), round(c, 4)) for w, c in times[v]] for v in VARIANTS}
        notes.append(f"{desc}: raw (wall, cpu) seconds per repeat: {raw}")
    lines += ["", *[f"- {n}" for n in notes], "", f"Load average at end: {os.getloadavg()[0]:.1f}", ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print(f"table written to {args.out}")


if __name__ == "__main__":
    main()
