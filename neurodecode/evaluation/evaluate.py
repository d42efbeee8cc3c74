"""`evaluate`: score any pipeline on any `Trials` with subject-aware splits.

Default scoring (when ``scoring=None``), chosen from ``y`` of each dataset:

* two classes → ``"roc_auc"`` (MOABB's choice for binary paradigms; chance
  is 0.5 whatever the class balance);
* more than two classes → ``"balanced_accuracy"`` (chance is ``1/k``
  whatever the class balance, so the binomial chance bound applies; plain
  accuracy, MOABB's multi-class default, is available with
  ``scoring="accuracy"``);
* continuous targets → ``"r2"``.

Leakage is prevented by construction: each fold fits a fresh ``clone`` of
the pipeline on the training rows only, and the test rows are only ever
passed to ``predict`` / ``decision_function`` / ``predict_proba``. Before
fitting, the harness checks that the clone is unfitted
(`check_unfitted`), which catches estimators that carry state across
``clone`` (module-level caches, mutable default parameters that were
fitted), the usual way a transformer leaks test data from an earlier fold.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn import config_context
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import get_scorer
from sklearn.utils.metadata_routing import get_routing_for_object
from sklearn.utils.multiclass import type_of_target

from .backends import run_tasks
from .splits import get_split
from .store import ResultStore, data_fingerprints, fold_key, stable_repr

__all__ = ["evaluate", "resolve_scoring", "check_unfitted", "LeakageError", "TIME_COLUMNS"]

_RESPONSE_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")
TIME_COLUMNS = ("fit_seconds", "predict_seconds")
"""Columns that vary between identical runs (wall times)."""


class LeakageError(RuntimeError):
    """A pipeline carries fitted state into a fold it was not fitted on."""


# ----------------------------------------------------------------- scoring
def resolve_scoring(scoring, y) -> dict:
    """``{name: scorer}`` from ``scoring`` (see the module docstring for None).

    ``scoring`` may be a scorer name, a list of names, a dict
    ``name → name or scorer``, or one callable ``scorer(estimator, X, y)``.
    The first entry is the primary score (column ``score``).
    """
    if scoring is None:
        kind = type_of_target(np.asarray(y))
        if kind == "binary":
            scoring = "roc_auc"
        elif kind == "multiclass":
            scoring = "balanced_accuracy"
        elif kind == "continuous":
            scoring = "r2"
        else:
            raise ValueError(f"cannot choose a default scoring for targets of type {kind!r}; pass scoring=")
    if isinstance(scoring, str):
        return {scoring: get_scorer(scoring)}
    if callable(scoring):
        return {getattr(scoring, "__name__", "score"): scoring}
    if isinstance(scoring, Mapping):
        return {str(k): get_scorer(v) if isinstance(v, str) else v for k, v in scoring.items()}
    names = list(scoring)
    if not names:
        raise ValueError("scoring is empty")
    return {str(n): get_scorer(n) for n in names}


# ---------------------------------------------------------------- pipelines
def _resolve_pipelines(pipelines) -> dict:
    if isinstance(pipelines, str):
        pipelines = [pipelines]
    if isinstance(pipelines, Mapping):
        out = dict(pipelines)
    elif hasattr(pipelines, "fit"):
        out = {type(pipelines).__name__: pipelines}
    else:
        out = {}
        for item in pipelines:
            if isinstance(item, str):
                out[item] = _make_registered(item)
            elif hasattr(item, "fit"):
                out[type(item).__name__] = item
            else:
                raise TypeError(f"pipelines: {item!r} is neither a registered name nor an estimator")
    if not out:
        raise ValueError("no pipeline to evaluate")
    for name, est in list(out.items()):
        if isinstance(est, str):
            out[name] = _make_registered(est)
        elif not hasattr(est, "fit"):
            raise TypeError(f"pipeline {name!r} is a {type(est).__name__}, not an estimator with fit()")
    return out


def _make_registered(name: str):
    try:
        from ..pipelines import make_pipeline
    except ImportError as err:  # pragma: no cover - registry lives on another branch until merged
        raise ImportError(f"pipeline {name!r}: the pipeline registry is unavailable ({err})") from None
    return make_pipeline(name)


def _seeded(estimator, random_state: int):
    """A clone with every unset ``random_state`` parameter fixed (determinism)."""
    est = clone(estimator)
    params = est.get_params(deep=True)
    fixes = {k: random_state for k, v in params.items()
             if (k == "random_state" or k.endswith("__random_state")) and v is None}
    if fixes:
        est.set_params(**fixes)
    return est


def _meta_consumers(estimator) -> set:
    """The methods (fit and response methods) that consume ``meta`` through routing."""
    with config_context(enable_metadata_routing=True):
        routing = get_routing_for_object(estimator)
        out = set()
        for method in ("fit",) + _RESPONSE_METHODS:
            try:
                if routing.consumes(method=method, params=["meta"]):
                    out.add(method)
            except (AttributeError, ValueError, TypeError):
                pass
    return out


def _is_fitted(est) -> bool:
    # Learned state is an instance attribute ending in "_" (sklearn's convention).
    # ``check_is_fitted`` is not used: it calls ``__sklearn_is_fitted__``, which
    # stateless transformers (FunctionTransformer) answer True even when fresh.
    return any(k.endswith("_") and not k.startswith("__") for k in vars(est))


def _parts(est):
    return [("", est)] + [(k, v) for k, v in est.get_params(deep=True).items() if isinstance(v, BaseEstimator)]


def _iter_estimators(obj, _depth=0):
    """``obj`` and every estimator nested in its attributes (steps, sub-estimators).

    Walks instance attributes instead of ``get_params(deep=True)``, which
    inspects every ``__init__`` signature and costs milliseconds per call:
    this runs twice per fold.
    """
    if _depth > 20:
        return
    if isinstance(obj, BaseEstimator):
        yield obj
        children = vars(obj).values()
    elif isinstance(obj, (list, tuple)):
        children = obj
    elif isinstance(obj, dict):
        children = obj.values()
    else:
        return
    for child in children:
        if isinstance(child, (BaseEstimator, list, tuple, dict)):
            yield from _iter_estimators(child, _depth + 1)


_LIBRARY_MODULES = ("sklearn.", "builtins", "abc", "numpy.", "scipy.", "torch.")


def _class_state(est) -> dict:
    """Digest of the mutable class-level attributes of every step's classes.

    A transformer that keeps a class-level dict/list (a cache of rows it has
    seen, labels it was fitted on) shares it with all its clones, so a later
    fold can look up test rows that an earlier fold trained on. Instances
    cannot be inspected for that; the class dictionaries can.

    Dunder attributes (``__slotnames__``, ``__abstractmethods__``, ...) are
    skipped: they are Python's own bookkeeping, e.g. copyreg caches
    ``__slotnames__`` on a class the first time one of its instances is
    pickled (a Pipeline with a joblib ``memory`` pickles its steps in fit).
    """
    import pickle

    out = {}
    for part in _iter_estimators(est):
        for cls in type(part).__mro__:
            if cls is object or cls.__module__.startswith(_LIBRARY_MODULES):
                continue
            for attr, val in vars(cls).items():
                if attr.startswith("__") and attr.endswith("__"):
                    continue
                if isinstance(val, (dict, list, set, bytearray, np.ndarray)):
                    try:
                        blob = pickle.dumps(val, protocol=4)
                    except Exception:  # unpicklable: fall back on its size
                        blob = repr(len(val)).encode()
                    out[f"{cls.__module__}.{cls.__qualname__}.{attr}"] = hashlib.blake2b(
                        blob, digest_size=16).hexdigest()
    return out


def check_unfitted(estimator, name: str = "pipeline") -> None:
    """Raise `LeakageError` when a fresh ``clone`` of ``estimator`` looks fitted.

    ``clone`` must return an estimator with no learned state; one that keeps
    fitted attributes (``*_``) on itself or on any of its steps would carry
    what it learned on one fold (possibly that fold's test data) into the next.
    """
    est = clone(estimator)
    for path, part in _parts(est):
        if _is_fitted(part):
            where = f" (step {path!r})" if path else ""
            raise LeakageError(
                f"pipeline {name!r}: a fresh clone is already fitted{where}; it carries state across "
                "folds and could leak test data. Learn everything in fit(), store it in attributes "
                "ending in '_', and keep no module-level or class-level state."
            )


# -------------------------------------------------------------- one fold
def _take(X, idx):
    if isinstance(X, list):
        return [X[i] for i in idx]
    if isinstance(X, np.ndarray):
        return X[idx]
    # lazy h5py.Dataset: read sorted unique rows, then restore the order
    uniq, inverse = np.unique(idx, return_inverse=True)
    return X[uniq.tolist()][inverse]


class _WithMeta:
    """Forward response methods with ``meta=`` and cache them for all scorers."""

    def __init__(self, est, meta, consumers, clock):
        self._est = est
        self._meta = meta
        self._consumers = consumers
        self._cache = {}
        self._clock = clock

    def __sklearn_tags__(self):
        return self._est.__sklearn_tags__()

    def __getattr__(self, name):
        attr = getattr(self._est, name)
        if name not in _RESPONSE_METHODS:
            return attr

        def method(X):
            if name not in self._cache:
                kw = {"meta": self._meta} if name in self._consumers else {}
                t0 = time.perf_counter()
                with config_context(enable_metadata_routing=bool(kw)):
                    self._cache[name] = attr(X, **kw)
                self._clock[0] += time.perf_counter() - t0
            return self._cache[name]

        method.__name__ = name
        return method


def run_fold(estimator, train, test, X, y, meta, scorers, consumers, error_score="raise",
             check_leakage=True):
    """Fit a clone of ``estimator`` on ``train`` and score it on ``test``.

    Returns a dict with ``scores`` (name → float), ``fit_seconds`` and
    ``predict_seconds`` (time spent in the response methods) and, on failure
    with a numeric ``error_score``, ``error``. With ``check_leakage``, a
    pipeline whose fit changes class-level state (shared by every clone, so
    visible to later folds) raises `LeakageError`, whatever ``error_score``.
    """
    est = clone(estimator)
    before = _class_state(est) if check_leakage else None
    X_train, X_test = _take(X, train), _take(X, test)
    y_train, y_test = y[train], y[test]
    fit_kw = {"meta": meta.iloc[train].reset_index(drop=True)} if "fit" in consumers else {}
    clock = [0.0]
    out = {"fit_seconds": np.nan, "predict_seconds": np.nan}
    try:
        t0 = time.perf_counter()
        with config_context(enable_metadata_routing=bool(fit_kw)):
            est.fit(X_train, y_train, **fit_kw)
        out["fit_seconds"] = time.perf_counter() - t0
        if check_leakage:
            after = _class_state(est)
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            if changed:
                raise LeakageError(
                    f"fit() changed class-level state {changed}: it is shared by every clone, so a "
                    "later fold could see what this fold was trained on (test rows of that fold). "
                    "Store learned state on the instance, in attributes ending in '_'."
                )
        bound = _WithMeta(est, meta.iloc[test].reset_index(drop=True), consumers, clock)
        out["scores"] = {name: float(scorer(bound, X_test, y_test)) for name, scorer in scorers.items()}
        out["predict_seconds"] = clock[0]
    except LeakageError:
        raise
    except Exception as err:
        if error_score == "raise":
            raise
        out["scores"] = {name: float(error_score) for name in scorers}
        out["error"] = f"{type(err).__name__}: {err}"
    return out


# ------------------------------------------------------------------ evaluate
def _datasets(trials, datasets_name):
    if isinstance(trials, Mapping):
        return list(trials.items())
    if isinstance(trials, (list, tuple)):
        names = datasets_name if isinstance(datasets_name, (list, tuple)) else [None] * len(trials)
        if len(names) != len(trials):
            raise ValueError(f"datasets_name has {len(names)} names for {len(trials)} datasets")
        out = [(n or t.name or f"dataset{i}", t) for i, (n, t) in enumerate(zip(names, trials))]
    else:
        out = [(datasets_name or trials.name or "dataset", trials)]
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ValueError(f"dataset names are not unique: {names}; pass datasets_name=")
    return out


def _versions():
    import sklearn

    from .. import __version__

    return {"neurodecode": __version__, "sklearn": sklearn.__version__, "numpy": np.__version__}


def evaluate(pipelines, trials, split="leave-subject-out", scoring=None, n_jobs=1, backend=None,
             random_state=0, store=None, progress=True, datasets_name=None, *, split_params=None,
             ray_address=None, ray_resources=None, error_score="raise", check_leakage=True):
    """Score pipelines on trials: one tidy row per (dataset, pipeline, fold).

    Parameters
    ----------
    pipelines : dict, list or estimator
        ``{name: estimator or registered name}``, a list of registered
        pipeline names (`neurodecode.pipelines.list_pipelines`) and/or
        estimators, or one estimator.
    trials : Trials, list of Trials or dict
        One dataset, several (``{name: Trials}``), evaluated one after another.
    split : str or Split
        A registered split name (`neurodecode.evaluation.splits.list_splits`)
        or a `Split` instance; ``split_params`` go to the split's class.
    scoring : str, list, dict or callable, optional
        Scorers; the first is the primary ``score`` column. See
        `resolve_scoring` for the default.
    n_jobs : int
        Workers for the ``joblib`` and ``ray`` backends.
    backend : {"sequential", "joblib", "ray"}, optional
        Default: ``"sequential"`` when ``n_jobs == 1``, else ``"joblib"``.
        See `neurodecode.evaluation.backends`.
    random_state : int
        Seeds the folds and every unset ``random_state`` of the pipelines.
    store : ResultStore, str or Path, optional
        Results store (SQLite file). Folds already there are read, not
        recomputed; new folds are committed one by one as they finish.
    progress : bool
        A tqdm bar over datasets × pipelines × folds.
    datasets_name : str or list of str, optional
        Names for the datasets (default ``trials.name``).
    ray_address, ray_resources
        Ray cluster address (None: a local instance) and per-task resources
        (``{"num_cpus": 1, "num_gpus": 0}``).
    error_score : "raise" or float
        What a failing fold scores (its error message is kept in ``error``).
    check_leakage : bool
        Refuse pipelines whose fresh clone is already fitted (`check_unfitted`).

    Returns
    -------
    pandas.DataFrame
        Columns: ``dataset, pipeline, split, fold_index, fold, subject,
        session, [site], [n_shots], scoring, score, <one column per scorer>,
        n_train, n_test, n_test_pos, n_test_neg, n_classes, fit_seconds,
        predict_seconds, random_state, key``. ``subject``/``session``/``site``
        are the held-out values (joined with ``+`` when a fold holds out
        several). ``n_test_pos`` / ``n_test_neg`` count the positive (last
        sorted label) and other classes of the test rows, for chance bounds.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline             # doctest: +SKIP
    >>> from sklearn.linear_model import LogisticRegression     # doctest: +SKIP
    >>> df = evaluate({"lr": LogisticRegression()}, trials,      # doctest: +SKIP
    ...               split="leave-subject-out", store="results/results.sqlite")
    """
    if backend is None:
        backend = "sequential" if n_jobs == 1 else "joblib"
    pipes = _resolve_pipelines(pipelines)
    if isinstance(store, (str, bytes)) or hasattr(store, "__fspath__"):
        store = ResultStore(store)
    versions = _versions()
    if check_leakage:
        for name, est in pipes.items():
            check_unfitted(est, name)

    from tqdm.auto import tqdm

    fold_options = {"error_score": error_score, "check_leakage": check_leakage}

    records = []
    datasets = _datasets(trials, datasets_name)
    for ds_i, (ds_name, t) in enumerate(datasets):
        if t.y is None:
            raise ValueError(f"dataset {ds_name!r} has no labels (trials.y is None)")
        if t.is_lazy and backend != "sequential":
            t = t.load_data()
        y = np.asarray(t.y)
        meta = t.meta
        scorers = resolve_scoring(scoring, y)
        split_obj = get_split(split, random_state=random_state, **(split_params or {}))
        folds = list(split_obj.split(t))
        fingerprints = data_fingerprints(t) if store is not None else None
        classes = np.unique(y)
        binary = len(classes) == 2

        tasks, ds_records, keys = [], {}, {}
        for p_i, (p_name, est) in enumerate(pipes.items()):
            seeded = _seeded(est, random_state)
            consumers = _meta_consumers(seeded)
            p_repr = stable_repr(seeded)
            for f_i, (train, test, info) in enumerate(folds):
                base = {
                    "dataset": ds_name, "pipeline": p_name, "split": split_obj.name,
                    "fold_index": f_i, "fold": info["fold"], "subject": info["subject"],
                    "session": info["session"],
                }
                if "site" in info:
                    base["site"] = info["site"]
                if "n_shots" in info:
                    base["n_shots"] = info["n_shots"]
                y_test = y[test]
                base.update(
                    n_train=int(len(train)), n_test=int(len(test)), n_classes=int(len(classes)),
                    n_test_pos=int(np.sum(y_test == classes[-1])) if binary else np.nan,
                    n_test_neg=int(np.sum(y_test != classes[-1])) if binary else np.nan,
                    random_state=random_state,
                )
                task_id = (p_i, f_i)
                key = None
                if store is not None:
                    key = fold_key(
                        dataset=ds_name, pipeline=p_name, pipeline_repr=p_repr,
                        split_repr=repr(split_obj), fold=info["fold"],
                        data_subjects=info["data_subjects"], fingerprints=fingerprints,
                        scoring=[f"{n}:{stable_repr(s)}" for n, s in scorers.items()], versions=versions,
                    )
                base["key"] = key
                keys[task_id] = key
                ds_records[task_id] = base
                tasks.append((task_id, (seeded, train, test, consumers, fold_options)))

        done = store.get_many([k for k in keys.values()]) if store is not None else {}
        todo = []
        for task_id, args in tasks:
            key = keys[task_id]
            if key is not None and key in done:
                ds_records[task_id] = done[key]
            else:
                todo.append((task_id, args))

        bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), disable=not progress,
                   desc=(f"[{ds_i + 1}/{len(datasets)}] " if len(datasets) > 1 else "")
                   + f"{ds_name} · {len(pipes)} pipeline(s) × {len(folds)} folds", leave=False)
        shared = (t.X, y, meta, scorers)
        # one WAL connection for this dataset's commits; each fold is still its own fsynced transaction
        writer = store.writer() if store is not None and todo else contextlib.nullcontext()
        try:
            with writer:
                for task_id, result in run_tasks(
                    _run_fold_task, todo, shared, backend=backend, n_jobs=n_jobs,
                    ray_address=ray_address, ray_resources=ray_resources,
                ):
                    rec = _finish_record(ds_records[task_id], result, scorers)
                    if error_score != "raise":
                        rec["error"] = result.get("error", "")
                    if store is not None:
                        store.put(rec["key"], rec)
                    ds_records[task_id] = rec
                    bar.update(1)
        finally:
            bar.close()
        # the store keeps the first record written for a key; report that one
        records.extend(ds_records[tid] for tid, _ in tasks)

    return _tidy(records, list(pipes))


def _run_fold_task(estimator, train, test, consumers, options, X, y, meta, scorers):
    return run_fold(estimator, train, test, X, y, meta, scorers, consumers, **options)


def _finish_record(base, result, scorers):
    rec = dict(base)
    names = list(scorers)
    rec["scoring"] = names[0]
    rec["score"] = result["scores"][names[0]]
    for n in names:
        rec[n] = result["scores"][n]
    rec["fit_seconds"] = result["fit_seconds"]
    rec["predict_seconds"] = result["predict_seconds"]
    return rec


_FIRST = ["dataset", "pipeline", "split", "fold_index", "fold", "subject", "session", "site", "n_shots",
          "scoring", "score"]
_LAST = ["n_train", "n_test", "n_test_pos", "n_test_neg", "n_classes", "fit_seconds", "predict_seconds",
         "random_state", "key"]


def _tidy(records, pipeline_order) -> pd.DataFrame:
    df = pd.DataFrame(records)
    if df.empty:
        return df
    first = [c for c in _FIRST if c in df.columns]
    last = [c for c in _LAST if c in df.columns]
    middle = [c for c in df.columns if c not in first and c not in last]
    df = df[first + middle + last]
    for col in ("n_train", "n_test", "n_classes", "fold_index"):
        df[col] = df[col].astype(np.int64)
    return df.reset_index(drop=True)
