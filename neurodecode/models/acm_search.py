"""Grid search over ACM (order, lag) and the classifier's C, reusing cached covariances.

The MOABB ACM pipeline (``AugmentedDataset`` + ``Covariances`` +
``TangentSpace`` + ``SVC`` inside ``GridSearchCV``) re-embeds the signal,
re-estimates every covariance and refits the tangent-space reference for
each (order, lag, C) candidate and each inner fold. :class:`ACMGridSearch`
scores exactly the same candidates on exactly the same folds, but

* computes the augmented covariances of the training trials once per
  (order, lag), for the whole grid, from shared lagged products
  (:func:`~neurodecode.preprocessing.augmented.iter_augmented_covariance_grid`)
  — a trial's covariance depends on that trial alone, so sharing it across
  folds leaks nothing;
* per inner fold fits the tangent-space reference (Riemannian mean) on the
  inner-training rows only, started from their log-Euclidean mean (built
  from per-trial matrix logarithms computed once per (order, lag));
* maps the fold's rows to the tangent space once and scores the whole C grid
  on that one feature matrix; for the SVM, one linear Gram matrix serves every
  C (``SVC(kernel="precomputed")`` solves the same dual problem as
  ``SVC(kernel="linear")`` on the tangent vectors).

Nothing is learned from inner-test rows: their covariances are used only to
be mapped with the inner-train reference and scored.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.svm import SVC
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from ..preprocessing.augmented import (
    _check_estimator,
    _check_order_lag,
    augmented_covariances,
    iter_augmented_covariance_grid,
)
from ..riemann.base import _expm, _logm, _sqrtm_invsqrtm, eigh
from ..riemann.mean import _mean_riemann, _mean_riemann_newton
from ..riemann.tangentspace import _log_map, _upper

__all__ = ["ACMClassifier", "ACMGridSearch", "tangent_vectors"]

CLASSIFIERS = ("svm", "lr")
INNER_REFERENCES = ("riemann", "logeuclid", "shared_logeuclid", "shared_then_exact")


def _device(device):
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def tangent_vectors(covs: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Riemannian tangent vectors at ``reference`` (pyRiemann ``TangentSpace`` features)."""
    return _upper(_log_map(covs, reference, "riemann"))


def _karcher_tangent(covs, init, tol, maxiter):
    r"""Riemannian mean by Karcher iterations, with the tangent vectors there.

    The iteration, adaptive step (start 1; x0.95 while the step norm
    decreases, x0.5 otherwise) and stopping rule (:math:`\|J\|_F \le` ``tol``
    or step <= ``tol``) of :func:`neurodecode.riemann.mean_riemann`, except
    that the iterate *at which* the gradient is small is returned, so the
    matrix logarithms of that last iteration are already the tangent vectors
    of ``covs`` at the returned reference: no extra pass.
    """
    M = init
    nu, tau = 1.0, np.finfo(np.float64).max
    for _ in range(maxiter):
        M12, Mm12 = _sqrtm_invsqrtm(M)
        logs = _logm(Mm12 @ covs @ Mm12)
        J = logs.mean(0)
        crit = float(torch.linalg.matrix_norm(J, ord="fro"))
        if crit <= tol or nu <= tol:
            break
        M = M12 @ _expm(nu * J) @ M12
        h = nu * crit
        if h < tau:
            nu, tau = 0.95 * nu, h
        else:
            nu = 0.5 * nu
    else:
        warnings.warn("Riemannian mean: convergence not reached", stacklevel=3)
    return M, logs


def _karcher_tangent_newton(covs, init=None, tol=1e-10):
    """Riemannian mean by the Newton solver (:func:`neurodecode.riemann.mean._mean_riemann_newton`)
    with the tangent vectors of ``covs`` there: the same fixed point as
    :func:`_karcher_tangent`, to a tighter tolerance, in about a third of the passes."""
    return _mean_riemann_newton(covs, None, tol=tol, return_logs=True, init=init)


def _spd_logm(covs: torch.Tensor, rtol: float = 1e-12):
    """Matrix logarithms of a stack, or None when one matrix is not (numerically) SPD."""
    if not bool(torch.isfinite(covs).all()):
        return None
    w, V = eigh(covs)
    if bool((w.min(-1).values <= rtol * w.max(-1).values.clamp_min(0)).any()):
        return None
    return (V * torch.log(w).unsqueeze(-2)) @ V.mT


def _train_centre(U: np.ndarray, train) -> np.ndarray:
    """Log-Euclidean centre of a fold: the mean of the inner-train rows of ``U`` (only those)."""
    return U[train].mean(0)


def _shared_fold_kernels(U, gram, m, train, test):
    """Train and test Gram matrices of the features ``U - m`` from ``gram = U U'``.

    ``(u_i - m)'(u_j - m) = G_ij - u_i'm - u_j'm + m'm``: only the rows that
    are used are formed.
    """
    um = U @ m
    mm = m @ m
    K_tr = gram[np.ix_(train, train)] - um[train, None] - um[None, train] + mm
    K_te = gram[np.ix_(test, train)] - um[test, None] - um[None, train] + mm
    return K_tr, K_te


def _binary_roc_auc(y_true, scores, positive) -> float:
    """ROC-AUC as the Mann-Whitney statistic (ties count one half): sklearn's value, less overhead.

    sklearn's scorer spends ~20 ms of input validation per call, more than a
    small SVM fit; the grid calls it len(Cs) x folds x members times.
    """
    pos = np.asarray(y_true) == positive
    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")  # sklearn raises; GridSearchCV(error_score=nan) records NaN
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class _PrecomputedBinarySVC:
    """``SVC(kernel="precomputed", C)`` for two classes, calling libsvm as ``SVC.fit`` does.

    The grid scores len(Cs) x folds x members SVMs on small Gram matrices;
    scikit-learn's input and target validation around each libsvm call costs
    more than the solve (cProfile: ~40 % of a shared-mode search). This runs
    the same ``libsvm.fit`` / ``libsvm.decision_function`` calls with SVC's
    default settings on already-validated float64 arrays, so the decision
    values are SVC's (checked against ``SVC`` in the tests).
    """

    def __init__(self, C):
        self.C = float(C)

    def fit(self, K, y):
        from sklearn.svm import _libsvm

        self.classes_, codes = np.unique(y, return_inverse=True)
        _libsvm.set_verbosity_wrap(0)  # libsvm's flag is global: SVC sets it before every fit too
        (self.support_, self.support_vectors_, self.n_support_, self.dual_coef_,
         self.intercept_, self.prob_a_, self.prob_b_, status, _) = _libsvm.fit(
            np.ascontiguousarray(K, dtype=np.float64), codes.astype(np.float64),
            svm_type=0, sample_weight=np.empty(0), class_weight=np.ones(2), kernel="precomputed",
            C=self.C, nu=0.0, probability=False, degree=3, shrinking=True, tol=1e-3,
            cache_size=200, coef0=0.0, gamma=0.0, epsilon=0.0, max_iter=-1,
            random_seed=0)  # libsvm's C-SVC uses its RNG only for probability estimates
        if status == 1:
            warnings.warn("libsvm terminated early (max_iter)", stacklevel=2)
        return self

    def decision_function(self, K):
        from sklearn.svm import _libsvm

        dec = _libsvm.decision_function(
            np.ascontiguousarray(K, dtype=np.float64), self.support_, self.support_vectors_,
            self.n_support_, self.dual_coef_, self.intercept_, self.prob_a_, self.prob_b_,
            svm_type=0, kernel="precomputed", degree=3, cache_size=200, coef0=0.0, gamma=0.0)
        return -dec.ravel()  # SVC flips the sign for two classes: > 0 means classes_[1]

    def predict(self, K):
        return self.classes_[(self.decision_function(K) > 0).astype(int)]


def _svm_precomputed(C, y_train, random_state, scoring):
    """The fast two-class libsvm wrapper where it gives SVC's numbers, else ``SVC`` itself.

    Used for the two scorings computed from decision values or labels
    (``roc_auc``, ``accuracy``); any other scorer gets a real ``SVC``.
    """
    if scoring in ("roc_auc", "accuracy") and len(np.unique(y_train)) == 2:
        return _PrecomputedBinarySVC(C)
    return _make_classifier("svm", C, random_state, True)


def _fold_score(scoring, scorer, clf, X_test, y_test):
    if scoring == "roc_auc" and len(clf.classes_) == 2:
        return _binary_roc_auc(y_test, clf.decision_function(X_test), clf.classes_[1])
    if scoring == "accuracy":
        return float(np.mean(clf.predict(X_test) == y_test))
    return scorer(clf, X_test, y_test)


def _check_epochs(X):
    X = check_array(X, allow_nd=True, ensure_2d=False, dtype=np.float64, input_name="X")
    if X.ndim != 3:
        raise ValueError(
            f"X must be a 3-D array (n_trials, n_channels, n_times), got shape {X.shape}; "
            "Reshape your data: one epoch is X[np.newaxis]"
        )
    return X


def _make_classifier(kind, C, random_state, precomputed):
    if kind == "svm":
        return SVC(kernel="precomputed" if precomputed else "linear", C=C,
                   random_state=random_state)
    return LogisticRegression(C=C, max_iter=1000, random_state=random_state)


class ACMClassifier(ClassifierMixin, TransformerMixin, BaseEstimator):
    """ACM (fixed or automatic order/lag) + Riemannian tangent space + linear classifier.

    The steps of MOABB's ACM pipeline with one (order, lag, C):
    ``AugmentedDataset(order, lag)`` → ``Covariances(estimator)`` →
    ``TangentSpace(metric="riemann")`` → ``SVC(kernel="linear", C)``, computed
    with the block ACM path and the torch Riemannian engine.

    Parameters
    ----------
    order, lag : int or "auto", default=4, 2
        Embedding; ``"auto"`` learns it in ``fit`` from the training trials
        (false nearest neighbours / average mutual information, see
        :func:`~neurodecode.preprocessing.embedding_selection.select_order_lag`).
    C : float, default=1.0
    estimator : {"cov", "scm", "corr", "oas", "lwf"}, default="cov"
    classifier : {"svm", "lr"}, default="svm"
    max_order, max_lag : int, default=10
        Bounds of the automatic choice.
    tol, maxiter : float, int
        Riemannian-mean stopping rule (pyRiemann's defaults).
    random_state : int or None
        Classifier seed; the automatic choice is seeded with 0.
    device : str or None

    Attributes
    ----------
    order_, lag_ : int
    reference_ : ndarray
        Riemannian mean of the training ACMs.
    classifier_, classes_, n_channels_

    Examples
    --------
    >>> from neurodecode.simulation import simulate_eeg
    >>> trials = simulate_eeg(n_subjects=1, n_trials=40, n_channels=4, n_times=128,
    ...                       random_state=0)
    >>> clf = ACMClassifier(order=3, lag=2, device="cpu").fit(trials.X, trials.y)
    >>> clf.reference_.shape
    (12, 12)
    """

    def __init__(self, order=4, lag=2, C=1.0, estimator="cov", classifier="svm", max_order=10,
                 max_lag=10, tol=10e-9, maxiter=50, random_state=None, device=None):
        self.order = order
        self.lag = lag
        self.C = C
        self.estimator = estimator
        self.classifier = classifier
        self.max_order = max_order
        self.max_lag = max_lag
        self.tol = tol
        self.maxiter = maxiter
        self.random_state = random_state
        self.device = device

    def fit(self, X, y):
        """Learn order/lag (when "auto"), the tangent-space reference and the classifier."""
        X = _check_epochs(X)
        check_X_y(X.reshape(len(X), -1), y)
        check_classification_targets(y)
        _check_estimator(self.estimator)
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"classifier={self.classifier!r}; choose one of {CLASSIFIERS}")
        if not float(self.C) > 0:
            raise ValueError(f"C must be > 0, got {self.C!r}")
        order, lag = self.order, self.lag
        if order == "auto" or lag == "auto":
            from ..preprocessing.embedding_selection import select_order_lag

            auto_order, auto_lag = select_order_lag(X, self.max_order, self.max_lag,
                                                    random_state=0)
            order = auto_order if order == "auto" else order
            lag = auto_lag if lag == "auto" else lag
            while order > 1 and X.shape[-1] - order * lag < 2:
                order -= 1
        self.order_, self.lag_ = _check_order_lag(order, lag, X.shape[-1])
        dev = _device(self.device)
        covs = torch.as_tensor(
            augmented_covariances(X, self.order_, self.lag_, self.estimator, device=dev),
            device=dev)
        if _spd_logm(covs) is None:
            raise ValueError(
                f"the augmented covariances (order={self.order_}, lag={self.lag_}) are not "
                f"positive definite: {self.order_ * X.shape[1]} embedded dimensions from "
                f"{X.shape[-1] - (self.order_ * self.lag_ if self.order_ > 1 else 0)} samples "
                "per trial; use a smaller order or a shrinkage estimator ('oas', 'lwf')"
            )
        reference = _mean_riemann(covs, None, tol=self.tol, maxiter=self.maxiter)
        features = tangent_vectors(covs, reference).cpu().numpy()
        self.classifier_ = _make_classifier(self.classifier, float(self.C), self.random_state,
                                            False).fit(features, y)
        self.reference_ = reference.cpu().numpy()
        self.classes_ = self.classifier_.classes_
        self.n_channels_ = X.shape[1]
        return self

    def transform(self, X):
        """Tangent vectors of ``X``'s ACMs at the training reference (the classifier's input)."""
        check_is_fitted(self, "classifier_")
        X = _check_epochs(X)
        if X.shape[1] != self.n_channels_:
            raise ValueError(
                f"X has {X.shape[1]} channels but {type(self).__name__} was fitted with "
                f"{self.n_channels_}"
            )
        dev = _device(self.device)
        covs = torch.as_tensor(
            augmented_covariances(X, self.order_, self.lag_, self.estimator, device=dev),
            device=dev)
        ref = torch.as_tensor(self.reference_, device=dev)
        return tangent_vectors(covs, ref).cpu().numpy()

    def decision_function(self, X):
        """Classifier decision values."""
        features = self.transform(X)  # raises NotFittedError before classifier_ is read
        return self.classifier_.decision_function(features)

    def predict(self, X):
        """Predicted labels."""
        features = self.transform(X)
        return self.classifier_.predict(features)

    def _has_proba(self):
        return self.classifier == "lr"

    @available_if(_has_proba)
    def predict_proba(self, X):
        """Class probabilities (``classifier="lr"`` only)."""
        features = self.transform(X)
        return self.classifier_.predict_proba(features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.two_d_array = False
        return tags


class ACMGridSearch(ClassifierMixin, BaseEstimator):
    """ACM + tangent space + linear classifier, with (order, lag, C) chosen by inner CV.

    Same candidates, folds, selection rule (first best in the order
    lag → order → C, like ``GridSearchCV`` over MOABB's pipeline) and final
    refit as ``GridSearchCV(make_pipeline(AugmentedDataset(), Covariances(estimator),
    TangentSpace(), SVC(kernel="linear")), {order, lag, C}, cv=cv)``, much faster
    (see the module docstring).

    Parameters
    ----------
    orders, lags : sequence of int, default=1..10
        The embedding grid. Members that leave fewer than two samples, or
        whose covariances are not SPD (more embedded dimensions than
        samples), are scored NaN, as ``GridSearchCV(error_score=nan)`` would.
    Cs : sequence of float, default=(0.5, 1.0, 1.5)
        Regularisation grid of the classifier (MOABB's ``AUG_TANG_SVM_grid``).
    estimator : {"cov", "scm", "corr", "oas", "lwf"}, default="cov"
        Covariance estimator of the embedded signal (MOABB's ACM uses "cov").
    cv : int or cross-validation splitter or iterable, default=5
        Inner folds, resolved by ``sklearn.model_selection.check_cv``
        (an int gives ``StratifiedKFold(cv)`` without shuffling, as in
        ``GridSearchCV``).
    classifier : {"svm", "lr"}, default="svm"
        Linear SVM (``SVC(kernel="linear")``) or logistic regression.
    scoring : str or callable, default="roc_auc"
        Any scikit-learn scorer.
    tol, maxiter : float, int
        Stopping rule of the Riemannian mean (pyRiemann's defaults).
    inner_reference : {"riemann", "logeuclid", "shared_logeuclid", "shared_then_exact"}, default="riemann"
        Tangent-space reference of the inner folds. "riemann": the
        affine-invariant mean of the inner-train ACMs, as MOABB's pipeline
        (exact). "logeuclid": their log-Euclidean mean, built from the cached
        per-trial matrix logarithms without any further eigendecomposition
        (the Karcher iterations are skipped); an approximation for the
        *selection* only, several times cheaper on large grids. The final
        refit always uses the Riemannian mean.
        "shared_logeuclid": log-Euclidean tangent space at the inner-train
        log-Euclidean mean, i.e. features ``upper(log C_i) - mean_train
        upper(log C_j)``: the per-trial logarithms are computed once per
        (order, lag) and shared by every fold, and each fold's Gram matrix
        is the all-trial Gram of the logs re-centred on the inner-train mean
        (no eigendecomposition per fold, inner-test rows unused for the
        centre). Also a selection-only approximation; refit as above.
        "shared_then_exact": screen every member with "shared_logeuclid",
        then score the ``top_k`` members with the best screening score
        (each member's best over ``Cs``) exactly ("riemann": per-fold
        Riemannian reference on the inner-train rows) and select among those
        exact scores only. The pick equals the exact search's pick whenever
        the exact search's best member is among the ``top_k`` screened ones.
        Order 1 ignores the lag (no delays), so its members are one ACM:
        re-scored once, counted once, and their exact scores shared.
    random_state : int or None, default=None
        Passed to the classifier.
    device : str or None, default=None
        Torch device; None picks CUDA when available, else CPU.
    top_k : int, default=5
        Distinct members re-scored exactly by ``inner_reference="shared_then_exact"``
        (last in the signature so that positional arguments keep their meaning).
        Screening scores on small inner folds are coarse and tie often: on
        PhysionetMI S1 (45 trials, 10 x 10 grid) the exact best member ranked
        5th in the screening, on S2 (3 x 3 grid) 4th.

    Attributes
    ----------
    best_params_ : dict
        ``{"order", "lag", "C"}`` of the selected candidate.
    best_score_ : float
        Its mean inner-CV score.
    best_index_ : int
        Its row in ``cv_results_``.
    cv_results_ : dict of arrays
        ``param_order``, ``param_lag``, ``param_C``, ``params``,
        ``split{k}_test_score``, ``mean_test_score``, ``std_test_score``,
        ``rank_test_score``, ``member_time`` (seconds spent on the candidate's
        (order, lag) member, shared by its C values) and ``error``. With
        ``inner_reference="shared_then_exact"`` the test scores are the
        exact ones (NaN for members that were not re-scored, ranked last),
        and ``screen_split{k}_test_score``, ``screen_mean_test_score`` and
        ``rescored`` (bool) record the screening.
    order_, lag_, C_ : the selected values
    reference_ : ndarray, shape (order_*C, order_*C)
        Riemannian mean of the training ACMs (tangent-space reference).
    best_estimator_ : ACMClassifier
        The best candidate refitted on all of ``X`` (predictions go through it).
    reference_, classifier_, classes_, n_channels_
        Shortcuts to ``best_estimator_``'s.

    Examples
    --------
    >>> from neurodecode.simulation import simulate_eeg
    >>> trials = simulate_eeg(n_subjects=1, n_trials=40, n_channels=4, n_times=128,
    ...                       random_state=0)
    >>> search = ACMGridSearch(orders=(1, 2), lags=(1, 3), Cs=(1.0,), cv=3, device="cpu")
    >>> search.fit(trials.X, trials.y).best_params_.keys()
    dict_keys(['order', 'lag', 'C'])
    """

    def __init__(self, orders=tuple(range(1, 11)), lags=tuple(range(1, 11)), Cs=(0.5, 1.0, 1.5),
                 estimator="cov", cv=5, classifier="svm", scoring="roc_auc", tol=10e-9,
                 maxiter=50, inner_reference="riemann", random_state=None, device=None, top_k=5):
        self.orders = orders
        self.lags = lags
        self.Cs = Cs
        self.estimator = estimator
        self.cv = cv
        self.classifier = classifier
        self.scoring = scoring
        self.tol = tol
        self.maxiter = maxiter
        self.inner_reference = inner_reference
        self.top_k = top_k
        self.random_state = random_state
        self.device = device

    # ------------------------------------------------------------------ checks
    def _check_X(self, X):
        return _check_epochs(X)

    def _check_params(self, n_times):
        _check_estimator(self.estimator)
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"classifier={self.classifier!r}; choose one of {CLASSIFIERS}")
        if self.inner_reference not in INNER_REFERENCES:
            raise ValueError(f"inner_reference={self.inner_reference!r}; choose one of "
                             f"{INNER_REFERENCES}")
        orders = sorted({int(o) for o in self.orders})
        lags = sorted({int(lag) for lag in self.lags})
        Cs = [float(c) for c in self.Cs]
        if self.inner_reference == "shared_then_exact" and not (
                isinstance(self.top_k, (int, np.integer)) and self.top_k >= 1):
            raise ValueError(f"top_k must be an int >= 1, got {self.top_k!r}")
        if not orders or not lags or not Cs:
            raise ValueError("orders, lags and Cs must each hold at least one value")
        if any(c <= 0 for c in Cs):
            raise ValueError(f"every C must be > 0, got Cs={tuple(self.Cs)}")
        for o in orders:
            for lag in lags:
                _check_order_lag(o, 1, 10**9)
                _check_order_lag(1, lag, 10**9)
        # members that do not fit in a trial are reported, not silently dropped
        feasible = [(o, lag) for lag in lags for o in orders
                    if (n_times if o == 1 else n_times - o * lag) >= 2]
        if not feasible:
            raise ValueError(
                f"no (order, lag) of the grid fits in trials of {n_times} samples; "
                "use smaller orders or lags"
            )
        return orders, lags, Cs, set(feasible)

    # --------------------------------------------------------------------- fit
    def fit(self, X, y):
        """Score the grid by inner CV, then refit the best candidate on all of ``X``."""
        X = self._check_X(X)
        X2, y = check_X_y(X.reshape(len(X), -1), y)  # consistent lengths, finite values
        del X2
        check_classification_targets(y)
        orders, lags, Cs, feasible = self._check_params(X.shape[-1])
        cv = check_cv(self.cv, y, classifier=True)
        splits = list(cv.split(X, y))
        scorer = check_scoring(SVC(), scoring=self.scoring)
        dev = _device(self.device)
        y_arr = np.asarray(y)

        n_splits = len(splits)
        candidates, scores, errors, member_times = [], [], [], []
        feasible_orders = sorted({o for o, _ in feasible})
        by_key = {}
        # covariances of every feasible member, lag by lag (feasibility depends on the lag)
        for lag in lags:
            lag_orders = [o for o in feasible_orders if (o, lag) in feasible]
            if not lag_orders:
                continue
            for (order, _), covs in iter_augmented_covariance_grid(
                X, lag_orders, [lag], self.estimator, device=dev
            ):
                t0 = time.perf_counter()
                by_key[(order, lag)] = self._score_member(covs, y_arr, splits, Cs, scorer)
                by_key[(order, lag)] += (time.perf_counter() - t0,)
        screen = None
        if self.inner_reference == "shared_then_exact":
            screen, by_key = by_key, self._rescore_top(X, y_arr, splits, Cs, scorer, by_key, dev)
        screen_scores, rescored = [], []
        for lag in lags:
            for order in orders:
                if (order, lag) in by_key:
                    member_scores, error, seconds = by_key[(order, lag)]
                elif screen is not None and (order, lag) in screen:
                    member_scores = np.full((len(Cs), n_splits), np.nan)
                    error, seconds = screen[(order, lag)][1], screen[(order, lag)][2]
                else:
                    member_scores = np.full((len(Cs), n_splits), np.nan)
                    error, seconds = "embedding longer than the trials", 0.0
                for ci, C in enumerate(Cs):
                    candidates.append({"order": order, "lag": lag, "C": C})
                    scores.append(member_scores[ci])
                    errors.append(error)
                    member_times.append(seconds)
                    if screen is not None:
                        screen_scores.append(screen[(order, lag)][0][ci] if (order, lag) in screen
                                             else np.full(n_splits, np.nan))
                        rescored.append((order, lag) in by_key)

        scores = np.asarray(scores)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
            mean = np.nanmean(scores, axis=1) if n_splits else np.full(len(scores), np.nan)
            mean = np.where(np.isnan(scores).any(axis=1), np.nan, mean)
            std = np.where(np.isnan(mean), np.nan, np.nanstd(scores, axis=1))
        if np.all(np.isnan(mean)):
            raise ValueError(
                "every (order, lag) candidate failed: "
                + "; ".join(sorted({e for e in errors if e}))
            )
        ranked = np.where(np.isnan(mean), -np.inf, mean)
        rank = rankdata(-ranked, method="min").astype(np.int32)
        results = {
            "param_order": np.array([c["order"] for c in candidates]),
            "param_lag": np.array([c["lag"] for c in candidates]),
            "param_C": np.array([c["C"] for c in candidates]),
            "params": candidates,
            "mean_test_score": mean,
            "std_test_score": std,
            "rank_test_score": rank,
            "member_time": np.array(member_times),
            "error": np.array(errors, dtype=object),
        }
        for k in range(n_splits):
            results[f"split{k}_test_score"] = scores[:, k]
        if screen is not None:
            screen_scores = np.asarray(screen_scores)
            for k in range(n_splits):
                results[f"screen_split{k}_test_score"] = screen_scores[:, k]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                results["screen_mean_test_score"] = screen_scores.mean(axis=1)
            results["rescored"] = np.array(rescored)
        self.cv_results_ = results
        self.best_index_ = int(np.argmin(rank))
        self.best_params_ = dict(candidates[self.best_index_])
        self.best_score_ = float(mean[self.best_index_])
        self.order_ = self.best_params_["order"]
        self.lag_ = self.best_params_["lag"]
        self.C_ = self.best_params_["C"]
        self.n_splits_ = n_splits

        # refit: the same steps as the MOABB pipeline, on every training trial
        self.best_estimator_ = ACMClassifier(
            order=self.order_, lag=self.lag_, C=self.C_, estimator=self.estimator,
            classifier=self.classifier, tol=self.tol, maxiter=self.maxiter,
            random_state=self.random_state, device=self.device,
        ).fit(X, y)
        self.reference_ = self.best_estimator_.reference_
        self.classifier_ = self.best_estimator_.classifier_
        self.classes_ = self.best_estimator_.classes_
        self.n_channels_ = X.shape[1]
        return self

    def _rescore_top(self, X, y, splits, Cs, scorer, screen, dev):
        """Exact scores of the ``top_k`` members with the best screening score.

        Members are ranked by their best mean screening score over ``Cs``
        (failed members last; ties keep the grid order lag -> order, as the
        final selection does); their ACMs are recomputed (not kept from the
        screening: a full grid of high-order ACMs does not fit in memory)
        and scored with per-fold Riemannian references.
        """
        keys = sorted(screen, key=lambda ol: (ol[1], ol[0]))  # grid order: lag, then order

        def best(key):
            means = screen[key][0].mean(axis=1)  # NaN where a fold failed, as in fit
            means = means[~np.isnan(means)]
            return float(means.max()) if len(means) else -np.inf

        ranked = sorted(keys, key=best, reverse=True)  # stable: grid order among ties
        out = {}
        for order, lag in ranked:
            if len(out) >= int(self.top_k):
                break
            if best((order, lag)) == -np.inf:
                break  # failed in screening (not SPD), as is everything ranked below
            if order == 1 and any(o == 1 for o, _ in out):
                continue  # order 1 has no delays: one ACM for every lag, scored once
            t0 = time.perf_counter()
            covs = torch.as_tensor(
                augmented_covariances(X, order, lag, self.estimator, device=dev), device=dev)
            scores, error = self._score_member(covs, y, splits, Cs, scorer, mode="riemann_newton")
            out[(order, lag)] = (scores, error, screen[(order, lag)][2] + time.perf_counter() - t0)
        first = next((key for key in out if key[0] == 1), None)
        if first is not None:
            for key in keys:
                if key[0] == 1 and key not in out:  # the same matrices: the same exact scores
                    out[key] = (out[first][0].copy(), out[first][1], screen[key][2])
        return out

    def _score_member(self, covs, y, splits, Cs, scorer, mode=None):
        """Scores (len(Cs), n_splits) of one (order, lag) member, and an error string."""
        mode = self.inner_reference if mode is None else mode
        n_splits = len(splits)
        out = np.full((len(Cs), n_splits), np.nan)
        log_covs = _spd_logm(covs)
        if log_covs is None:
            return out, "augmented covariances not positive definite"
        if mode in ("shared_logeuclid", "shared_then_exact"):
            return self._score_shared(_upper(log_covs), y, splits, Cs, scorer, out), ""
        for k, (train, test) in enumerate(splits):
            tr = torch.as_tensor(train, device=covs.device)
            rows = torch.as_tensor(np.concatenate([train, test]), device=covs.device)
            if mode != "riemann_newton":
                # log-Euclidean mean of the inner-train rows: the Karcher start (or the reference)
                reference = _expm(log_covs[tr].mean(0))
            te = torch.as_tensor(test, device=covs.device)
            if mode == "riemann":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # "convergence not reached"
                    reference, logs_tr = _karcher_tangent(covs[tr], reference, self.tol,
                                                          self.maxiter)
                feats = torch.cat([_upper(logs_tr), tangent_vectors(covs[te], reference)])
            elif mode == "riemann_newton":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    # from the arithmetic mean: measured no better from the log-Euclidean one
                    reference, logs_tr = _karcher_tangent_newton(covs[tr])
                feats = torch.cat([_upper(logs_tr), tangent_vectors(covs[te], reference)])
            else:
                feats = tangent_vectors(covs[rows], reference)
            n_tr = len(train)
            y_tr, y_te = y[train], y[test]
            if self.classifier == "svm":
                gram = (feats @ feats.mT).cpu().numpy()
                K_tr, K_te = gram[:n_tr, :n_tr], gram[n_tr:, :n_tr]
                for ci, C in enumerate(Cs):
                    clf = _svm_precomputed(C, y_tr, self.random_state, self.scoring).fit(K_tr, y_tr)
                    out[ci, k] = _fold_score(self.scoring, scorer, clf, K_te, y_te)
            else:
                F = feats.cpu().numpy()
                for ci, C in enumerate(Cs):
                    clf = _make_classifier("lr", C, self.random_state, False).fit(F[:n_tr], y_tr)
                    out[ci, k] = _fold_score(self.scoring, scorer, clf, F[n_tr:], y_te)
        return out, ""

    def _score_shared(self, U, y, splits, Cs, scorer, out):
        """Shared log-Euclidean scoring: ``U`` = upper(log C) of every trial, computed once.

        The features of a fold are ``U - m`` with ``m`` the mean of the
        inner-train rows of ``U`` (``upper`` is linear, so this is the
        log-Euclidean tangent space at the inner-train log-Euclidean mean).
        For the SVM the fold Gram is ``G - U m' - m U' + m'm`` from the one
        all-trial Gram ``G = U U'``: a rank-2 update per fold.
        """
        U = U.cpu().numpy()
        gram = U @ U.T if self.classifier == "svm" else None
        for k, (train, test) in enumerate(splits):
            m = _train_centre(U, train)
            y_tr, y_te = y[train], y[test]
            if self.classifier == "svm":
                K_tr, K_te = _shared_fold_kernels(U, gram, m, train, test)
                for ci, C in enumerate(Cs):
                    clf = _svm_precomputed(C, y_tr, self.random_state, self.scoring).fit(K_tr, y_tr)
                    out[ci, k] = _fold_score(self.scoring, scorer, clf, K_te, y_te)
            else:
                F_tr, F_te = U[train] - m, U[test] - m
                for ci, C in enumerate(Cs):
                    clf = _make_classifier("lr", C, self.random_state, False).fit(F_tr, y_tr)
                    out[ci, k] = _fold_score(self.scoring, scorer, clf, F_te, y_te)
        return out

    # ----------------------------------------------------------------- predict
    def transform(self, X):
        """Tangent vectors of ``X`` under the selected (order, lag)."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.transform(X)

    def decision_function(self, X):
        """Decision values of the refitted best candidate."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.decision_function(X)

    def predict(self, X):
        """Predicted labels of the refitted best candidate."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict(X)

    @available_if(ACMClassifier._has_proba)
    def predict_proba(self, X):
        """Class probabilities (``classifier="lr"`` only)."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict_proba(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.two_d_array = False
        return tags
