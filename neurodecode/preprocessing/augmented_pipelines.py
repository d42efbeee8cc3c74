"""Registered ACM pipelines (augmented covariance + tangent space + linear SVM).

* ``acm-ts-svm`` — fixed ``order=4, lag=2`` (override with options).
  MOABB has no fixed ACM setting: its ``AUG_TANG_SVM_grid`` pipeline always
  grid-searches order 1-10 x lag 1-10. 4 x 2 is a mid-grid choice that keeps
  ``order * n_channels`` well below the samples of a 3-s, 160-Hz PhysionetMI
  epoch (481) for up to ~100 channels; use ``acm-grid-ts-svm`` for the tuned one.
* ``acm-grid-ts-svm`` — :class:`~neurodecode.models.acm_search.ACMGridSearch`,
  the MOABB grid (order 1-10, lag 1-10, C in 0.5/1/1.5, 5 inner folds) with a
  linear SVM.
* ``acm-mdop-ts-svm`` — order and lag learned from the training trials with
  false nearest neighbours and average mutual information (no labels, no
  grid), the MDOP / Takens alternative.
"""

from __future__ import annotations

__all__ = ["register_pipelines"]

MODALITY = ("eeg", "ieeg")


def acm_ts_svm(order=4, lag=2, C=1.0, estimator="cov", device=None):
    """ACM(order, lag) → tangent space → linear SVM."""
    from ..models.acm_search import ACMClassifier

    return ACMClassifier(order=order, lag=lag, C=C, estimator=estimator, device=device)


def acm_grid_ts_svm(orders=tuple(range(1, 11)), lags=tuple(range(1, 11)), Cs=(0.5, 1.0, 1.5),
                    estimator="cov", cv=5, scoring="roc_auc", device=None):
    """ACM with (order, lag, C) chosen by inner cross-validation."""
    from ..models.acm_search import ACMGridSearch

    return ACMGridSearch(orders=orders, lags=lags, Cs=Cs, estimator=estimator, cv=cv,
                         scoring=scoring, device=device)


def acm_mdop_ts_svm(max_order=10, max_lag=10, C=1.0, estimator="cov", device=None):
    """ACM with order/lag from false nearest neighbours + mutual information."""
    from ..models.acm_search import ACMClassifier

    return ACMClassifier(order="auto", lag="auto", C=C, estimator=estimator,
                         max_order=max_order, max_lag=max_lag, device=device)


def register_pipelines(register):
    """Add the ACM pipelines to the registry (called by :mod:`neurodecode.pipelines`)."""
    register("acm-ts-svm", acm_ts_svm,
             "augmented covariance (order 4, lag 2) + Riemannian tangent space + linear SVM",
             modality=MODALITY)
    register("acm-grid-ts-svm", acm_grid_ts_svm,
             "augmented covariance, order 1-10 x lag 1-10 x C grid by inner CV (cached "
             "covariances) + tangent space + linear SVM", modality=MODALITY)
    register("acm-mdop-ts-svm", acm_mdop_ts_svm,
             "augmented covariance with order/lag from false nearest neighbours and mutual "
             "information + tangent space + linear SVM", modality=MODALITY)
