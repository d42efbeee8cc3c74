"""Statistics on the tidy results table: chance bounds, paired tests, meta-analysis.

* `chance_bound` – the one-sided ``1 - alpha`` bound a score must exceed to
  be above chance: binomial for (balanced) accuracy, the normal
  approximation to the Mann–Whitney U statistic for ROC-AUC
  (``0.5 + z_{1-alpha} sqrt((n0 + n1 + 1) / (12 n0 n1))``).
* `summary_table` – per dataset × pipeline: mean ± sd over subjects, the
  pooled chance bound and a ``chance`` / ``above chance`` label.
* `paired_comparison` – two pipelines on the same subjects: Wilcoxon
  signed-rank test, paired sign-flip permutation test, effect size.
* `dataset_statistics` / `meta_analysis` – MOABB's
  ``compute_dataset_statistics`` / ``find_significant_differences``: one-sided
  per-dataset p-values (permutation test below ``perm_cutoff`` subjects,
  Wilcoxon above), standardized mean differences, combined across datasets
  with Stouffer's method weighted by ``sqrt(n_subjects)``. Unlike MOABB the
  random permutation branch is seeded, so the result is deterministic.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "chance_level",
    "chance_bound",
    "subject_scores",
    "summary_table",
    "paired_comparison",
    "pairwise_comparisons",
    "dataset_statistics",
    "meta_analysis",
]

_ACCURACY_LIKE = ("accuracy", "balanced_accuracy")


def chance_level(scoring: str, n_classes: int = 2) -> float:
    """The expected score of a random classifier (0.5 for AUC, 1/k for accuracy)."""
    if scoring.startswith("roc_auc"):
        return 0.5
    if scoring in _ACCURACY_LIKE:
        return 1.0 / n_classes
    raise ValueError(f"no chance level known for scoring {scoring!r}")


def chance_bound(scoring: str, n_test: int, n_classes: int = 2, n_pos: int | None = None,
                 n_neg: int | None = None, alpha: float = 0.05) -> float:
    """One-sided ``1 - alpha`` upper bound of a chance-level score.

    Parameters
    ----------
    scoring : str
        ``"roc_auc"``, ``"accuracy"`` or ``"balanced_accuracy"``.
    n_test : int
        Number of test trials.
    n_classes : int
        Number of classes (accuracy).
    n_pos, n_neg : int, optional
        Class counts (ROC-AUC; default: ``n_test`` split in half).
    alpha : float
        False-positive rate of "above chance".

    Returns
    -------
    float
        For accuracy, the smallest ``k / n`` with ``P(X >= k) <= alpha`` under
        ``X ~ Binomial(n, 1/n_classes)``. For balanced accuracy the same bound
        is used (exact for balanced classes, an approximation otherwise).
        For ROC-AUC, ``0.5 + z_{1-alpha} sqrt((n0 + n1 + 1) / (12 n0 n1))``.

    Examples
    --------
    >>> round(chance_bound("roc_auc", 100, n_pos=50, n_neg=50), 4)
    0.5954
    >>> chance_bound("accuracy", 100, n_classes=2)
    0.59
    """
    n_test = int(n_test)
    if n_test <= 0:
        raise ValueError(f"n_test={n_test}: need at least one test trial")
    if scoring.startswith("roc_auc"):
        if n_pos is None or n_neg is None:
            n_pos = n_test // 2
            n_neg = n_test - n_pos
        if n_pos <= 0 or n_neg <= 0:
            raise ValueError(f"ROC-AUC chance bound needs both classes (n_pos={n_pos}, n_neg={n_neg})")
        z = stats.norm.ppf(1 - alpha)
        return float(0.5 + z * np.sqrt((n_pos + n_neg + 1) / (12.0 * n_pos * n_neg)))
    if scoring in _ACCURACY_LIKE:
        p = 1.0 / n_classes
        k = stats.binom.ppf(1 - alpha, n_test, p) + 1
        return float(k / n_test)
    raise ValueError(f"no chance bound known for scoring {scoring!r}")


def subject_scores(df: pd.DataFrame, score: str = "score") -> pd.DataFrame:
    """Mean score per (dataset, pipeline, [n_shots,] subject), folds and sessions averaged."""
    keys = ["dataset", "pipeline"] + (["n_shots"] if "n_shots" in df.columns and df["n_shots"].notna().any() else []) + ["subject"]
    out = df.groupby(keys, sort=False, observed=True)[score].mean().reset_index()
    return out


def summary_table(df: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per dataset × pipeline (× n_shots): mean ± sd over subjects and a chance label.

    The chance bound pools every test trial of the group (``sum n_test``,
    class counts summed) and is compared with the mean per-subject score; it
    is the bound of a single pooled score, a slightly conservative proxy for
    the mean of per-subject scores. A mean below the bound is labelled
    ``chance``.
    """
    rows = []
    keys = ["dataset", "pipeline"] + (["n_shots"] if "n_shots" in df.columns and df["n_shots"].notna().any() else [])
    for gkey, g in df.groupby(keys, sort=False, observed=True):
        gkey = gkey if isinstance(gkey, tuple) else (gkey,)
        subj = g.groupby("subject", sort=False)["score"].mean()
        scoring = str(g["scoring"].iloc[0])
        n_classes = int(g["n_classes"].iloc[0])
        row = dict(zip(keys, gkey))
        row.update(
            scoring=scoring, n_subjects=len(subj), n_folds=len(g),
            mean=float(subj.mean()), std=float(subj.std(ddof=1)) if len(subj) > 1 else np.nan,
            median=float(subj.median()),
        )
        try:
            n_pos = g["n_test_pos"].sum() if "n_test_pos" in g and g["n_test_pos"].notna().all() else None
            n_neg = g["n_test_neg"].sum() if "n_test_neg" in g and g["n_test_neg"].notna().all() else None
            row["chance"] = chance_level(scoring, n_classes)
            row["chance_bound"] = chance_bound(scoring, int(g["n_test"].sum()), n_classes,
                                               None if n_pos is None else int(n_pos),
                                               None if n_neg is None else int(n_neg), alpha)
            row["verdict"] = "above chance" if row["mean"] > row["chance_bound"] else "chance"
        except ValueError:
            row["chance"] = row["chance_bound"] = np.nan
            row["verdict"] = ""
        row["fit_seconds"] = float(g["fit_seconds"].sum())
        rows.append(row)
    return pd.DataFrame(rows)


def _sign_flip_pvalue(d: np.ndarray, n_permutations: int, random_state: int) -> float:
    """Two-sided paired permutation p-value of the mean difference."""
    n = len(d)
    obs = abs(d.mean())
    if 2 ** n <= n_permutations:
        signs = np.array(list(itertools.product([1, -1], repeat=n)), dtype=float)
        null = np.abs(signs @ d / n)
        return float(np.mean(null >= obs - 1e-12))
    rng = np.random.default_rng(random_state)
    signs = rng.choice([1.0, -1.0], size=(n_permutations, n))
    null = np.abs(signs @ d / n)
    return float((1 + np.sum(null >= obs - 1e-12)) / (1 + n_permutations))


def paired_comparison(df: pd.DataFrame, a: str, b: str, dataset: str | None = None,
                      n_permutations: int = 10000, random_state: int = 0, n_shots: int | None = None) -> dict:
    """Compare pipelines ``a`` and ``b`` on the subjects both were scored on.

    Per-subject scores (folds and sessions averaged) are paired by subject.

    Returns
    -------
    dict
        ``n_subjects``, ``mean_a``, ``mean_b``, ``mean_diff`` (a − b),
        ``wins_a`` (subjects where a > b), ``wilcoxon_stat``, ``wilcoxon_p``
        (two-sided ``scipy.stats.wilcoxon``), ``permutation_p`` (two-sided
        sign-flip test of the mean difference; exact enumeration when
        ``2**n <= n_permutations``), ``cohen_dz`` (mean / sd of the
        differences, ddof=1).
    """
    sub = df if dataset is None else df[df["dataset"] == dataset]
    if "n_shots" in sub.columns and sub["n_shots"].notna().any():
        if n_shots is None:
            if sub["n_shots"].nunique() > 1:
                raise ValueError("few-shot table: pass n_shots= to compare at one calibration size")
        else:
            sub = sub[sub["n_shots"] == n_shots]
        sub = sub.drop(columns="n_shots")
    if sub["dataset"].nunique() > 1:
        raise ValueError("several datasets in df: pass dataset= (or use dataset_statistics)")
    s = subject_scores(sub)
    pa = s[s["pipeline"] == a].set_index("subject")["score"]
    pb = s[s["pipeline"] == b].set_index("subject")["score"]
    if pa.empty or pb.empty:
        raise KeyError(f"pipelines {a!r} and {b!r} must both be in the table; have {sorted(s['pipeline'].unique())}")
    common = pa.index.intersection(pb.index)
    if len(common) < 2:
        raise ValueError(f"{a!r} and {b!r} share {len(common)} subject(s); a paired test needs at least 2")
    xa, xb = pa.loc[common].to_numpy(float), pb.loc[common].to_numpy(float)
    d = xa - xb
    if np.all(d == 0):
        w_stat, w_p = 0.0, 1.0
    else:
        res = stats.wilcoxon(xa, xb)
        w_stat, w_p = float(res.statistic), float(res.pvalue)
    sd = d.std(ddof=1)
    return {
        "dataset": dataset if dataset is not None else str(sub["dataset"].iloc[0]),
        **({"n_shots": n_shots} if n_shots is not None else {}),
        "pipeline_a": a, "pipeline_b": b, "n_subjects": len(common),
        "mean_a": float(xa.mean()), "mean_b": float(xb.mean()), "mean_diff": float(d.mean()),
        "wins_a": int(np.sum(d > 0)),
        "wilcoxon_stat": w_stat, "wilcoxon_p": w_p,
        "permutation_p": _sign_flip_pvalue(d, n_permutations, random_state),
        "cohen_dz": float(d.mean() / sd) if sd > 0 else (0.0 if d.mean() == 0 else float(np.copysign(np.inf, d.mean()))),
    }


def pairwise_comparisons(df: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """`paired_comparison` for every pair of pipelines in every dataset."""
    rows = []
    shots = [None]
    if "n_shots" in df.columns and df["n_shots"].notna().any():
        shots = sorted(int(n) for n in df["n_shots"].dropna().unique())
    for ds, g in df.groupby("dataset", sort=False):
        pipes = list(pd.unique(g["pipeline"]))
        for a, b in itertools.combinations(pipes, 2):
            for n in shots:
                try:
                    rows.append(paired_comparison(g, a, b, dataset=ds, n_shots=n, **kwargs))
                except ValueError:
                    continue
    return pd.DataFrame(rows)


# ------------------------------------------------------- MOABB meta-analysis
_P_FLOOR = np.nextafter(0.0, 1.0)
_P_CEIL = np.nextafter(1.0, 0.0)


def _pvals_wilcoxon(table: pd.DataFrame, order) -> np.ndarray:
    out = np.zeros((len(order), len(order)))
    for i, j in itertools.permutations(range(len(order)), 2):
        a, b = table[order[i]], table[order[j]]
        diffs = a - b
        if (diffs == 0).all():
            out[i, j] = 0.5
            continue
        p = stats.wilcoxon(a, b)[1] / 2
        if diffs.mean() < 0:
            p = 1 - p
        out[i, j] = min(max(p, _P_FLOOR), _P_CEIL)
    return out


def _diff_cube(table: pd.DataFrame, order) -> np.ndarray:
    data = np.zeros((table.shape[0], len(order), len(order)))
    for i, j in itertools.permutations(range(len(order)), 2):
        data[:, i, j] = table[order[i]].to_numpy() - table[order[j]].to_numpy()
    return data


def _pvals_perm(table: pd.DataFrame, order, random_state) -> np.ndarray:
    data = _diff_cube(table, order)
    true = data.sum(axis=0)
    if data.shape[0] > 13:
        rng = np.random.RandomState(random_state)
        nperms = 10000
        out = np.ones(data.shape[1:], dtype=np.int64)
        for _ in range(nperms):
            perm = rng.choice([1, -1], size=(data.shape[0],), replace=True)
            out += (data * perm[:, None, None]).sum(axis=0) >= true
    else:
        nperms = 2 ** data.shape[0]
        out = np.zeros(data.shape[1:], dtype=np.int64)
        for perm in itertools.product([-1, 1], repeat=data.shape[0]):
            out += (data * np.array(perm)[:, None, None]).sum(axis=0) >= true
    out[out >= nperms] = nperms - 1
    return out / nperms


def _effects(table: pd.DataFrame, order) -> np.ndarray:
    out = np.zeros((len(order), len(order)))
    for i, j in itertools.permutations(range(len(order)), 2):
        diffs = table[order[i]] - table[order[j]]
        mean = diffs.mean()
        if (diffs == diffs.iloc[0]).all():
            out[i, j] = 0.0 if mean == 0 else np.copysign(np.inf, mean)
        else:
            out[i, j] = mean / diffs.std()
    return out


def dataset_statistics(df: pd.DataFrame, perm_cutoff: int = 20, random_state: int = 0) -> pd.DataFrame:
    """One-sided p-values and standardized mean differences per dataset (MOABB's method).

    Returns a long table with columns ``dataset, pipe1, pipe2, p, smd, nsub``:
    ``p`` is small when ``pipe1`` scores higher than ``pipe2``.
    """
    if "n_shots" in df.columns and df["n_shots"].notna().any():
        raise ValueError("dataset_statistics: few-shot tables hold several scores per subject; select one n_shots")
    s = subject_scores(df)
    out = []
    for ds, g in s.groupby("dataset", sort=False):
        table = g.pivot(index="subject", values="score", columns="pipeline").dropna()
        algs = table.columns.tolist()
        if table.shape[0] < perm_cutoff:
            p = _pvals_perm(table, algs, random_state)
        else:
            p = _pvals_wilcoxon(table, algs)
        t = _effects(table, algs)
        for i, j in itertools.product(range(len(algs)), repeat=2):
            out.append({"dataset": ds, "pipe1": algs[i], "pipe2": algs[j], "p": float(p[i, j]),
                        "smd": float(t[i, j]), "nsub": int(table.shape[0])})
    return pd.DataFrame(out)


def meta_analysis(stats_df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Combine `dataset_statistics` across datasets (MOABB's ``find_significant_differences``).

    P-values are combined with Stouffer's method weighted by
    ``sqrt(n_subjects)``; effects are averaged with the same normalised weights.

    Returns
    -------
    P, T : pandas.DataFrame
        ``P.loc[a, b]``: combined one-sided p-value that ``a`` beats ``b``;
        ``T.loc[a, b]``: combined standardized mean difference.
    """
    dsets = list(pd.unique(stats_df["dataset"]))
    algs = list(pd.unique(stats_df["pipe1"]))
    nsubs = np.array([stats_df.loc[stats_df["dataset"] == d, "nsub"].mean() for d in dsets])
    P = np.full((len(algs), len(algs)), np.nan)
    T = np.full((len(algs), len(algs)), np.nan)
    for i, j in itertools.permutations(range(len(algs)), 2):
        sel = stats_df[(stats_df["pipe1"] == algs[i]) & (stats_df["pipe2"] == algs[j])].set_index("dataset")
        sel = sel.reindex(sorted(dsets))  # pivot_table in MOABB sorts datasets
        w = np.sqrt(np.array([nsubs[dsets.index(d)] for d in sel.index]))
        p = sel["p"].to_numpy()
        P[i, j] = p.item() if len(p) == 1 else stats.combine_pvalues(p, weights=w, method="stouffer")[1]
        T[i, j] = float(((w / w.sum()) * sel["smd"].to_numpy()).sum())
    return pd.DataFrame(P, index=algs, columns=algs), pd.DataFrame(T, index=algs, columns=algs)
