"""Figures from the tidy results table (matplotlib, Agg backend, atomic writes).

* `strip_plot` – one dot per subject and pipeline, mean marked, chance level
  and pooled chance bound drawn.
* `paired_plot` – pipeline A against pipeline B per subject, with the diagonal.
* `learning_curve_plot` – few-shot score against calibration trials per class.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from .statistics import subject_scores, summary_table  # noqa: E402

__all__ = ["strip_plot", "paired_plot", "learning_curve_plot"]


def _save(fig, path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def strip_plot(df: pd.DataFrame, path, dataset: str | None = None, alpha: float = 0.05) -> Path:
    """Score per subject for each pipeline of one dataset."""
    ds = dataset or str(df["dataset"].iloc[0])
    g = df[df["dataset"] == ds]
    s = subject_scores(g.drop(columns="n_shots", errors="ignore"))
    summary = summary_table(g.drop(columns="n_shots", errors="ignore"), alpha=alpha)
    pipes = list(pd.unique(s["pipeline"]))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(pipes), 4))
    rng = np.random.default_rng(0)
    for i, p in enumerate(pipes):
        v = s.loc[s["pipeline"] == p, "score"].to_numpy()
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(v)), v, s=18, alpha=0.7)
        ax.hlines(v.mean(), i - 0.3, i + 0.3, color="k", lw=2)
    row = summary.iloc[0]
    if np.isfinite(row.get("chance", np.nan)):
        ax.axhline(row["chance"], color="grey", ls="--", lw=1, label=f"chance ({row['chance']:.2f})")
        ax.axhline(summary["chance_bound"].max(), color="red", ls=":", lw=1,
                   label=f"chance bound, p<{alpha} ({summary['chance_bound'].max():.3f})")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xticks(range(len(pipes)), pipes, rotation=20, ha="right")
    ax.set_ylabel(str(row["scoring"]))
    ax.set_title(f"{ds}: score per subject ({g['split'].iloc[0]})", fontsize=10)
    return _save(fig, path)


def paired_plot(df: pd.DataFrame, a: str, b: str, path, dataset: str | None = None) -> Path:
    """Subject scores of pipeline ``a`` (x) against ``b`` (y)."""
    ds = dataset or str(df["dataset"].iloc[0])
    s = subject_scores(df[df["dataset"] == ds].drop(columns="n_shots", errors="ignore"))
    table = s.pivot(index="subject", columns="pipeline", values="score")[[a, b]].dropna()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(table[a], table[b], s=20, alpha=0.8)
    lo = float(np.nanmin(table.to_numpy())) - 0.02
    hi = float(np.nanmax(table.to_numpy())) + 0.02
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(a)
    ax.set_ylabel(b)
    wins = int((table[b] > table[a]).sum())
    ax.set_title(f"{ds}: {b} better for {wins}/{len(table)} subjects", fontsize=10)
    return _save(fig, path)


def learning_curve_plot(df: pd.DataFrame, path, dataset: str | None = None) -> Path:
    """Few-shot learning curve: mean ± s.e.m. over subjects against shots per class."""
    if "n_shots" not in df.columns or df["n_shots"].isna().all():
        raise ValueError("learning_curve_plot needs a few-shot results table (column n_shots)")
    ds = dataset or str(df["dataset"].iloc[0])
    s = subject_scores(df[df["dataset"] == ds])
    fig, ax = plt.subplots(figsize=(5, 4))
    for p, g in s.groupby("pipeline", sort=False):
        agg = g.groupby("n_shots")["score"].agg(["mean", "sem"]).sort_index()
        ax.errorbar(agg.index, agg["mean"], yerr=agg["sem"].fillna(0), marker="o", capsize=3, label=p)
    ax.set_xlabel("calibration trials per class of the new subject")
    ax.set_ylabel(str(df["scoring"].iloc[0]))
    ax.set_title(f"{ds}: few-shot calibration", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)
