"""Shared plumbing of the ``benchmarks/real_*.py`` scripts (not a public module).

Every real-data script: limits BLAS/torch threads to one per process (the
benchmark machine is a shared 2-core box where oversubscribed BLAS made runs
10-30x slower), resolves registered pipelines by name and reports the ones
that are not registered (instead of failing), runs
`neurodecode.evaluation.evaluate` with an on-disk store so an interrupted
run resumes, prints a summary table and the paired tests, and writes the
tidy table and the summary as CSV/Markdown under ``benchmarks/results/``.
"""

from __future__ import annotations

import os

# Must run before numpy/torch are imported by the caller (each script imports
# this module first).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

# Import the neurodecode of the checkout this script lives in, not an
# installed copy (``python benchmarks/x.py`` puts benchmarks/ on sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def limit_threads() -> None:
    """One thread for torch and for every BLAS threadpool already loaded."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass


def base_parser(description: str, store_name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="a small subset (few subjects / folds) to check the script end to end")
    p.add_argument("--store", default=str(RESULTS / "store" / f"{store_name}.sqlite"),
                   help="results store (SQLite; re-runs skip the folds already there). "
                        "'none' disables it")
    p.add_argument("--out", default=str(RESULTS), help="folder for the CSV/Markdown outputs")
    p.add_argument("--tag", default=None, help="suffix of the output file names (default: full or quick)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.add_argument("--report-only", action="store_true",
                   help="compute nothing: report the folds already in the store (a run stopped before "
                        "the end is reported as the subset of folds it finished)")
    return p


def store_arg(args):
    if str(args.store).lower() == "none":
        return None
    Path(args.store).parent.mkdir(parents=True, exist_ok=True)
    return args.store


def tag(args) -> str:
    return args.tag or ("quick" if args.quick else "full")


def resolve_pipelines(names, extra=None):
    """``{name: estimator}`` for the registered ``names`` that exist, and the missing names.

    ``extra`` maps a name to a zero-argument factory used when the name is
    not registered (e.g. a reference pipeline built from library classes).
    """
    from neurodecode.pipelines import list_pipelines, make_pipeline

    registered = set(list_pipelines())
    out, missing = {}, []
    for name in names:
        if name in registered:
            out[name] = make_pipeline(name)
        elif extra and name in extra:
            out[name] = extra[name]()
        else:
            missing.append(name)
    if missing:
        print(f"[warn] not registered in this checkout, skipped: {', '.join(missing)}", flush=True)
    return out, missing


def summarize(df: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """`summary_table` plus the sign test (subjects above chance) per pipeline."""
    from scipy.stats import binomtest

    from neurodecode.evaluation.statistics import chance_level, subject_scores, summary_table

    table = summary_table(df, alpha=alpha)
    subj = subject_scores(df)
    signs, sign_p = [], []
    for _, row in table.iterrows():
        s = subj[(subj["dataset"] == row["dataset"]) & (subj["pipeline"] == row["pipeline"])]["score"]
        try:
            c = chance_level(str(row["scoring"]))  # binary tasks in these scripts
        except ValueError:
            c = np.nan
        k = int(np.sum(s.to_numpy() > c))
        signs.append(f"{k}/{len(s)}")
        sign_p.append(binomtest(k, len(s), 0.5, alternative="greater").pvalue if len(s) else np.nan)
    table["subjects_above_chance"] = signs
    table["sign_test_p"] = sign_p
    return table


def paired(df: pd.DataFrame, pairs=None) -> pd.DataFrame:
    """Paired tests (Wilcoxon, sign-flip permutation, Cohen's dz) per dataset."""
    from neurodecode.evaluation.statistics import paired_comparison, pairwise_comparisons

    if pairs is None:
        return pairwise_comparisons(df)
    rows = []
    for ds, g in df.groupby("dataset", sort=False):
        present = set(g["pipeline"])
        for a, b in pairs:
            if a in present and b in present:
                try:
                    rows.append(paired_comparison(g, a, b, dataset=ds))
                except ValueError as err:
                    print(f"[warn] paired test {a} vs {b} on {ds}: {err}")
    return pd.DataFrame(rows)


def fmt_table(df: pd.DataFrame, cols=None, digits: int = 4) -> str:
    """A Markdown table (no tabulate dependency)."""
    if df is None or df.empty:
        return "(empty)"
    d = df if cols is None else df[[c for c in cols if c in df.columns]]

    def cell(v):
        if isinstance(v, (float, np.floating)):
            if np.isnan(v):
                return ""
            return f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(map(str, d.columns)) + " |", "|" + "---|" * len(d.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join(lines)


SUMMARY_COLS = ["dataset", "pipeline", "scoring", "n_subjects", "n_folds", "mean", "std", "median",
                "chance_bound", "verdict", "subjects_above_chance", "sign_test_p", "fit_seconds"]
PAIRED_COLS = ["dataset", "pipeline_a", "pipeline_b", "n_subjects", "mean_a", "mean_b", "mean_diff",
               "wins_a", "wilcoxon_p", "permutation_p", "cohen_dz"]


class Report:
    """Collects sections and writes ``<out>/<name>_<tag>.md`` and the CSVs."""

    def __init__(self, name: str, args):
        self.name = name
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.tag = tag(args)
        self.t0 = time.perf_counter()
        self.lines = [f"# {name} ({self.tag})", "",
                      f"Command: `{command_line()}`", "",
                      f"Environment: {environment()}", ""]

    def section(self, title: str, text: str) -> None:
        print(f"\n## {title}\n{text}", flush=True)
        self.lines += [f"## {title}", "", text, ""]

    def csv(self, df: pd.DataFrame, suffix: str) -> Path:
        path = self.out / f"{self.name}_{suffix}_{self.tag}.csv"
        df.drop(columns=[c for c in ("key",) if c in df.columns]).to_csv(path, index=False)
        return path

    def finish(self) -> Path:
        wall = time.perf_counter() - self.t0
        self.lines += [f"Wall time (this invocation, store hits included): {wall:.1f} s", ""]
        path = self.out / f"{self.name}_{self.tag}.md"
        path.write_text("\n".join(self.lines))
        print(f"\nwall {wall:.1f} s; report {path}", flush=True)
        return path


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def environment() -> str:
    import sklearn

    import neurodecode

    parts = [f"python {platform.python_version()}",
             f"neurodecode {neurodecode.__version__} ({Path(neurodecode.__file__).parent})",
             f"scikit-learn {sklearn.__version__}", f"numpy {np.__version__}"]
    for mod in ("torch", "pyriemann", "nilearn", "moabb", "mne"):
        try:
            parts.append(f"{mod} {__import__(mod).__version__}")
        except Exception:
            pass
    parts.append(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    return ", ".join(parts)


def checkout_memory(folder):
    """A joblib ``Memory`` at ``folder`` whose ``repr`` names the folder relative to the checkout.

    The harness keys each stored fold by the pipeline's parameters, and a
    Pipeline's ``memory`` is one of them: a plain path string makes the key
    depend on where the checkout lives (a store moved to another worktree
    would recompute every fold). Where the cache lives changes no result, so
    the representation keeps only the path inside the checkout.
    """
    from joblib import Memory

    global CheckoutMemory
    if CheckoutMemory is None:
        class CheckoutMemory(Memory):  # noqa: F811 - module level so pipelines pickle
            def __repr__(self):
                loc = Path(self.location).resolve()
                try:
                    loc = loc.relative_to(HERE.parent)
                except ValueError:  # outside the checkout: the absolute path
                    pass
                return f"Memory(location={loc.as_posix()})"
    return CheckoutMemory(str(folder), verbose=0)


CheckoutMemory = None


def run_eval(pipelines, trials, split, args, **kwargs):
    """`evaluate` with the script's store/progress options; returns (df, wall seconds)."""
    from neurodecode.evaluation import evaluate
    from neurodecode.evaluation.splits import get_split

    if getattr(args, "report_only", False):
        from neurodecode.evaluation.store import ResultStore

        name = kwargs.get("datasets_name") or trials.name
        split_name = get_split(split).name
        stored = ResultStore(args.store).to_frame()
        if stored.empty:
            return stored, float("nan")
        df = stored[(stored["dataset"] == name) & stored["pipeline"].isin(list(pipelines))
                    & (stored["split"] == split_name)]
        if "scoring" in kwargs and kwargs["scoring"]:
            df = df[df["scoring"] == kwargs["scoring"]]
        df = df.drop_duplicates(["pipeline", "fold"], keep="last")
        order = {p: i for i, p in enumerate(pipelines)}
        df = df.sort_values(["pipeline", "fold_index"], key=lambda c: c.map(order) if c.name == "pipeline" else c)
        print(f"[report-only] folds in the store: {df.groupby('pipeline')['fold'].nunique().to_dict()}")
        return df.reset_index(drop=True), float("nan")

    t0 = time.perf_counter()
    df = evaluate(pipelines, trials, split=split, store=store_arg(args),
                  progress=not args.no_progress, **kwargs)
    return df, time.perf_counter() - t0


def held_out_subset_split(column, held_out, name):
    """``LeaveGroupOut(column)`` restricted to the folds that hold out ``held_out``.

    Each fold is the full split's fold (train = every other group, test = the
    held-out group) and the split's ``repr`` (hashed into the store key) is
    the full split's, so folds computed in chunks of a few groups are the
    same stored folds a single full run reads back.
    """
    from neurodecode.evaluation.splits import LeaveGroupOut, _label

    wanted = {str(g) for g in held_out}

    class HeldOutSubset(LeaveGroupOut):
        def _folds(self, trials):
            found = set()
            for train, test, info in super()._folds(trials):
                group = info["fold"].split("=", 1)[1]
                if group in wanted:
                    found.add(group)
                    yield train, test, info
            missing = wanted - found
            if missing:
                raise ValueError(f"held-out {column} values not in the data: {sorted(missing)}; "
                                 f"values: {sorted(_label(v) for v in set(trials.meta[column]))}")

        def __repr__(self):  # the full split's: same folds, same store keys
            return LeaveGroupOut.__repr__(self).replace(type(self).__name__, "LeaveGroupOut", 1)

    obj = HeldOutSubset(column)
    obj.name = name
    return obj


def _shared_fit_class():
    from sklearn.base import BaseEstimator, TransformerMixin, clone

    global SharedFitStep

    class SharedFitStep(TransformerMixin, BaseEstimator):  # noqa: F811 - module level so it pickles
        """A first pipeline step whose fit is looked up in a joblib cache shared with the plain pipeline.

        ``Pipeline(memory=...)`` caches each step's ``fit_transform`` under a
        key that includes the routed fit parameters, and those differ when
        metadata routing is on (a pipeline with a ``meta`` consumer) from
        when it is off: the confound variants could not reuse the fitted
        tangent step of ``conn-tangent-lr`` on the same training fold, and
        refitted it (minutes per fold). This wrapper fits ``step`` on the
        fold's training rows exactly as the plain pipeline does (same
        cached function, same arguments, routing off), so the fitted step is
        read back when the plain pipeline already fitted it on these rows,
        and computed (and cached) otherwise. The fitted step is the same
        either way; nothing outside the training rows is involved.
        """

        def __init__(self, step=None, memory=None):
            self.step = step
            self.memory = memory

        def _fit(self, X, y):
            from sklearn import config_context
            from sklearn.pipeline import Pipeline

            with config_context(enable_metadata_routing=False):
                pipe = Pipeline([("step", clone(self.step)), ("out", "passthrough")], memory=self.memory)
                Xt = pipe.fit_transform(X, y)
            self.step_ = pipe.steps[0][1]
            return Xt

        def fit(self, X, y=None):
            self._fit(X, y)
            return self

        def fit_transform(self, X, y=None):
            return self._fit(X, y)

        def transform(self, X):
            return self.step_.transform(X)

        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.input_tags.two_d_array = False
            return tags

    return SharedFitStep


SharedFitStep = None


def shared_fit_step(step, memory):
    """``SharedFitStep(step, memory)`` (see its docstring); the class is built on first use."""
    if SharedFitStep is None:
        _shared_fit_class()
    return SharedFitStep(step, memory)


# ------------------------------------------------------------------ splits
def _split_classes():
    """Split subclasses defined lazily (the harness import is not free)."""
    from neurodecode.evaluation.splits import LeaveGroupOut, Split, _label, sorted_values

    class CVSplit(Split):
        """A scikit-learn CV splitter as a harness split (``groups`` from a ``meta`` column).

        Used where SOURCE.md's reference uses a plain scikit-learn splitter
        (``StratifiedGroupKFold`` for Dog_1, ``StratifiedKFold`` for
        development fMRI) so both sides score the same folds.
        """

        name = "sklearn-cv"
        uses_labels = True

        def __init__(self, cv, group_column=None, random_state=0):
            super().__init__(random_state)
            self.cv = cv
            self.group_column = group_column

        def _folds(self, trials):
            y = np.asarray(trials.y)
            groups = None
            if self.group_column is not None:
                self._check(trials, (self.group_column,))
                groups = trials.meta[self.group_column].to_numpy()
            for k, (train, test) in enumerate(self.cv.split(np.zeros(len(y)), y, groups)):
                yield train, test, {"fold": f"fold={k}"}

    class LeaveSubjectOutScorable(LeaveGroupOut):
        """Leave one subject out, testing only subjects whose trials hold every class.

        A subject with a single class cannot be scored with ROC-AUC; it stays
        in the training rows of every other fold (as in the Muse SOURCE.md
        reference, where subject1311 trains but gives no test fold).
        """

        name = "leave-subject-out"
        uses_labels = True

        def __init__(self, random_state=0, test_subjects=None):
            super().__init__("subject", random_state)
            # private (not in params(), so not in the store key): running a subset of the
            # folds does not change any fold's training set, hence not its key
            self._test_subjects = None if test_subjects is None else {str(s) for s in test_subjects}

        def _folds(self, trials):
            y = np.asarray(trials.y)
            n_classes = len(np.unique(y))
            values = trials.meta["subject"].to_numpy()
            for g in sorted_values(values):
                test = values == g
                if len(np.unique(y[test])) < n_classes:
                    continue
                if self._test_subjects is not None and _label(g) not in self._test_subjects:
                    continue
                yield np.flatnonzero(~test), np.flatnonzero(test), {"fold": f"subject={_label(g)}"}

    return CVSplit, LeaveSubjectOutScorable


def cv_split(cv, group_column=None):
    return _split_classes()[0](cv, group_column)


def loso_scorable(test_subjects=None):
    """`LeaveSubjectOutScorable`; ``test_subjects`` (labels) restricts which folds run, not their keys."""
    return _split_classes()[1](test_subjects=test_subjects)
