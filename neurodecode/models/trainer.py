"""One trainer for every torch head.

A head is a ``torch.nn.Module`` with a method ``training_loss(batch) ->
scalar tensor``; ``batch`` is a dict of tensors (already on the device) plus
any non-tensor values of its data *part* (e.g. the subject name). Data come
as a list of parts, each a dict of equal-length arrays; a batch never mixes
parts, so parts may differ in shape (one part per subject with its own voxel
count for the cross-subject decoder).

What the trainer does:

* **device**: ``"auto"`` picks CUDA when available, else the CPU.
* **mixed precision** on CUDA only: ``torch.autocast`` in bfloat16 where the
  GPU supports it (no scaler needed), else float16 with a ``GradScaler``.
  On the CPU everything runs in float32.
* **seeded and deterministic on the CPU**: ``torch.manual_seed(seed)``, a
  numpy generator for batch order, and ``torch.use_deterministic_algorithms``
  (restored afterwards), so a fixed seed gives identical losses.
* **early stopping** on a validation split **by subject** (``val_by="subject"``;
  whole groups held out) or by trial (``val_by="trial"``; used when a model
  cannot score an unseen subject, e.g. per-subject adapters); the best
  weights are restored at the end.
* **atomic checkpoints** each epoch (``checkpoint_dir``): safetensors weights,
  optimizer tensors and a JSON trainer state; ``resume=True`` continues from
  them.
* a **tqdm progress bar** with the losses (``progress=True``).
* ``compile=True`` wraps the loss module in ``torch.compile`` (off by
  default: on small CPU models compilation costs more than it saves).
* **DDP**: when launched by ``torchrun`` with ``WORLD_SIZE > 1`` and CUDA is
  available, the process group is initialised (NCCL), the loss module is
  wrapped in ``DistributedDataParallel``, each rank takes every
  ``world_size``-th batch, and only rank 0 writes checkpoints and shows the
  bar. Launch: ``torchrun --nproc_per_node=4 -m neurodecode.cli pretrain ...``.
  Without those environment variables this code path is never entered.

Examples
--------
>>> import numpy as np, torch
>>> from neurodecode.models.trainer import Trainer, TrainerConfig
>>> class Lin(torch.nn.Module):
...     def __init__(self):
...         super().__init__(); self.w = torch.nn.Linear(3, 1)
...     def training_loss(self, batch):
...         return ((self.w(batch["x"]).squeeze(-1) - batch["y"]) ** 2).mean()
>>> X = np.random.default_rng(0).standard_normal((64, 3)).astype("float32")
>>> parts = [{"x": X, "y": X @ np.array([1., -2., .5], dtype="float32")}]
>>> result = Trainer(TrainerConfig(max_epochs=30, lr=0.05, val_fraction=0.0)).fit(Lin(), parts)
>>> result.history[-1]["train_loss"] < result.history[0]["train_loss"]
True
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = ["TrainerConfig", "Trainer", "TrainResult", "select_device", "split_validation",
           "autocast_dtype"]


def select_device(device="auto") -> torch.device:
    """``"auto"`` → CUDA (the local rank's GPU under torchrun) if available, else CPU."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    return torch.device(device)


def autocast_dtype(device: torch.device):
    """bfloat16 where the GPU supports it, else float16; None on the CPU (no autocast)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def split_validation(groups, val_fraction, seed=0, by="subject"):
    """Boolean validation mask over rows.

    Parameters
    ----------
    groups : array-like of shape (n_rows,)
        Subject (or any group) of each row.
    val_fraction : float
        Fraction of subjects (``by="subject"``) or of rows per subject
        (``by="trial"``) held out. 0 → no validation.
    seed : int
    by : {"subject", "trial"}
        With ``"subject"`` whole subjects are held out (at least one subject
        stays for training; with a single subject it falls back to trials).

    Returns
    -------
    ndarray of bool
    """
    groups = np.asarray(groups)
    n = len(groups)
    mask = np.zeros(n, dtype=bool)
    if val_fraction <= 0 or n < 2:
        return mask
    rng = np.random.default_rng(seed)
    uniq = np.array(sorted(set(groups.tolist()), key=str), dtype=object)
    if by == "subject" and len(uniq) >= 2:
        k = min(len(uniq) - 1, max(1, int(round(val_fraction * len(uniq)))))
        held = set(rng.permutation(uniq)[:k].tolist())
        return np.array([g in held for g in groups.tolist()])
    if by not in ("subject", "trial"):
        raise ValueError(f"val_by={by!r}: expected 'subject' or 'trial'")
    for g in uniq:
        idx = np.flatnonzero(groups == g)
        k = int(round(val_fraction * len(idx)))
        if 0 < k < len(idx):
            mask[rng.permutation(idx)[:k]] = True
    return mask


@dataclass
class TrainerConfig:
    """Options of `Trainer` (all JSON-able; stored in checkpoints)."""

    max_epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    val_by: str = "subject"
    patience: int = 8
    min_delta: float = 0.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    grad_clip: float | None = 1.0
    progress: bool = False
    deterministic: bool = True
    checkpoint_dir: str | None = None
    resume: bool = False


@dataclass
class TrainResult:
    """What `Trainer.fit` returns."""

    history: list = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    stopped_early: bool = False
    device: str = "cpu"


class _LossModule(torch.nn.Module):
    """Wraps ``model.training_loss`` as ``forward`` so DDP/compile see one callable."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.training_loss(batch)


@contextlib.contextmanager
def _deterministic(enabled):
    before = torch.are_deterministic_algorithms_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=True)


def _ddp_world():
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and torch.cuda.is_available() and "RANK" in os.environ:
        return world, int(os.environ["RANK"])
    return 1, 0


class Trainer:
    """Train a head (a module with ``training_loss(batch)``); see the module docstring.

    Parameters
    ----------
    config : TrainerConfig, dict or None
    **overrides
        Fields of `TrainerConfig` overriding ``config``.
    """

    def __init__(self, config=None, **overrides):
        if config is None:
            config = TrainerConfig()
        elif isinstance(config, dict):
            config = TrainerConfig(**config)
        self.config = TrainerConfig(**{**asdict(config), **overrides})

    # ------------------------------------------------------------ batching
    @staticmethod
    def _check_parts(parts):
        if isinstance(parts, dict):
            parts = [parts]
        out = []
        for p, part in enumerate(parts):
            lengths = {k: len(v) for k, v in part.items() if isinstance(v, (np.ndarray, torch.Tensor))}
            if not lengths:
                raise ValueError(f"data part {p} has no arrays")
            if len(set(lengths.values())) != 1:
                raise ValueError(f"data part {p}: arrays differ in length {lengths}")
            out.append(part)
        return out

    def _batches(self, parts, rows, rng, shuffle):
        bs = self.config.batch_size
        batches = []
        for p, idx in enumerate(rows):
            if len(idx) == 0:
                continue
            idx = rng.permutation(idx) if shuffle else idx
            batches += [(p, idx[i:i + bs]) for i in range(0, len(idx), bs)]
        if shuffle:
            order = rng.permutation(len(batches))
            batches = [batches[i] for i in order]
        return batches

    @staticmethod
    def _to_batch(part, idx, device):
        batch = {}
        for k, v in part.items():
            if isinstance(v, np.ndarray):
                t = torch.from_numpy(np.ascontiguousarray(v[idx]))
                batch[k] = (t.float() if t.is_floating_point() else t).to(device)
            elif isinstance(v, torch.Tensor):
                t = v[torch.as_tensor(idx)]
                batch[k] = (t.float() if t.is_floating_point() else t).to(device)
            else:
                batch[k] = v
        return batch

    # ------------------------------------------------------------ fit
    def fit(self, model, parts, groups=None, parameters=None):
        """Train ``model`` in place; return a `TrainResult`.

        Parameters
        ----------
        model : torch.nn.Module
            Has ``training_loss(batch)``.
        parts : dict or list of dict
            Each a dict of arrays with the same first dimension (plus scalar
            values passed through to every batch of that part).
        groups : list of array-like, optional
            Subject of each row, one array per part (used for the validation
            split). None: each part is one group.
        parameters : iterable of torch.nn.Parameter, optional
            What to optimise (default: every parameter with ``requires_grad``).
            Pass a list of dicts for per-group learning rates.
        """
        cfg = self.config
        parts = self._check_parts(parts)
        device = select_device(cfg.device)
        world, rank = _ddp_world()
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)

        # Validation rows: chosen over all parts together so "by subject" holds
        # out whole subjects even when a subject spans several parts.
        lengths = [len(next(v for v in p.values() if isinstance(v, (np.ndarray, torch.Tensor))))
                   for p in parts]
        if groups is None:
            groups = [np.full(n, i) for i, n in enumerate(lengths)]
        all_groups = np.concatenate([np.asarray(g, dtype=object).astype(str) for g in groups])
        val_mask = split_validation(all_groups, cfg.val_fraction, cfg.seed, cfg.val_by)
        offsets = np.cumsum([0] + lengths)
        train_rows = [np.flatnonzero(~val_mask[offsets[i]:offsets[i + 1]]) for i in range(len(parts))]
        val_rows = [np.flatnonzero(val_mask[offsets[i]:offsets[i + 1]]) for i in range(len(parts))]
        has_val = val_mask.any()

        model.to(device)
        loss_module = _LossModule(model)
        ddp = None
        if world > 1:  # pragma: no cover - needs several GPUs
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("nccl")
            torch.cuda.set_device(device)
            ddp = torch.nn.parallel.DistributedDataParallel(loss_module, device_ids=[device.index])
            loss_module = ddp
        step_module = torch.compile(loss_module) if cfg.compile else loss_module

        params = parameters if parameters is not None else [p for p in model.parameters()
                                                            if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        amp_dtype = autocast_dtype(device) if cfg.amp else None
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

        result = TrainResult(device=str(device))
        best_state, bad_epochs, start_epoch = None, 0, 0
        ckpt = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
        if ckpt is not None and cfg.resume and (ckpt / "trainer_state.json").is_file():
            start_epoch, best_state, bad_epochs = self._resume(model, optimizer, ckpt, result, rng)

        show = cfg.progress and rank == 0
        from tqdm import tqdm

        bar = tqdm(range(start_epoch, cfg.max_epochs), disable=not show, desc="train", leave=False)
        with _deterministic(cfg.deterministic and device.type == "cpu"):
            for epoch in bar:
                model.train()
                total, count = 0.0, 0
                batches = self._batches(parts, train_rows, rng, shuffle=True)
                if world > 1:  # pragma: no cover
                    batches = batches[rank::world]
                for p, idx in batches:
                    batch = self._to_batch(parts[p], idx, device)
                    optimizer.zero_grad(set_to_none=True)
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                        loss = step_module(batch)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"training loss is {loss.item()} at epoch {epoch}; "
                                                 "lower lr or check the input scaling")
                    scaler.scale(loss).backward()
                    if cfg.grad_clip:
                        scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_(
                            [q for g in optimizer.param_groups for q in g["params"]], cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    total += loss.item() * len(idx)
                    count += len(idx)
                record = {"epoch": epoch, "train_loss": total / max(count, 1)}
                if has_val:
                    record["val_loss"] = self.evaluate_loss(model, parts, val_rows, device, amp_dtype)
                result.history.append(record)
                monitor = record.get("val_loss", record["train_loss"])
                if monitor < result.best_val_loss - cfg.min_delta:
                    result.best_val_loss, result.best_epoch, bad_epochs = monitor, epoch, 0
                    best_state = copy.deepcopy({k: v.detach().clone() for k, v in model.state_dict().items()})
                else:
                    bad_epochs += 1
                bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k != "epoch"})
                if ckpt is not None and rank == 0:
                    self._save(model, optimizer, ckpt, result, epoch, bad_epochs, best_state, rng)
                if has_val and bad_epochs >= cfg.patience:
                    result.stopped_early = True
                    break
        bar.close()
        if best_state is not None and has_val:
            model.load_state_dict(best_state)
        model.eval()
        return result

    @torch.no_grad()
    def evaluate_loss(self, model, parts, rows, device, amp_dtype=None):
        """Mean ``training_loss`` over ``rows`` (eval mode, no gradients)."""
        model.eval()
        total, count = 0.0, 0
        gen_state = torch.get_rng_state()
        # Fixed masks for validation so the monitored loss is comparable across epochs.
        torch.manual_seed(self.config.seed + 1)
        for p, idx in self._batches(parts, rows, None, shuffle=False):
            batch = self._to_batch(parts[p], idx, device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                total += model.training_loss(batch).item() * len(idx)
            count += len(idx)
        torch.set_rng_state(gen_state)
        return total / max(count, 1)

    # ------------------------------------------------------------ checkpoints
    def _save(self, model, optimizer, ckpt, result, epoch, bad_epochs, best_state, rng):
        from .checkpoint import save_checkpoint

        state = {"epoch": epoch, "bad_epochs": bad_epochs, "history": result.history,
                 "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
                 "trainer_config": asdict(self.config),
                 "numpy_rng": json.loads(json.dumps(rng.bit_generator.state)),
                 "torch_rng": torch.get_rng_state().tolist()}
        save_checkpoint(model, ckpt, optimizer=optimizer, trainer_state=state,
                        extra=getattr(model, "checkpoint_extra", None))
        if best_state is not None:
            from safetensors.torch import save_file

            # Best weights next to the last ones, so a resumed run can still restore them.
            tmp = ckpt / ".best.safetensors.tmp"
            save_file({k: v.cpu().contiguous() for k, v in best_state.items()}, str(tmp))
            os.replace(tmp, ckpt / "best.safetensors")

    def _resume(self, model, optimizer, ckpt, result, rng):
        from safetensors.torch import load_file

        from .checkpoint import load_optimizer_state

        state = json.loads((ckpt / "trainer_state.json").read_text())
        model.load_state_dict(load_file(str(ckpt / "model.safetensors")), strict=True)
        load_optimizer_state(optimizer, ckpt)
        result.history = state["history"]
        result.best_epoch = state["best_epoch"]
        result.best_val_loss = state["best_val_loss"]
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
        best = None
        if (ckpt / "best.safetensors").is_file():
            best = load_file(str(ckpt / "best.safetensors"))
        return state["epoch"] + 1, best, state["bad_epochs"]
