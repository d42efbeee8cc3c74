"""Registered connectivity pipelines for fMRI ROI series (``conn-*``).

Each name is ``conn-<kind>[-<confound step>]-<classifier>``:

=========================== ==================================================================
name                        steps
=========================== ==================================================================
conn-corr-lr                correlation → StandardScaler → LogisticRegression(liblinear)
conn-partial-lr             partial correlation → StandardScaler → LogisticRegression
conn-tangent-lr             tangent (training-fold geometric mean) → StandardScaler → LogisticRegression
conn-tangent-svm            tangent → LinearSVC(C=1) (no scaling: nilearn's development-fMRI example)
conn-corr-confound-lr       correlation → ConfoundRegressor(meta) → StandardScaler → LogisticRegression
conn-tangent-confound-lr    tangent → ConfoundRegressor(meta) → StandardScaler → LogisticRegression
conn-corr-combat-lr         correlation → ComBatHarmonizer(site; unseen site estimated) → scaler → LR
conn-tangent-combat-lr      tangent → ComBatHarmonizer → StandardScaler → LogisticRegression
=========================== ==================================================================

Connectivity vectors drop the diagonal (``discard_diagonal=True``), as in
the ABIDE / development-fMRI reference numbers of the dataset notes. The
confound steps read ``meta`` through scikit-learn metadata routing; the
harness (`neurodecode.evaluation.evaluate`) passes it, fitted on each
training fold only. ``confounds`` defaults to ABIDE's
``("site", "age", "sex", "mean_fd")``.
"""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from .confounds import ComBatHarmonizer, ConfoundRegressor
from .connectivity import Connectivity

__all__ = ["make_connectivity_pipeline", "register_pipelines"]

_KINDS = {"corr": "correlation", "partial": "partial correlation", "tangent": "tangent",
          "cov": "covariance"}
DEFAULT_CONFOUNDS = ("site", "age", "sex", "mean_fd")


def make_connectivity_pipeline(kind="correlation", classifier="lr", confound=None, confounds=DEFAULT_CONFOUNDS,
                               covariates=("age", "sex"), C=1.0, cov_estimator=None):
    """Connectivity → [confound step] → [scaler] → classifier, as a `sklearn.pipeline.Pipeline`.

    Parameters
    ----------
    kind : str
        A `Connectivity` kind.
    classifier : {"lr", "svm"}
        ``LogisticRegression(solver="liblinear")`` with a StandardScaler in
        front, or ``LinearSVC(max_iter=100000)`` on the raw vectors.
    confound : {None, "regress", "combat"}
        `ConfoundRegressor(confounds)` or `ComBatHarmonizer(covariates,
        unseen_site="estimate")` between the features and the classifier.
    confounds : sequence of str
        ``meta`` columns for ``confound="regress"``.
    covariates : sequence of str
        ``meta`` columns ComBat protects.
    C : float
        Inverse regularisation of the classifier.
    cov_estimator : estimator or None
        Covariance estimator of `Connectivity` (None: Ledoit-Wolf).

    Examples
    --------
    >>> make_connectivity_pipeline("tangent", confound="regress").steps[1][0]
    'confound'
    """
    steps = [("connectivity", Connectivity(kind=kind, vectorize=True, discard_diagonal=True,
                                           cov_estimator=cov_estimator))]
    if confound == "regress":
        steps.append(("confound", ConfoundRegressor(confounds=tuple(confounds))))
    elif confound == "combat":
        # Leave-site-out always tests an unseen site: its effects are estimated
        # from the (unlabeled) test rows, see ComBatHarmonizer.
        steps.append(("confound", ComBatHarmonizer(covariates=tuple(covariates), unseen_site="estimate")))
    elif confound is not None:
        raise ValueError(f"confound={confound!r}: expected None, 'regress' or 'combat'")
    if classifier == "lr":
        steps += [("scaler", StandardScaler()), ("classifier", LogisticRegression(solver="liblinear", C=C))]
    elif classifier == "svm":
        steps.append(("classifier", LinearSVC(C=C, max_iter=100000)))
    else:
        raise ValueError(f"classifier={classifier!r}: expected 'lr' or 'svm'")
    return Pipeline(steps)


def _factory(kind, classifier, confound):
    def factory(confounds=DEFAULT_CONFOUNDS, covariates=("age", "sex"), C=1.0, cov_estimator=None):
        return make_connectivity_pipeline(kind, classifier, confound, confounds=confounds, covariates=covariates,
                                          C=C, cov_estimator=cov_estimator)

    return factory


_NAMES = {
    "conn-corr-lr": ("correlation", "lr", None),
    "conn-partial-lr": ("partial correlation", "lr", None),
    "conn-tangent-lr": ("tangent", "lr", None),
    "conn-tangent-svm": ("tangent", "svm", None),
    "conn-corr-confound-lr": ("correlation", "lr", "regress"),
    "conn-tangent-confound-lr": ("tangent", "lr", "regress"),
    "conn-corr-combat-lr": ("correlation", "lr", "combat"),
    "conn-tangent-combat-lr": ("tangent", "lr", "combat"),
}


def register_pipelines(register):
    """Add the ``conn-*`` pipelines to the registry (see `neurodecode.pipelines`)."""
    for name, (kind, clf, confound) in _NAMES.items():
        step = {None: "", "regress": ", meta confounds regressed out (training fold)",
                "combat": ", ComBat site harmonisation (training fold)"}[confound]
        model = "LogisticRegression" if clf == "lr" else "LinearSVC"
        register(name, _factory(kind, clf, confound), f"{kind} connectivity{step} + {model}",
                 modality=("fmri",), input_kind="timeseries", tags=("connectivity",))
