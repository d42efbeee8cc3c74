"""Numbers of the preprocessing issue (confounds, connectivity) on ABIDE PCP and development fMRI.

Usage (single-threaded BLAS; each part is heavy, run it once)::

    python benchmarks/preproc_numbers.py abide-corr     # conn-corr-lr (+ confound / ComBat), leave-site-out
    python benchmarks/preproc_numbers.py abide-tangent  # conn-tangent-lr (+ confound), leave-site-out
    python benchmarks/preproc_numbers.py site-variance  # fraction of feature variance explained by site
    python benchmarks/preproc_numbers.py development    # child vs adult, tangent, vs nilearn side by side
    python benchmarks/preproc_numbers.py abide-tangent-shared  # same folds, covariances computed once (faster)
    python benchmarks/preproc_numbers.py abide-corr-shared

Per-fold scores go to a results store (``--store``, SQLite) so an interrupted
run keeps its finished folds; summaries are printed and written as CSV next
to the store. Reference numbers: ``abide_pcp/SOURCE.md`` (mean site accuracy
0.6310 correlation, 0.6282 tangent, liblinear) and
``development_fmri/SOURCE.md`` (0.9935 tangent + LinearSVC, StratifiedKFold(5)).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def _summary(df):
    df = df.copy()
    df["correct"] = df["score"] * df["n_test"]
    g = df.groupby("pipeline")
    return pd.DataFrame({"mean_site_acc": g["score"].mean(), "pooled_acc": g["correct"].sum() / g["n_test"].sum(),
                         "n_folds": g.size(), "fit_seconds": g["fit_seconds"].sum()})


def abide(pipelines, store, out):
    from neurodecode.evaluation import evaluate
    from neurodecode.io.fmri_roi import load_abide_pcp

    t = load_abide_pcp(dtype=np.float64)
    t0 = time.time()
    df = evaluate(pipelines, t, split="leave-site-out", scoring="accuracy", store=store, progress=False)
    wall = time.time() - t0
    s = _summary(df)
    s["wall_seconds_this_run"] = wall
    print(s.to_string())
    df.to_csv(out.with_suffix(".folds.csv"), index=False)
    s.to_csv(out)


def site_variance(out):
    from neurodecode.io.fmri_roi import load_abide_pcp
    from neurodecode.preprocessing.confounds import ComBatHarmonizer, ConfoundRegressor, variance_explained
    from neurodecode.preprocessing.connectivity import Connectivity

    t = load_abide_pcp(dtype=np.float64)
    meta = t.meta
    rows = []
    t0 = time.time()
    F = Connectivity(kind="correlation", discard_diagonal=True).fit_transform(t.X)
    site = meta["site"]
    rows.append(("correlation", "none (raw)", variance_explained(F, site)))
    rows.append(("correlation", "ComBat(site; age, sex protected), fitted on all 871",
                 variance_explained(ComBatHarmonizer(covariates=("age", "sex")).fit_transform(F, meta=meta), site)))
    rows.append(("correlation", "ComBat(site), no covariates, all 871",
                 variance_explained(ComBatHarmonizer().fit_transform(F, meta=meta), site)))
    rows.append(("correlation", "ConfoundRegressor(site, age, sex, mean_fd), all 871",
                 variance_explained(ConfoundRegressor().fit_transform(F, meta=meta), site)))
    # Out of sample: for each held-out site, ComBat fitted on the 19 others,
    # held-out site estimated from its own unlabeled rows; variance explained
    # by site over all 871 out-of-sample rows.
    H = np.empty_like(F)
    for s in sorted(site.unique()):
        test = (site == s).to_numpy()
        cb = ComBatHarmonizer(covariates=("age", "sex"), unseen_site="estimate").fit(F[~test], meta=meta[~test])
        H[test] = cb.transform(F[test], meta=meta[test])
    rows.append(("correlation", "ComBat leave-site-out (unseen site estimated), 871 held-out rows",
                 variance_explained(H, site)))
    res = pd.DataFrame(rows, columns=["features", "harmonisation", "site_variance_explained"])
    res["wall_seconds"] = time.time() - t0
    print(res.to_string())
    res.to_csv(out, index=False)


def development(out):
    import warnings

    from nilearn.connectome import ConnectivityMeasure
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import LinearSVC

    from neurodecode.evaluation import evaluate
    from neurodecode.io.fmri_roi import load_development_fmri
    from neurodecode.pipelines import make_pipeline

    t = load_development_fmri()
    X = [np.asarray(x, dtype=np.float64) for x in t.X]
    y = np.asarray(t.y)
    rows = []
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    for name, build in [
        ("neurodecode conn-tangent-svm", lambda: make_pipeline("conn-tangent-svm")),
        ("nilearn ConnectivityMeasure(tangent) + LinearSVC", None),
    ]:
        t0 = time.time()
        accs = []
        for train, test in cv.split(np.zeros(len(y)), y):
            if build is not None:
                est = build().fit([X[i] for i in train], y[train])
                pred = est.predict([X[i] for i in test])
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cm = ConnectivityMeasure(kind="tangent", vectorize=True, discard_diagonal=True)
                    ftr = cm.fit_transform([X[i].T for i in train])
                    fte = cm.transform([X[i].T for i in test])
                pred = LinearSVC(C=1.0, max_iter=100000).fit(ftr, y[train]).predict(fte)
            accs.append(float((pred == y[test]).mean()))
        rows.append((name, "StratifiedKFold(5, shuffle, rs=0)", np.mean(accs), np.std(accs), time.time() - t0))
    t0 = time.time()
    df = evaluate(["conn-tangent-svm", "conn-tangent-lr"], t, split="grouped-kfold", scoring="accuracy",
                  progress=False, split_params={"n_splits": 5})
    for p, g in df.groupby("pipeline"):
        rows.append((f"evaluate {p}", "grouped-kfold(5) on subject", g["score"].mean(), g["score"].std(ddof=0),
                     time.time() - t0))
    res = pd.DataFrame(rows, columns=["pipeline", "cv", "accuracy", "sd", "wall_seconds"])
    print(res.to_string())
    res.to_csv(out, index=False)


def abide_shared(kind, out, reverse=False):
    """Same steps as the registered ``conn-<kind>-lr`` / ``-confound-lr`` / ``-combat-lr`` pipelines, leave-site-out,
    with the per-scan Ledoit-Wolf covariances computed once (they depend on one scan each, so sharing
    them across folds changes no number) and one connectivity fit per fold shared by the three heads.

    Written because the machine was shared by ~14 processes: one tangent fold through `evaluate` took
    451 s. The first folds run through `evaluate` are compared with these (same folds, same numbers).
    """
    from sklearn.base import clone
    from sklearn.covariance import LedoitWolf

    from neurodecode.io.fmri_roi import load_abide_pcp
    from neurodecode.pipelines import make_pipeline
    from neurodecode.preprocessing.connectivity import (
        _zscore_sample, cov_to_corr, geometric_mean_nilearn, sym_matrix_to_vec)
    from neurodecode.riemann import log_map

    t = load_abide_pcp(dtype=np.float64)
    meta, y = t.meta, np.asarray(t.y)
    t0 = time.time()
    prep = _zscore_sample if kind == "correlation" else (lambda x: x)
    covs = np.stack([LedoitWolf(store_precision=False).fit(prep(x.T)).covariance_ for x in t.X])
    print(f"{kind}: {len(covs)} Ledoit-Wolf covariances in {time.time() - t0:.0f} s", flush=True)
    short = {"correlation": "corr", "tangent": "tangent"}[kind]
    heads = {}
    for suffix in ("lr", "confound-lr", "combat-lr"):
        steps = make_pipeline(f"conn-{short}-{suffix}").steps[1:]   # everything after Connectivity
        heads[f"conn-{short}-{suffix}"] = steps
    rows = []
    site = meta["site"].to_numpy()
    for s in sorted(set(site), reverse=reverse):
        test, train = np.flatnonzero(site == s), np.flatnonzero(site != s)
        f0 = time.time()
        if kind == "correlation":
            F = sym_matrix_to_vec(cov_to_corr(covs), discard_diagonal=True)
        else:
            mean = geometric_mean_nilearn(covs[train])
            F = sym_matrix_to_vec(log_map(covs, mean, metric="riemann", device="cpu"), discard_diagonal=True)
        conn_s = time.time() - f0
        for name, steps in heads.items():
            from sklearn.pipeline import Pipeline
            from sklearn import config_context

            est = Pipeline([(n, clone(e)) for n, e in steps])
            h0 = time.time()
            uses_meta = name.endswith(("confound-lr", "combat-lr"))
            kw_train = {"meta": meta.iloc[train].reset_index(drop=True)} if uses_meta else {}
            kw_test = {"meta": meta.iloc[test].reset_index(drop=True)} if uses_meta else {}
            with config_context(enable_metadata_routing=True):
                est.fit(F[train], y[train], **kw_train)
                pred = est.predict(F[test], **kw_test)
            rows.append({"pipeline": name, "fold": f"site={s}", "score": float((pred == y[test]).mean()),
                         "n_test": len(test), "connectivity_seconds": conn_s, "head_seconds": time.time() - h0})
        print(pd.DataFrame(rows[-3:]).to_string(header=False), flush=True)
        pd.DataFrame(rows).to_csv(out.with_suffix(".folds.csv"), index=False)
    df = pd.DataFrame(rows)
    s = _summary(df.assign(fit_seconds=df["connectivity_seconds"] + df["head_seconds"]))
    s["wall_seconds"] = time.time() - t0
    print(s.to_string(), flush=True)
    s.to_csv(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["abide-corr", "abide-tangent", "abide-corr-shared", "abide-tangent-shared",
                                     "site-variance", "development"])
    ap.add_argument("--out-dir", default="benchmarks/results")
    ap.add_argument("--reverse", action="store_true",
                    help="shared parts: run the held-out sites in reverse order (a second process from the end)")
    ap.add_argument("--store", default=None, help="SQLite results store (default: <out-dir>/preproc.sqlite)")
    args = ap.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = args.store or str(out_dir / f"preproc-{args.part}.sqlite")
    t0 = time.time()
    if args.part == "abide-corr":
        abide(["conn-corr-lr", "conn-corr-confound-lr", "conn-corr-combat-lr"], store, out_dir / "abide_corr.csv")
    elif args.part == "abide-tangent":
        abide(["conn-tangent-lr", "conn-tangent-confound-lr"], store, out_dir / "abide_tangent.csv")
    elif args.part == "abide-corr-shared":
        abide_shared("correlation", out_dir / "abide_corr_shared.csv")
    elif args.part == "abide-tangent-shared":
        abide_shared("tangent", out_dir / ("abide_tangent_shared" + ("_rev" if args.reverse else "") + ".csv"),
                     reverse=args.reverse)
    elif args.part == "site-variance":
        site_variance(out_dir / "abide_site_variance.csv")
    else:
        development(out_dir / "development_tangent.csv")
    print(f"{args.part}: {time.time() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
