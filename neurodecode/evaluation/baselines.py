"""Plain baselines the harness registers itself, so it always has something to run.

* ``logvar-lr`` – log-variance of each channel, standardised, logistic
  regression: the classic band-power decoder, pure scikit-learn.
* ``subject-logvar-lr`` – the same features z-scored **per subject** before
  the classifier (`SubjectStandardScaler`, which receives ``meta`` through
  metadata routing): the simplest cross-subject re-centering. It uses the
  held-out subject's own unlabelled trials for its mean and scale, as
  Riemannian re-centering does, never labels.
* ``csp-lda`` – MOABB's reference ``make_pipeline(mne.decoding.CSP(n_components=8),
  LinearDiscriminantAnalysis())``, the pipeline its published within-session
  numbers use (see ``shared/datasets/mne_data/SOURCE.md``).

They are the fallback of ``neurodecode benchmark`` when the Riemannian
pipelines (``cov-ts-lr``, ``recentered-cov-ts-lr``) are not installed, and a
yardstick for them. A registered pipeline of the same name from a plugin
module replaces these.

Examples
--------
>>> from neurodecode.pipelines import make_pipeline
>>> import neurodecode.evaluation.baselines  # registers the two names
>>> make_pipeline("logvar-lr").steps[-1][0]
'logisticregression'
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

__all__ = ["SubjectStandardScaler", "logvar_lr", "subject_logvar_lr", "csp_lda"]


def _log_variance(X):
    X = np.asarray(X)
    return np.log(np.var(X, axis=-1) + np.finfo(X.dtype if X.dtype.kind == "f" else np.float64).tiny)


class SubjectStandardScaler(TransformerMixin, BaseEstimator):
    """Z-score features within each subject (rows grouped by ``meta["subject"]``).

    Stateless across subjects: every call standardises the rows it is given,
    subject by subject, with that subject's own mean and standard deviation,
    so nothing from the training fold reaches the test subject and vice versa.

    Parameters
    ----------
    column : str
        The ``meta`` column that groups rows (``"subject"``; ``"site"`` for
        site-wise standardisation).

    Notes
    -----
    ``meta`` is requested for ``fit`` and ``transform`` (sklearn metadata
    routing; `neurodecode.evaluation.evaluate` passes it). Without ``meta``
    all rows are one group.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> X = np.array([[1.0], [3.0], [10.0], [14.0]])
    >>> meta = pd.DataFrame({"subject": [1, 1, 2, 2]})
    >>> SubjectStandardScaler().fit_transform(X, meta=meta).ravel().tolist()
    [-1.0, 1.0, -1.0, 1.0]
    """

    __metadata_request__fit = {"meta": True}
    __metadata_request__transform = {"meta": True}

    def __init__(self, column: str = "subject"):
        self.column = column

    def fit(self, X, y=None, meta=None):
        X = self._validate_data_2d(X)
        self.n_features_in_ = X.shape[1]
        return self

    def fit_transform(self, X, y=None, meta=None):
        # sklearn's default fit_transform would not forward meta to transform
        return self.fit(X, y, meta=meta).transform(X, meta=meta)

    def transform(self, X, meta=None):
        X = self._validate_data_2d(X)
        if meta is None:
            groups = np.zeros(len(X))
        else:
            if not isinstance(meta, pd.DataFrame) or self.column not in meta.columns:
                raise ValueError(f"SubjectStandardScaler: meta must be a DataFrame with a {self.column!r} column")
            if len(meta) != len(X):
                raise ValueError(f"SubjectStandardScaler: meta has {len(meta)} rows for {len(X)} rows of X")
            groups = meta[self.column].to_numpy()
        out = np.empty_like(X, dtype=np.float64)
        for g in pd.unique(groups):
            rows = groups == g
            block = X[rows]
            sd = block.std(axis=0)
            out[rows] = (block - block.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        return out

    @staticmethod
    def _validate_data_2d(X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"SubjectStandardScaler expects 2-D features, got shape {X.shape}")
        return X


def logvar_lr(C: float = 1.0):
    """Log-variance per channel → standardise → logistic regression."""
    return make_pipeline(FunctionTransformer(_log_variance), StandardScaler(), LogisticRegression(C=C))


def subject_logvar_lr(C: float = 1.0):
    """Log-variance per channel → z-score within each subject → logistic regression."""
    return make_pipeline(FunctionTransformer(_log_variance), SubjectStandardScaler(), LogisticRegression(C=C))


def csp_lda(n_components: int = 8):
    """MNE's CSP (``n_components`` filters, log-power features) → LDA, as in MOABB."""
    from mne.decoding import CSP
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    return make_pipeline(CSP(n_components=n_components), LinearDiscriminantAnalysis())


def _register():
    from ..pipelines import register_pipeline

    for name, factory, text in (
        ("logvar-lr", logvar_lr, "log-variance per channel + standardise + logistic regression (baseline)"),
        ("subject-logvar-lr", subject_logvar_lr,
         "log-variance per channel z-scored within each subject (meta) + logistic regression (baseline)"),
        ("csp-lda", csp_lda, "MNE CSP (8 components) + LDA, MOABB's reference CSP+LDA (baseline)"),
    ):
        try:
            register_pipeline(name, factory, text, modality=("eeg", "ieeg"), tags=("baseline",))
        except ValueError:  # already registered (by a plugin, or on re-import): keep that one
            pass


_register()
