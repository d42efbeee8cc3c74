"""The harness on real PhysionetMI trials reproduces MOABB's within-session scores subject by subject."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from conftest import require_dataset
from neurodecode.evaluation import evaluate

# shared/datasets/mne_data/SOURCE.md: MOABB 1.7.2 WithinSessionEvaluation(random_state=42),
# LeftRightImagery, ROC-AUC per subject (mean of 5 folds), rounded to 2 decimals.
MOABB_CSP_LDA = {1: 0.84, 3: 0.43}
MOABB_TS_LR = {1: 0.92, 3: 0.59}


@pytest.fixture(scope="module")
def physionet():
    require_dataset("mne_data", "MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf")
    from neurodecode.io.moabb_data import load_physionet_mi

    return load_physionet_mi(subjects=[1, 3])


def _check_against_moabb(df, name, ref):
    assert (df["scoring"] == "roc_auc").all()
    assert (df.groupby(["pipeline", "subject"]).size() == 5).all()
    assert set(df["n_test"]) == {9} and set(df["n_train"]) == {36}
    per_subject = df.groupby(["pipeline", "subject"])["score"].mean()
    for subject, value in ref.items():
        assert abs(per_subject[(name, str(subject))] - value) <= 0.005 + 1e-9, (name, subject)


def test_within_session_csp_lda_matches_moabb_per_subject(physionet):
    from mne.decoding import CSP

    pipes = {"CSP+LDA": make_pipeline(CSP(n_components=8), LinearDiscriminantAnalysis())}
    df = evaluate(pipes, physionet, split="within-session", random_state=42, progress=False)
    _check_against_moabb(df, "CSP+LDA", MOABB_CSP_LDA)


@pytest.mark.slow
def test_within_session_ts_lr_matches_moabb_per_subject(physionet):
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace

    pipes = {"Cov(oas)+TS+LR": make_pipeline(Covariances("oas"), TangentSpace(metric="riemann"),
                                             LogisticRegression())}
    df = evaluate(pipes, physionet, split="within-session", random_state=42, progress=False)
    _check_against_moabb(df, "Cov(oas)+TS+LR", MOABB_TS_LR)


def test_registered_csp_lda_is_moabbs_pipeline(physionet):
    df = evaluate(["csp-lda"], physionet.select(subject=[1]), split="within-session", random_state=42,
                  progress=False)
    assert np.round(df["score"].mean(), 2) == MOABB_CSP_LDA[1]
