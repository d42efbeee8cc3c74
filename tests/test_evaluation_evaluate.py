"""`evaluate`: tidy table, chance with shuffled labels, leakage caught, meta routing, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from neurodecode import Trials
from neurodecode.evaluation import LeakageError, check_unfitted, evaluate
from neurodecode.evaluation.evaluate import TIME_COLUMNS
from neurodecode.evaluation.statistics import chance_bound
from neurodecode.simulation import simulate_eeg


def logvar_lr(**lr):
    """Log-variance per channel + LR: picklable (numpy functions only), fast, decodes sim-eeg."""
    return make_pipeline(FunctionTransformer(np.var, kw_args={"axis": -1}), FunctionTransformer(np.log),
                         StandardScaler(), LogisticRegression(**lr))


@pytest.fixture(scope="module")
def sim():
    t = simulate_eeg(n_subjects=5, n_trials=48, n_channels=6, n_times=96, sfreq=128.0,
                     class_sep=1.5, subject_shift=0.3, random_state=0)
    meta = t.meta.copy()
    # two sessions and two sites so every split has something to hold out
    meta["session"] = np.where(meta.groupby("subject").cumcount() % 2 == 0, "A", "B")
    meta["site"] = np.where(meta["subject"] <= 2, "north", "south")
    return Trials(t.X, y=t.y, meta=meta, sfreq=t.sfreq, ch_names=t.ch_names, modality="eeg", name="sim-eeg")


SPLITS = [
    ("leave-subject-out", None),
    ("leave-site-out", None),
    ("grouped-kfold", {"n_splits": 3}),
    ("within-session", None),
    ("cross-session", None),
    ("few-shot", {"n_shots": (0, 5, 10)}),
]


def test_tidy_columns_and_one_row_per_pipeline_and_fold(sim):
    df = evaluate({"a": logvar_lr(), "b": logvar_lr(C=0.1)}, sim, split="leave-subject-out",
                  scoring=["roc_auc", "accuracy"], progress=False)
    assert list(df.columns) == [
        "dataset", "pipeline", "split", "fold_index", "fold", "subject", "session", "site", "scoring",
        "score", "roc_auc", "accuracy", "n_train", "n_test", "n_test_pos", "n_test_neg", "n_classes",
        "fit_seconds", "predict_seconds", "random_state", "key"]
    assert len(df) == 2 * 5
    assert not df.duplicated(["pipeline", "fold"]).any()
    assert (df["score"] == df["roc_auc"]).all() and (df["scoring"] == "roc_auc").all()
    assert (df["n_train"] + df["n_test"] == sim.n_trials).all()
    assert (df["n_test_pos"] + df["n_test_neg"] == df["n_test"]).all()
    assert df["subject"].tolist() == [str(s) for s in range(1, 6)] * 2
    assert (df["fit_seconds"] > 0).all() and (df["predict_seconds"] > 0).all()
    # the simulated class difference is real: well above chance
    assert df["score"].mean() > 0.7


@pytest.mark.parametrize("split,params", SPLITS)
def test_shuffled_labels_score_at_chance_on_every_split(sim, split, params):
    rng = np.random.default_rng(1)
    y = sim.y.copy()
    for s in sim.subjects:  # shuffle within subject: keeps class balance per subject
        idx = np.flatnonzero(sim.meta["subject"].to_numpy() == s)
        y[idx] = rng.permutation(y[idx])
    shuffled = Trials(sim.X, y=y, meta=sim.meta, sfreq=sim.sfreq, modality="eeg", name="shuffled")
    df = evaluate(logvar_lr(), shuffled, split=split, split_params=params, scoring="accuracy", progress=False)
    groups = df.groupby("n_shots") if "n_shots" in df else [(None, df)]
    for _, g in groups:
        correct = int(np.round((g["score"] * g["n_test"]).sum()))
        n = int(g["n_test"].sum())
        assert correct / n <= chance_bound("accuracy", n, n_classes=2, alpha=0.01), (split, correct, n)
    # and the same pipeline is far above chance on the true labels
    true = evaluate(logvar_lr(), sim, split=split, split_params=params, scoring="accuracy", progress=False)
    pooled = (true["score"] * true["n_test"]).sum() / true["n_test"].sum()
    assert pooled > chance_bound("accuracy", int(true["n_test"].sum()), n_classes=2, alpha=0.01)


# ----------------------------------------------------------------- leakage
class MemorisingTransformer(TransformerMixin, BaseEstimator):
    """Deliberately leaky: remembers every training row's label in a class-level dict.

    A clone shares the dict, so a later fold looks up test rows that an
    earlier fold trained on and outputs their true label as a feature.
    """

    memory = {}

    def fit(self, X, y):
        for row, label in zip(X, y):
            type(self).memory[np.asarray(row).tobytes()] = float(label)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        return np.array([[type(self).memory.get(np.asarray(r).tobytes(), 0.5)] for r in X])


def _shuffled_features(sim):
    rng = np.random.default_rng(0)
    X = np.log(np.var(sim.X, axis=-1))
    return Trials(X, y=rng.permutation(sim.y), meta=sim.meta, sfreq=float("nan"), modality="eeg", name="leak")


def test_class_level_memory_is_caught(sim):
    MemorisingTransformer.memory.clear()
    t = _shuffled_features(sim)
    pipe = make_pipeline(MemorisingTransformer(), LogisticRegression())
    with pytest.raises(LeakageError, match="class-level state"):
        evaluate(pipe, t, split="leave-subject-out", scoring="accuracy", progress=False)
    # Without the guard the leak is real: shuffled labels score far above the
    # binomial chance bound, which is what the chance test above would flag.
    MemorisingTransformer.memory.clear()
    df = evaluate(pipe, t, split="leave-subject-out", scoring="accuracy", progress=False, check_leakage=False)
    pooled = (df["score"] * df["n_test"]).sum() / df["n_test"].sum()
    assert pooled > chance_bound("accuracy", int(df["n_test"].sum()), n_classes=2, alpha=0.01)
    assert df["score"].iloc[0] < df["score"].iloc[1:].min()  # fold 1 had nothing memorised yet
    MemorisingTransformer.memory.clear()


class CarriesState(ClassifierMixin, BaseEstimator):
    """Deliberately leaky: ``clone`` returns the fitted object itself."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.coef_ = X[: len(y)].mean(axis=0)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])

    def __sklearn_clone__(self):
        return self


def test_fitted_clone_is_caught(sim):
    est = CarriesState()
    check_unfitted(est)  # fresh: fine
    est.fit(np.zeros((4, 2)), [0, 1, 0, 1])
    with pytest.raises(LeakageError, match="already fitted"):
        check_unfitted(make_pipeline(StandardScaler(), est), "leaky")
    with pytest.raises(LeakageError):
        evaluate({"leaky": est}, _shuffled_features(sim), progress=False)


def test_stateless_steps_are_not_flagged():
    # FunctionTransformer answers "fitted" to check_is_fitted while fresh; that is not a leak
    check_unfitted(logvar_lr())


def test_failing_fold_with_numeric_error_score(sim):
    class Boom(LogisticRegression):
        def fit(self, X, y):
            raise RuntimeError("boom")

    df = evaluate({"boom": Boom()}, _shuffled_features(sim), progress=False, error_score=np.nan)
    assert df["score"].isna().all()
    assert df["error"].str.contains("RuntimeError: boom").all()
    with pytest.raises(RuntimeError, match="boom"):
        evaluate({"boom": Boom()}, _shuffled_features(sim), progress=False)


# ------------------------------------------------------------- meta routing
class RowChecker(TransformerMixin, BaseEstimator):
    """Needs ``meta``; checks it is aligned with X (column 0 of X is the row id)."""

    __metadata_request__fit = {"meta": True}
    __metadata_request__transform = {"meta": True}

    def _check(self, X, meta):
        if meta is None:
            raise AssertionError("meta was not passed")
        if not np.array_equal(meta["row"].to_numpy(), X[:, 0].astype(int)):
            raise AssertionError("meta rows are not aligned with X")
        if list(meta.index) != list(range(len(X))):
            raise AssertionError("meta index is not reset")

    def fit(self, X, y=None, meta=None):
        self._check(X, meta)
        self.subjects_ = sorted(meta["subject"].unique())
        return self

    def fit_transform(self, X, y=None, meta=None):
        # sklearn's default fit_transform would drop meta on its way to transform
        return self.fit(X, y, meta=meta).transform(X, meta=meta)

    def transform(self, X, meta=None):
        self._check(X, meta)
        # a per-subject re-centering, the kind of step that needs subject info
        out = X[:, 1:].copy()
        for s in meta["subject"].unique():
            rows = (meta["subject"] == s).to_numpy()
            out[rows] -= out[rows].mean(axis=0)
        return out


def test_meta_is_routed_to_the_step_that_requests_it(sim):
    X = np.column_stack([np.arange(sim.n_trials), np.log(np.var(sim.X, axis=-1))])
    meta = sim.meta.assign(row=np.arange(sim.n_trials))
    t = Trials(X, y=sim.y, meta=meta, sfreq=float("nan"), modality="eeg", name="routed")
    pipe = make_pipeline(RowChecker(), StandardScaler(), LogisticRegression())
    for split in ("leave-subject-out", "within-session"):
        df = evaluate(pipe, t, split=split, progress=False)
        assert df["score"].mean() > 0.7
    # the same step without the harness: sklearn refuses the call, so routing really happened
    with pytest.raises(AssertionError, match="meta was not passed"):
        clone(pipe).fit(X, sim.y)


# ------------------------------------------------------------- determinism
def test_same_random_state_same_scores(sim):
    def run(rs):
        pipe = make_pipeline(FunctionTransformer(np.var, kw_args={"axis": -1}), FunctionTransformer(np.log),
                             StandardScaler(), SGDClassifier(max_iter=5, tol=None))
        return evaluate({"sgd": pipe}, sim, split="few-shot", split_params={"n_shots": (0, 5)},
                        random_state=rs, progress=False)

    a, b, c = run(3), run(3), run(4)
    pd.testing.assert_frame_equal(a.drop(columns=list(TIME_COLUMNS)), b.drop(columns=list(TIME_COLUMNS)))
    assert not np.array_equal(a["score"].to_numpy(), c["score"].to_numpy())


def test_registered_names_and_several_datasets(sim, monkeypatch):
    from neurodecode import pipelines as registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_pipeline("test-logvar-lr", logvar_lr, "log-variance + LR (test)", overwrite=True)
    other = sim.select(subject=[1, 2, 3])
    df = evaluate(["test-logvar-lr"], {"one": sim, "two": other}, progress=False)
    assert set(df["dataset"]) == {"one", "two"}
    assert (df["pipeline"] == "test-logvar-lr").all()
    assert len(df) == 5 + 3
    with pytest.raises(KeyError, match="unknown pipeline"):
        evaluate(["no-such-pipeline"], sim, progress=False)


def test_default_scoring_follows_the_labels(sim):
    three = Trials(sim.X, y=sim.y + (sim.meta["session"] == "A").to_numpy() * (sim.y == 1) * 1,
                   meta=sim.meta, sfreq=sim.sfreq, modality="eeg", name="three")
    assert evaluate(logvar_lr(), sim, progress=False)["scoring"].iloc[0] == "roc_auc"
    df = evaluate(logvar_lr(), three, progress=False)
    assert df["scoring"].iloc[0] == "balanced_accuracy"
    assert df["n_test_pos"].isna().all()


def test_fmri_ragged_scans_leave_site_out_with_store(tmp_path):
    """Ragged ROI series (a list of scans) through leave-site-out, connectivity fitted per fold."""
    from neurodecode.preprocessing.connectivity import Connectivity
    from neurodecode.simulation import simulate_fmri

    t = simulate_fmri(n_subjects=36, n_rois=8, n_times=(60, 90), n_sites=3, effect_size=2.0,
                      n_planted=3, n_site_edges=2, random_state=0)
    assert t.is_ragged
    pipe = make_pipeline(Connectivity(kind="correlation"), LogisticRegression())
    df = evaluate({"corr-lr": pipe}, t, split="leave-site-out", scoring="accuracy", progress=False,
                  store=tmp_path / "r.sqlite")
    assert list(df["site"]) == ["site1", "site2", "site3"]
    assert (df["n_train"] + df["n_test"] == 36).all()
    pooled = (df["score"] * df["n_test"]).sum() / 36
    assert pooled > chance_bound("accuracy", 36, n_classes=2)
    again = evaluate({"corr-lr": pipe}, t, split="leave-site-out", scoring="accuracy", progress=False,
                     store=tmp_path / "r.sqlite")
    pd.testing.assert_frame_equal(again, df)


class NeverPickledScaler(TransformerMixin, BaseEstimator):
    """A harmless transformer used only by the test below, so its class is first pickled during `evaluate`."""

    def fit(self, X, y=None):
        self.mean_ = np.asarray(X).mean(axis=0)
        return self

    def transform(self, X):
        return np.asarray(X) - self.mean_


def test_first_pickle_of_a_class_during_fit_is_not_a_leak(sim, tmp_path):
    # A Pipeline with a joblib ``memory`` pickles its steps inside fit(); the
    # first pickling of a class makes copyreg cache ``__slotnames__`` on it.
    # That is Python bookkeeping, not fitted state, and must not be flagged,
    # while a real class-level memory still is (test_class_level_memory_is_caught).
    from sklearn.pipeline import Pipeline

    assert "__slotnames__" not in vars(NeverPickledScaler)
    t = _shuffled_features(sim)
    pipe = Pipeline([("centre", NeverPickledScaler()), ("lr", LogisticRegression())], memory=str(tmp_path))
    df = evaluate(pipe, t, split="leave-subject-out", scoring="accuracy", progress=False)
    assert "__slotnames__" in vars(NeverPickledScaler)  # the case above did happen during evaluate
    assert len(df) == t.meta["subject"].nunique()
