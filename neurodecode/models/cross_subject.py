"""Cross-subject decoder (MindBridge-style) with reset-tuning for a new subject.

Each subject ``s`` has its own input size ``V_s`` (voxels, channels × times…).
Its **adapter** maps a trial to a shared space: adaptive average pooling of
the ``V_s`` inputs to ``shared_dim`` values, then a small per-subject linear
layer (+ LayerNorm). A **shared backbone** (MLP) maps the shared space to a
latent, and a **task head** reads the latent:

* ``task="classification"``: linear layer, cross-entropy;
* ``task="regression"``: linear layer, MSE on ``n_outputs`` targets;
* ``task="retrieval"``: projection into a target embedding space
  (``n_outputs`` dims) trained with a symmetric InfoNCE loss against the
  batch's target embeddings (``batch["target"]``); `CrossSubjectDecoder.retrieve`
  ranks candidate embeddings.

Optional **cycle reconstruction** (``cycle_weight > 0``): a per-subject
decoder maps the latent back to the subject's shared-space input; the loss
adds the reconstruction of the subject's own input and a cycle through a
randomly chosen other subject (latent → that subject's shared space → its
adapter layer → latent, which must match the original latent).

**Reset-tuning** (`reset_tune`): for a new subject, add (or re-initialise)
its adapter, train only that adapter on the few trials (backbone and head
frozen), then optionally fine-tune everything at ``lr * full_lr_factor``.

A ``generic`` adapter (pooling + one linear layer shared by all subjects,
trained alongside) gives predictions for subjects never seen (zero-shot);
it is only meaningful when the subjects' inputs are aligned (same channels).

Examples
--------
>>> import torch
>>> from neurodecode.models.cross_subject import CrossSubjectDecoder
>>> m = CrossSubjectDecoder({"a": 50, "b": 70}, shared_dim=16, hidden_dim=32, latent_dim=8,
...                         n_outputs=3)
>>> m(torch.randn(4, 70), "b").shape
torch.Size([4, 3])
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import register_model

__all__ = ["CrossSubjectDecoder", "subject_key", "reset_tune"]

GENERIC = "__generic__"


def subject_key(subject) -> str:
    """ModuleDict-safe key for a subject label (no dots)."""
    return "s_" + str(subject).replace(".", "_")


class _Adapter(nn.Module):
    def __init__(self, shared_dim):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool1d(shared_dim)
        self.linear = nn.Linear(shared_dim, shared_dim)
        self.norm = nn.LayerNorm(shared_dim)

    def pooled(self, x):
        return self.pool(x[:, None, :])[:, 0, :]

    def from_pooled(self, p):
        return self.norm(self.linear(p))

    def forward(self, x):
        return self.from_pooled(self.pooled(x))


@register_model("cross-subject")
class CrossSubjectDecoder(nn.Module):
    """Per-subject adapters → shared backbone → task head; see the module docstring.

    Parameters
    ----------
    subject_dims : dict
        Subject label → input size ``V_s`` of that subject (a flat vector per trial).
    shared_dim : int
        Size after adaptive pooling and in the shared space.
    hidden_dim, latent_dim : int
        Backbone width and latent size.
    n_layers : int
        Hidden layers of the backbone MLP.
    task : {"classification", "regression", "retrieval"}
    n_outputs : int
        Classes, regression targets, or target-embedding size.
    dropout : float
    cycle_weight : float
        Weight of the reconstruction + cycle loss (0: off).
    temperature : float
        InfoNCE temperature (retrieval).
    generic : bool
        Also train a subject-independent adapter (used for unseen subjects).
    """

    def __init__(self, subject_dims, shared_dim=128, hidden_dim=256, latent_dim=64, n_layers=2,
                 task="classification", n_outputs=2, dropout=0.1, cycle_weight=0.0,
                 temperature=0.1, generic=False):
        super().__init__()
        if task not in ("classification", "regression", "retrieval"):
            raise ValueError(f"task={task!r}: expected classification, regression or retrieval")
        if not subject_dims:
            raise ValueError("subject_dims is empty: at least one subject is needed")
        self.config = dict(subject_dims={str(k): int(v) for k, v in subject_dims.items()},
                           shared_dim=int(shared_dim), hidden_dim=int(hidden_dim),
                           latent_dim=int(latent_dim), n_layers=int(n_layers), task=task,
                           n_outputs=int(n_outputs), dropout=float(dropout),
                           cycle_weight=float(cycle_weight), temperature=float(temperature),
                           generic=bool(generic))
        self.task, self.temperature = task, float(temperature)
        self.cycle_weight = float(cycle_weight)
        self.adapters = nn.ModuleDict()
        self.decoders = nn.ModuleDict()
        for s in self.config["subject_dims"]:
            self._new_subject_modules(s)
        if generic:
            self.adapters[GENERIC] = _Adapter(int(shared_dim))
        layers, d = [], int(shared_dim)
        for _ in range(int(n_layers)):
            layers += [nn.Linear(d, hidden_dim), nn.LayerNorm(hidden_dim), nn.GELU(), nn.Dropout(dropout)]
            d = hidden_dim
        layers.append(nn.Linear(d, latent_dim))
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Linear(latent_dim, n_outputs)

    # ------------------------------------------------------------ subjects
    def _new_subject_modules(self, subject):
        sd = self.config["shared_dim"]
        self.adapters[subject_key(subject)] = _Adapter(sd)
        if self.config["cycle_weight"] > 0:
            self.decoders[subject_key(subject)] = nn.Linear(self.config["latent_dim"], sd)

    @property
    def subjects(self):
        return list(self.config["subject_dims"])

    def add_subject(self, subject, dim):
        """Add (or re-initialise) the adapter of ``subject`` with input size ``dim``."""
        subject = str(subject)
        device = next(self.parameters()).device
        self.config["subject_dims"][subject] = int(dim)
        self._new_subject_modules(subject)
        self.adapters[subject_key(subject)].to(device)
        if subject_key(subject) in self.decoders:
            self.decoders[subject_key(subject)].to(device)
        return self

    def _adapter(self, subject):
        key = subject_key(subject)
        if key in self.adapters:
            return self.adapters[key]
        if GENERIC in self.adapters:
            return self.adapters[GENERIC]
        raise KeyError(f"subject {subject!r} has no adapter (known: {self.subjects}); "
                       "reset-tune it first or build the model with generic=True")

    def subject_parameters(self, subject):
        """Parameters of ``subject``'s adapter (and decoder): what reset-tuning trains first."""
        params = list(self.adapters[subject_key(subject)].parameters())
        if subject_key(subject) in self.decoders:
            params += list(self.decoders[subject_key(subject)].parameters())
        return params

    # ------------------------------------------------------------ forward
    def latent(self, x, subject):
        """Backbone latent ``(n, latent_dim)`` of subject ``subject``'s trials ``x`` ``(n, V_s)``."""
        dim = self.config["subject_dims"].get(str(subject))
        if dim is not None and x.shape[-1] != dim:
            raise ValueError(f"subject {subject!r}: x has {x.shape[-1]} features, adapter expects {dim}")
        return self.backbone(self._adapter(subject)(x))

    def forward(self, x, subject):
        """Head output: logits, regression values or normalised embeddings."""
        out = self.head(self.latent(x, subject))
        return F.normalize(out, dim=-1) if self.task == "retrieval" else out

    def retrieve(self, x, subject, candidates):
        """Cosine similarity ``(n, n_candidates)`` of predicted to candidate embeddings."""
        return self(x, subject) @ F.normalize(candidates, dim=-1).T

    def _task_loss(self, z, batch):
        out = self.head(z)
        if self.task == "classification":
            return F.cross_entropy(out, batch["y"].long())
        if self.task == "regression":
            y = batch["y"].to(out.dtype)
            return F.mse_loss(out, y.reshape(out.shape))
        pred = F.normalize(out, dim=-1)
        tgt = F.normalize(batch["target"].to(pred.dtype), dim=-1)
        logits = pred @ tgt.T / self.temperature
        labels = torch.arange(len(pred), device=pred.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))

    def training_loss(self, batch):
        """Task loss through the subject's adapter (+ generic adapter, + cycle terms)."""
        x, subject = batch["x"], batch["subject"]
        adapter = self.adapters[subject_key(subject)]
        p = adapter.pooled(x)
        h = adapter.from_pooled(p)
        z = self.backbone(h)
        loss = self._task_loss(z, batch)
        if "latent_target" in batch:
            # stimulus-matched anchors from the pretraining subjects (reset-tuning)
            loss = loss + batch.get("align_weight", 1.0) * F.mse_loss(z, batch["latent_target"].to(z.dtype))
        if "shared_target" in batch:
            u = adapter.linear(p)  # pre-normalisation activation, as in the anchors
            loss = loss + batch.get("align_weight", 1.0) * F.mse_loss(u, batch["shared_target"].to(u.dtype))
        if GENERIC in self.adapters and batch.get("train_generic", True):
            loss = loss + self._task_loss(self.backbone(self.adapters[GENERIC](x)), batch)
        if self.cycle_weight > 0 and subject_key(subject) in self.decoders:
            rec = self.decoders[subject_key(subject)](z)
            cyc = F.mse_loss(rec, p)
            others = [s for s in self.subjects if s != str(subject)
                      and subject_key(s) in self.decoders]
            if others:
                # the other subject is chosen from the torch RNG: seeded by the trainer
                o = others[int(torch.randint(len(others), (1,)).item())]
                p_o = self.decoders[subject_key(o)](z)
                z_back = self.backbone(self.adapters[subject_key(o)].from_pooled(p_o))
                cyc = cyc + F.mse_loss(z_back, z.detach())
            loss = loss + self.cycle_weight * cyc
        return loss


def ridge_init_adapter(model, subject, x, target, alpha=1.0):
    """Initialise ``subject``'s adapter layer by ridge regression of ``target`` on its pooled ``x``.

    ``target`` holds, per trial, the pre-normalisation shared-space activation
    that the pretraining subjects had on average for the same stimulus; the
    closed-form solution puts the new subject straight into the shared space
    before gradient tuning.
    """
    adapter = model.adapters[subject_key(subject)]
    with torch.no_grad():
        x = torch.as_tensor(np.array(x), dtype=torch.float64)
        t = torch.as_tensor(np.array(target), dtype=torch.float64)
        p = adapter.pool(x[:, None, :].float())[:, 0, :].double()
        pm, tm = p.mean(0), t.mean(0)
        pc, tc = p - pm, t - tm
        gram = pc.T @ pc + alpha * len(p) * torch.eye(p.shape[1], dtype=torch.float64)
        W = torch.linalg.solve(gram, pc.T @ tc)  # (shared, shared)
        dev = adapter.linear.weight.device
        adapter.linear.weight.copy_(W.T.float().to(dev))
        adapter.linear.bias.copy_((tm - pm @ W).float().to(dev))


def reset_tune(model, parts, subject, dim, *, trainer_config=None, full_epochs=0,
               full_lr_factor=0.1, groups=None, ridge_alpha=1.0):
    """Adapt ``model`` to a new ``subject``: re-initialise and train its adapter, then optionally all.

    Parameters
    ----------
    model : CrossSubjectDecoder
    parts : dict or list of dict
        Trainer data of the new subject (``x``, ``y``/``target``, ``subject``).
    subject : str
    dim : int
        The subject's input size.
    trainer_config : TrainerConfig or dict, optional
        Used for the adapter stage (validation split by trial: one subject).
        ``max_epochs=0``: no gradient stage (with ``shared_target`` anchors the
        ridge initialisation is then the whole reset).
    full_epochs : int
        Epochs of the second stage (all parameters, ``lr * full_lr_factor``); 0 skips it.
    full_lr_factor : float

    Returns
    -------
    list of TrainResult
        One per stage.
    ridge_alpha : float
        Ridge penalty (times the number of trials) of the closed-form
        initialisation, used when the part has ``shared_target`` anchors.
    """
    from .trainer import Trainer, TrainerConfig, TrainResult

    cfg = trainer_config or TrainerConfig()
    cfg = TrainerConfig(**cfg) if isinstance(cfg, dict) else cfg
    model.add_subject(subject, dim)
    first = parts[0] if isinstance(parts, list) else parts
    if "shared_target" in first:
        ridge_init_adapter(model, subject, first["x"], first["shared_target"], alpha=ridge_alpha)
    frozen = {n: p.requires_grad for n, p in model.named_parameters()}
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        params = model.subject_parameters(subject)
        for p in params:
            p.requires_grad_(True)
        parts = [dict(part, train_generic=False) for part in
                 (parts if isinstance(parts, list) else [parts])]
        if cfg.max_epochs > 0:
            results = [Trainer(cfg, val_by="trial").fit(model, parts, groups, parameters=params)]
        else:  # closed-form (ridge) reset only: no optimiser to build
            results = [TrainResult(device=str(next(model.parameters()).device))]
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(frozen.get(n, True))
    if full_epochs > 0:
        results.append(Trainer(cfg, val_by="trial", max_epochs=int(full_epochs),
                               lr=cfg.lr * full_lr_factor).fit(model, parts, groups))
    return results


def _dims(arrays):
    return {s: int(np.asarray(a).shape[1]) for s, a in arrays.items()}
