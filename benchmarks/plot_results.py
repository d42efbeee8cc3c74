"""Figures for docs/benchmarks.md from the stored real-data results.

Reads the per-fold tables the ``benchmarks/real_*.py`` scripts and
``benchmarks/heads_fewshot_muse.py`` wrote under ``benchmarks/results/`` and
draws them with the harness's own plotting functions
(`neurodecode.evaluation.plots`), so the pictures on the benchmarks page are
the ones a user gets from ``neurodecode benchmark``. Nothing is recomputed.

Run from the repository root::

    python benchmarks/plot_results.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's neurodecode, not an installed one

from neurodecode.evaluation.plots import learning_curve_plot, strip_plot  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

#: (per-fold CSV, figure name) — one strip plot per dataset/split
STRIPS = [
    ("real_physionet_leave-subject-out_final-loso.csv", "physionet_loso_strip.png"),
    ("real_physionet_within-session_main.csv", "physionet_within_session_strip.png"),
    ("real_muse_cue_final.csv", "muse_cue_loso_strip.png"),
    ("real_muse_target_final.csv", "muse_target_loso_strip.png"),
    ("real_dog1_folds_full.csv", "dog1_grouped_kfold_strip.png"),
    ("real_abide_folds_final.csv", "abide_leave_site_out_strip.png"),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures"), help="folder for the PNG files")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for csv, png in STRIPS:
        path = RESULTS / csv
        if not path.exists():
            print(f"skip {png}: {path} not found (run the matching benchmarks/real_*.py first)")
            continue
        df = pd.read_csv(path)
        if "subject" not in df and "site" in df:
            # leave-site-out: one point per held-out site
            df = df.assign(subject=df["site"])
        print("wrote", strip_plot(df, out / png))
    curve = RESULTS / "heads_fewshot_muse_folds_full.csv"
    if curve.exists():
        df = pd.read_csv(curve)
        try:
            print("wrote", learning_curve_plot(df, out / "muse_fewshot_curve.png"))
        except (KeyError, ValueError) as err:  # a table without the harness's few-shot columns
            print(f"skip muse_fewshot_curve.png: {err}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
