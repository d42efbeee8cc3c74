"""Few-shot new-subject curve on the Muse cueing study (task="target"): cross-subject reset-tuning vs per-subject models.

Split: the harness's ``few-shot`` split (`neurodecode.evaluation.splits.FewShot`,
n = 0, 5, 10, 20, 40 calibration trials per class of the target subject, nested,
seeded per subject; test = the rest of the target subject). Only a fixed, seeded
list of target subjects is run (``--subjects``). Per target subject:

* ``cross-subject-reset``: `CrossSubjectClassifier` (generic adapter on) trained
  on all other subjects once; n = 0 predicts through the generic adapter, n > 0
  loads that model as a checkpoint and reset-tunes a new adapter for the target
  on its n calibration trials per class.
* ``scratch-same-net``: the same network trained only on the n calibration trials.
* ``cov-ts-lr-subject``: ``cov-ts-lr`` trained on the n calibration trials.
* ``cov-ts-lr-others`` (n = 0 only): ``cov-ts-lr`` trained on all other subjects.

Network input: each 1-s, 4-channel epoch averaged in 4-sample bins (256 → 64
samples, 64 Hz), flattened to 256 features, standardised per subject.
Results go to a `ResultStore` (SQLite) so a rerun resumes; the table, CSV and
learning-curve figure go to ``benchmarks/results/``.

    OMP_NUM_THREADS=1 python benchmarks/heads_fewshot_muse.py --subjects 10
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np
import pandas as pd
import torch

from neurodecode.evaluation.plots import learning_curve_plot
from neurodecode.evaluation.splits import get_split
from neurodecode.evaluation.statistics import summary_table
from neurodecode.evaluation.store import ResultStore
from neurodecode.io.muse import load_muse_cueing
from neurodecode.models.adapter import CrossSubjectClassifier
from neurodecode.pipelines import make_pipeline

DATASET = "muse-cueing-target"
SHOTS = (0, 5, 10, 20, 40)
RESULTS = Path(__file__).resolve().parent / "results"


def features(X):
    """(n, 4, 256) → (n, 256): 4-sample bin means (64 Hz), flattened."""
    X = np.asarray(X, dtype=np.float32)
    n, c, t = X.shape
    return X[:, :, : t // 4 * 4].reshape(n, c, t // 4, 4).mean(-1).reshape(n, -1)


def score_record(pipeline, subject, n, y_true, y_pred, seconds, classes):
    y_true = np.asarray(y_true)
    return {"dataset": DATASET, "pipeline": pipeline, "subject": str(subject), "n_shots": int(n),
            "fold": f"subject={subject}|shots={n}", "scoring": "accuracy", "n_classes": len(classes),
            "score": float((np.asarray(y_pred) == y_true).mean()), "n_test": int(len(y_true)),
            "n_test_pos": int((y_true == classes[1]).sum()), "n_test_neg": int((y_true == classes[0]).sum()),
            "fit_seconds": float(seconds)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=10, help="number of held-out target subjects (seeded draw)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="2 subjects, fewer epochs (smoke run)")
    ap.add_argument("--epochs", type=int, default=15, help="pretraining epochs of the cross-subject net")
    ap.add_argument("--tune-epochs", type=int, default=60, help="reset-tuning / scratch epochs")
    ap.add_argument("--tag", default=None, help="suffix of the result files (default: full or quick)")
    args = ap.parse_args()
    if args.quick:
        args.subjects, args.epochs, args.tune_epochs = 2, 3, 20
    tag = args.tag or ("quick" if args.quick else "full")
    torch.set_num_threads(1)
    t_start = time.time()

    trials = load_muse_cueing(task="target")
    classes = np.unique(np.asarray(trials.y))
    subjects_all = sorted(map(str, trials.meta["subject"].unique()))
    F = features(trials.X)
    y = np.asarray(trials.y)
    meta = trials.meta.reset_index(drop=True)
    subj = meta["subject"].astype(str).to_numpy()

    RESULTS.mkdir(parents=True, exist_ok=True)
    store = ResultStore(RESULTS / f"heads_fewshot_muse_{tag}.sqlite")
    arch = dict(shared_dim=64, hidden_dim=64, latent_dim=16, n_layers=2, dropout=0.1, device="cpu")

    folds = {}
    for train, test, info in get_split("few-shot", random_state=args.seed, n_shots=SHOTS).split(trials):
        folds.setdefault(str(info["subject"]), []).append((train, test, int(info["n_shots"])))
    # Targets are drawn among subjects with every n (>= 41 epochs per class), so each curve point has the same subjects.
    eligible = [s for s in subjects_all if len(folds.get(s, [])) == len(SHOTS)]
    rng = np.random.RandomState(args.seed)
    targets = sorted(rng.choice(eligible, size=args.subjects, replace=False).tolist())
    print(f"{trials.n_trials} epochs, {len(subjects_all)} subjects ({len(eligible)} with all n); "
          f"targets {targets}", flush=True)

    for s in targets:
        methods = ["cross-subject-reset", "scratch-same-net", "cov-ts-lr-subject", "cov-ts-lr-others"]
        todo = [(tr, te, n) for tr, te, n in folds[s]
                if any(store.get(f"{s}|{n}|{m}") is None for m in methods
                       if not (n == 0 and m in ("scratch-same-net", "cov-ts-lr-subject"))
                       and not (n > 0 and m == "cov-ts-lr-others"))]
        if not todo:
            continue
        others = np.flatnonzero(subj != s)
        t0 = time.time()
        base = CrossSubjectClassifier(**arch, generic=True, few_shot_max_trials=0, max_epochs=args.epochs,
                                      lr=1e-3, batch_size=64, patience=5, val_fraction=0.1,
                                      random_state=args.seed)
        base.fit(F[others], y[others], meta=meta.iloc[others])
        t_pre = time.time() - t0
        ckpt = Path(tempfile.mkdtemp()) / "cs"
        base.save(ckpt)
        print(f"[{s}] pretrained on {len(others)} epochs in {t_pre:.0f}s", flush=True)
        for tr, te, n in todo:
            calib = np.setdiff1d(tr, others)
            put = lambda m, pred, sec: store.put(f"{s}|{n}|{m}", score_record(m, s, n, y[te], pred, sec, classes))
            if n == 0:
                put("cross-subject-reset", base.predict(F[te], meta=meta.iloc[te]), t_pre)
                t0 = time.time()
                cov = make_pipeline("cov-ts-lr").fit(trials.X[others], y[others])
                put("cov-ts-lr-others", cov.predict(trials.X[te]), time.time() - t0)
            else:
                t0 = time.time()
                tuned = CrossSubjectClassifier(**arch, checkpoint=str(ckpt), finetune_epochs=args.tune_epochs,
                                               finetune_lr=3e-3, batch_size=16, random_state=args.seed)
                tuned.fit(F[calib], y[calib], meta=meta.iloc[calib])
                put("cross-subject-reset", tuned.predict(F[te], meta=meta.iloc[te]), time.time() - t0)
                t0 = time.time()
                scratch = CrossSubjectClassifier(**arch, few_shot_max_trials=0, max_epochs=args.tune_epochs,
                                                 lr=3e-3, batch_size=16, val_fraction=0.0,
                                                 random_state=args.seed)
                scratch.fit(F[calib], y[calib], meta=meta.iloc[calib])
                put("scratch-same-net", scratch.predict(F[te], meta=meta.iloc[te]), time.time() - t0)
                t0 = time.time()
                cov = make_pipeline("cov-ts-lr").fit(trials.X[calib], y[calib])
                put("cov-ts-lr-subject", cov.predict(trials.X[te]), time.time() - t0)
        pd.set_option("display.width", 200, "display.max_columns", 10)
        done = store.to_frame()
        print(done[done["subject"] == s].pivot_table(index="n_shots", columns="pipeline", values="score").round(3),
              f"\n[{s}] {time.time() - t_start:.0f}s total", flush=True)

    df = store.to_frame()
    df = df[df["subject"].isin(targets)]
    df.to_csv(RESULTS / f"heads_fewshot_muse_folds_{tag}.csv", index=False)
    summ = summary_table(df)
    summ.to_csv(RESULTS / f"heads_fewshot_muse_summary_{tag}.csv", index=False)
    learning_curve_plot(df, RESULTS / f"heads_fewshot_muse_curve_{tag}.png", dataset=DATASET)
    cols = ["pipeline", "n_shots", "n_subjects", "mean", "std", "chance_bound", "verdict"]
    print(summ[cols].sort_values(["n_shots", "pipeline"]).round(3).to_string(index=False))
    print(f"wall {time.time() - t_start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
