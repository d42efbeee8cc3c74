"""ACM grid search: MOABB's pipeline in GridSearchCV vs neurodecode's ACMGridSearch.

Both search the same (order, lag, C) grid with the same 5 inner folds
(``StratifiedKFold(5)``, what ``GridSearchCV(cv=5)`` uses for a classifier)
and the same scorer (ROC-AUC), in one process, one after the other:

* MOABB: ``GridSearchCV(make_pipeline(AugmentedDataset(), Covariances("cov"),
  TangentSpace(metric="riemann"), SVC(kernel="linear")), {order, lag, C}, cv=5)``
  (MOABB's ``AUG_TANG_SVM_grid`` with the linear kernel only);
* neurodecode: ``ACMGridSearch(orders, lags, Cs, cv=5)`` (exact: Riemannian
  inner references) and, for information, ``inner_reference="logeuclid"``.

Data sets:

* ``physionet``: PhysionetMI subject 1, runs 4/8/12 (left vs right imagery,
  45 trials), read with MNE from the local EDF files under ``MNE_DATA``,
  band-pass 8-32 Hz (IIR, as MOABB's ``LeftRightImagery``), epochs 0-3 s
  (481 samples at 160 Hz), the 21 sensorimotor channels FC5..CP6 (the first
  21 of the montage). With all 64 channels, order >= 7 gives more embedded
  dimensions than samples (singular ACMs).
* ``sim``: ``simulate_eeg`` with 22 channels, 288 trials, 1001 samples at
  250 Hz (sized like a BNCI2014_001 session).

Times are CPU seconds of the process (``time.process_time``, single-threaded
BLAS/torch), so that a busy shared machine does not distort the ratio.

Run (2-core machine: keep BLAS single-threaded)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
    MNE_DATA=/path/to/mne_data python benchmarks/acm.py --dataset physionet \\
        --orders 1-10 --lags 1-10 --repeats 3

``--moabb-orders/--moabb-lags`` time MOABB on a sub-grid only; the script
then extrapolates MOABB's full-grid time from its measured per-candidate
times (stated as such in the output).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from neurodecode.models.acm_search import ACMGridSearch  # noqa: E402


def _clock():
    # CPU seconds of this process (BLAS and torch are single-threaded here): on a shared
    # machine wall time mostly measures the other jobs, CPU time measures the work
    return time.process_time()


def _range(text):
    if "-" in text:
        lo, hi = text.split("-")
        return tuple(range(int(lo), int(hi) + 1))
    return tuple(int(v) for v in text.split(","))


def load_physionet(subject=1, n_channels=21):
    import mne

    from neurodecode.paths import mne_data_path

    root = Path(os.environ.get("MNE_DATA", mne_data_path()))
    X, y = [], []
    for run in (4, 8, 12):
        path = root / f"MNE-eegbci-data/files/eegmmidb/1.0.0/S{subject:03d}/S{subject:03d}R{run:02d}.edf"
        raw = mne.io.read_raw_edf(path, preload=True, verbose=False)
        raw.filter(8.0, 32.0, method="iir", verbose=False)
        events, ids = mne.events_from_annotations(raw, verbose=False)
        keep = {k: v for k, v in ids.items() if k in ("T1", "T2")}
        epochs = mne.Epochs(raw, events, keep, tmin=0.0, tmax=3.0, baseline=None,
                            picks=list(range(n_channels)), preload=True, verbose=False)
        X.append(epochs.get_data(copy=True))
        inv = {v: k for k, v in keep.items()}
        y.extend("left_hand" if inv[e] == "T1" else "right_hand" for e in epochs.events[:, 2])
    return np.concatenate(X), np.array(y)


def load_sim():
    from neurodecode.simulation import simulate_eeg

    tr = simulate_eeg(n_subjects=1, n_trials=288, n_channels=22, n_times=1001, sfreq=250.0,
                      class_sep=0.3, noise=1.0, random_state=0)
    return tr.X, tr.y


def moabb_search(orders, lags, Cs, cv):
    from moabb.pipelines.features import AugmentedDataset
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    pipe = make_pipeline(AugmentedDataset(), Covariances("cov"), TangentSpace(metric="riemann"),
                         SVC(kernel="linear"))
    grid = {"augmenteddataset__order": list(orders), "augmenteddataset__lag": list(lags),
            "svc__C": list(Cs)}
    return GridSearchCV(pipe, grid, cv=cv, scoring="roc_auc", n_jobs=1, error_score=np.nan)


def _run_moabb(args, cv, X, y, out, label="MOABB GridSearchCV"):
    """Time MOABB's grid search once on its (sub-)grid; record and print its pick."""
    m_orders = args.moabb_orders or args.orders
    m_lags = args.moabb_lags or args.lags
    t0 = _clock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = moabb_search(m_orders, m_lags, args.Cs, cv).fit(X, y)
    t_moabb = _clock() - t0
    mb = {"order": ref.best_params_["augmenteddataset__order"],
          "lag": ref.best_params_["augmenteddataset__lag"], "C": ref.best_params_["svc__C"]}
    print(f"{label}: {t_moabb:.1f} s on orders={m_orders} lags={m_lags}, best {mb} "
          f"score {ref.best_score_:.4f}", flush=True)
    out.update(moabb_time=t_moabb, moabb_orders=m_orders, moabb_lags=m_lags,
               moabb_best=mb, moabb_score=ref.best_score_)
    return ref, t_moabb, mb


def covariance_grid_timing(X, orders, lags, repeats=3):
    """Seconds to compute every (order, lag) ACM of the grid: MOABB+pyRiemann loop vs block path."""
    from moabb.pipelines.features import AugmentedDataset
    from pyriemann.estimation import Covariances

    from neurodecode.preprocessing.augmented import iter_augmented_covariance_grid

    ok = [(o, lag) for o in orders for lag in lags if X.shape[-1] - (o * lag if o > 1 else 0) >= 2]
    t_ref, t_ours = [], []
    for _ in range(repeats):
        t0 = _clock()
        for o, lag in ok:
            Covariances("cov").fit_transform(AugmentedDataset(o, lag).fit(X, None).transform(X))
        t_ref.append(_clock() - t0)
        t0 = _clock()
        for _key, covs in iter_augmented_covariance_grid(X, sorted({o for o, _ in ok}),
                                                         sorted({lag for _, lag in ok}),
                                                         device="cpu"):
            covs.numpy()
        t_ours.append(_clock() - t0)
    return statistics.median(t_ref), statistics.median(t_ours)



def _time_shared(args, cv, X, y, mode="shared_logeuclid", orders=None, lags=None):
    """Fit the grid search in ``mode`` ``args.repeats`` times; (last fit, times, median)."""
    times = []
    extra = {"top_k": args.top_k} if mode == "shared_then_exact" else {}
    for _ in range(args.repeats):
        t0 = _clock()
        shared = ACMGridSearch(orders or args.orders, lags or args.lags, args.Cs, cv=cv,
                               device="cpu", inner_reference=mode, **extra).fit(X, y)
        times.append(_clock() - t0)
    return shared, times, statistics.median(times)


def _report_two_stage(args, cv, X, y, out, t_moabb=None, moabb_best=None, moabb_res=None,
                      orders=None, lags=None, tag="shared_then_exact"):
    """Time inner_reference='shared_then_exact' (median of repeats) and compare with MOABB."""
    fit, times, med = _time_shared(args, cv, X, y, "shared_then_exact", orders, lags)
    res = fit.cv_results_
    line = (f"{tag} (top_k={args.top_k}): {med:.2f} s (median of {args.repeats}: "
            f"{', '.join(f'{t:.2f}' for t in times)}; incl. the exact refit), best "
            f"{fit.best_params_} score {fit.best_score_:.4f}")
    out.update({f"{tag}_times": times, f"{tag}_median": med, f"{tag}_best": fit.best_params_,
                f"{tag}_score": fit.best_score_})
    if t_moabb is not None:
        same = fit.best_params_ == moabb_best
        line += f"; vs MOABB {t_moabb / med:.1f}x, same selection: {same}"
        out.update({f"{tag}_ratio": t_moabb / med, f"{tag}_same_selection": same})
        if moabb_res is not None:
            # the exactly re-scored candidates against MOABB's own scores
            idx = {(p["augmenteddataset__lag"], p["augmenteddataset__order"], p["svc__C"]): i
                   for i, p in enumerate(moabb_res["params"])}
            d = [abs(m - moabb_res["mean_test_score"][idx[(p["lag"], p["order"], p["C"])]])
                 for p, m, r in zip(res["params"], res["mean_test_score"], res["rescored"])
                 if r and (p["lag"], p["order"], p["C"]) in idx and np.isfinite(m)]
            line += f"; max |score - MOABB| on the re-scored candidates {max(d) if d else float('nan'):.1e}"
            out[f"{tag}_max_diff_rescored"] = max(d) if d else None
    print(line, flush=True)
    return fit

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("physionet", "sim"), default="physionet")
    parser.add_argument("--orders", type=_range, default=tuple(range(1, 11)))
    parser.add_argument("--lags", type=_range, default=tuple(range(1, 11)))
    parser.add_argument("--Cs", type=lambda t: tuple(float(v) for v in t.split(",")),
                        default=(0.5, 1.0, 1.5))
    parser.add_argument("--moabb-orders", type=_range, default=None)
    parser.add_argument("--moabb-lags", type=_range, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-moabb", action="store_true")
    parser.add_argument("--subject", type=int, default=1, help="PhysionetMI subject")
    parser.add_argument("--shared-only", action="store_true",
                        help="time only inner_reference='shared_logeuclid'")
    parser.add_argument("--covariances-only", action="store_true",
                        help="time only the ACM computation of the whole grid")
    parser.add_argument("--top-k", type=int, default=3,
                        help="members re-scored exactly by inner_reference='shared_then_exact'")
    parser.add_argument("--skip-exact", action="store_true",
                        help="do not time the exact and logeuclid modes (MOABB vs the shared modes)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the numbers")
    args = parser.parse_args(argv)

    from sklearn.model_selection import StratifiedKFold

    X, y = load_physionet(args.subject) if args.dataset == "physionet" else load_sim()
    cv = StratifiedKFold(5)
    n_cand = len(args.orders) * len(args.lags) * len(args.Cs)
    print(f"dataset={args.dataset} X={X.shape} grid: orders={args.orders} lags={args.lags} "
          f"Cs={args.Cs} ({n_cand} candidates x 5 folds)", flush=True)
    out = {"dataset": args.dataset, "subject": args.subject, "shape": list(X.shape), "orders": args.orders,
           "lags": args.lags, "Cs": args.Cs, "cpu_threads": torch.get_num_threads()}

    if args.covariances_only:
        t_ref, t_ours = covariance_grid_timing(X, args.orders, args.lags, args.repeats)
        print(f"ACMs of the whole grid: MOABB AugmentedDataset + pyRiemann Covariances "
              f"{t_ref:.2f} s, neurodecode block path {t_ours:.2f} s (medians of "
              f"{args.repeats}): {t_ref / t_ours:.1f}x")
        out.update(cov_grid_moabb=t_ref, cov_grid_ours=t_ours)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(out, indent=2, default=str))
        return out

    if args.shared_only:  # only the shared log-Euclidean mode (no exact, no MOABB)
        shared, shared_times, t_shared = _time_shared(args, cv, X, y)
        print(f"shared_logeuclid: {t_shared:.2f} s (median of {args.repeats}: "
              f"{', '.join(f'{t:.2f}' for t in shared_times)}), best {shared.best_params_} "
              f"score {shared.best_score_:.4f}", flush=True)
        out.update(shared_times=shared_times, shared_median=t_shared,
                   shared_best=shared.best_params_, shared_score=shared.best_score_)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(out, indent=2, default=str))
        return out

    if args.skip_exact:
        return _fast_modes_vs_moabb(args, cv, X, y, out)
    times = []
    for _ in range(args.repeats):
        t0 = _clock()
        ours = ACMGridSearch(args.orders, args.lags, args.Cs, cv=cv, device="cpu").fit(X, y)
        times.append(_clock() - t0)
    t_ours = statistics.median(times)
    print(f"neurodecode ACMGridSearch: {t_ours:.1f} s (median of {args.repeats}: "
          f"{', '.join(f'{t:.1f}' for t in times)}), best {ours.best_params_} "
          f"score {ours.best_score_:.4f}", flush=True)
    t0 = _clock()
    fast = ACMGridSearch(args.orders, args.lags, args.Cs, cv=cv, device="cpu",
                         inner_reference="logeuclid").fit(X, y)
    t_fast = _clock() - t0
    print(f"neurodecode ACMGridSearch(inner_reference='logeuclid'): {t_fast:.1f} s, best "
          f"{fast.best_params_} score {fast.best_score_:.4f}", flush=True)
    out.update(ours_times=times, ours_median=t_ours, ours_best=ours.best_params_,
               ours_score=ours.best_score_, logeuclid_time=t_fast,
               logeuclid_best=fast.best_params_, logeuclid_score=fast.best_score_)
    # shared log-Euclidean mode: per-trial logs once per (order, lag), no per-fold eigh
    shared, shared_times, t_shared = _time_shared(args, cv, X, y)
    print(f"neurodecode ACMGridSearch(inner_reference='shared_logeuclid'): {t_shared:.2f} s "
          f"(median of {args.repeats}: {', '.join(f'{t:.2f}' for t in shared_times)}; incl. the "
          f"exact Riemannian refit), best {shared.best_params_} score {shared.best_score_:.4f}",
          flush=True)
    out.update(shared_times=shared_times, shared_median=t_shared,
               shared_best=shared.best_params_, shared_score=shared.best_score_)

    if not args.skip_moabb:
        m_orders = args.moabb_orders or args.orders
        m_lags = args.moabb_lags or args.lags
        subset = (m_orders, m_lags) != (args.orders, args.lags)
        ref, t_moabb, mb = _run_moabb(args, cv, X, y, out)
        res = ref.cv_results_
        # the same candidates in ours (same order: lag, order, C)
        ours_res = ours.cv_results_
        ours_idx = {(p["lag"], p["order"], p["C"]): i for i, p in enumerate(ours_res["params"])}
        diffs = []
        for i, p in enumerate(res["params"]):
            key = (p["augmenteddataset__lag"], p["augmenteddataset__order"], p["svc__C"])
            a, b = ours_res["mean_test_score"][ours_idx[key]], res["mean_test_score"][i]
            if np.isfinite(a) and np.isfinite(b):
                diffs.append(abs(a - b))
        out.update(max_abs_score_diff=max(diffs) if diffs else None)
        print(f"max |mean score difference| over the {len(diffs)} common candidates: "
              f"{max(diffs) if diffs else float('nan'):.2e}", flush=True)
        if subset:
            # MOABB's cost per candidate grows with the embedded dimension (order); scale the
            # measured sub-grid time by the ratio of ours on the full grid vs the same sub-grid
            sub = ACMGridSearch(m_orders, m_lags, args.Cs, cv=cv, device="cpu")
            t0 = _clock()
            sub.fit(X, y)
            t_sub = _clock() - t0
            est = t_moabb * t_ours / t_sub
            print(f"MOABB full grid EXTRAPOLATED (not measured): {est:.0f} s = measured "
                  f"{t_moabb:.1f} s x (ours full {t_ours:.1f} s / ours sub-grid {t_sub:.1f} s)")
            out.update(ours_subgrid_time=t_sub, moabb_full_extrapolated=est)
            print(f"ratio on the sub-grid (measured): {t_moabb / t_sub:.1f}x; full grid "
                  f"(extrapolated): {est / t_ours:.1f}x")
            out.update(ratio_subgrid=t_moabb / t_sub, ratio_full_extrapolated=est / t_ours)
            sub_times = []
            for _ in range(args.repeats):
                t0 = _clock()
                ssub = ACMGridSearch(m_orders, m_lags, args.Cs, cv=cv, device="cpu",
                                     inner_reference="shared_logeuclid").fit(X, y)
                sub_times.append(_clock() - t0)
            t_ssub = statistics.median(sub_times)
            print(f"shared_logeuclid on the same sub-grid: {t_ssub:.2f} s (median of "
                  f"{args.repeats}), best {ssub.best_params_} score {ssub.best_score_:.4f}; "
                  f"ratio (measured, same sub-grid): {t_moabb / t_ssub:.1f}x")
            out.update(shared_subgrid_time=t_ssub, shared_subgrid_best=ssub.best_params_,
                       shared_subgrid_score=ssub.best_score_,
                       ratio_shared_subgrid=t_moabb / t_ssub)
        else:
            print(f"ratio (measured, full grid): {t_moabb / t_ours:.1f}x; "
                  f"logeuclid variant {t_moabb / t_fast:.1f}x")
            print(f"shared_logeuclid ratio (measured, same grid): {t_moabb / t_shared:.1f}x",
                  flush=True)
            out.update(ratio=t_moabb / t_ours, ratio_logeuclid=t_moabb / t_fast,
                       ratio_shared=t_moabb / t_shared)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2, default=str))
    return out


def _fast_modes_vs_moabb(args, cv, X, y, out):
    """MOABB (once) against the shared and shared-then-exact modes on the same (sub-)grid."""
    m_orders = args.moabb_orders or args.orders
    m_lags = args.moabb_lags or args.lags
    t_moabb = mb = res = None
    if not args.skip_moabb:
        ref, t_moabb, mb = _run_moabb(args, cv, X, y, out, label="MOABB GridSearchCV (once)")
        res = ref.cv_results_
    shared, times, med = _time_shared(args, cv, X, y, "shared_logeuclid", m_orders, m_lags)
    line = (f"shared_logeuclid: {med:.2f} s (median of {args.repeats}), best "
            f"{shared.best_params_} score {shared.best_score_:.4f}")
    if t_moabb is not None:
        line += f"; vs MOABB {t_moabb / med:.1f}x, same selection: {shared.best_params_ == mb}"
    print(line, flush=True)
    out.update(shared_median=med, shared_best=shared.best_params_,
               shared_score=shared.best_score_)
    _report_two_stage(args, cv, X, y, out, t_moabb, mb, res, m_orders, m_lags)
    if (m_orders, m_lags) != (args.orders, args.lags):
        _report_two_stage(args, cv, X, y, out, tag="shared_then_exact_full_grid")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
