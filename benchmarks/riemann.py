"""pyRiemann 0.12 vs neurodecode, side by side in one process.

Two parts:

``speed`` (default)
    covariances (OAS) + tangent space (fit_transform) + MDM (fit, predict)
    on simulated EEG, N=2000 trials, C=64 channels, T=480 samples; each
    library is run ``--runs`` times, interleaved, and the median per stage is
    reported with the ratio pyRiemann / neurodecode.
``physionet``
    within-session 5-fold ROC-AUC on PhysionetMI S001 (left vs right hand
    imagery, MOABB ``LeftRightImagery`` epochs: 8-32 Hz, [0, 3] s) for
    cov-ts-lr, cov-mdm and acm-ts-svm next to the same pipelines built from
    pyRiemann and MOABB (``AugmentedDataset`` + ``Covariances`` +
    ``TangentSpace`` + linear ``SVC``, same order/lag, with the plain and the
    OAS covariance), on the same folds (``StratifiedKFold(5, shuffle=True,
    random_state=42)``, as MOABB's ``WithinSessionEvaluation``); writes
    ``benchmarks/results/real_physionet_s001_within.csv|md``.

Run from the repository root (single-threaded BLAS, as on the CI machine)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        python benchmarks/riemann.py --write-docs
    python benchmarks/riemann.py --part physionet

``--write-docs`` replaces the "Riemannian engine" section of
``docs/benchmarks.md`` with the measured table.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("covariances", "tangent space", "MDM fit", "MDM predict")


def _simulated(n_trials, n_channels, n_times, seed=0):
    from neurodecode.simulation import simulate_eeg

    t = simulate_eeg(n_subjects=1, n_trials=n_trials, n_channels=n_channels, n_times=n_times,
                     sfreq=160.0, subject_shift=0.0, random_state=seed)
    return t.X, t.y


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_pyriemann(X, y):
    from pyriemann.classification import MDM
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace

    C, t_cov = _timed(lambda: Covariances("oas").fit_transform(X))
    ts, t_ts = _timed(lambda: TangentSpace(metric="riemann").fit_transform(C))
    mdm, t_fit = _timed(lambda: MDM(metric="riemann").fit(C, y))
    pred, t_pred = _timed(lambda: mdm.predict(C))
    return dict(zip(STAGES, (t_cov, t_ts, t_fit, t_pred))), (C, ts, pred)


def run_neurodecode(X, y, device, solver="fixed-point"):
    from neurodecode.models.mdm import MDM
    from neurodecode.models.tangent import TangentSpace
    from neurodecode.preprocessing.covariance import Covariances

    C, t_cov = _timed(lambda: Covariances("oas", device=device).fit_transform(X))
    ts, t_ts = _timed(lambda: TangentSpace(metric="riemann", device=device,
                                           solver=solver).fit_transform(C))
    mdm, t_fit = _timed(lambda: MDM(metric="riemann", device=device, solver=solver).fit(C, y))
    pred, t_pred = _timed(lambda: mdm.predict(C))
    return dict(zip(STAGES, (t_cov, t_ts, t_fit, t_pred))), (C, ts, pred)


LIBS = ("pyriemann", "neurodecode", "neurodecode-newton")


def _speed_at(X, y, args, n_threads):
    """Interleaved runs of the three variants with ``n_threads`` BLAS and torch threads each."""
    from threadpoolctl import threadpool_limits

    times = {lib: [] for lib in LIBS}
    with threadpool_limits(limits=n_threads):
        torch.set_num_threads(n_threads)
        for r in range(args.runs):
            # interleaved, so a load spike on a shared machine hits every variant
            tp, (Cp, tsp, predp) = run_pyriemann(X, y)
            tn, (Cn, tsn, predn) = run_neurodecode(X, y, args.device)
            tw, (Cw, tsw, predw) = run_neurodecode(X, y, args.device, solver="newton")
            for lib, t in zip(LIBS, (tp, tn, tw)):
                times[lib].append(t)
            print(f"{n_threads} thread(s), run {r + 1}: " + ", ".join(
                f"{lib} {sum(t.values()):.2f} s" for lib, t in zip(LIBS, (tp, tn, tw))), flush=True)
    scale = np.abs(Cp).max()
    checks = {
        "max |ΔC| / max|C|": float(np.abs(Cn - Cp).max() / scale),
        "max |Δ tangent vector| (fixed-point)": float(np.abs(tsn - tsp).max()),
        "max |Δ tangent vector| (newton)": float(np.abs(tsw - tsp).max()),
        "MDM predictions equal (fixed-point)": bool((predn == predp).all()),
        "MDM predictions equal (newton)": bool((predw == predp).all()),
    }
    rows = []
    for stage in STAGES + ("total",):
        def med(lib):
            vals = [sum(t.values()) if stage == "total" else t[stage] for t in times[lib]]
            return statistics.median(vals)

        p, n, w = med("pyriemann"), med("neurodecode"), med("neurodecode-newton")
        rows.append((stage, p, n, p / n, w, p / w))
    lines = [f"| stage ({n_threads} thread{'s' if n_threads > 1 else ''}) | pyRiemann 0.12 (s) "
             "| neurodecode, fixed-point (s) | ratio | neurodecode, `solver=\"newton\"` (s) | ratio |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {s} | {p:.2f} | {n:.2f} | {r:.1f}x | {w:.2f} | {rw:.1f}x |"
              for s, p, n, r, w, rw in rows]
    table = "\n".join(lines)
    print(table)
    for k, v in checks.items():
        print(f"{k}: {v}")
    return table, checks, rows[-1]


def speed(args):
    threads = [int(t) for t in str(args.threads).split(",")]
    X, y = _simulated(args.n_trials, args.n_channels, args.n_times)
    print(f"data: N={X.shape[0]} C={X.shape[1]} T={X.shape[2]} float64; runs={args.runs}; "
          f"threads={threads}; device={args.device}", flush=True)
    results = [(t, *_speed_at(X, y, args, t)) for t in threads]
    if args.write_docs:
        _write_docs(args, results)


def _write_docs(args, results):
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\nEvery number here comes from a script in `benchmarks/`.\n"
    env = (f"Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
           f"pyriemann {__import__('pyriemann').__version__}; {platform.machine()} CPU "
           f"({os.cpu_count()} cores); device {args.device}")
    # each library at its best thread count: pyRiemann can be slower with more BLAS threads
    best_p = min(r[3][1] for r in results)
    best_n = min(min(r[3][2], r[3][4]) for r in results)
    best = best_p / best_n
    cmd = "python benchmarks/riemann.py --write-docs"
    cmd += f" --threads {args.threads}" if str(args.threads) != "1" else ""
    cmd += f" --n-trials {args.n_trials}" if args.n_trials != 2000 else ""
    cmd += f" --runs {args.runs}" if args.runs != 3 else ""
    tables = ""
    for n_threads, table, checks, (_, _, _, total_ratio, _, newton_ratio) in results:
        tables += (
            f"{table}\n\nAgreement with pyRiemann ({n_threads} thread(s)): " + "; ".join(
                f"{k} = {v:.2g}" if isinstance(v, float) else f"{k}: {v}" for k, v in checks.items())
            + f". Total ratio {total_ratio:.1f}x (fixed-point), {newton_ratio:.1f}x (newton).\n\n")
    section = (
        "## Riemannian engine\n\n"
        f"`{cmd}` (pyRiemann and neurodecode in one process, "
        f"interleaved runs, median of {args.runs}, for each thread count in turn: BLAS threads "
        "through threadpoolctl for both libraries, `torch.set_num_threads` for ours): "
        "covariances (OAS) + tangent space "
        f"(`fit_transform`, Riemannian mean reference) + MDM (`fit`, `predict`) on simulated EEG, "
        f"N={args.n_trials} trials, C={args.n_channels} channels, T={args.n_times} samples, float64. "
        "Two neurodecode columns: the default `solver=\"fixed-point\"` (pyRiemann's Karcher "
        "iteration and stopping rule, the same iterates computed with a Cholesky whitening) and "
        "`solver=\"newton\"` (`TangentSpace`/`MDM` option: a Riemannian Newton step solved by "
        "4 conjugate-gradient steps on the eigenvectors the gradient needs anyway; 3-4 "
        "eigendecomposition passes to a gradient norm <= 1e-10 where the fixed point needs ~9 to "
        "1e-8; `fit_transform` reuses the last pass as the tangent vectors).\n\n"
        f"{tables}"
        f"Environment: {env}. Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
        "Where the time goes: on the CPU both libraries spend most of their time in LAPACK's "
        "symmetric eigendecomposition of the CxC matrices (one per trial and mean iteration), which "
        "torch and numpy call alike (2000 64x64 eigh: ~0.95 s single-threaded, whichever library or "
        "LAPACK driver); covariances gain from one batched GEMM with cache-sized centring and a "
        "Cholesky instead of an eigenvalue SPD check. With more than one thread, neurodecode splits "
        "each stack of eigendecompositions over the threads (torch's CPU `eigh` loops over a batch "
        "in one thread, numpy's too, and LAPACK barely parallelises one 64x64 problem), so its "
        "lead grows with the cores; pyRiemann's does not. "
        "The Newton solver cuts the passes, not their cost; its means are the exact fixed point "
        "(gradient <= 1e-10) and differ from pyRiemann's by pyRiemann's own convergence error "
        "(its test is ||J|| <= 1e-8): within 1e-8 for means, tangent vectors and MDM "
        "outputs in the tests (simulated, PhysionetMI S1/S2/S7, Dog_1), but on Dog_1 "
        "`inverse_transform` of test tangent vectors (outputs ~50x the reference scale) differs "
        "from pyRiemann's by 1.24e-8 relative to the reference scale, while the exact mean's "
        "reconstruction differs from pyRiemann's by the same 1.24e-8 and from ours by 1e-11: "
        "that is why Newton is an option, not the default. "
        f"Each library at its fastest thread count: pyRiemann {best_p:.2f} s, neurodecode "
        f"{best_n:.2f} s, ratio {best:.1f}x: the 10x target is "
        + ("reached" if best >= 10 else "NOT reached") + " on this CPU.\n\n"
    )
    pattern = re.compile(r"^## Riemannian engine\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")


def _moabb_acm(order, lag, estimator):
    """MOABB's ACM pipeline: ``AugmentedDataset`` + pyRiemann ``Covariances`` + ``TangentSpace`` + SVC."""
    from moabb.pipelines.features import AugmentedDataset
    from pyriemann.estimation import Covariances as PCov
    from pyriemann.tangentspace import TangentSpace as PTS
    from sklearn.pipeline import make_pipeline as skpipe
    from sklearn.svm import SVC

    return skpipe(AugmentedDataset(order=order, lag=lag), PCov(estimator), PTS(metric="riemann"),
                  SVC(kernel="linear"))


def _scores(clf, X):
    """Continuous scores for ROC-AUC: P(class 1), else the decision function (SVC)."""
    if hasattr(clf, "predict_proba"):
        try:
            return clf.predict_proba(X)[:, 1]
        except AttributeError:  # SVC(probability=False) exposes the method but refuses it
            pass
    return clf.decision_function(X)


def physionet(args):
    import mne
    import pandas as pd
    from moabb.datasets import PhysionetMI
    from moabb.paradigms import LeftRightImagery
    from pyriemann.classification import MDM as PMDM
    from pyriemann.estimation import Covariances as PCov
    from pyriemann.tangentspace import TangentSpace as PTS
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline as skpipe
    from sklearn.preprocessing import LabelEncoder

    from neurodecode.io.moabb_data import moabb_offline
    from neurodecode.paths import mne_data_path
    from neurodecode.pipelines import make_pipeline

    os.environ.setdefault("MNE_DATA", str(mne_data_path()))
    os.environ.setdefault("MOABB_DOWNLOAD_PROVIDER", "upstream")
    mne.set_log_level("ERROR")
    torch.set_num_threads(1)
    with moabb_offline():
        ds = PhysionetMI(imagined=True, executed=False)
        ds.feet_runs = []
        ds.subject_list = list(range(1, 16))
        X, labels, _ = LeftRightImagery().get_data(dataset=ds, subjects=[args.subject])
    y = LabelEncoder().fit_transform(labels)
    cv = StratifiedKFold(5, shuffle=True, random_state=42)
    # acm-ts-svm's registered order/lag (4, 2); MOABB's ACM pipeline with the same ones.
    acm = make_pipeline("acm-ts-svm")
    order, lag = acm.order, acm.lag
    pipes = {
        "neurodecode cov-ts-lr": lambda: make_pipeline("cov-ts-lr", device="cpu"),
        "pyRiemann Cov(oas)+TS+LR (MOABB)": lambda: skpipe(PCov("oas"), PTS(metric="riemann"),
                                                           LogisticRegression()),
        "neurodecode cov-mdm": lambda: make_pipeline("cov-mdm", device="cpu"),
        "pyRiemann Cov(oas)+MDM": lambda: skpipe(PCov("oas"), PMDM(metric="riemann")),
        f"neurodecode acm-ts-svm (order {order}, lag {lag}, cov)":
            lambda: make_pipeline("acm-ts-svm", device="cpu"),
        f"MOABB ACM: AugmentedDataset({order}, {lag})+Cov(cov)+TS+SVC":
            lambda: _moabb_acm(order, lag, "cov"),
        f"neurodecode acm-ts-svm (order {order}, lag {lag}, oas)":
            lambda: make_pipeline("acm-ts-svm", estimator="oas", device="cpu"),
        f"MOABB ACM: AugmentedDataset({order}, {lag})+Cov(oas)+TS+SVC":
            lambda: _moabb_acm(order, lag, "oas"),
    }
    print(f"PhysionetMI S{args.subject:03d}: X {X.shape}, classes {np.bincount(y).tolist()}; "
          "StratifiedKFold(5, shuffle=True, random_state=42)")
    rows = []
    for name, factory in pipes.items():
        aucs, error = [], ""
        t0 = time.perf_counter()
        for train, test in cv.split(X, y):
            try:
                clf = factory().fit(X[train], y[train])
            except ValueError as err:  # neurodecode refuses non-SPD ACMs (with the reason)
                error = str(err)
                break
            aucs.append(roc_auc_score(y[test], _scores(clf, X[test])))
        wall = time.perf_counter() - t0
        if error:
            print(f"{name}: refused: {error}")
            rows.append({"pipeline": name, "roc_auc": np.nan, "folds": "", "seconds": wall, "note": error})
            continue
        print(f"{name}: ROC-AUC {np.mean(aucs):.4f} (folds {np.round(aucs, 4).tolist()}) in {wall:.1f} s")
        rows.append({"pipeline": name, "roc_auc": float(np.mean(aucs)),
                     "folds": " ".join(f"{a:.4f}" for a in aucs), "seconds": wall, "note": ""})
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        df = pd.DataFrame(rows)
        stem = out / f"real_physionet_s{args.subject:03d}_within"
        df.to_csv(stem.with_suffix(".csv"), index=False)
        lines = [f"# PhysionetMI S{args.subject:03d} within-session 5-fold ROC-AUC", "",
                 "Command: `python benchmarks/riemann.py --part physionet`", "",
                 f"MOABB `LeftRightImagery` epochs {X.shape}, `StratifiedKFold(5, shuffle=True, "
                 "random_state=42)`, the same folds for every pipeline.", "",
                 "| pipeline | ROC-AUC | folds | seconds | note |", "|---|---|---|---|---|"]
        lines += [f"| {r['pipeline']} | {r['roc_auc']:.4f} | {r['folds']} | {r['seconds']:.1f} | {r['note']} |"
                  for r in rows]
        stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
        print(f"wrote {stem}.csv/.md")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["speed", "physionet"], default="speed")
    ap.add_argument("--n-trials", type=int, default=2000)
    ap.add_argument("--n-channels", type=int, default=64)
    ap.add_argument("--n-times", type=int, default=480)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default=os.environ.get("OMP_NUM_THREADS", "1"),
                    help="speed part: thread counts to measure in turn, e.g. 1,2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--subject", type=int, default=1)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"),
                    help="physionet part: folder for real_physionet_sNNN_within.csv/.md ('' = none)")
    args = ap.parse_args(argv)
    (speed if args.part == "speed" else physionet)(args)


if __name__ == "__main__":
    main()
