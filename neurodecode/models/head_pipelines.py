"""Registered torch-head pipelines: ``mae-probe``, ``mae-finetune``, ``cross-subject``.

Each factory returns a fresh, unfitted scikit-learn estimator from
`neurodecode.models.adapter`; keyword arguments are its parameters
(``make_pipeline("mae-probe", checkpoint="runs/mae-dog1", mask_ratio=0.6)``).
"""

from __future__ import annotations

__all__ = ["register_pipelines"]


def _mae_probe(**params):
    from .adapter import MAEClassifier

    return MAEClassifier(mode="probe", **params)


def _mae_finetune(**params):
    from .adapter import MAEClassifier

    return MAEClassifier(mode="finetune", **params)


def _cross_subject(**params):
    from .adapter import CrossSubjectClassifier

    return CrossSubjectClassifier(**params)


def register_pipelines(register):
    """Add the torch heads to the pipeline registry."""
    register("mae-probe", _mae_probe,
             "token masked autoencoder (pretrained in-fold or from a checkpoint) + linear probe",
             modality=("eeg", "ieeg", "fmri"), input_kind="epochs", tags=("torch", "mae"))
    register("mae-finetune", _mae_finetune,
             "token masked autoencoder, encoder fine-tuned end to end with a linear head",
             modality=("eeg", "ieeg", "fmri"), input_kind="epochs", tags=("torch", "mae"))
    register("cross-subject", _cross_subject,
             "MindBridge-style cross-subject decoder: per-subject adapters, shared backbone, "
             "reset-tuning of few-trial subjects",
             modality=("eeg", "ieeg", "fmri"), input_kind="features", tags=("torch", "cross-subject"))
