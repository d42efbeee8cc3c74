"""Statistics against scipy / MOABB on known inputs; the report and its figures."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from neurodecode.evaluation.statistics import (
    chance_bound,
    chance_level,
    dataset_statistics,
    meta_analysis,
    paired_comparison,
    pairwise_comparisons,
    summary_table,
)


def _table(scores: dict, dataset="d", folds=2, seed=0):
    """A results table: ``scores[pipeline][subject]`` spread over ``folds`` folds per subject."""
    rng = np.random.default_rng(seed)
    rows = []
    for pipe, per_subject in scores.items():
        for s, value in enumerate(per_subject, start=1):
            jitter = rng.normal(0, 0.01, folds)
            jitter -= jitter.mean()  # folds average to the given subject score
            for f in range(folds):
                rows.append({"dataset": dataset, "pipeline": pipe, "split": "within-session",
                             "fold": f"subject={s}|fold={f}", "subject": str(s), "session": "0",
                             "scoring": "roc_auc", "score": value + jitter[f], "n_test": 20,
                             "n_test_pos": 10, "n_test_neg": 10, "n_classes": 2, "fit_seconds": 0.1})
    return pd.DataFrame(rows)


A = np.array([0.81, 0.62, 0.74, 0.55, 0.91, 0.68, 0.77, 0.59, 0.85, 0.71])
B = np.array([0.78, 0.60, 0.69, 0.57, 0.83, 0.61, 0.75, 0.52, 0.80, 0.72])


def test_chance_bound_binomial_matches_scipy():
    for n, k_classes, alpha in [(100, 2, 0.05), (37, 2, 0.01), (240, 4, 0.05), (12, 3, 0.05)]:
        bound = chance_bound("accuracy", n, n_classes=k_classes, alpha=alpha)
        k = round(bound * n)
        p = 1 / k_classes
        assert stats.binomtest(k, n, p, alternative="greater").pvalue <= alpha
        assert stats.binomtest(k - 1, n, p, alternative="greater").pvalue > alpha
    assert chance_bound("balanced_accuracy", 100) == chance_bound("accuracy", 100)
    assert chance_level("accuracy", 4) == 0.25 and chance_level("roc_auc_ovr") == 0.5
    with pytest.raises(ValueError, match="no chance"):
        chance_bound("r2", 10)


def test_chance_bound_auc_matches_mann_whitney_null():
    n0, n1, alpha = 30, 20, 0.05
    bound = chance_bound("roc_auc", n0 + n1, n_pos=n1, n_neg=n0, alpha=alpha)
    # AUC = U / (n0 n1); under H0 U has mean n0 n1 / 2 and variance n0 n1 (n0 + n1 + 1) / 12
    sd = np.sqrt(n0 * n1 * (n0 + n1 + 1) / 12) / (n0 * n1)
    assert bound == pytest.approx(0.5 + stats.norm.ppf(1 - alpha) * sd)
    # and a simulated null puts about alpha of its AUCs above it
    rng = np.random.default_rng(0)
    ranks = stats.rankdata(rng.standard_normal((4000, n0 + n1)), axis=1)
    aucs = (ranks[:, n0:].sum(axis=1) - n1 * (n1 + 1) / 2) / (n0 * n1)  # positives are the last n1
    assert abs(np.mean(aucs > bound) - alpha) < 0.02


def test_paired_comparison_against_scipy():
    df = _table({"a": A, "b": B})
    res = paired_comparison(df, "a", "b")
    w = stats.wilcoxon(A, B)
    assert res["wilcoxon_stat"] == pytest.approx(w.statistic)
    assert res["wilcoxon_p"] == pytest.approx(w.pvalue)
    perm = stats.permutation_test((A, B), lambda x, y, axis: np.mean(x - y, axis=axis),
                                  permutation_type="samples", n_resamples=np.inf, alternative="two-sided")
    assert res["permutation_p"] == pytest.approx(perm.pvalue)
    d = A - B
    assert res["cohen_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert res["mean_diff"] == pytest.approx(d.mean())
    assert res["wins_a"] == int(np.sum(d > 0)) and res["n_subjects"] == 10
    # the sampled branch (2**n > n_permutations) agrees with the exact one
    sampled = paired_comparison(df, "a", "b", n_permutations=512, random_state=1)["permutation_p"]
    assert abs(sampled - perm.pvalue) < 0.05
    # symmetric in a and b
    back = paired_comparison(df, "b", "a")
    assert back["wilcoxon_p"] == pytest.approx(res["wilcoxon_p"])
    assert back["cohen_dz"] == pytest.approx(-res["cohen_dz"])


def test_paired_comparison_edge_cases():
    same = _table({"a": A, "b": A})
    res = paired_comparison(same, "a", "b")
    assert res["wilcoxon_p"] == 1.0 and res["permutation_p"] == 1.0 and res["cohen_dz"] == 0.0
    with pytest.raises(KeyError, match="must both be"):
        paired_comparison(same, "a", "zzz")
    with pytest.raises(ValueError, match="at least 2"):
        paired_comparison(_table({"a": A[:1], "b": B[:1]}), "a", "b")


def test_summary_table_mean_sd_over_subjects_and_verdict():
    df = pd.concat([_table({"good": A}), _table({"null": np.full(10, 0.5)})])
    s = summary_table(df).set_index("pipeline")
    assert s.loc["good", "mean"] == pytest.approx(A.mean())
    assert s.loc["good", "std"] == pytest.approx(A.std(ddof=1))
    assert s.loc["good", "n_subjects"] == 10 and s.loc["good", "n_folds"] == 20
    bound = chance_bound("roc_auc", 400, n_pos=200, n_neg=200)
    assert s.loc["good", "chance_bound"] == pytest.approx(bound)
    assert s.loc["good", "verdict"] == "above chance" and s.loc["null", "verdict"] == "chance"


def _moabb_frame(tables):
    return pd.concat([t[["dataset", "pipeline", "subject", "session", "score"]] for t in tables])


@pytest.mark.parametrize("n_subjects", [8, 24])  # exact permutation branch, Wilcoxon branch
def test_dataset_statistics_and_meta_analysis_match_moabb(n_subjects):
    ma = pytest.importorskip("moabb.analysis.meta_analysis")
    rng = np.random.default_rng(n_subjects)
    tables = []
    for ds, shift in (("ds1", 0.03), ("ds2", 0.01), ("ds3", -0.005)):
        n = n_subjects + (3 if ds == "ds2" else 0)
        base = rng.uniform(0.55, 0.9, n)
        tables.append(_table({"p1": base + shift + rng.normal(0, 0.02, n), "p2": base,
                              "p3": base + rng.normal(0, 0.03, n)}, dataset=ds))
    df = pd.concat(tables, ignore_index=True)
    ours = dataset_statistics(df)
    theirs = ma.compute_dataset_statistics(_moabb_frame(tables))
    merged = ours.merge(theirs, on=["dataset", "pipe1", "pipe2"], suffixes=("", "_moabb"))
    assert len(merged) == len(ours) == 3 * 9
    assert np.allclose(merged["p"], merged["p_moabb"])
    assert np.allclose(merged["smd"], merged["smd_moabb"], equal_nan=True)
    assert (merged["nsub"] == merged["nsub_moabb"]).all()
    P, T = meta_analysis(ours)
    P2, T2 = ma.find_significant_differences(theirs)
    assert np.allclose(P.loc[P2.index, P2.columns].to_numpy(float), P2.to_numpy(float), equal_nan=True)
    assert np.allclose(T.loc[T2.index, T2.columns].to_numpy(float), T2.to_numpy(float), equal_nan=True)
    # Stouffer with sqrt(n) weights, by hand
    w = np.sqrt([n_subjects, n_subjects + 3, n_subjects])
    sel = ours[(ours["pipe1"] == "p1") & (ours["pipe2"] == "p2")].set_index("dataset").loc[["ds1", "ds2", "ds3"]]
    z = stats.norm.isf(sel["p"].to_numpy())
    assert P.loc["p1", "p2"] == pytest.approx(stats.norm.sf((w * z).sum() / np.sqrt((w ** 2).sum())))
    # p1 is shifted up on two datasets: the evidence points its way
    assert P.loc["p1", "p2"] < P.loc["p2", "p1"] and T.loc["p1", "p2"] > 0


def test_pairwise_comparisons_every_pair_and_few_shot_levels():
    df = _table({"a": A, "b": B, "c": (A + B) / 2})
    out = pairwise_comparisons(df)
    assert set(zip(out["pipeline_a"], out["pipeline_b"])) == set(itertools.combinations("abc", 2))
    shots = pd.concat([_table({"a": A + k / 100, "b": B}).assign(n_shots=k) for k in (0, 5)])
    out = pairwise_comparisons(shots)
    assert sorted(out["n_shots"]) == [0, 5]
    with pytest.raises(ValueError, match="n_shots"):
        paired_comparison(shots, "a", "b")


# ------------------------------------------------------------------ report
def test_report_writes_markdown_html_and_figures(tmp_path):
    from neurodecode.evaluation.report import write_report

    rng = np.random.default_rng(0)
    df = pd.concat([_table({"a": A, "b": B}, dataset="one"),
                    _table({"a": A[:6], "b": B[:6] + 0.02}, dataset="two")], ignore_index=True)
    shots = pd.concat([_table({"a": np.clip(A - 0.1 + k / 100 + rng.normal(0, 0.01, 10), 0, 1),
                               "b": np.clip(B - 0.1 + k / 200, 0, 1)}, dataset="fs").assign(n_shots=k, split="few-shot")
                       for k in (0, 5, 10, 20, 40)], ignore_index=True)
    report = write_report(df, tmp_path / "out", html=True, command="neurodecode benchmark")
    text = report.read_text()
    for part in ("## Scores", "## Paired comparisons", "Meta-analysis", "## Figures", "neurodecode benchmark",
                 "figures/strip_one.png", "figures/paired_one_a_vs_b.png"):
        assert part in text, part
    assert f"{A.mean():.3f} ± {A.std(ddof=1):.3f}" in text
    figures = sorted(p.name for p in (tmp_path / "out" / "figures").iterdir())
    assert figures == ["paired_one_a_vs_b.png", "paired_two_a_vs_b.png", "strip_one.png", "strip_two.png"]
    for name in figures:
        assert (tmp_path / "out" / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count("<img ") == 4 and "<table" in html
    assert len(pd.read_csv(tmp_path / "out" / "results.csv")) == len(df)
    comp = pd.read_csv(tmp_path / "out" / "comparisons.csv")
    assert len(comp) == 2 and set(comp["dataset"]) == {"one", "two"}

    fs = write_report(shots, tmp_path / "fs")
    assert "figures/fewshot_fs.png" in fs.read_text()
    assert (tmp_path / "fs" / "figures" / "fewshot_fs.png").stat().st_size > 1000
    assert not any(p.name.startswith(".") or p.suffix == ".tmp" for p in (tmp_path / "fs").rglob("*"))
    with pytest.raises(ValueError, match="empty"):
        write_report(df.iloc[:0], tmp_path / "empty")
