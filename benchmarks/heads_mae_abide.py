"""ABIDE token MAE, leave-site-out at fold granularity, next to tangent + LR (issue 6, check (a)).

Autism vs control on the 871 ABIDE I PCP scans (20 sites). Folds:
``GroupKFold(n_splits, shuffle=True, random_state=seed)`` over ``site``, so
every site is held out exactly once and no site is ever split between
training and test. With ``--folds 20`` that is leave-one-site-out; the
default of 5 folds (4 sites held out together) is the CPU-sized version.

Per outer fold, fitted on the **training sites only**:

* ``mae-probe`` / ``mae-probe-mean``: a token MAE
  (`neurodecode.models.mae.TokenMAE`; the 111 ROIs are the tokens, short
  temporal patches) is pretrained with `neurodecode.models.foundation.pretrain`
  on windows of the training scans, **without labels**; early stopping on
  whole training sites held out (``group_column="site"``). Frozen features of
  every window (``pool="token"``: per-ROI mean latent, ``pool="mean"``: global
  mean) are averaged per scan, then ``StandardScaler`` + ``LogisticRegression``
  are fitted on the training scans' labels.
* ``mae-finetune``: the same pretrained encoder + a linear head, trained end to
  end on the training windows (label = the scan's label; early stopping on
  held-out training sites), scan probability = mean of its windows'.
* ``untrained-probe``: control for the pretraining: the ``mae-probe`` features
  from the same architecture at its seeded random initialisation (no training).
* ``conn-tangent-lr``: the registered pipeline (tangent connectivity around the
  training scans' geometric mean → StandardScaler → LogisticRegression).

Preprocessing without fitted state: each scan is z-scored per ROI over its own
time axis (as nilearn's ``standardize``), then cut into ``max(1, T // window)``
evenly spaced windows of ``window`` volumes spanning the scan (T = 78..316;
1 to 4 windows of 64).
The TR differs between sites (1.5-3 s); windows are in volumes, not seconds.

Scores: accuracy per held-out site and per fold (pooled over the fold's
scans). Every (fold, method) row is appended atomically to
``benchmarks/results/heads_mae_abide_folds_<tag>.csv`` as soon as it is done;
a rerun skips the (fold, method) pairs already there (the pretrained MAE of a
fold is kept in ``--work`` so a rerun after pretraining skips it too).

    python benchmarks/heads_mae_abide.py --quick             # 4 small sites, 2 folds, tiny model
    python benchmarks/heads_mae_abide.py                     # 5 folds, all sites
    python benchmarks/heads_mae_abide.py --report-only       # summary from the CSV

``--time-limit`` stops before a new fold once that many seconds have passed,
so one heavy slot is not held for the whole run on a shared machine.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's neurodecode

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from neurodecode.atomic import atomic_path  # noqa: E402

RESULTS = HERE / "results"
QUICK_SITES = ["CALTECH", "CMU", "OHSU", "SBL"]
METHODS = ("conn-tangent-lr", "mae-probe", "mae-probe-mean", "mae-finetune", "untrained-probe")


def zscore_scan(x):
    """Per-ROI z-score over time; constant (e.g. all-zero, out of field of view) ROIs stay 0."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    sd = x.std(axis=1, keepdims=True)
    return (x / np.where(sd < 1e-8, 1.0, sd)).astype(np.float32)


def windows(x, window):
    """``max(1, T // window)`` evenly spaced windows ``(k, n_rois, window)`` spanning the scan."""
    T = x.shape[1]
    if T < window:
        raise ValueError(f"scan has {T} volumes < window={window}")
    k = max(1, T // window)
    starts = np.unique(np.round(np.linspace(0, T - window, k)).astype(int))
    return np.stack([x[:, s:s + window] for s in starts])


def window_table(series, window):
    """All windows stacked + the scan index of each window."""
    w = [windows(zscore_scan(x), window) for x in series]
    return np.concatenate(w), np.repeat(np.arange(len(w)), [len(a) for a in w])


def per_scan_mean(values, owner, n):
    out = np.zeros((n,) + values.shape[1:])
    np.add.at(out, owner, values)
    return out / np.bincount(owner, minlength=n).reshape((n,) + (1,) * (values.ndim - 1))


def load_rows(path):
    return pd.read_csv(path) if Path(path).exists() else pd.DataFrame()


def append_rows(path, rows):
    """Append rows to the per-fold CSV atomically (rewrite through a temporary file)."""
    df = pd.concat([load_rows(path), pd.DataFrame(rows)], ignore_index=True)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def site_rows(fold, method, sites, y, pred, seconds, extra=None):
    rows = []
    for s in pd.unique(sites):
        m = sites == s
        rows.append({"fold": fold, "method": method, "site": s, "n_test": int(m.sum()),
                     "n_correct": int((pred[m] == y[m]).sum()),
                     "accuracy": float((pred[m] == y[m]).mean()), "seconds": round(seconds, 1),
                     "extra": json.dumps(extra or {})})
    return rows


@torch.no_grad()
def encode_windows(mae, Xw, pool, batch=128):
    mae.eval()
    return np.concatenate([mae.encode(torch.from_numpy(Xw[i:i + batch]), pool=pool).numpy()
                           for i in range(0, len(Xw), batch)])


def run_fold(k, train, test, trials, args, done, out_csv):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from neurodecode.models.adapter import MAEClassifier
    from neurodecode.models.checkpoint import from_pretrained
    from neurodecode.models.foundation import pretrain
    from neurodecode.pipelines import make_pipeline as registered
    from neurodecode.trials import Trials

    y = np.asarray(trials.y)
    sites = trials.meta["site"].to_numpy()
    todo = [m for m in args.methods if (k, m) not in done]
    if not todo:
        return
    print(f"[fold {k}] test sites {sorted(set(sites[test]))} ({len(test)} scans); todo {todo}", flush=True)

    if "conn-tangent-lr" in todo:
        t0 = time.perf_counter()
        Xd = [np.asarray(x, dtype=np.float64) for x in trials.X]
        clf = registered("conn-tangent-lr").fit([Xd[i] for i in train], y[train])
        pred = clf.predict([Xd[i] for i in test])
        append_rows(out_csv, site_rows(k, "conn-tangent-lr", sites[test], y[test], pred,
                                       time.perf_counter() - t0))
        print(f"[fold {k}] conn-tangent-lr acc {np.mean(pred == y[test]):.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)

    mae_methods = [m for m in todo if m.startswith("mae") or m == "untrained-probe"]
    if not mae_methods:
        return
    Xtr, own_tr = window_table([trials.X[i] for i in train], args.window)
    Xte, own_te = window_table([trials.X[i] for i in test], args.window)
    model = dict(patch_size=args.patch, embed_dim=args.embed_dim, depth=args.depth, n_heads=args.heads,
                 decoder_dim=args.decoder_dim, mask_ratio=args.mask_ratio)
    if "untrained-probe" in mae_methods:
        from neurodecode.models.mae import TokenMAE

        t0 = time.perf_counter()
        torch.manual_seed(args.seed)  # as pretrain() seeds before building the model
        mae = TokenMAE(n_tokens=Xtr.shape[1], n_times=Xtr.shape[2], **model)
        mu = Xtr.mean(axis=(0, 2))[None, :, None]
        sd = Xtr.std(axis=(0, 2))[None, :, None] + 1e-8
        ftr = per_scan_mean(encode_windows(mae, ((Xtr - mu) / sd).astype(np.float32), "token"), own_tr, len(train))
        fte = per_scan_mean(encode_windows(mae, ((Xte - mu) / sd).astype(np.float32), "token"), own_te, len(test))
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=5000))
        pred = probe.fit(ftr, y[train]).predict(fte)
        append_rows(out_csv, site_rows(k, "untrained-probe", sites[test], y[test], pred, time.perf_counter() - t0,
                                       {"n_features": int(ftr.shape[1])}))
        print(f"[fold {k}] untrained-probe acc {np.mean(pred == y[test]):.4f}", flush=True)
        mae_methods.remove("untrained-probe")
        if not mae_methods:
            return
    meta_tr = trials.meta.iloc[train].reset_index(drop=True).iloc[own_tr].reset_index(drop=True)
    ckpt = Path(args.work) / f"fold{k}"
    t0 = time.perf_counter()
    if (ckpt / "model_card.json").exists():
        print(f"[fold {k}] reusing pretrained MAE {ckpt}", flush=True)
        pre_s = json.loads((ckpt / "timing.json").read_text())["pretrain_s"]
    else:
        unlabeled = Trials(Xtr, None, meta_tr, sfreq=1.0, modality="fmri", name=f"abide-train-fold{k}")
        pretrain(unlabeled, head="mae", out_dir=ckpt, model=model, group_column="site",
                 random_state=args.seed,
                 trainer=dict(max_epochs=args.epochs, batch_size=64, lr=args.lr, patience=args.patience,
                              device="cpu", progress=False))
        pre_s = time.perf_counter() - t0
        with atomic_path(ckpt / "timing.json") as tmp:
            tmp.write_text(json.dumps({"pretrain_s": pre_s}))
        print(f"[fold {k}] pretrained in {pre_s:.0f} s", flush=True)
    card = json.loads((ckpt / "model_card.json").read_text())
    info = {"pretrain_s": round(pre_s, 1), "n_train_windows": len(Xtr), **card["scores"]}

    for method, pool in (("mae-probe", "token"), ("mae-probe-mean", "mean")):
        if method not in mae_methods:
            continue
        t0 = time.perf_counter()
        mae = from_pretrained(ckpt)
        # the per-ROI statistics pretrain() normalised the training windows with
        mu = np.asarray(mae.checkpoint_extra["mean"], dtype=np.float32)[None, :, None]
        sd = np.asarray(mae.checkpoint_extra["std"], dtype=np.float32)[None, :, None]
        ftr = per_scan_mean(encode_windows(mae, (Xtr - mu) / sd, pool), own_tr, len(train))
        fte = per_scan_mean(encode_windows(mae, (Xte - mu) / sd, pool), own_te, len(test))
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=5000))
        pred = probe.fit(ftr, y[train]).predict(fte)
        append_rows(out_csv, site_rows(k, method, sites[test], y[test], pred, time.perf_counter() - t0,
                                       {**info, "n_features": int(ftr.shape[1])}))
        print(f"[fold {k}] {method} acc {np.mean(pred == y[test]):.4f}", flush=True)

    if "mae-finetune" in mae_methods:
        t0 = time.perf_counter()
        est = MAEClassifier(mode="finetune", checkpoint=str(ckpt), max_epochs=args.finetune_epochs,
                            lr=args.finetune_lr, batch_size=64, patience=args.patience, val_column="site",
                            device="cpu", random_state=args.seed)
        est.fit(Xtr, y[train][own_tr], meta=meta_tr)
        proba = per_scan_mean(est.predict_proba(Xte), own_te, len(test))
        pred = est.classes_[proba.argmax(axis=1)]
        res = est.finetune_result_
        append_rows(out_csv, site_rows(k, "mae-finetune", sites[test], y[test], pred, time.perf_counter() - t0,
                                       {**info, "finetune_best_epoch": res.best_epoch,
                                        "finetune_epochs": len(res.history)}))
        print(f"[fold {k}] mae-finetune acc {np.mean(pred == y[test]):.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)


def report(out_csv, tag, n_scans):
    from neurodecode.evaluation.statistics import chance_bound, paired_comparison

    df = load_rows(out_csv)
    if df.empty:
        print("no rows yet")
        return
    fold = (df.groupby(["method", "fold"])[["n_correct", "n_test"]].sum().reset_index()
            .assign(accuracy=lambda d: d["n_correct"] / d["n_test"]))
    rows = []
    for m, g in fold.groupby("method", sort=False):
        s = df[df["method"] == m]
        rows.append({"method": m, "n_folds": len(g), "fold_acc_mean": g["accuracy"].mean(),
                     "fold_acc_sd": g["accuracy"].std(ddof=1), "n_sites": len(s),
                     "site_acc_mean": s["accuracy"].mean(), "site_acc_sd": s["accuracy"].std(ddof=1),
                     "pooled_acc": g["n_correct"].sum() / g["n_test"].sum(), "n_scans": int(g["n_test"].sum()),
                     "seconds": s.drop_duplicates("fold")["seconds"].sum()})
    summary = pd.DataFrame(rows)
    n = int(summary["n_scans"].max())
    bound = chance_bound("accuracy", n)
    summary["chance_bound_pooled"] = bound
    tests = []
    have = set(summary["method"])
    # every method vs the tangent baseline, and the pretraining's own effect (probe vs untrained)
    pairs = [(m, "conn-tangent-lr") for m in summary["method"] if m != "conn-tangent-lr"]
    pairs.append(("mae-probe", "untrained-probe"))
    for a, b in pairs:
        if a not in have or b not in have:
            continue
        for unit, table in (("fold", fold), ("site", df)):
            t = table[table["method"].isin([a, b])]
            t = pd.DataFrame({"dataset": "abide-pcp", "pipeline": t["method"],
                              "subject": t[unit].astype(str), "score": t["accuracy"]})
            try:
                r = paired_comparison(t, a, b)
            except ValueError as e:
                print(f"paired test {a} vs {b} over {unit}s: {e}")
                continue
            tests.append({"a": a, "b": b, "unit": unit, **r})
    paired = pd.DataFrame(tests)
    with atomic_path(RESULTS / f"heads_mae_abide_summary_{tag}.csv") as tmp:
        summary.to_csv(tmp, index=False)
    if not paired.empty:
        with atomic_path(RESULTS / f"heads_mae_abide_paired_{tag}.csv") as tmp:
            paired.to_csv(tmp, index=False)
    pd.set_option("display.width", 200)
    print(summary.round(4).to_string(index=False))
    print(f"one-sided 95% binomial chance bound on the pooled accuracy (p=0.5, n={n}): {bound:.4f}; "
          f"majority class share {n_scans}")
    if not paired.empty:
        paired = paired.drop(columns=["dataset", "pipeline_a", "pipeline_b"], errors="ignore")
    if not paired.empty:
        print(paired.round(4).to_string(index=False))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sites", default=None, help="comma-separated SITE_IDs (default: all 20)")
    p.add_argument("--quick", action="store_true", help="4 small sites, 2 folds, tiny model, 2 epochs")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--window", type=int, default=64, help="volumes per window")
    p.add_argument("--patch", type=int, default=32, help="volumes per temporal patch")
    p.add_argument("--embed-dim", type=int, default=32)
    p.add_argument("--decoder-dim", type=int, default=32)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--mask-ratio", type=float, default=0.75)
    p.add_argument("--epochs", type=int, default=8, help="MAE pretraining epochs (max; early stopping)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--finetune-lr", type=float, default=3e-4)
    p.add_argument("--C", type=float, default=1.0, help="probe's inverse regularisation (fixed a priori)")
    p.add_argument("--tag", default=None)
    p.add_argument("--work", default=None, help="folder of the per-fold pretrained MAEs")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds: start no new fold after this (rerun to continue; finished rows are kept)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.sites = args.sites or ",".join(QUICK_SITES)
        args.folds, args.epochs, args.finetune_epochs = 2, 2, 1
    tag = args.tag or ("quick" if args.quick else "full")
    args.work = args.work or str(RESULTS / "store" / f"heads_mae_abide_{tag}")
    out_csv = RESULTS / f"heads_mae_abide_folds_{tag}.csv"

    from sklearn.model_selection import GroupKFold

    from neurodecode.io.fmri_roi import load_abide_pcp

    trials = load_abide_pcp(sites=args.sites.split(",") if args.sites else None, dtype=np.float32)
    y = np.asarray(trials.y)
    sites = trials.meta["site"].to_numpy()
    majority = max(y.mean(), 1 - y.mean())
    if args.report_only:
        report(out_csv, tag, f"{majority:.4f}")
        return
    print(f"ABIDE: {len(y)} scans, {len(set(sites))} sites; config {vars(args)}", flush=True)
    folds = list(GroupKFold(n_splits=args.folds, shuffle=True, random_state=args.seed).split(y, y, sites))
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(len(y)))
    done_df = load_rows(out_csv)
    done = set(zip(done_df["fold"], done_df["method"])) if not done_df.empty else set()
    t_all = time.perf_counter()
    for k, (train, test) in enumerate(folds):
        if args.time_limit is not None and time.perf_counter() - t_all > args.time_limit:
            print(f"time limit {args.time_limit:.0f} s reached before fold {k}: rerun to continue", flush=True)
            break
        run_fold(k, train, test, trials, args, done, out_csv)
    print(f"total {time.perf_counter() - t_all:.0f} s", flush=True)
    report(out_csv, tag, f"{majority:.4f}")


if __name__ == "__main__":
    main()
