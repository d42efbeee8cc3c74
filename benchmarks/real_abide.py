"""ABIDE I PCP (871 subjects, 20 sites): autism vs control, leave-one-site-out, **accuracy**.

Scored with accuracy (not ROC-AUC) because the reference numbers of
``abide_pcp/SOURCE.md`` are accuracies: "mean site acc" = unweighted mean of
the 20 held-out-site accuracies (the harness's mean over folds), "pooled" =
correct predictions over all 871 held-out subjects.

Ours, through `neurodecode.evaluation.evaluate` (split ``leave-site-out``),
the registered pipelines of the preproc branch (or, where this checkout does
not register them yet, the same steps built here):

* ``conn-corr-lr`` / ``conn-tangent-lr``:
  `neurodecode.preprocessing.connectivity.Connectivity` (``kind``,
  vectorised, diagonal discarded; Ledoit-Wolf, standardised) →
  ``StandardScaler`` → ``LogisticRegression(solver="liblinear", C=1)`` —
  the reference procedure, step for step, with our connectivity;
* ``conn-corr-confound-lr`` / ``conn-tangent-confound-lr``: the same with
  ``ConfoundRegressor(confounds=("site", "age", "sex", "mean_fd"))`` after
  the connectivity, fitted on the training sites only (a held-out site gets
  the training-average site effect);
* with ``--registered``, every other registered ``conn-*`` pipeline.

Reference, computed side by side on the same folds: nilearn
``ConnectivityMeasure(kind, vectorize=True, discard_diagonal=True)`` +
``make_pipeline(StandardScaler(), LogisticRegression(solver="liblinear"))``
in a plain scikit-learn loop over ``LeaveOneGroupOut(site)``. Correlation
always; tangent (771 s in SOURCE.md) with ``--reference-tangent``.
Target: ours within 0.01 of the reference (SOURCE.md: corr 0.6310, tangent 0.6282).

``conn-*-combat-lr`` (registered): ``ComBatHarmonizer(covariates=(age,
sex), unseen_site="estimate")`` instead of the regression. With
``--site-variance``, the fraction of feature variance explained by site in
each training fold, before and after ComBat / confound regression.

The tangent folds (a geometric mean of ~830 111x111 covariances per fold)
take minutes each on the shared machine: ``--held-out`` runs a few held-out
sites at a time (same folds, same store keys as a full run), and the joblib
``memory`` shares each fold's fitted connectivity between the variants and
with ``--site-variance``.

Run::

    python benchmarks/real_abide.py                      # full, nilearn tangent reference off
    python benchmarks/real_abide.py --kinds tangent --held-out CALTECH,CMU  # two tangent folds
    python benchmarks/real_abide.py --reference-tangent  # + the slow nilearn tangent reference
    python benchmarks/real_abide.py --quick              # 4 sites
"""

from __future__ import annotations

import real_common as rc  # first: sets the thread variables before numpy is imported

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

CONFOUNDS = ("site", "age", "sex", "mean_fd")
SOURCE_REF = {"correlation": 0.6310, "tangent": 0.6282}
QUICK_SITES = ["CALTECH", "CMU", "OHSU", "SBL"]
# SOURCE.md per held-out site accuracy (nilearn + liblinear LR): corr, tangent
_SOURCE_SITES = """CALTECH 0.533 0.333|CMU 0.636 0.545|KKI 0.606 0.545|LEUVEN_1 0.500 0.607|LEUVEN_2 0.679 0.500|
MAX_MUN 0.543 0.565|NYU 0.651 0.692|OHSU 0.440 0.600|OLIN 0.607 0.643|PITT 0.700 0.800|SBL 0.615 0.615|
SDSU 0.704 0.741|STANFORD 0.480 0.600|TRINITY 0.545 0.659|UCLA_1 0.641 0.719|UCLA_2 0.810 0.619|
UM_1 0.686 0.744|UM_2 0.794 0.588|USM 0.791 0.716|YALE 0.659 0.732"""
SOURCE_SITES = pd.DataFrame([r.split() for r in _SOURCE_SITES.replace("\n", "").split("|")],
                            columns=["site", "correlation", "tangent"]).set_index("site").astype(float)


def lr():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(solver="liblinear", C=1.0)


def ours(kind, confounds=False, memory=None):
    """``memory``: joblib cache folder of the pipeline, so the variants with and
    without confound removal share each fold's fitted connectivity (the
    tangent reference mean costs minutes per fold on the 2-core machine)."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from neurodecode.preprocessing.connectivity import Connectivity

    steps = [("connectivity", Connectivity(kind=kind, vectorize=True, discard_diagonal=True))]
    if confounds:
        from neurodecode.preprocessing.confounds import ConfoundRegressor

        steps.append(("confound", ConfoundRegressor(confounds=CONFOUNDS)))
    steps += [("scaler", StandardScaler()), ("classifier", lr())]
    return Pipeline(steps, memory=memory)


def confounds_available() -> bool:
    try:
        from neurodecode.preprocessing.confounds import ConfoundRegressor  # noqa: F401
    except ImportError:
        return False
    return True


def reference(trials, kind, held_out=None, cache_csv=None):
    """nilearn ConnectivityMeasure + sklearn, LeaveOneGroupOut over sites; per-site accuracy.

    ``held_out``: only the folds holding out these sites (each still trained
    on all the other sites). ``cache_csv``: per-site rows already computed are
    read from it and new ones appended, so the slow tangent reference can run
    in chunks.
    """
    from nilearn.connectome import ConnectivityMeasure
    from sklearn.model_selection import LeaveOneGroupOut
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    series = [np.asarray(x, dtype=np.float64).T for x in trials.X]  # nilearn: (n_times, n_rois)
    y = np.asarray(trials.y)
    sites = trials.meta["site"].to_numpy()
    done = {}
    if cache_csv is not None and Path(cache_csv).exists():
        done = {r["site"]: r for r in pd.read_csv(cache_csv).to_dict("records")}
    if kind == "correlation":  # stateless: computed once, as in SOURCE.md
        feats = ConnectivityMeasure(kind=kind, vectorize=True, discard_diagonal=True).fit_transform(series)
    rows = []
    for train, test in LeaveOneGroupOut().split(series, y, sites):
        site = sites[test[0]]
        if held_out is not None and site not in held_out:
            continue
        if site in done:
            rows.append(done[site])
            continue
        f0 = time.perf_counter()
        if kind == "correlation":
            f_train, f_test = feats[train], feats[test]
        else:
            cm = ConnectivityMeasure(kind=kind, vectorize=True, discard_diagonal=True)
            f_train = cm.fit_transform([series[i] for i in train])
            f_test = cm.transform([series[i] for i in test])
        clf = make_pipeline(StandardScaler(), lr()).fit(f_train, y[train])
        pred = clf.predict(f_test)
        rows.append({"site": site, "n_test": len(test), "accuracy": float(np.mean(pred == y[test])),
                     "fold_seconds": time.perf_counter() - f0})
        if cache_csv is not None:
            pd.DataFrame(list(done.values()) + [r for r in rows if r["site"] not in done]).to_csv(
                cache_csv, index=False)
        print(f"[reference {kind}] {site}: {rows[-1]['accuracy']:.4f} ({rows[-1]['fold_seconds']:.0f} s)",
              flush=True)
    return pd.DataFrame(rows), time.perf_counter() - t0


def site_variance(trials, kind, memory, held_out=None, cache_csv=None):
    """Fraction of feature variance explained by site, before and after harmonisation, per training fold.

    For each leave-site-out fold, the connectivity is the one the pipeline
    ``conn-<kind>-lr`` fitted on that fold's training sites (the identical
    ``Pipeline.fit`` call, so the joblib ``memory`` returns the fold's fitted
    step instead of recomputing the tangent mean). On the training rows:
    site R² of the raw features, after ``ComBatHarmonizer(covariates=(age,
    sex))`` and after ``ConfoundRegressor(site, age, sex, mean_fd)``, each
    fitted on those training rows. The held-out site's rows are transformed
    with the fold's fitted steps (ComBat estimates the unseen site from its
    own unlabeled rows, as the pipeline does).
    """
    from neurodecode.preprocessing.confounds import ComBatHarmonizer, ConfoundRegressor, variance_explained

    X, y, meta = trials.X, np.asarray(trials.y), trials.meta
    site = meta["site"].to_numpy()
    done = {}
    if cache_csv is not None and Path(cache_csv).exists():
        done = {r["site"]: r for r in pd.read_csv(cache_csv).to_dict("records")}
    rows = []
    for s in sorted(set(site)):
        if held_out is not None and s not in held_out:
            continue
        if s in done:
            rows.append(done[s])
            continue
        f0 = time.perf_counter()
        train, test = np.flatnonzero(site != s), np.flatnonzero(site == s)
        pipe = ours(kind, memory=memory).fit([X[i] for i in train], y[train])
        conn = pipe.named_steps["connectivity"]
        f_train = conn.transform([X[i] for i in train])
        m_train = meta.iloc[train].reset_index(drop=True)
        r = {"site": s, "kind": kind, "n_train": len(train),
             "train_raw": variance_explained(f_train, m_train["site"])}
        for label, step in [("combat", ComBatHarmonizer(covariates=("age", "sex"), unseen_site="estimate")),
                            ("confound", ConfoundRegressor(confounds=CONFOUNDS))]:
            r[f"train_{label}"] = variance_explained(step.fit_transform(f_train, meta=m_train), m_train["site"])
        r["fold_seconds"] = time.perf_counter() - f0
        rows.append(r)
        if cache_csv is not None:
            pd.DataFrame(list(done.values()) + [q for q in rows if q["site"] not in done]).to_csv(
                cache_csv, index=False)
        print(f"[site variance {kind}] fold {s}: raw {r['train_raw']:.4f} combat {r['train_combat']:.4f} "
              f"confound {r['train_confound']:.4f} ({r['fold_seconds']:.0f} s)", flush=True)
    return pd.DataFrame(rows)


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
    p.add_argument("--sites", default=None,
                   help="comma-separated SITE_IDs: load only these sites (a smaller data set; default: all 20)")
    p.add_argument("--held-out", default=None,
                   help="comma-separated SITE_IDs: all 20 sites are loaded, only the folds holding out these "
                        "sites are run (the same stored folds as a full run: run the slow tangent folds in chunks)")
    p.add_argument("--variants", default="plain,confound,combat",
                   help="plain (conn-*-lr), confound (ConfoundRegressor) and/or combat (ComBatHarmonizer)")
    p.add_argument("--site-variance", action="store_true",
                   help="also the per-fold fraction of feature variance explained by site, before/after "
                        "harmonisation (reuses each fold's fitted connectivity from the joblib cache)")
    p.add_argument("--kinds", default="correlation,tangent")
    p.add_argument("--reference-tangent", action="store_true",
                   help="also run nilearn's tangent reference (slow: ~771 s in SOURCE.md)")
    p.add_argument("--no-reference", action="store_true", help="skip the nilearn reference")
    p.add_argument("--no-confounds", action="store_true", help="skip the confound-removal variants")
    p.add_argument("--registered", action="store_true", help="also evaluate every registered conn-* pipeline")
    p.add_argument("--cache-dir", default=str(rc.RESULTS / "store" / "joblib-abide"),
                   help="joblib cache of the fitted connectivity step ('none' disables it)")
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
    memory = None if args.cache_dir.lower() == "none" else rc.checkout_memory(args.cache_dir)
    held_out = args.held_out.split(",") if args.held_out else None
    if held_out and sites is not None:
        p.error("--held-out runs folds of the full 20-site data: do not combine it with --sites/--quick")
    variants = args.variants.split(",")
    registered = set(list_pipelines("fmri"))
    pipes, origin = {}, {}

    def add(name, kind, confounds):
        # The registered pipeline when this checkout has it (preproc branch),
        # else the same steps built here; both get the shared joblib memory.
        if (name in registered and memory is not None and kind == "tangent"
                and name.endswith(("confound-lr", "combat-lr"))):
            # Same steps; the connectivity step is fitted through the plain
            # pipeline's joblib cache (rc.SharedFitStep): with meta routing on,
            # Pipeline(memory) would key the fit differently and refit the
            # fold's tangent mean that conn-tangent-lr already fitted. (The
            # correlation fit is cheap: those keep the registered pipeline.)
            pipe = make_pipeline(name)
            pipe.steps[0] = (pipe.steps[0][0], rc.shared_fit_step(pipe.steps[0][1], memory))
            pipes[name] = pipe
            origin[name] = "registry steps, connectivity fit shared with conn-*-lr via the joblib cache"
        elif name in registered:
            pipes[name] = make_pipeline(name).set_params(memory=memory)
            origin[name] = "registry"
        else:
            pipes[name] = ours(kind, confounds=confounds, memory=memory)
            origin[name] = "local equivalent (not registered in this checkout)"

    if "plain" in variants:
        for k in kinds:
            add(f"conn-{short[k]}-lr", k, False)
    if not args.no_confounds:
        if confounds_available():
            for k in kinds:
                if "confound" in variants:
                    add(f"conn-{short[k]}-confound-lr", k, True)
                if "combat" in variants:  # registered only (ComBatHarmonizer step)
                    if f"conn-{short[k]}-combat-lr" in registered:
                        add(f"conn-{short[k]}-combat-lr", k, None)
        else:
            report.section("Confound removal: skipped",
                           "neurodecode.preprocessing.confounds.ConfoundRegressor is not in this checkout.")
    if args.registered:
        for name in sorted(registered):
            if name.startswith("conn-") and name not in pipes:
                pipes[name] = make_pipeline(name).set_params(memory=memory)
                origin[name] = "registry"
    report.section("Pipelines", "\n".join(f"* `{k}`: {v}; `{pipes[k]}`" for k, v in origin.items()))

    split = ("leave-site-out" if held_out is None
             else rc.held_out_subset_split("site", held_out, "leave-site-out"))
    df, wall = rc.run_eval(pipes, trials, split, args, scoring="accuracy")
    df = df.sort_values(["pipeline", "site"], key=lambda c: c.map(
        {n: i for i, n in enumerate(pipes)}) if c.name == "pipeline" else c).reset_index(drop=True)
    if args.report_only:
        done = df.groupby("pipeline")["fold"].nunique().to_dict()
        report.section("Report from the store only", f"folds found per pipeline: {done} (of 20 sites)")
    summary = site_summary(df)
    report.section("Ours (harness, leave-site-out accuracy)",
                   rc.fmt_table(summary) + f"\n\nharness wall {wall:.1f} s (folds already in the store are read, "
                   "not recomputed)")
    report.csv(df.drop(columns=["subject"]), "folds")
    report.csv(summary, "summary")

    # paired tests over sites (the fold unit here)
    by_site = df.assign(subject=df["site"])
    pairs = []
    wanted = [(f"conn-{short[k]}-{v}-lr", f"conn-{short[k]}-lr") for k in kinds for v in ("confound", "combat")]
    if len(kinds) == 2:
        wanted.append(("conn-tangent-lr", "conn-corr-lr"))
    for a, b in wanted:
        try:  # pairs on the sites both pipelines finished
            pairs.append(paired_comparison(by_site, a, b))
        except (KeyError, ValueError) as err:
            print(f"[warn] paired test {a} vs {b}: {err}")
    pairs = pd.DataFrame(pairs)
    report.section(f"Paired tests over the {df['site'].nunique()} held-out sites (Wilcoxon, sign-flip permutation)",
                   rc.fmt_table(pairs.rename(columns={"n_subjects": "n_sites"}),
                                [c if c != "n_subjects" else "n_sites" for c in rc.PAIRED_COLS]))
    if not pairs.empty:
        report.csv(pairs, "paired")

    # per-site comparison with SOURCE.md's table (3 decimals there)
    rows = []
    for k in kinds:
        mine = df[df["pipeline"] == f"conn-{short[k]}-lr"].set_index("site")["score"]
        common = mine.index.intersection(SOURCE_SITES.index)
        if len(common) and sites is None:  # same folds only when all 20 sites run
            d = mine.loc[common] - SOURCE_SITES.loc[common, k]
            rows.append({"kind": k, "n_sites": len(common), "neurodecode_mean": mine.loc[common].mean(),
                         "source_md_mean": SOURCE_SITES.loc[common, k].mean(),
                         "max_site_abs_diff": d.abs().max(), "sites_differing_>0.001": int((d.abs() > 1e-3).sum())})
    if rows:
        report.section("Per-site comparison with SOURCE.md's table (nilearn + sklearn, same folds)",
                       rc.fmt_table(pd.DataFrame(rows)))

    if not args.no_reference:
        ref_kinds = [k for k in kinds if k == "correlation" or args.reference_tangent]
        comp = []
        for k in ref_kinds:
            ref, ref_wall = reference(trials, k, held_out=held_out,
                                      cache_csv=Path(rc.store_arg(args) or "").parent /
                                      f"abide_reference_{short[k]}.csv" if rc.store_arg(args) else None)
            mine = df[df["pipeline"] == f"conn-{short[k]}-lr"].set_index("site")["score"]
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
    if args.site_variance:
        if memory is None or sites is not None:
            p.error("--site-variance needs the joblib cache and all 20 sites")
        store_dir = Path(rc.store_arg(args) or rc.RESULTS / "store").parent
        sv = []
        for k in kinds:
            t_sv = time.perf_counter()
            part = site_variance(trials, k, memory, held_out=held_out,
                                 cache_csv=store_dir / f"abide_site_variance_{short[k]}.csv")
            print(f"[site variance {k}] {time.perf_counter() - t_sv:.0f} s", flush=True)
            sv.append(part)
        sv = pd.concat(sv, ignore_index=True)
        report.csv(sv, "site_variance_folds")
        agg = sv.groupby("kind", sort=False).agg(
            n_folds=("site", "size"), raw_mean=("train_raw", "mean"), raw_min=("train_raw", "min"),
            raw_max=("train_raw", "max"), combat_mean=("train_combat", "mean"),
            combat_max=("train_combat", "max"), confound_mean=("train_confound", "mean"),
            confound_max=("train_confound", "max")).reset_index()
        report.section("Fraction of feature variance explained by site (training rows of each fold, mean over "
                       "features of the one-way R²; harmonisation fitted on those rows)", rc.fmt_table(agg))
        report.csv(agg, "site_variance")
    report.finish()


if __name__ == "__main__":
    main()
