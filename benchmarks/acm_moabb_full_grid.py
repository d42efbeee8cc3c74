"""MOABB's ACM grid search on the full order x lag x C grid, measured in resumable chunks.

MOABB's ``GridSearchCV`` over orders 1-10 x lags 1-10 x 3 C (1500 pipeline fits
of ``AugmentedDataset + Covariances + TangentSpace + SVC``) takes tens of
minutes on one core and prints nothing while it runs. This script runs the
same search one order at a time (``GridSearchCV`` on that order's lags x C,
``refit=False``), records each chunk's CPU seconds and every candidate's mean
inner ROC-AUC in ``STATE_DIR/order_K.json`` (written atomically), and skips
chunks already there, so a killed run resumes. Two processes may share a
state directory: each claims a chunk with an exclusive ``.claim`` file
holding its pid (the claim of a process that no longer exists is taken over).

Why the chunked total is MOABB's full-grid time: ``GridSearchCV`` evaluates
every candidate on every fold independently, so its search cost is the sum of
the candidates' costs; the one extra cost of the single search, the refit of
the selected candidate on all trials, is timed separately (``--combine``) and
added. The selection is GridSearchCV's rule on the union of the chunks: the
highest mean inner score, ties going to the first candidate in
``ParameterGrid`` order (lag, then order, then C).

``--combine`` then, in one process: reads the chunks, times MOABB's refit,
times neurodecode's ``ACMGridSearch`` (two-stage ``shared_then_exact``, and the
``shared_logeuclid`` screen alone) on the same grid and folds (median of
``--repeats``), and prints/writes the ratios and both selections.

Run (one core each; the second line may run at the same time on the second core)::

    OMP_NUM_THREADS=1 MNE_DATA=/path/to/mne_data python benchmarks/acm_moabb_full_grid.py \\
        --dataset physionet --subject 1 --state-dir benchmarks/results/acm_full_s1
    python benchmarks/acm_moabb_full_grid.py --dataset physionet --subject 1 \\
        --state-dir benchmarks/results/acm_full_s1 --combine --out benchmarks/results/acm_full_s1.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import warnings
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acm import _clock, _range, load_physionet, load_sim, moabb_search  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from neurodecode.atomic import atomic_write_text  # noqa: E402
from neurodecode.models.acm_search import ACMGridSearch  # noqa: E402


def _chunk_path(state_dir: Path, order: int) -> Path:
    return state_dir / f"order_{order}.json"


def _claim(path: Path) -> bool:
    """Take a chunk: create ``path`` holding our pid; a claim whose process is gone is taken over."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(path.read_text() or 0)
                os.kill(pid, 0)  # raises if that process no longer exists
                return False
            except (ValueError, ProcessLookupError, FileNotFoundError):
                path.unlink(missing_ok=True)  # a killed run's claim: take the chunk over
                continue
            except PermissionError:
                return False  # alive, another user's process
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True
    return False


def run_chunks(X, y, orders, lags, Cs, cv, state_dir: Path) -> None:
    """Run MOABB's GridSearchCV one order at a time; skip chunks done or claimed by another process."""
    state_dir.mkdir(parents=True, exist_ok=True)
    for order in sorted(orders, reverse=True):  # the costly chunks first balances two processes
        path = _chunk_path(state_dir, order)
        if path.exists():
            continue
        claim = state_dir / f"order_{order}.claim"
        if not _claim(claim):
            continue
        t0 = _clock()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            search = moabb_search([order], lags, Cs, cv)
            search.set_params(refit=False)
            search.fit(X, y)
        seconds = _clock() - t0
        res = search.cv_results_
        rows = [{"lag": p["augmenteddataset__lag"], "order": p["augmenteddataset__order"],
                 "C": p["svc__C"], "score": float(s)}
                for p, s in zip(res["params"], res["mean_test_score"])]
        atomic_write_text(path, json.dumps({"order": order, "cpu_seconds": seconds,
                                            "candidates": rows}, indent=1))
        claim.unlink(missing_ok=True)
        best = max(rows, key=lambda r: r["score"] if np.isfinite(r["score"]) else -np.inf)
        print(f"order {order}: {seconds:.1f} s CPU for {len(rows)} candidates x {cv.n_splits} "
              f"folds; best in chunk lag {best['lag']} C {best['C']} score {best['score']:.4f}",
              flush=True)


def moabb_selection(orders, lags, Cs, state_dir: Path):
    """GridSearchCV's pick on the union of the chunks (first best in ParameterGrid order)."""
    chunks = {}
    for order in orders:
        path = _chunk_path(state_dir, order)
        if not path.exists():
            raise SystemExit(f"{path}: chunk for order {order} missing; run without --combine first")
        chunks[order] = json.loads(path.read_text())
    scores = {(r["lag"], r["order"], r["C"]): r["score"]
              for c in chunks.values() for r in c["candidates"]}
    # ParameterGrid sorts the keys: augmenteddataset__lag, augmenteddataset__order, svc__C
    ordered = [(lag, o, C) for lag in lags for o in orders for C in Cs]
    vals = np.array([scores[k] if np.isfinite(scores[k]) else -np.inf for k in ordered])
    lag, order, C = ordered[int(np.argmax(vals))]
    total = sum(c["cpu_seconds"] for c in chunks.values())
    return {"order": order, "lag": lag, "C": C}, float(vals.max()), total, scores


def combine(X, y, orders, lags, Cs, cv, state_dir: Path, repeats: int, top_k: int, out: Path | None):
    best, best_score, search_seconds, scores = moabb_selection(orders, lags, Cs, state_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refit = moabb_search([best["order"]], [best["lag"]], [best["C"]], cv).estimator
        refit.set_params(augmenteddataset__order=best["order"], augmenteddataset__lag=best["lag"],
                         svc__C=best["C"])
        t0 = _clock()
        refit.fit(X, y)
        refit_seconds = _clock() - t0
    moabb_total = search_seconds + refit_seconds
    print(f"MOABB GridSearchCV, full grid (sum of {len(orders)} chunks + refit): "
          f"{moabb_total:.1f} s CPU ({search_seconds:.1f} + {refit_seconds:.2f}); "
          f"best {best} score {best_score:.4f}", flush=True)
    result = {"moabb_cpu_seconds": moabb_total, "moabb_search_seconds": search_seconds,
              "moabb_refit_seconds": refit_seconds, "moabb_best": best, "moabb_score": best_score,
              "orders": list(orders), "lags": list(lags), "Cs": list(Cs)}
    for mode in ("shared_then_exact", "shared_logeuclid"):
        times = []
        for _ in range(repeats):
            t0 = _clock()
            ours = ACMGridSearch(orders, lags, Cs, cv=cv, device="cpu", inner_reference=mode,
                                 top_k=top_k).fit(X, y)
            times.append(_clock() - t0)
        med = statistics.median(times)
        pick = {k: ours.best_params_[k] for k in ("order", "lag", "C")}
        # the exact (MOABB) inner score of our pick: the criterion is the same pick or a score within 0.01
        exact_of_pick = scores[(pick["lag"], pick["order"], pick["C"])]
        print(f"neurodecode {mode}: {med:.2f} s CPU (median of {repeats}: "
              f"{', '.join(f'{t:.2f}' for t in times)}); ratio {moabb_total / med:.1f}x; "
              f"pick {pick} (MOABB's score of it {exact_of_pick:.4f}, "
              f"{best_score - exact_of_pick:+.4f} below MOABB's best); same pick: {pick == best}",
              flush=True)
        result[mode] = {"times": times, "median": med, "ratio": moabb_total / med, "pick": pick,
                        "moabb_score_of_pick": exact_of_pick, "same_pick": pick == best,
                        "score_gap": best_score - exact_of_pick}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(result, indent=2, default=str))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("physionet", "sim"), default="physionet")
    parser.add_argument("--subject", type=int, default=1, help="PhysionetMI subject")
    parser.add_argument("--orders", type=_range, default=tuple(range(1, 11)))
    parser.add_argument("--lags", type=_range, default=tuple(range(1, 11)))
    parser.add_argument("--Cs", type=lambda t: tuple(float(v) for v in t.split(",")),
                        default=(0.5, 1.0, 1.5))
    parser.add_argument("--state-dir", type=Path, required=True,
                        help="folder of the per-order chunk results (resumable)")
    parser.add_argument("--combine", action="store_true",
                        help="combine the chunks and time neurodecode on the same grid")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    X, y = load_physionet(args.subject) if args.dataset == "physionet" else load_sim()
    cv = StratifiedKFold(5)
    print(f"dataset={args.dataset} X={X.shape} orders={args.orders} lags={args.lags} "
          f"Cs={args.Cs}", flush=True)
    if args.combine:
        combine(X, y, args.orders, args.lags, args.Cs, cv, args.state_dir, args.repeats,
                args.top_k, args.out)
    else:
        run_chunks(X, y, args.orders, args.lags, args.Cs, cv, args.state_dir)


if __name__ == "__main__":
    main()
