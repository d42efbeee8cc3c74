"""scikit-learn adapters around the torch heads, so the harness scores them like any estimator.

* `MAEClassifier` — token MAE: self-supervised pretraining on the training
  fold (or loading a pretrained checkpoint), then a **linear probe**
  (frozen encoder features → logistic regression, ``mode="probe"``) or **full
  fine-tuning** (encoder + linear head, ``mode="finetune"``).
* `CrossSubjectClassifier` — MindBridge-style decoder: trains the shared model
  on the subjects with many trials, then **reset-tunes** each subject with
  few trials (``<= few_shot_max_trials``), or starts from a checkpoint and
  reset-tunes every subject it has not seen.

Both take ``meta`` (a DataFrame aligned with ``X``) in ``fit``/``predict``
through scikit-learn metadata routing (requested by default); without it all
rows are one subject. Parameters are stored unchanged in ``__init__``, so
`sklearn.base.clone` and ``get_params``/``set_params`` work.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from .trainer import Trainer, TrainerConfig, select_device

__all__ = ["MAEClassifier", "CrossSubjectClassifier"]


def _subjects(meta, n, column="subject"):
    if meta is None or column not in getattr(meta, "columns", ()):
        return np.full(n, "all", dtype=object)
    if len(meta) != n:
        raise ValueError(f"meta has {len(meta)} rows but X has {n} trials")
    return meta[column].astype(str).to_numpy()


def _seed_all(seed):
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


class _MetaRequest:
    # The harness passes meta only to methods that request it.
    __metadata_request__fit = {"meta": True}
    __metadata_request__predict = {"meta": True}
    __metadata_request__predict_proba = {"meta": True}
    __metadata_request__decision_function = {"meta": True}
    __metadata_request__score = {"meta": True}


# ====================================================================== MAE
class MAEClassifier(_MetaRequest, ClassifierMixin, BaseEstimator):
    """Token-MAE head as a classifier (linear probe or full fine-tuning).

    Parameters
    ----------
    mode : {"probe", "finetune"}
        Frozen-encoder logistic regression, or encoder + linear head trained end to end.
    checkpoint : str or None
        Directory of a pretrained MAE (`neurodecode.models.foundation.pretrain`);
        None: pretrain on the training data of each ``fit`` (unlabeled use of X).
    patch_size, embed_dim, depth, n_heads, decoder_dim, mask_ratio, mask_mode, token_graph
        `TokenMAE` options (ignored with ``checkpoint``).
    pretrain_epochs : int
        MAE epochs when pretraining inside ``fit``.
    max_epochs, lr, batch_size, patience, val_fraction, weight_decay
        Fine-tuning options (`TrainerConfig`); pretraining uses ``lr`` too.
    C : float
        Inverse regularisation of the probe's logistic regression.
    val_column : str
        ``meta`` column whose groups form the validation split (early stopping).
    device : str
        ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``.
    random_state : int

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode.models.adapter import MAEClassifier
    >>> X = np.random.default_rng(0).standard_normal((40, 4, 32)); y = np.repeat([0, 1], 20)
    >>> clf = MAEClassifier(patch_size=8, embed_dim=16, depth=1, n_heads=2, pretrain_epochs=1)
    >>> clf.fit(X, y).predict(X).shape
    (40,)
    """

    def __init__(self, mode="probe", checkpoint=None, patch_size=16, embed_dim=64, depth=2,
                 n_heads=4, decoder_dim=32, mask_ratio=0.5, mask_mode="random", token_graph=None,
                 pretrain_epochs=20, max_epochs=30, lr=1e-3, batch_size=32, patience=8,
                 val_fraction=0.2, weight_decay=1e-4, C=1.0, val_column="subject", device="auto",
                 random_state=0):
        self.mode = mode
        self.checkpoint = checkpoint
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.n_heads = n_heads
        self.decoder_dim = decoder_dim
        self.mask_ratio = mask_ratio
        self.mask_mode = mask_mode
        self.token_graph = token_graph
        self.pretrain_epochs = pretrain_epochs
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.patience = patience
        self.val_fraction = val_fraction
        self.weight_decay = weight_decay
        self.C = C
        self.val_column = val_column
        self.device = device
        self.random_state = random_state

    def _trainer(self, **kw):
        base = dict(max_epochs=self.max_epochs, batch_size=self.batch_size, lr=self.lr,
                    weight_decay=self.weight_decay, patience=self.patience,
                    val_fraction=self.val_fraction, seed=self.random_state, device=self.device)
        return Trainer(TrainerConfig(**{**base, **kw}))

    def _check_X(self, X):
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 3:
            raise ValueError(f"X has shape {X.shape}; MAEClassifier expects (n_trials, n_tokens, n_times)")
        return X

    def _normalise(self, X):
        return ((X - self.mean_[None, :, None]) / self.std_[None, :, None]).astype(np.float32)

    def fit(self, X, y, meta=None):
        """Pretrain (or load) the MAE, then fit the probe or fine-tune; returns self."""
        from .checkpoint import from_pretrained
        from .mae import MAEClassifierModule, TokenMAE

        if self.mode not in ("probe", "finetune"):
            raise ValueError(f"mode={self.mode!r}: expected 'probe' or 'finetune'")
        X = self._check_X(X)
        self.label_encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.label_encoder_.classes_
        yi = self.label_encoder_.transform(y)
        groups = _subjects(meta, len(X), self.val_column)
        _seed_all(self.random_state)
        if self.checkpoint is not None:
            mae = from_pretrained(self.checkpoint)
            extra = mae.checkpoint_extra
            self.mean_ = np.asarray(extra["mean"], dtype=np.float32)
            self.std_ = np.asarray(extra["std"], dtype=np.float32)
        else:
            # Per-token statistics of the training fold only.
            self.mean_ = X.mean(axis=(0, 2)).astype(np.float32)
            self.std_ = (X.std(axis=(0, 2)) + 1e-8).astype(np.float32)
            mae = TokenMAE(n_tokens=X.shape[1], n_times=X.shape[2], patch_size=self.patch_size,
                           embed_dim=self.embed_dim, depth=self.depth, n_heads=self.n_heads,
                           decoder_dim=self.decoder_dim, mask_ratio=self.mask_ratio,
                           mask_mode=self.mask_mode, token_graph=self.token_graph)
            self.pretrain_result_ = self._trainer(max_epochs=self.pretrain_epochs).fit(
                mae, [{"x": self._normalise(X)}], [groups])
        Xn = self._normalise(X)
        if self.mode == "probe":
            self.model_ = mae
            feats = self._features(Xn)
            self.probe_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000))
            self.probe_.fit(feats, yi)
        else:
            clf = MAEClassifierModule(mae.config, len(self.classes_))
            clf.mae.load_state_dict(mae.state_dict())
            self.finetune_result_ = self._trainer().fit(clf, [{"x": Xn, "y": yi}], [groups])
            self.model_ = clf
        self.model_.to("cpu").eval()
        return self

    @torch.no_grad()
    def _features(self, Xn):
        mae = self.model_ if self.mode == "probe" else self.model_.mae
        mae.eval()
        return np.concatenate([mae.encode(torch.from_numpy(Xn[i:i + 256])).numpy()
                               for i in range(0, len(Xn), 256)])

    @torch.no_grad()
    def predict_proba(self, X, meta=None):
        """Class probabilities ``(n, n_classes)``."""
        check_is_fitted(self, "model_")
        Xn = self._normalise(self._check_X(X))
        if self.mode == "probe":
            return self.probe_.predict_proba(self._features(Xn))
        self.model_.eval()
        logits = torch.cat([self.model_(torch.from_numpy(Xn[i:i + 256]))
                            for i in range(0, len(Xn), 256)])
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, X, meta=None):
        """Most probable class label per trial."""
        return self.classes_[self.predict_proba(X, meta).argmax(axis=1)]

    def transform(self, X, meta=None):
        """Encoder features ``(n, embed_dim)`` (mean-pooled latents)."""
        check_is_fitted(self, "model_")
        return self._features(self._normalise(self._check_X(X)))


# ====================================================================== cross-subject
def _as_rows(X):
    """A list of 1-D float32 vectors (one per trial): accepts 2-D, 3-D (flattened) or ragged lists."""
    if isinstance(X, (list, tuple)) or (isinstance(X, np.ndarray) and X.dtype == object):
        return [np.asarray(x, dtype=np.float32).ravel() for x in X]
    X = np.asarray(X, dtype=np.float32)
    if X.ndim < 2:
        raise ValueError(f"X has shape {X.shape}; expected (n_trials, n_features, ...)")
    return list(X.reshape(len(X), -1))


def _stack(rows, subject):
    dims = {len(r) for r in rows}
    if len(dims) != 1:
        raise ValueError(f"subject {subject!r}: trials differ in size {sorted(dims)}")
    return np.stack(rows)


class CrossSubjectClassifier(_MetaRequest, ClassifierMixin, BaseEstimator):
    """Cross-subject decoder with reset-tuning, as a classifier.

    ``fit`` groups trials by ``meta["subject"]``. Subjects with more than
    ``few_shot_max_trials`` trials train the shared model (adapters +
    backbone + head, early stopping on held-out trials); each other subject
    is then reset-tuned (its adapter alone, then ``full_epochs`` of all
    parameters at ``lr * full_lr_factor``). With ``checkpoint`` the shared model
    is loaded instead and every subject it lacks is reset-tuned. When ``meta``
    has ``align_column`` (e.g. NSD ``stimulus``) and the shared model saw those
    stimuli, reset-tuning also pulls the new subject's latents towards the
    pretraining subjects' mean latent of the same stimulus.

    Inputs are standardised per subject with that subject's training trials;
    a subject seen only at predict time is standardised with its own test
    trials (label-free) and goes through the generic adapter.

    Parameters
    ----------
    shared_dim, hidden_dim, latent_dim, n_layers, dropout, cycle_weight, generic
        `CrossSubjectDecoder` options.
    checkpoint : str or None
    few_shot_max_trials : int
    max_epochs, lr, batch_size, patience, val_fraction, weight_decay
        Shared-model training.
    finetune_epochs : int or "auto"
        Gradient epochs of reset-tuning a new subject's adapter (no validation
        split: few trials). ``"auto"``: 0 when the subject's trials have
        stimulus anchors (the closed-form ridge alignment is the whole reset:
        on ≤ 40 trials, gradient epochs after it overfit — on `simulate_nsd`
        they lowered the gain over a per-subject model from about +2 to +0.5
        points, see tests/test_models_heads.py), else 100.
    finetune_lr : float
        Learning rate of those epochs.
    full_epochs, full_lr_factor : int, float
        Second reset-tuning stage over all parameters (0: off).
    align_column : str or None
    align_weight : float
        Weight of the anchor losses (latent and shared-space MSE) in reset-tuning.
    ridge_alpha : float
        Penalty of the closed-form (ridge) initialisation of a new adapter from the anchors.
    device, random_state

    Examples
    --------
    >>> from neurodecode.simulation import simulate_nsd
    >>> from neurodecode.models.adapter import CrossSubjectClassifier
    >>> d = simulate_nsd(n_subjects=2, n_stimuli=40, n_trials_per_subject=60, n_voxels=(30, 40),
    ...                  random_state=0)
    >>> t = d["subj01"]
    >>> CrossSubjectClassifier(max_epochs=2).fit(t.X, t.y, meta=t.meta).predict(t.X, meta=t.meta).shape
    (60,)
    """

    def __init__(self, shared_dim=64, hidden_dim=128, latent_dim=32, n_layers=2, dropout=0.1,
                 cycle_weight=0.0, generic=False, checkpoint=None, few_shot_max_trials=100,
                 max_epochs=60, lr=1e-3, batch_size=32, patience=10, val_fraction=0.2,
                 weight_decay=1e-4, finetune_epochs="auto", finetune_lr=3e-3, full_epochs=0,
                 full_lr_factor=0.1, align_column="stimulus", align_weight=1.0, ridge_alpha=1.0,
                 device="auto", random_state=0):
        self.shared_dim = shared_dim
        self.hidden_dim = hidden_dim
        self.latent_dim = latent_dim
        self.n_layers = n_layers
        self.dropout = dropout
        self.cycle_weight = cycle_weight
        self.generic = generic
        self.checkpoint = checkpoint
        self.few_shot_max_trials = few_shot_max_trials
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.patience = patience
        self.val_fraction = val_fraction
        self.weight_decay = weight_decay
        self.finetune_epochs = finetune_epochs
        self.finetune_lr = finetune_lr
        self.full_epochs = full_epochs
        self.full_lr_factor = full_lr_factor
        self.align_column = align_column
        self.align_weight = align_weight
        self.ridge_alpha = ridge_alpha
        self.device = device
        self.random_state = random_state

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _by_subject(rows, subjects):
        out = {}
        for s in dict.fromkeys(subjects):
            idx = np.flatnonzero(subjects == s)
            out[s] = (idx, _stack([rows[i] for i in idx], s))
        return out

    def _trainer_config(self, **kw):
        base = dict(max_epochs=self.max_epochs, batch_size=self.batch_size, lr=self.lr,
                    weight_decay=self.weight_decay, patience=self.patience,
                    val_fraction=self.val_fraction, val_by="trial", seed=self.random_state,
                    device=self.device)
        return TrainerConfig(**{**base, **kw})

    def _scale(self, s, x):
        mu, sd = self.scalers_[s]
        return ((x - mu) / sd).astype(np.float32)

    def _anchors(self, model, data, meta):
        """Per ``align_column`` value, the mean latent and pre-norm shared activation of the shared-model subjects.

        Columns ``z0…`` (latent) then ``u0…`` (adapter layer output before LayerNorm).
        """
        if self.align_column is None or meta is None or self.align_column not in meta.columns:
            return None
        model.eval()
        frames = []
        with torch.no_grad():
            for s, (idx, x) in data.items():
                xs = torch.from_numpy(self._scale(s, x))
                ad = model._adapter(s)
                u = ad.linear(ad.pooled(xs))
                z = model.backbone(ad.norm(u))
                vals = torch.cat([z, u], dim=1).numpy()
                frames.append(pd.DataFrame(vals, index=meta[self.align_column].to_numpy()[idx]))
        return pd.concat(frames).groupby(level=0).mean()

    # ------------------------------------------------------------ API
    def fit(self, X, y, meta=None):
        """Train the shared model (or load it) and reset-tune few-trial subjects; returns self."""
        from .checkpoint import from_pretrained
        from .cross_subject import CrossSubjectDecoder, reset_tune

        rows = _as_rows(X)
        subjects = _subjects(meta, len(rows))
        _seed_all(self.random_state)
        data = self._by_subject(rows, subjects)
        device = select_device(self.device)
        if self.checkpoint is not None:
            model = from_pretrained(self.checkpoint, map_location=device)
            extra = model.checkpoint_extra
            self.classes_ = np.asarray(extra["classes"])
            self.label_encoder_ = LabelEncoder().fit(self.classes_)
            self.scalers_ = {s: (np.asarray(v[0], np.float32), np.asarray(v[1], np.float32))
                             for s, v in extra.get("scalers", {}).items()}
            anchors = (pd.DataFrame(extra["anchors"]["values"], index=extra["anchors"]["index"])
                       if extra.get("anchors") else None)
            rich, few = [], [s for s in data if s not in model.subjects]
        else:
            self.label_encoder_ = LabelEncoder().fit(y)
            self.classes_ = self.label_encoder_.classes_
            self.scalers_ = {}
            counts = {s: len(idx) for s, (idx, _) in data.items()}
            rich = [s for s in data if counts[s] > self.few_shot_max_trials]
            if not rich:  # nobody has many trials: train everyone jointly (per-subject baseline)
                rich = list(data)
            few = [s for s in data if s not in rich]
            model = None
        yi = self.label_encoder_.transform(np.asarray(y))
        for s, (idx, x) in data.items():
            if s not in self.scalers_ or s in few:
                self.scalers_[s] = (x.mean(0), x.std(0) + 1e-6)
        if model is None:
            model = CrossSubjectDecoder({s: data[s][1].shape[1] for s in rich},
                                        shared_dim=self.shared_dim, hidden_dim=self.hidden_dim,
                                        latent_dim=self.latent_dim, n_layers=self.n_layers,
                                        task="classification", n_outputs=len(self.classes_),
                                        dropout=self.dropout, cycle_weight=self.cycle_weight,
                                        generic=self.generic)
            parts = [{"x": self._scale(s, data[s][1]), "y": yi[data[s][0]], "subject": s} for s in rich]
            self.train_result_ = Trainer(self._trainer_config()).fit(
                model, parts, [np.full(len(p["y"]), s) for s, p in zip(rich, parts)])
            anchors = self._anchors(model, {s: data[s] for s in rich}, meta)
        self.reset_results_ = {}
        for s in few:
            idx, x = data[s]
            part = {"x": self._scale(s, x), "y": yi[idx], "subject": s}
            if anchors is not None and meta is not None and self.align_column in meta.columns:
                keys = meta[self.align_column].to_numpy()[idx]
                known = np.isin(keys, anchors.index)
                if known.all():
                    vals = anchors.loc[keys].to_numpy(dtype=np.float32)
                    d = model.config["latent_dim"]
                    part["latent_target"], part["shared_target"] = vals[:, :d], vals[:, d:]
                    part["align_weight"] = float(self.align_weight)
            epochs = self.finetune_epochs
            if epochs == "auto":
                epochs = 0 if "shared_target" in part else 100
            cfg = self._trainer_config(max_epochs=int(epochs), lr=self.finetune_lr, val_fraction=0.0)
            self.reset_results_[s] = reset_tune(model, part, s, x.shape[1], trainer_config=cfg,
                                                full_epochs=self.full_epochs,
                                                full_lr_factor=self.full_lr_factor,
                                                ridge_alpha=self.ridge_alpha)
        self.anchors_ = anchors
        self.model_ = model.to("cpu").eval()
        return self

    def decision_function(self, X, meta=None):
        """Scores as in scikit-learn: ``(n,)`` logit difference for two classes, else ``(n, n_classes)`` logits."""
        logits = self._logits(X, meta)
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    @torch.no_grad()
    def _logits(self, X, meta=None):
        """Logits ``(n, n_classes)`` (each trial through its subject's adapter)."""
        check_is_fitted(self, "model_")
        rows = _as_rows(X)
        subjects = _subjects(meta, len(rows))
        out = np.zeros((len(rows), len(self.classes_)), dtype=np.float32)
        for s, (idx, x) in self._by_subject(rows, subjects).items():
            if s in self.scalers_:
                xs = self._scale(s, x)
            else:  # unseen subject: its own (label-free) statistics
                xs = ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32)
            out[idx] = self.model_(torch.from_numpy(xs), s).numpy()
        return out

    def predict_proba(self, X, meta=None):
        """Class probabilities ``(n, n_classes)`` (softmax of the logits)."""
        return torch.softmax(torch.from_numpy(self._logits(X, meta)), dim=1).numpy()

    def predict(self, X, meta=None):
        """Most probable class label per trial."""
        return self.classes_[self._logits(X, meta).argmax(axis=1)]

    def save(self, directory, **card):
        """Write the fitted model as a checkpoint (scalers, classes, anchors in its config)."""
        from .checkpoint import save_checkpoint

        check_is_fitted(self, "model_")
        return save_checkpoint(self.model_, directory, extra=_cross_extra(self))


def _cross_extra(est):
    extra = {"classes": est.classes_.tolist(),
             "scalers": {s: [m.tolist(), v.tolist()] for s, (m, v) in est.scalers_.items()}}
    if est.anchors_ is not None:
        extra["anchors"] = {"index": [int(i) if isinstance(i, (np.integer, int)) else str(i)
                                      for i in est.anchors_.index],
                            "values": est.anchors_.to_numpy().tolist()}
    return extra
