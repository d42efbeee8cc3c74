"""A Markdown (and optional HTML) report of a results table, written atomically.

`write_report(df, out_dir)` writes into ``out_dir``:

* ``results.csv`` – the tidy table, one row per fold;
* ``summary.csv`` – `summary_table` (mean ± sd over subjects, chance bound, verdict);
* ``comparisons.csv`` – `pairwise_comparisons` (Wilcoxon, permutation, effect size);
* ``figures/*.png`` – strip plot per dataset, paired plots, few-shot curves;
* ``report.md`` (and ``report.html`` with ``html=True``).

Every file is written to a temporary name and moved into place, so a reader
never sees a half-written report.
"""

from __future__ import annotations

import html as _html
import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path, atomic_write_text
from . import plots
from .statistics import dataset_statistics, meta_analysis, pairwise_comparisons, summary_table

__all__ = ["write_report", "format_summary"]


def _write_csv(path: Path, df: pd.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return path


def _md_table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    if df.empty:
        return "_(none)_\n"
    cols = list(df.columns)

    def fmt(v):
        if isinstance(v, (float, np.floating)):
            if np.isnan(v):
                return ""
            return floatfmt.format(v) if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def format_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary columns a person reads: score as ``mean ± sd`` and the chance verdict."""
    out = summary.copy()
    out["score (mean ± sd)"] = [f"{m:.3f} ± {s:.3f}" if np.isfinite(s) else f"{m:.3f}"
                                for m, s in zip(out["mean"], out["std"])]
    out["verdict"] = [
        f"chance (bound {b:.3f})" if v == "chance" else (f"above chance (bound {b:.3f})" if v else "")
        for v, b in zip(out["verdict"], out["chance_bound"])
    ]
    keep = ["dataset", "pipeline"] + (["n_shots"] if "n_shots" in out.columns else []) + [
        "scoring", "n_subjects", "n_folds", "score (mean ± sd)", "median", "verdict", "fit_seconds"]
    return out[keep]


def write_report(df: pd.DataFrame, out_dir, title: str | None = None, html: bool = False,
                 alpha: float = 0.05, random_state: int = 0, command: str | None = None) -> Path:
    """Write tables, figures and ``report.md`` for a results table; return the report path."""
    if df is None or df.empty:
        raise ValueError("write_report: the results table is empty")
    out = Path(out_dir)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    few_shot = "n_shots" in df.columns and df["n_shots"].notna().any()

    summary = summary_table(df, alpha=alpha)
    comparisons = pairwise_comparisons(df, random_state=random_state)
    _write_csv(out / "results.csv", df)
    _write_csv(out / "summary.csv", summary)
    _write_csv(out / "comparisons.csv", comparisons)

    title = title or "neurodecode benchmark"
    lines = [f"# {title}", ""]
    splits = ", ".join(pd.unique(df["split"]).astype(str))
    lines += [f"- datasets: {', '.join(pd.unique(df['dataset']).astype(str))}",
              f"- split: {splits}",
              f"- pipelines: {', '.join(pd.unique(df['pipeline']).astype(str))}",
              f"- folds: {len(df)}; scoring: {', '.join(pd.unique(df['scoring']).astype(str))}"]
    if command:
        lines.append(f"- command: `{command}`")
    lines += ["", "## Scores", "",
              "Mean ± sd over subjects (folds and sessions averaged per subject). A result is "
              f"labelled *chance* when its mean does not exceed the one-sided p < {alpha} chance "
              "bound of all its test trials pooled (binomial for accuracy, Mann–Whitney normal "
              "approximation for ROC-AUC).", "",
              _md_table(format_summary(summary))]

    figures = []
    for ds in pd.unique(df["dataset"]):
        g = df[df["dataset"] == ds]
        name = _safe(ds)
        figures.append((f"{ds}: score per subject", plots.strip_plot(g, figdir / f"strip_{name}.png", alpha=alpha)))
        pipes = list(pd.unique(g["pipeline"]))
        for a, b in itertools.combinations(pipes, 2):
            if g.groupby("pipeline")["subject"].nunique().min() >= 2:
                figures.append((f"{ds}: {a} vs {b}",
                                plots.paired_plot(g, a, b, figdir / f"paired_{name}_{_safe(a)}_vs_{_safe(b)}.png")))
        if few_shot:
            figures.append((f"{ds}: few-shot learning curve",
                            plots.learning_curve_plot(g, figdir / f"fewshot_{name}.png")))

    if not comparisons.empty:
        lines += ["## Paired comparisons", "",
                  "Per-subject scores paired by subject; two-sided Wilcoxon signed-rank and "
                  "sign-flip permutation tests; Cohen's d_z = mean / sd of the differences.", "",
                  _md_table(comparisons)]
    if df["dataset"].nunique() > 1 and df["pipeline"].nunique() > 1 and not few_shot:
        st = dataset_statistics(df, random_state=random_state)
        P, T = meta_analysis(st)
        lines += ["## Meta-analysis across datasets (MOABB method)", "",
                  "One-sided combined p-value (Stouffer, weights √n_subjects) that the row beats the column:", "",
                  _md_table(P.reset_index(names="pipeline")),
                  "Combined standardized mean difference:", "",
                  _md_table(T.reset_index(names="pipeline"))]
    lines += ["## Figures", ""]
    for caption, path in figures:
        lines += [f"![{caption}](figures/{path.name})", ""]
    lines += ["Files: `results.csv` (one row per fold), `summary.csv`, `comparisons.csv`.", ""]
    text = "\n".join(lines)
    report = atomic_write_text(out / "report.md", text)
    if html:
        atomic_write_text(out / "report.html", _to_html(title, summary, comparisons, figures))
    return report


def _safe(name) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name))


def _to_html(title, summary, comparisons, figures) -> str:
    parts = [f"<!doctype html><meta charset='utf-8'><title>{_html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px}</style>",
             f"<h1>{_html.escape(title)}</h1><h2>Scores</h2>",
             format_summary(summary).to_html(index=False, float_format="%.3f")]
    if not comparisons.empty:
        parts += ["<h2>Paired comparisons</h2>", comparisons.to_html(index=False, float_format="%.4g")]
    parts.append("<h2>Figures</h2>")
    for caption, path in figures:
        parts.append(f"<figure><img src='figures/{path.name}'><figcaption>{_html.escape(caption)}</figcaption></figure>")
    return "\n".join(parts)
