"""Test adapter that lets scikit-learn's generic estimator checks reach series transformers.

`Connectivity` and `SignalCleaner` read ROI series, ``(n_scans, n_rois, n_times)``
arrays or ragged lists, and reject 2-D tables on purpose (a 2-D array would be
ambiguous: one scan or a table). sklearn's checks feed 2-D ``(n_samples,
n_features)`` tables, so without help they stop at that shape error and never
test their property.

`SeriesAdapter` maps each table row to one valid scan, deterministically and
row by row, then calls the REAL wrapped estimator on the resulting series:

* ROI ``r`` of a row's scan starts with the row values, cyclically shifted by
  ``r`` and copied verbatim (no arithmetic), followed by ``n_base_times``
  columns of a fixed, seeded integer basis. The basis alone has full row rank,
  so every scan's covariance is SPD; the verbatim copy means that NaN, inf,
  complex numbers, Python objects (``check_dtype_object``'s dict) and the input
  dtype (float32, int32, object...) reach the wrapped estimator unchanged and
  its own validation is what the checks exercise.
* Read-only and Fortran-ordered tables give read-only / Fortran-ordered series.
* A sparse table is passed through as is (the wrapped estimator must reject it).
* Any array of shape ``(..., n_features)`` maps to ``(..., n_rois, n_times)``: a
  1-D row becomes ONE 2-D scan, which the wrapped estimator must reject.
* The wrapped estimator's output (vectors, matrices or a list of series) is
  flattened to one row per scan.

The adapter only validates what is its own concept: the table width
(``n_features_in_``; a table with no column cannot be mapped). Parameters of
the wrapped estimator are nested (``estimator__kind``), so cloning, get/set_params
and pickling go through it. After each fit the adapter also asserts the two
parameter contracts on the wrapped clone (params unchanged by fit, new public
attributes end in ``_``), which sklearn's own checks would only verify on the
adapter itself.
"""

from __future__ import annotations

import joblib
import numpy as np
import scipy.sparse
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.utils import estimator_checks as _checks
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted


def _width(X):
    shape = X.shape if scipy.sparse.issparse(X) else np.shape(np.asarray(X))
    return shape[-1] if shape else None


class SeriesAdapter(TransformerMixin, BaseEstimator):
    """Present a series transformer to sklearn's checks as a 2-D table transformer (tests only).

    Parameters
    ----------
    estimator : estimator
        Transformer reading ``(n_scans, n_rois, n_times)`` arrays.
    n_rois : int
        ROIs per generated scan.
    n_base_times : int
        Time points of the fixed basis appended to each ROI.
    random_state : int
        Seed of the basis.

    Examples
    --------
    >>> from neurodecode.preprocessing.connectivity import Connectivity
    >>> import numpy as np
    >>> SeriesAdapter(Connectivity()).fit_transform(np.arange(12.0).reshape(4, 3)).shape
    (4, 6)
    """

    def __init__(self, estimator, n_rois=3, n_base_times=12, random_state=0):
        self.estimator = estimator
        self.n_rois = n_rois
        self.n_base_times = n_base_times
        self.random_state = random_state

    def _basis(self):
        rng = np.random.default_rng(self.random_state)
        while True:  # integer entries keep integer input integer; full rank keeps covariances SPD
            basis = rng.integers(-4, 5, size=(self.n_rois, self.n_base_times))
            centred = basis - basis.mean(axis=1, keepdims=True)
            if np.linalg.matrix_rank(centred) == self.n_rois:
                return basis

    def _series(self, X):
        if scipy.sparse.issparse(X):
            return X
        X = np.asarray(X)
        if X.ndim >= 1 and X.shape[-1] == 0:
            raise ValueError(f"0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
        basis = self._basis().astype(X.dtype)
        rois = []
        for r in range(self.n_rois):
            shifted = np.roll(X, -r, axis=-1)  # verbatim copy, any dtype
            rois.append(np.concatenate([shifted, np.broadcast_to(basis[r], X.shape[:-1] + basis[r].shape)],
                                       axis=-1))
        series = np.stack(rois, axis=-2)
        if X.ndim >= 2 and X.flags.f_contiguous and not X.flags.c_contiguous:
            series = np.asfortranarray(series)
        if not X.flags.writeable:
            series.setflags(write=False)
        return series

    @staticmethod
    def _table(out):
        if isinstance(out, list) or np.ndim(out) > 2:
            return np.stack([np.ravel(o) for o in out]) if len(out) else np.empty((0, 0))
        return out

    def _check_width(self, X):
        width = _width(X)
        if width is None:
            return
        if width != self.n_features_in_:
            raise ValueError(f"X has {width} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input")

    def _fit(self, X, y, method):
        est = clone(self.estimator)
        params = joblib.hash(est.get_params())
        public = {k for k in vars(est) if not k.startswith("_")}
        out = getattr(est, method)(self._series(X), y)
        assert joblib.hash(est.get_params()) == params, f"{type(est).__name__}.fit changed its parameters"
        added = {k for k in vars(est) if not k.startswith("_")} - public
        assert all(k.endswith("_") for k in added), f"{type(est).__name__}.fit set public attributes {added}"
        self.estimator_ = est
        self.n_features_in_ = _width(X)
        return out

    def fit(self, X, y=None):
        """Fit the wrapped estimator on the series made from ``X``."""
        self._fit(X, y, "fit")
        return self

    def fit_transform(self, X, y=None):
        """The wrapped estimator's own ``fit_transform``, flattened to a table."""
        return self._table(self._fit(X, y, "fit_transform"))

    def transform(self, X):
        """The wrapped estimator's ``transform`` of the series made from ``X``, one row per row of ``X``."""
        check_is_fitted(self, "estimator_")
        self._check_width(X)
        return self._table(self.estimator_.transform(self._series(X)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        tags.input_tags.sparse = inner.input_tags.sparse
        if inner.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = list(inner.transformer_tags.preserves_dtype)
        tags.non_deterministic = inner.non_deterministic
        return tags


# sklearn checks about parameters alone (no fit): the adapter's run of them only
# covers the adapter's own parameters, so test files also run them on the bare estimator.
PARAM_CHECKS = [
    _checks.check_no_attributes_set_in_init,
    _checks.check_parameters_default_constructible,
    _checks.check_get_params_invariance,
    _checks.check_set_params,
    _checks.check_do_not_raise_errors_in_init_or_set_params,
    _checks.check_estimator_repr,
    _checks.check_estimator_cloneable,
    _checks.check_estimator_tags_renamed,
    _checks.check_valid_tag_types,
]


class SeriesClassifierAdapter(ClassifierMixin, SeriesAdapter):
    """`SeriesAdapter` for classifiers of 3-D epochs: adds predict / decision_function / predict_proba (tests only)."""

    def fit(self, X, y):
        """Fit the wrapped classifier on the series made from ``X``."""
        self._fit(X, y, "fit")
        self.classes_ = self.estimator_.classes_
        return self

    def _call(self, method, X):
        check_is_fitted(self, "estimator_")
        self._check_width(X)
        return getattr(self.estimator_, method)(self._series(X))

    def predict(self, X):
        """The wrapped classifier's predictions, one per row of ``X``."""
        return self._call("predict", X)

    @available_if(lambda self: hasattr(self.estimator, "decision_function"))
    def decision_function(self, X):
        """The wrapped classifier's decision function, one per row of ``X``."""
        return self._call("decision_function", X)

    @available_if(lambda self: hasattr(self.estimator, "predict_proba"))
    def predict_proba(self, X):
        """The wrapped classifier's probabilities, one row per row of ``X``."""
        return self._call("predict_proba", X)
