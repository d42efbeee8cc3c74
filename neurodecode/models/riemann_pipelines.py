"""Registered Riemannian pipelines (covariance → tangent space / MDM → classifier).

Each factory returns a fresh, unfitted :class:`sklearn.pipeline.Pipeline` on
epochs ``(n_trials, n_channels, n_times)``. Options shared by the factories:

``estimator``
    covariance estimator of :class:`~neurodecode.preprocessing.covariance.Covariances`
    (``"oas"`` by default, as in MOABB's ``Cov(oas)+TS+LR``);
``metric``
    Riemannian metric of the tangent space / MDM (``"riemann"``);
``C``
    inverse regularisation of the linear classifier;
``device``
    torch device (None: CUDA when present).

The ``recentered-*`` pipelines re-centre each subject's covariances on its
own mean (:class:`~neurodecode.models.alignment.Recentering`); they consume
``meta`` (column ``subject``) through metadata routing in ``fit`` and in
``predict``/``predict_proba``/``decision_function``, and whiten a held-out
subject with the mean of its own unlabeled test trials.

Two further unsupervised alignments (no label of the held-out subject is
read, see :mod:`neurodecode.models.alignment`):

``rpa-cov-ts-lr``
    re-centering + per-subject dispersion stretching (the first two steps of
    Riemannian Procrustes analysis, Rodrigues et al. 2019; the third,
    rotation, needs the target subject's labels) + tangent space + LR;
``recentered-cov-zts-lr``
    re-centering + tangent vectors at the identity (each subject's own
    mean) + per-subject standardisation of every feature + LR;
``cov-zts-lr``
    no whitening: tangent space at the training mean (as ``cov-ts-lr``),
    then per-subject standardisation of every feature + LR (re-centering in
    the tangent space, which keeps the channels unmixed).

Examples
--------
>>> from neurodecode.pipelines import make_pipeline
>>> clf = make_pipeline("cov-ts-lr", estimator="lwf", C=0.5)   # doctest: +SKIP
"""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from ..preprocessing.covariance import Covariances
from sklearn.preprocessing import FunctionTransformer

from ..preprocessing.xdawn import XdawnCovariances
from .alignment import GroupStandardScaler, Recentering, Stretching, identity_tangent_space
from .mdm import MDM, FgMDM
from .tangent import TangentSpace

__all__ = [
    "cov_ts_lr",
    "cov_ts_svm",
    "cov_mdm",
    "cov_fgmdm",
    "recentered_cov_ts_lr",
    "recentered_cov_mdm",
    "rpa_cov_ts_lr",
    "recentered_cov_zts_lr",
    "cov_zts_lr",
    "xdawncov_ts_lr",
    "recentered_xdawncov_ts_lr",
    "register_pipelines",
]

_EEG = ("eeg", "ieeg")


def _cov(estimator, device):
    return ("cov", Covariances(estimator=estimator, device=device))


def _lr(C):
    return ("lr", LogisticRegression(C=C, max_iter=1000))


def cov_ts_lr(estimator="oas", metric="riemann", C=1.0, device=None):
    """Covariances → tangent space at the training mean → logistic regression."""
    return Pipeline([_cov(estimator, device), ("ts", TangentSpace(metric=metric, device=device)), _lr(C)])


def cov_ts_svm(estimator="oas", metric="riemann", C=1.0, device=None):
    """Covariances → tangent space → linear SVM (``SVC(kernel="linear")``, as in MOABB)."""
    return Pipeline([_cov(estimator, device), ("ts", TangentSpace(metric=metric, device=device)),
                     ("svm", SVC(kernel="linear", C=C))])


def cov_mdm(estimator="oas", metric="riemann", device=None):
    """Covariances → minimum distance to (Riemannian) class mean."""
    return Pipeline([_cov(estimator, device), ("mdm", MDM(metric=metric, device=device))])


def cov_fgmdm(estimator="oas", metric="riemann", device=None):
    """Covariances → geodesic LDA filtering → MDM."""
    return Pipeline([_cov(estimator, device), ("fgmdm", FgMDM(metric=metric, device=device))])


def recentered_cov_ts_lr(estimator="oas", metric="riemann", C=1.0, group_column="subject", device=None):
    """Covariances → per-subject re-centering → tangent space at the identity mean → LR."""
    return Pipeline([_cov(estimator, device),
                     ("recenter", Recentering(metric=metric, group_column=group_column, device=device)),
                     ("ts", TangentSpace(metric=metric, device=device)), _lr(C)])


def recentered_cov_mdm(estimator="oas", metric="riemann", group_column="subject", device=None):
    """Covariances → per-subject re-centering → MDM."""
    return Pipeline([_cov(estimator, device),
                     ("recenter", Recentering(metric=metric, group_column=group_column, device=device)),
                     ("mdm", MDM(metric=metric, device=device))])


def rpa_cov_ts_lr(estimator="oas", metric="riemann", C=1.0, final_dispersion=1.0, group_column="subject",
                  device=None):
    """Covariances → per-subject re-centering → per-subject stretching → tangent space → LR.

    Riemannian Procrustes analysis without its supervised rotation step: every
    subject's matrices get the identity as mean and ``final_dispersion`` as
    dispersion (both estimated from the subject's own unlabeled trials).
    """
    return Pipeline([_cov(estimator, device),
                     ("recenter", Recentering(metric=metric, group_column=group_column, device=device)),
                     ("stretch", Stretching(final_dispersion=final_dispersion, centered_data=True,
                                            group_column=group_column, device=device)),
                     ("ts", TangentSpace(metric=metric, device=device)), _lr(C)])


def recentered_cov_zts_lr(estimator="oas", metric="riemann", C=1.0, group_column="subject", device=None):
    """Covariances → per-subject re-centering → tangent space at the identity → per-subject z-score → LR."""
    return Pipeline([_cov(estimator, device),
                     ("recenter", Recentering(metric=metric, group_column=group_column, device=device)),
                     ("ts", FunctionTransformer(identity_tangent_space)),
                     ("zscore", GroupStandardScaler(group_column=group_column)), _lr(C)])


def cov_zts_lr(estimator="oas", metric="riemann", C=1.0, group_column="subject", device=None):
    """Covariances → tangent space at the training mean → per-subject z-score → LR."""
    return Pipeline([_cov(estimator, device), ("ts", TangentSpace(metric=metric, device=device)),
                     ("zscore", GroupStandardScaler(group_column=group_column)), _lr(C)])


def xdawncov_ts_lr(nfilter=2, estimator="oas", xdawn_estimator="oas", metric="riemann", C=1.0, device=None):
    """ERP-aware: Xdawn prototype covariances → tangent space → LR.

    :class:`~neurodecode.preprocessing.xdawn.XdawnCovariances` (batched, equal
    to :class:`pyriemann.estimation.XdawnCovariances` to 1e-8) learns the
    class-averaged ERP prototypes and their Xdawn filters in ``fit`` only
    (training fold), and stacks the filtered prototypes on each filtered
    trial before the covariance. Defaults (2 filters per class, OAS for both
    covariances) are the Muse SOURCE.md reference configuration.
    """
    return Pipeline([("xdawncov", XdawnCovariances(nfilter=nfilter, estimator=estimator,
                                                   xdawn_estimator=xdawn_estimator, device=device)),
                     ("ts", TangentSpace(metric=metric, device=device)), _lr(C)])


def recentered_xdawncov_ts_lr(nfilter=2, estimator="oas", xdawn_estimator="oas", metric="riemann", C=1.0,
                              group_column="subject", device=None):
    """ERP-aware and subject-aligned: Xdawn prototype covariances → per-subject re-centering → TS → LR.

    As `xdawncov_ts_lr`, with :class:`~neurodecode.models.alignment.Recentering`
    between the covariances and the tangent space (consumes ``meta``; a
    held-out subject is whitened by the mean of its own unlabeled trials).
    """
    return Pipeline([("xdawncov", XdawnCovariances(nfilter=nfilter, estimator=estimator,
                                                   xdawn_estimator=xdawn_estimator, device=device)),
                     ("recenter", Recentering(metric=metric, group_column=group_column, device=device)),
                     ("ts", TangentSpace(metric=metric, device=device)), _lr(C)])


def register_pipelines(register):
    """Register this module's pipelines with ``register(name, factory, description, ...)``."""
    register("cov-ts-lr", cov_ts_lr, "covariance (oas) + Riemannian tangent space + logistic regression",
             modality=_EEG)
    register("cov-ts-svm", cov_ts_svm, "covariance (oas) + Riemannian tangent space + linear SVM",
             modality=_EEG)
    register("cov-mdm", cov_mdm, "covariance (oas) + minimum distance to Riemannian mean", modality=_EEG)
    register("cov-fgmdm", cov_fgmdm, "covariance (oas) + geodesic LDA filter + MDM", modality=_EEG)
    register("recentered-cov-ts-lr", recentered_cov_ts_lr,
             "covariance + per-subject Riemannian re-centering (uses meta) + tangent space + LR",
             modality=_EEG)
    register("recentered-cov-mdm", recentered_cov_mdm,
             "covariance + per-subject Riemannian re-centering (uses meta) + MDM", modality=_EEG)
    register("rpa-cov-ts-lr", rpa_cov_ts_lr,
             "covariance + per-subject re-centering and dispersion stretching (RPA without rotation; "
             "uses meta) + tangent space + LR", modality=_EEG)
    register("recentered-cov-zts-lr", recentered_cov_zts_lr,
             "covariance + per-subject re-centering + tangent space at identity + per-subject "
             "feature standardisation (uses meta) + LR", modality=_EEG)
    register("cov-zts-lr", cov_zts_lr,
             "covariance + tangent space + per-subject feature standardisation (uses meta) + LR",
             modality=_EEG)
    register("xdawncov-ts-lr", xdawncov_ts_lr,
             "ERP: Xdawn prototype covariances (batched) + tangent space + LR", modality=_EEG)
    register("recentered-xdawncov-ts-lr", recentered_xdawncov_ts_lr,
             "ERP: Xdawn prototype covariances + per-subject re-centering (uses meta) + tangent space + LR",
             modality=_EEG)
