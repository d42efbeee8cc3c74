"""ABIDE I PCP (871 subjects, 20 sites): autism vs control, leave-one-site-out, **accuracy**.

Scored with accuracy (not ROC-AUC) because the reference numbers of
``abide_pcp/SOURCE.md`` are accuracies: "mean site acc" = unweighted mean of
the 20 held-out-site accuracies (the harness's mean over folds), "pooled" =
correct predictions over all 871 held-out subjects.

Ours, through `neurodecode.evaluation.evaluate` (split ``leave-site-out``):

* ``corr-lr`` / ``tangent-lr``: `neurodecode.preprocessing.connectivity.Connectivity`
  (``kind``, vectorised, diagonal discarded; Ledoit-Wolf, standardised) →
  ``StandardScaler`` → ``LogisticRegression(solver="liblinear", C=1)`` —
  the reference procedure, step for step, with our connectivity;
* ``corr-confounds-lr`` / ``tangent-confounds-lr``: the same with
  ``ConfoundRegressor(confounds=("site", "age", "sex", "mean_fd"))`` after
  the connectivity, fitted on the training sites only (a held-out site gets
  the training-average site effect);
* every registered ``conn-*`` pipeline (preproc branch), when present.

Reference, computed side by side on the same folds: nilearn
``ConnectivityMeasure(kind, vectorize=True, discard_diagonal=True)`` +
``make_pipeline(StandardScaler(), LogisticRegression(solver="liblinear"))``
in a plain scikit-learn loop over ``LeaveOneGroupOut(site)``. Correlation
always; tangent (771 s in SOURCE.md) with ``--reference-tangent``.
Target: ours within 0.01 of the reference (SOURCE.md: corr 0.6310, tangent 0.6282).

Run::

    python benchmarks/real_abide.py                      # full, nilearn tangent reference off
    python benchmarks/real_abide.py --reference-tangent  # + the slow nilearn tangent reference
    python benchmarks/real_abide.py --quick              # 4 sites
"""

from __future__ import annotations

import real_common as rc  # first: sets the thread variables before numpy is imported

import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

CONFOUNDS = ("site", "age", "sex", "mean_fd")
SOURCE_REF = {"correlation": 0.6310, "tangent": 0.6282}
QUICK_SITES = ["CALTECH", "CMU", "OHSU", "SBL"]


def lr():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(solver="liblinear", C=1.0)


def ours(kind, confounds=False):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from neurodecode.preprocessing.connectivity import Connectivity

    steps = [("conn", Connectivity(kind=kind, vectorize=True, discard_diagonal=True))]
    if confounds:
        from neurodecode.preprocessing.confounds import ConfoundRegressor

        steps.append(("confounds", ConfoundRegressor(confounds=CONFOUNDS)))
    steps += [("scale", StandardScaler()), ("lr", lr())]
    return Pipeline(steps)


def confounds_available() -> bool:
    try:
        from neurodecode.preprocessing.confounds import ConfoundRegressor  # noqa: F401
    except ImportError:
        return False
    return True


def reference(trials, kind):
    """nilearn ConnectivityMeasure + sklearn, LeaveOneGroupOut over sites; per-site accuracy."""
    from nilearn.connectome import ConnectivityMeasure
    from sklearn.model_selection import LeaveOneGroupOut
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    series = [np.asarray(x, dtype=np.float64).T for x in trials.X]  # nilearn: (n_times, n_rois)
    y = np.asarray(trials.y)
    sites = trials.meta["site"].to_numpy()
    if kind == "correlation":  # stateless: computed once, as in SOURCE.md
        feats = ConnectivityMeasure(kind=kind, vectorize=True, discard_diagonal=True).fit_transform(series)
    rows = []
    for train, test in LeaveOneGroupOut().split(series, y, sites):
        if kind == "correlation":
            f_train, f_test = feats[train], feats[test]
        else:
            cm = ConnectivityMeasure(kind=kind, vectorize=True, discard_diagonal=True)
            f_train = cm.fit_transform([series[i] for i in train])
            f_test = cm.transform([series[i] for i in test])
        clf = make_pipeline(StandardScaler(), lr()).fit(f_train, y[train])
        pred = clf.predict(f_test)
        rows.append({"site": sites[test[0]], "n_test": len(test), "accuracy": float(np.mean(pred == y[test]))})
    return pd.DataFrame(rows), time.perf_counter() - t0


def site_summary(df):
    rows = []
    for name, g in df.groupby("pipeline", sort=False):
        rows.append({"pipeline": name, "n_sites": len(g), "mean_site_acc": g["score"].mean(),
                     "sd_over_sites": g["score"].std(ddof=1),
                     "pooled_acc": float((g["score"] * g["n_test"]).sum() / g["n_test"].sum()),
                     "n_subjects": int(g["n_test"].sum()), "fit_seconds": g["fit_seconds"].sum()})
    return pd.DataFrame(rows)


def main(argv=None):
    p = rc.base_parser(__doc__, "real_abide")
    p.add_argument("--sites", default=None, help="comma-separated SITE_IDs (default: all 20)")
    p.add_argument("--kinds", default="correlation,tangent")
    p.add_argument("--reference-tangent", action="store_true",
                   help="also run nilearn's tangent reference (slow: ~771 s in SOURCE.md)")
    p.add_argument("--no-reference", action="store_true", help="skip the nilearn reference")
    p.add_argument("--no-confounds", action="store_true", help="skip the confound-removal variants")
    args = p.parse_args(argv)
    rc.limit_threads()

    from neurodecode.evaluation.statistics import chance_bound, paired_comparison
    from neurodecode.io.fmri_roi import load_abide_pcp
    from neurodecode.pipelines import list_pipelines, make_pipeline

    sites = args.sites.split(",") if args.sites else (QUICK_SITES if args.quick else None)
    report = rc.Report("real_abide", args)
    t0 = time.perf_counter()
    trials = load_abide_pcp(sites=sites, dtype=np.float64)  # float64 as in the reference
    n = trials.n_trials
    y = np.asarray(trials.y)
    report.section("Data", f"ABIDE PCP: {n} subjects, {trials.meta['site'].nunique()} sites, "
                   f"{int(y.sum())} autism / {int((1 - y).sum())} control, load "
                   f"{time.perf_counter() - t0:.1f} s. Majority-class accuracy "
                   f"{max(y.mean(), 1 - y.mean()):.4f}; one-sided 95% binomial chance bound on the "
                   f"pooled accuracy (p=0.5, n={n}): {chance_bound('accuracy', n):.4f}.")

    kinds = args.kinds.split(",")
    short = {"correlation": "corr", "tangent": "tangent"}
    pipes = {f"{short[k]}-lr": ours(k) for k in kinds}
    if not args.no_confounds:
        if confounds_available():
            pipes.update({f"{short[k]}-confounds-lr": ours(k, confounds=True) for k in kinds})
        else:
            report.section("Confound removal: skipped",
                           "neurodecode.preprocessing.confounds.ConfoundRegressor is not in this checkout.")
    registered = [name for name in list_pipelines("fmri") if name.startswith("conn-")]
    for name in registered:
        pipes[name] = make_pipeline(name)

    df, wall = rc.run_eval(pipes, trials, "leave-site-out", args, scoring="accuracy")
    summary = site_summary(df)
    report.section("Ours (harness, leave-site-out accuracy)",
                   rc.fmt_table(summary) + f"\n\nharness wall {wall:.1f} s (store hits excluded only when "
                   "the store already held the folds)")
    report.csv(df.drop(columns=["subject"]), "folds")
    report.csv(summary, "summary")

    # paired tests over sites (the fold unit here)
    by_site = df.assign(subject=df["site"])
    pairs = []
    for k in kinds:
        a, b = f"{short[k]}-confounds-lr", f"{short[k]}-lr"
        if a in pipes:
            pairs.append(paired_comparison(by_site, a, b))
    if len(kinds) == 2:
        pairs.append(paired_comparison(by_site, "tangent-lr", "corr-lr"))
    pairs = pd.DataFrame(pairs)
    report.section(f"Paired tests over the {df['site'].nunique()} held-out sites (Wilcoxon, sign-flip permutation)",
                   rc.fmt_table(pairs.rename(columns={"n_subjects": "n_sites"}),
                                [c if c != "n_subjects" else "n_sites" for c in rc.PAIRED_COLS]))
    if not pairs.empty:
        report.csv(pairs, "paired")

    if not args.no_reference:
        ref_kinds = [k for k in kinds if k == "correlation" or args.reference_tangent]
        comp = []
        for k in ref_kinds:
            ref, ref_wall = reference(trials, k)
            mine = df[df["pipeline"] == f"{short[k]}-lr"].set_index("site")["score"]
            ref = ref.set_index("site")
            ref["neurodecode"] = mine.reindex(ref.index)
            report.csv(ref.reset_index(), f"reference_{short[k]}")
            delta = ref["neurodecode"].mean() - ref["accuracy"].mean()
            comp.append({"kind": k, "nilearn_sklearn_mean_site_acc": ref["accuracy"].mean(),
                         "neurodecode_mean_site_acc": ref["neurodecode"].mean(), "difference": delta,
                         "within_0.01": abs(delta) <= 0.01, "max_site_abs_diff":
                         (ref["neurodecode"] - ref["accuracy"]).abs().max(),
                         "source_md": SOURCE_REF[k] if sites is None else np.nan, "reference_wall_s": ref_wall})
        comp = pd.DataFrame(comp)
        report.section("Reference: nilearn ConnectivityMeasure + sklearn on the same folds", rc.fmt_table(comp))
        report.csv(comp, "reference")
    report.finish()


if __name__ == "__main__":
    main()
