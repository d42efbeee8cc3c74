"""nilearn development fMRI (155 subjects, BASC-064): child vs adult, 5-fold accuracy.

Folds: ``StratifiedKFold(5, shuffle=True, random_state=0)`` over participants
(SOURCE.md's procedure); both sides score these same folds with accuracy.

Ours, through `neurodecode.evaluation.evaluate`:
`neurodecode.preprocessing.connectivity.Connectivity` (``kind``, vectorised,
diagonal discarded, Ledoit-Wolf, fitted on the training participants) →
``LinearSVC(C=1, max_iter=100000)``, no feature scaling.
Reference side by side: nilearn ``ConnectivityMeasure`` fitted on the same
training participants → the same ``LinearSVC``
(SOURCE.md: tangent 0.9935 ± 0.013, correlation 0.9548 ± 0.033).

Run::

    python benchmarks/real_development.py
    python benchmarks/real_development.py --quick     # tangent only
"""

from __future__ import annotations

import real_common as rc  # first: sets the thread variables before numpy is imported

import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

SOURCE_REF = {"tangent": 0.9935, "correlation": 0.9548}


def folds():
    from sklearn.model_selection import StratifiedKFold

    return StratifiedKFold(5, shuffle=True, random_state=0)


def svc():
    from sklearn.svm import LinearSVC

    return LinearSVC(C=1.0, max_iter=100000)


def ours(kind):
    from sklearn.pipeline import Pipeline

    from neurodecode.preprocessing.connectivity import Connectivity

    return Pipeline([("connectivity", Connectivity(kind=kind, vectorize=True, discard_diagonal=True)),
                     ("classifier", svc())])


def label(kind):
    return {"tangent": "conn-tangent-svm", "correlation": "conn-corr-svm"}[kind]


def reference(trials, kind):
    from nilearn.connectome import ConnectivityMeasure

    t0 = time.perf_counter()
    series = [np.asarray(x, dtype=np.float64).T for x in trials.X]
    y = np.asarray(trials.y)
    scores = []
    for train, test in folds().split(np.zeros(len(y)), y):
        cm = ConnectivityMeasure(kind=kind, vectorize=True, discard_diagonal=True)
        f_train = cm.fit_transform([series[i] for i in train])
        f_test = cm.transform([series[i] for i in test])
        scores.append(float(np.mean(svc().fit(f_train, y[train]).predict(f_test) == y[test])))
    return np.array(scores), time.perf_counter() - t0


def main(argv=None):
    p = rc.base_parser(__doc__, "real_development")
    p.add_argument("--kinds", default="tangent,correlation")
    p.add_argument("--no-reference", action="store_true")
    args = p.parse_args(argv)
    rc.limit_threads()

    from neurodecode.io.fmri_roi import load_development_fmri

    report = rc.Report("real_development", args)
    t0 = time.perf_counter()
    trials = load_development_fmri()
    y = np.asarray(trials.y)
    report.section("Data", f"{trials.n_trials} participants ({int(y.sum())} adult, {int((1 - y).sum())} child), "
                   f"{len(trials.ch_names)} ROIs; load {time.perf_counter() - t0:.1f} s. Majority-class "
                   f"accuracy {max(y.mean(), 1 - y.mean()):.4f}.")
    kinds = ["tangent"] if args.quick else args.kinds.split(",")
    from neurodecode.pipelines import list_pipelines, make_pipeline

    registered = set(list_pipelines("fmri"))
    # conn-tangent-svm is registered by the preproc branch (same steps as ours());
    # correlation + LinearSVC is not, so it is built here.
    pipes = {label(k): make_pipeline(label(k)) if label(k) in registered else ours(k) for k in kinds}
    report.section("Pipelines", "\n".join(
        f"* `{n}`: {'registry' if n in registered else 'built here'}; `{p}`" for n, p in pipes.items()))
    df, wall = rc.run_eval(pipes, trials, rc.cv_split(folds()), args, scoring="accuracy")
    rows = []
    for k in kinds:
        g = df[df["pipeline"] == label(k)]
        rows.append({"side": f"neurodecode {label(k)} (harness)", "kind": k, "n_folds": len(g), "mean": g["score"].mean(),
                     "sd_ddof1": g["score"].std(ddof=1), "per_fold": ", ".join(f"{s:.4f}" for s in g["score"]),
                     "seconds": g["fit_seconds"].sum() + g["predict_seconds"].sum()})
        if not args.no_reference:
            scores, ref_wall = reference(trials, k)
            rows.append({"side": "nilearn + sklearn (reference)", "kind": k, "n_folds": len(scores),
                         "mean": scores.mean(), "sd_ddof1": scores.std(ddof=1),
                         "per_fold": ", ".join(f"{s:.4f}" for s in scores), "seconds": ref_wall})
            rows[-1]["diff_vs_ours"] = g["score"].mean() - scores.mean()
    summary = pd.DataFrame(rows)
    summary["source_md"] = summary["kind"].map(SOURCE_REF)
    report.section("Child vs adult, 5-fold accuracy (± = sd over folds)",
                   rc.fmt_table(summary) + f"\n\nharness wall {wall:.1f} s")
    report.csv(df, "folds")
    report.csv(summary, "summary")
    report.finish()


if __name__ == "__main__":
    main()
