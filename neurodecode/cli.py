"""Command-line interface: a thin layer over the public Python API.

``neurodecode info``       versions and data locations
``neurodecode datasets``   the dataset registry and what is on this machine
``neurodecode pipelines``  the registered pipelines
``neurodecode benchmark``  evaluate pipelines on a dataset, print a summary, write a report
                           (no options: the built-in default, see `DEFAULT_BENCHMARK`)

Model commands (``pretrain``, ``finetune``) come from
``neurodecode.models.cli_commands.add_commands(subparsers)`` when that module
is installed; it is imported only when the parser is built.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def _cmd_info(args) -> int:
    import importlib.metadata as md
    import platform

    from . import __version__
    from .paths import cache_dir, data_root, mne_data_path

    print(f"neurodecode {__version__} (Python {platform.python_version()})")
    for pkg in ("numpy", "scipy", "pandas", "scikit-learn", "torch", "mne", "moabb",
                "mne-bids", "pyriemann", "nilearn", "nibabel", "h5py", "ray"):
        try:
            version = md.version(pkg)
        except md.PackageNotFoundError:
            version = "not installed"
        print(f"  {pkg:<13} {version}")
    try:
        import torch

        device = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        device = "torch missing"
    print(f"device:      {device}")
    print(f"data root:   {data_root()}")
    print(f"MNE data:    {mne_data_path()}")
    print(f"cache:       {cache_dir()}")
    return 0


def _cmd_datasets(args) -> int:
    from .registry import list_datasets

    table = list_datasets()
    if args.available:
        table = table[table["available"]]
    # The source (where the data would be downloaded from) is always shown: the registry's
    # point is to say what exists and where to get it; --paths adds the local folders.
    cols = ["name", "modality", "subjects", "available", "source"] + (["path"] if args.paths else [])
    import pandas as pd

    with pd.option_context("display.max_colwidth", 80, "display.width", 200):
        print(table[cols].to_string(index=False))
    return 0


def _cmd_pipelines(args) -> int:
    import pandas as pd

    from . import evaluation  # noqa: F401  (registers the harness baselines)
    from .pipelines import get_pipeline_info, list_pipelines

    rows = []
    for name in list_pipelines(args.modality):
        info = get_pipeline_info(name)
        rows.append({"name": name, "modality": ",".join(info.modality), "input": info.input_kind,
                     "description": info.description})
    if not rows:
        print("no pipeline registered" + (f" for modality {args.modality!r}" if args.modality else ""))
        return 0
    table = pd.DataFrame(rows)
    widths = {c: max(len(c), table[c].str.len().max()) for c in ("name", "modality", "input")}
    print("  ".join(c.ljust(w) for c, w in widths.items()) + "  description")
    for row in table.itertuples(index=False):
        print("  ".join(str(getattr(row, c)).ljust(w) for c, w in widths.items()) + "  " + row.description)
    return 0


#: What ``neurodecode benchmark`` runs with no options: PhysionetMI subjects 1–5,
#: left vs right hand imagery, leave-subject-out, plain vs re-centered tangent
#: space — when the data and those pipelines are on this machine; otherwise the
#: simulated ``sim-eeg`` with the same pipelines, or with the harness baselines.
DEFAULT_BENCHMARK = {
    "dataset": "physionet-mi",
    "subjects": [1, 2, 3, 4, 5],
    "pipelines": ["cov-ts-lr", "recentered-cov-ts-lr"],
    "split": "leave-subject-out",
    "fallback_dataset": "sim-eeg",
    "fallback_pipelines": ["logvar-lr", "subject-logvar-lr"],
}


def parse_subjects(text: str | None) -> list | None:
    """``"1-5"`` → ``[1, 2, 3, 4, 5]``; ``"1,3,7-8"`` → ``[1, 3, 7, 8]``; names stay strings.

    Examples
    --------
    >>> parse_subjects("1-3,7")
    [1, 2, 3, 7]
    >>> parse_subjects("sub-01,sub-02")
    ['sub-01', 'sub-02']
    """
    if text is None or not str(text).strip():
        return None
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if sep and lo.strip().isdigit() and hi.strip().isdigit():
            a, b = int(lo), int(hi)
            if b < a:
                raise ValueError(f"--subjects: range {part!r} runs backwards")
            out.extend(range(a, b + 1))
        elif part.isdigit():
            out.append(int(part))
        else:
            out.append(part)
    return out


def _default_benchmark() -> tuple[str, list, list | None, str]:
    """(dataset, pipelines, subjects, why) for ``neurodecode benchmark`` without options."""
    from .pipelines import list_pipelines
    from .registry import get_dataset

    d = DEFAULT_BENCHMARK
    available = set(list_pipelines())
    riemann = all(p in available for p in d["pipelines"])
    try:
        real = get_dataset(d["dataset"]).is_available()
        if real:
            get_dataset(d["dataset"]).load_function()  # the loader module is importable
    except (KeyError, ImportError, AttributeError):
        real = False
    if real and riemann:
        return d["dataset"], d["pipelines"], d["subjects"], f"{d['dataset']} found locally"
    pipes = d["pipelines"] if riemann else d["fallback_pipelines"]
    why = []
    if not real:
        why.append(f"{d['dataset']} is not on this machine (set MNE_DATA / NEURODECODE_DATA)")
    if not riemann:
        why.append(f"pipelines {', '.join(d['pipelines'])} are not installed")
    if real and not riemann:
        # the real data without the Riemannian pipelines: the baselines on it
        return d["dataset"], pipes, d["subjects"], "; ".join(why)
    return d["fallback_dataset"], pipes, None, "; ".join(why) + f": running the simulated {d['fallback_dataset']}"


def _load_for_benchmark(name: str, subjects, random_state: int):
    """Load a registered dataset, restricted to ``subjects`` (None: the loader's default)."""
    import inspect

    from .registry import get_dataset, load_dataset

    info = get_dataset(name)
    kwargs = {}
    if info.simulated:
        # simulators take a seed and a subject count, not a subject list
        kwargs["random_state"] = random_state
        if subjects is not None:
            ints = [s for s in subjects if isinstance(s, int)]
            if len(ints) != len(subjects):
                raise ValueError(f"--subjects for simulated {name!r} must be numbers, got {subjects}")
            kwargs["n_subjects"] = max(ints)
        trials = load_dataset(name, **kwargs)
    else:
        accepted = inspect.signature(info.load_function()).parameters
        if subjects is not None and "subjects" in accepted:
            kwargs["subjects"] = subjects
        trials = load_dataset(name, **kwargs)
    if subjects is not None:
        items = trials if isinstance(trials, dict) else {name: trials}
        out = {}
        for key, t in items.items():
            have = {str(s) for s in t.subjects}
            missing = [s for s in subjects if str(s) not in have]
            if missing:
                raise ValueError(f"--subjects: {missing} not in dataset {key!r} (subjects: {sorted(have)[:20]}...)")
            mask = t.meta["subject"].astype(str).isin([str(s) for s in subjects]).to_numpy()
            out[key] = t[mask.nonzero()[0]] if not mask.all() else t
        trials = out if isinstance(trials, dict) else out[name]
    return trials


def _cmd_benchmark(args) -> int:
    # The matrices here are small (channels x channels): extra BLAS/torch threads
    # buy little and, on a busy machine, oversubscription made runs 5-30x slower
    # (measured: the default benchmark took 4 min 23 s with default threads at
    # load 8, 41 s with one thread). Workers of joblib/ray get their own limit.
    import torch
    from threadpoolctl import threadpool_limits

    threads = getattr(args, "threads", 1)
    if threads is None or threads < 1:
        raise ValueError(f"--threads must be a positive integer, got {threads!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            return _run_benchmark(args)
    finally:
        torch.set_num_threads(previous)


def _run_benchmark(args) -> int:
    import os
    import shlex
    import time
    from pathlib import Path

    import pandas as pd

    from .evaluation import evaluate
    from .evaluation.report import format_summary, write_report
    from .evaluation.statistics import pairwise_comparisons, summary_table

    t0 = time.perf_counter()
    # MNE steps (CSP) log every fit at INFO; keep the summary readable unless asked otherwise
    os.environ.setdefault("MNE_LOGGING_LEVEL", "WARNING")
    subjects = parse_subjects(args.subjects)
    pipelines = [p.strip() for p in args.pipelines.split(",") if p.strip()] if args.pipelines else None
    dataset = args.dataset
    if dataset is None:
        dataset, default_pipes, default_subjects, why = _default_benchmark()
        pipelines = pipelines or default_pipes
        subjects = subjects if subjects is not None else default_subjects
        print(f"default benchmark: {dataset} ({why})")
    if not pipelines:
        raise ValueError("--pipelines: give at least one registered pipeline (see `neurodecode pipelines`)")

    trials = _load_for_benchmark(dataset, subjects, args.random_state)
    split_params = {}
    if args.n_splits is not None:
        split_params["n_splits"] = args.n_splits
    if args.group_column is not None:
        split_params["column"] = args.group_column
    if args.n_shots is not None:
        split_params["n_shots"] = tuple(int(n) for n in args.n_shots.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df = evaluate(
        pipelines, trials, split=args.split, scoring=args.scoring, n_jobs=args.n_jobs,
        backend=args.backend, random_state=args.random_state, store=out / "results.sqlite",
        progress=not args.no_progress, datasets_name=dataset if not isinstance(trials, dict) else None,
        split_params=split_params or None, ray_address=args.ray_address,
    )
    command = "neurodecode " + " ".join(shlex.quote(a) for a in (args.argv or ["benchmark"]))
    report = write_report(df, out, html=True, random_state=args.random_state, command=command,
                          title=f"neurodecode benchmark: {dataset}, {args.split}")
    summary = format_summary(summary_table(df))
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 40):
        print()
        print(summary.drop(columns=["fit_seconds"]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        comparisons = pairwise_comparisons(df, random_state=args.random_state)
        if not comparisons.empty:
            cols = [c for c in ("dataset", "n_shots", "pipeline_a", "pipeline_b", "n_subjects", "mean_diff",
                                "wins_a", "wilcoxon_p", "permutation_p", "cohen_dz") if c in comparisons]
            print()
            print("paired comparison (per subject):")
            print(comparisons[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print()
    print(f"{len(df)} folds in {time.perf_counter() - t0:.1f} s; report: {report}; "
          f"results store: {out / 'results.sqlite'}")
    return 0


def _add_benchmark(sub) -> None:
    from .evaluation.backends import BACKENDS
    from .evaluation.splits import list_splits

    p = sub.add_parser(
        "benchmark", help="evaluate pipelines on a dataset; print a summary and write a report",
        description="Evaluate registered pipelines with subject-aware splits, print mean ± sd per "
                    "pipeline with the chance bound and the paired test, and write report.md/.html, "
                    "figures, CSV tables and the resumable results store under --out. With no "
                    "options: PhysionetMI subjects 1-5, cov-ts-lr vs recentered-cov-ts-lr, "
                    "leave-subject-out (simulated sim-eeg when the data or pipelines are missing).")
    p.add_argument("--dataset", help="registered dataset name (see `neurodecode datasets`)")
    p.add_argument("--pipelines", help="comma-separated registered pipelines (see `neurodecode pipelines`)")
    p.add_argument("--split", default="leave-subject-out", choices=list_splits(), help="default: %(default)s")
    p.add_argument("--subjects", help="subjects: 1-5 or 1,2,3 (default: the dataset's default set)")
    p.add_argument("--scoring", help="sklearn scorer name (default: roc_auc for two classes, "
                                     "balanced_accuracy for more)")
    p.add_argument("--n-jobs", type=int, default=1, help="parallel folds (default: %(default)s)")
    p.add_argument("--backend", choices=BACKENDS, help="sequential, joblib or ray "
                                                      "(default: sequential for 1 job, joblib otherwise)")
    p.add_argument("--ray-address", help="existing Ray cluster (HEAD:6379, ray://HEAD:10001 or auto); "
                                         "default: a local Ray instance with --n-jobs CPUs")
    p.add_argument("--random-state", type=int, default=0, help="seed of folds and pipelines (default: 0)")
    p.add_argument("--n-splits", type=int, help="folds for grouped-kfold / within-session")
    p.add_argument("--group-column", help="meta column for leave-group-out (e.g. site)")
    p.add_argument("--n-shots", help="few-shot calibration sizes per class, e.g. 0,5,10,20,40")
    p.add_argument("--out", default="results", help="output folder (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS/torch threads in this process (default: %(default)s; the per-trial "
                        "matrices are small, so parallel folds (--n-jobs) scale better than threads)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_benchmark)


def _add_model_commands(sub) -> None:
    """``pretrain`` / ``finetune`` from ``neurodecode.models.cli_commands``, when it exists."""
    import importlib
    import warnings

    try:
        module = importlib.import_module("neurodecode.models.cli_commands")
    except ModuleNotFoundError as err:
        if err.name in ("neurodecode.models.cli_commands", "neurodecode.models"):
            return
        warnings.warn(f"model commands unavailable: {err}", stacklevel=2)
        return
    except ImportError as err:  # an optional dependency of the model commands
        warnings.warn(f"model commands unavailable: {err}", stacklevel=2)
        return
    add = getattr(module, "add_commands", None)
    if add is not None:
        add(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurodecode", description="Decoding for EEG, iEEG and fMRI."
    )
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("info", help="versions, device and data locations")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("datasets", help="list registered datasets and whether they are on this machine")
    p.add_argument("--available", action="store_true", help="only the datasets found locally")
    p.add_argument("--paths", action="store_true", help="also show the local folder of each dataset")
    p.add_argument("--sources", action="store_true", help=argparse.SUPPRESS)  # default now; kept for old scripts
    p.set_defaults(func=_cmd_datasets)
    p = sub.add_parser("pipelines", help="list the registered pipelines")
    p.add_argument("--modality", choices=["eeg", "ieeg", "fmri"], help="only pipelines for this modality")
    p.set_defaults(func=_cmd_pipelines)
    _add_benchmark(sub)
    _add_model_commands(sub)
    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


# Other modules may add sub-commands here (callables taking the subparsers).
_EXTRA_COMMANDS: list = []


def main(argv=None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        from .errors import NeurodecodeError

        if isinstance(err, (NeurodecodeError, KeyError, ValueError, FileNotFoundError)):
            print(f"neurodecode: error: {err}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
