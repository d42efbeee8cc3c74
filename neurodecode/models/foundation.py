"""Foundation-model workflow: ``pretrain`` on many subjects → checkpoint; ``finetune`` → model.

``pretrain(trials, head="mae" | "cross-subject", out_dir=...)`` trains a head
with the shared trainer and writes a checkpoint directory
(`neurodecode.models.checkpoint`) with a model card next to the weights
(``model_card.json`` and ``README.md``: data, subjects, objective, scores,
configuration, software versions).

``finetune(checkpoint, new_subject_trials, n_trials=...)`` returns a fitted
scikit-learn estimator (`MAEClassifier` or `CrossSubjectClassifier`) built on
the checkpoint, trained on ``n_trials`` labelled trials **per class** of the
new data (seeded draw; ``None`` = all). The trials used are in
``estimator.finetune_index_`` so the rest can be scored.

Examples
--------
>>> import tempfile
>>> from neurodecode.simulation import simulate_nsd
>>> from neurodecode.models.foundation import pretrain, finetune
>>> d = simulate_nsd(n_subjects=3, n_stimuli=40, n_trials_per_subject=80, n_voxels=(30, 40),
...                  random_state=0)
>>> ckpt = pretrain([d["subj01"], d["subj02"]], head="cross-subject",
...                 out_dir=tempfile.mkdtemp() + "/cs", trainer={"max_epochs": 2})
>>> model = finetune(ckpt, d["subj03"], n_trials=5, epochs=5)
>>> len(model.finetune_index_)
10
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..trials import Trials
from .checkpoint import load_config, save_checkpoint
from .trainer import Trainer, TrainerConfig

__all__ = ["pretrain", "finetune", "select_per_class", "as_trials_list"]

HEADS = ("mae", "cross-subject")


def as_trials_list(trials):
    """`Trials`, a list/tuple of them, or a dict name → `Trials` (simulate_nsd) → list."""
    if isinstance(trials, Trials):
        return [trials]
    if isinstance(trials, dict):
        return list(trials.values())
    trials = list(trials)
    if not trials or not all(isinstance(t, Trials) for t in trials):
        raise TypeError("trials: expected Trials, a list of Trials or a dict of Trials")
    return trials


def select_per_class(y, n_trials, random_state=0):
    """Indices of ``n_trials`` trials per class (seeded); all when ``n_trials`` is None."""
    y = np.asarray(y)
    if n_trials is None:
        return np.arange(len(y))
    rng = np.random.default_rng(random_state)
    idx = []
    for c in np.unique(y):
        pool = np.flatnonzero(y == c)
        if n_trials > len(pool):
            raise ValueError(f"n_trials={n_trials}: class {c!r} has only {len(pool)} trials")
        idx.append(rng.permutation(pool)[:n_trials])
    return np.sort(np.concatenate(idx))


def _versions():
    import importlib.metadata as md

    from .. import __version__

    out = {"neurodecode": __version__, "python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("safetensors", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:  # pragma: no cover
            pass
    return out


def _card(head, objective, trials_list, scores, model_config, trainer_config, extra_info):
    subjects = sorted({str(s) for t in trials_list for s in t.meta["subject"].unique()})
    data = [{"name": t.name, "modality": t.modality, "n_trials": int(t.n_trials),
             "shape": list(np.shape(t.X))[1:] if not isinstance(t.X, list) else "ragged",
             "labelled": t.y is not None} for t in trials_list]
    return {"head": head, "objective": objective, "subjects": subjects, "n_subjects": len(subjects),
            "data": data, "scores": scores, "model_config": model_config,
            "trainer_config": trainer_config, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "software": _versions(), **extra_info}


def _card_markdown(card):
    lines = [f"# Model card: {card['head']}", "",
             f"- **Objective**: {card['objective']}",
             f"- **Subjects** ({card['n_subjects']}): {', '.join(card['subjects'][:20])}"
             + (" …" if card['n_subjects'] > 20 else ""),
             "- **Data**:"]
    for d in card["data"]:
        lines.append(f"  - {d['name']} ({d['modality']}): {d['n_trials']} trials, shape {d['shape']}, "
                     f"labelled={d['labelled']}")
    lines += ["- **Scores**:"] + [f"  - {k}: {v}" for k, v in card["scores"].items()]
    lines += ["", "Configuration and software versions: `model_card.json`. Load with "
              "`neurodecode.models.checkpoint.from_pretrained(<this directory>)`.", ""]
    return "\n".join(lines)


def pretrain(trials, head="mae", out_dir="checkpoint", *, model=None, trainer=None,
             group_column="subject", random_state=0):
    """Pretrain a head on (many subjects') trials and write a checkpoint directory.

    Parameters
    ----------
    trials : Trials, list of Trials or dict of Trials
        ``head="mae"``: epochs ``(n, n_tokens, n_times)`` with equal shapes (labels
        ignored: self-supervised). ``head="cross-subject"``: labelled trials; each
        subject may have its own number of features (NSD voxels), 3-D epochs are
        flattened per trial.
    head : {"mae", "cross-subject"}
    out_dir : path-like
        Checkpoint directory (replaced atomically).
    model : dict, optional
        Constructor options of `TokenMAE` / `CrossSubjectDecoder` (or, for
        cross-subject, of `CrossSubjectClassifier`).
    trainer : dict, optional
        `TrainerConfig` fields.
    group_column : str
        ``meta`` column of the MAE's validation split (whole groups held out).
    random_state : int

    Returns
    -------
    pathlib.Path
        ``out_dir``, holding ``config.json``, ``model.safetensors``,
        ``model_card.json`` and ``README.md``.
    """
    if head not in HEADS:
        raise ValueError(f"head={head!r}: expected one of {HEADS}")
    tl = as_trials_list(trials)
    model = dict(model or {})
    tcfg = TrainerConfig(**{"seed": random_state, **(trainer or {})})
    out_dir = Path(out_dir)
    torch.manual_seed(random_state)
    if head == "mae":
        from .mae import TokenMAE

        shapes = {np.shape(t.X)[1:] for t in tl}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise ValueError(f"MAE pretraining needs epochs of one shape (n_tokens, n_times); got {shapes}")
        X = np.concatenate([np.asarray(t.X, dtype=np.float32) for t in tl])
        groups = np.concatenate([t.meta[group_column].astype(str).to_numpy() if group_column in t.meta
                                 else np.full(t.n_trials, t.name or "0") for t in tl])
        mean = X.mean(axis=(0, 2)).astype(np.float32)
        std = (X.std(axis=(0, 2)) + 1e-8).astype(np.float32)
        Xn = ((X - mean[None, :, None]) / std[None, :, None]).astype(np.float32)
        net = TokenMAE(n_tokens=X.shape[1], n_times=X.shape[2], **model)
        res = Trainer(tcfg).fit(net, [{"x": Xn}], [groups])
        scores = {"best_val_loss": res.best_val_loss, "best_epoch": res.best_epoch,
                  "final_train_loss": res.history[-1]["train_loss"], "epochs": len(res.history)}
        objective = (f"masked patch reconstruction (MSE on masked patches), mask_ratio="
                     f"{net.mask_ratio}, mask_mode={net.mask_mode}; validation by {group_column}")
        extra = {"head": "mae", "mean": mean, "std": std}
        net_config = net.config
    else:
        from .adapter import CrossSubjectClassifier, _cross_extra

        est = CrossSubjectClassifier(**{"random_state": random_state, "few_shot_max_trials": 0,
                                        **{k: getattr(tcfg, k) for k in ("max_epochs", "lr", "batch_size",
                                                                         "patience", "val_fraction",
                                                                         "weight_decay", "device")},
                                        **model})
        X = [row for t in tl for row in (t.X if isinstance(t.X, list) else np.asarray(t.X))]
        y = np.concatenate([np.asarray(t.y) for t in tl])
        meta = pd.concat([t.meta for t in tl], ignore_index=True)
        est.fit(X, y, meta=meta)
        net = est.model_
        res = est.train_result_
        scores = {"best_val_loss": res.best_val_loss, "best_epoch": res.best_epoch,
                  "epochs": len(res.history)}
        # Held-out-trial accuracy per subject (validation trials are drawn by the trainer).
        objective = ("classification (cross-entropy) through per-subject adapters; validation "
                     "on held-out trials of each subject")
        extra = {"head": "cross-subject", **_cross_extra(est)}
        net_config = net.config
    card = _card(head, objective, tl, scores, net_config, tcfg.__dict__,
                 {"group_column": group_column})
    files = {"model_card.json": json.dumps(_jsonable(card), indent=2) + "\n",
             "README.md": _card_markdown(card)}
    save_checkpoint(net, out_dir, extra=extra, files=files)
    return out_dir


def _jsonable(obj):
    from .checkpoint import _jsonable as j

    return j(obj)


def finetune(checkpoint, new_subject_trials, n_trials=None, *, mode="finetune", epochs=None,
             lr=None, random_state=0, out_dir=None, **params):
    """Fit a model for new data from a pretrained checkpoint.

    Parameters
    ----------
    checkpoint : path-like
        Written by `pretrain`.
    new_subject_trials : Trials
        Labelled trials of the new subject(s).
    n_trials : int or None
        Labelled trials **per class** used (seeded draw); None: all.
    mode : {"finetune", "probe"}
        MAE only: full fine-tuning or linear probe on frozen features.
    epochs, lr : optional
        Fine-tuning epochs / learning rate (MAE: ``max_epochs``/``lr``;
        cross-subject: ``finetune_epochs``/``finetune_lr`` of reset-tuning).
    random_state : int
    out_dir : path-like, optional
        Also save the fine-tuned cross-subject model there.
    **params
        Other parameters of the estimator.

    Returns
    -------
    MAEClassifier or CrossSubjectClassifier
        Fitted; ``finetune_index_`` holds the positions of the trials used.
    """
    from .adapter import CrossSubjectClassifier, MAEClassifier

    cfg = load_config(checkpoint)
    t = new_subject_trials
    if t.y is None:
        raise ValueError("new_subject_trials has no labels (y is None); fine-tuning needs labels")
    idx = select_per_class(t.y, n_trials, random_state)
    X = [t.X[i] for i in idx] if isinstance(t.X, list) else np.asarray(t.X)[idx]
    y, meta = np.asarray(t.y)[idx], t.meta.iloc[idx].reset_index(drop=True)
    if cfg["model"] == "mae":
        kw = {"mode": mode, "random_state": random_state, **params}
        if epochs is not None:
            kw["max_epochs"] = epochs
        if lr is not None:
            kw["lr"] = lr
        est = MAEClassifier(checkpoint=str(checkpoint), **kw)
    elif cfg["model"] == "cross-subject":
        kw = {"random_state": random_state, **params}
        if epochs is not None:
            kw["finetune_epochs"] = epochs
        if lr is not None:
            kw["finetune_lr"] = lr
        est = CrossSubjectClassifier(checkpoint=str(checkpoint), **kw)
    else:
        raise ValueError(f"{checkpoint}: model {cfg['model']!r} cannot be fine-tuned here")
    est.fit(X, y, meta=meta)
    est.finetune_index_ = idx
    if out_dir is not None and isinstance(est, CrossSubjectClassifier):
        est.save(out_dir)
    return est
