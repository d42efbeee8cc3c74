"""Kaggle 2014 Dog_1 seizure clips (596 × 16 ch × 400): ictal vs interictal, grouped 5-fold ROC-AUC.

Folds: ``StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=42)`` on
``meta["group"]`` (one group per seizure, one per 38-s interictal run; see
``kaggle_seizure_dog1/SOURCE.md``: plain GroupKFold leaves two folds without a
seizure, where ROC-AUC is undefined). Both sides score these same folds.

Ours, through `neurodecode.evaluation.evaluate`: registered ``cov-ts-lr``
(OAS), ``cov-mdm`` and ``acm-ts-svm`` (skipped with a note when not
registered). Reference side by side: pyRiemann
``Covariances("oas") → TangentSpace → LogisticRegression(max_iter=1000)``
with ``cross_val_score`` (SOURCE.md: 0.9927 ± 0.0093). Near ceiling: a smoke
and regression test, not a way to rank methods.

Run::

    python benchmarks/real_dog1.py
    python benchmarks/real_dog1.py --quick      # cov-ts-lr only
"""

from __future__ import annotations

import real_common as rc  # first: sets the thread variables before numpy is imported

import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

PIPELINES = ["cov-ts-lr", "cov-mdm", "acm-ts-svm"]
SOURCE_REF = 0.9927


def folds():
    from sklearn.model_selection import StratifiedGroupKFold

    return StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=42)


def reference(trials):
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    t0 = time.perf_counter()
    pipe = make_pipeline(Covariances(estimator="oas"), TangentSpace(metric="riemann"),
                         LogisticRegression(max_iter=1000))
    scores = cross_val_score(pipe, trials.X, trials.y, groups=trials.meta["group"].to_numpy(),
                             cv=folds(), scoring="roc_auc")
    return scores, time.perf_counter() - t0


def main(argv=None):
    p = rc.base_parser(__doc__, "real_dog1")
    p.add_argument("--pipelines", default=",".join(PIPELINES))
    p.add_argument("--no-reference", action="store_true")
    args = p.parse_args(argv)
    rc.limit_threads()

    from neurodecode.io.seizure import load_dog1_seizure

    report = rc.Report("real_dog1", args)
    t0 = time.perf_counter()
    trials = load_dog1_seizure()
    trials = type(trials)(np.asarray(trials.X, dtype=np.float64), trials.y, trials.meta, sfreq=trials.sfreq,
                          ch_names=trials.ch_names, modality=trials.modality, name="dog1-seizure")
    report.section("Data", f"X {trials.X.shape}, labels {dict(pd.Series(trials.y).value_counts())}, "
                   f"{trials.meta['group'].nunique()} groups; load {time.perf_counter() - t0:.1f} s")
    names = ["cov-ts-lr"] if args.quick else args.pipelines.split(",")
    pipes, missing = rc.resolve_pipelines(names)
    if missing:
        report.section("Skipped", f"not registered in this checkout: {', '.join(missing)}")
    df, wall = rc.run_eval(pipes, trials, rc.cv_split(folds(), "group"), args, scoring="roc_auc")
    rows = []
    for name, g in df.groupby("pipeline", sort=False):
        rows.append({"pipeline": name, "n_folds": len(g), "mean": g["score"].mean(),
                     "sd_ddof0": g["score"].std(ddof=0), "min_fold": g["score"].min(),
                     "per_fold": ", ".join(f"{s:.4f}" for s in g["score"]), "fit_seconds": g["fit_seconds"].sum()})
    if not args.no_reference:
        scores, ref_wall = reference(trials)
        rows.append({"pipeline": "pyRiemann Cov(oas)+TS+LR (reference)", "n_folds": len(scores),
                     "mean": scores.mean(), "sd_ddof0": scores.std(), "min_fold": scores.min(),
                     "per_fold": ", ".join(f"{s:.4f}" for s in scores), "fit_seconds": ref_wall})
    summary = pd.DataFrame(rows)
    report.section("Grouped 5-fold ROC-AUC (± = sd over the 5 folds, ddof=0 as SOURCE.md)",
                   rc.fmt_table(summary) + f"\n\nharness wall {wall:.1f} s; SOURCE.md reference {SOURCE_REF}")
    # five folds: paired tests over folds are indicative only
    pairs = rc.paired(df.assign(subject=df["fold"])) if df["pipeline"].nunique() > 1 else pd.DataFrame()
    if not pairs.empty:
        report.section("Paired tests over the 5 folds (indicative: n=5)", rc.fmt_table(pairs, rc.PAIRED_COLS))
        report.csv(pairs, "paired")
    report.csv(df, "folds")
    report.csv(summary, "summary")
    report.finish()


if __name__ == "__main__":
    main()
