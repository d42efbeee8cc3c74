"""One checkpoint format for every torch head: a directory, no pickles.

Layout of a checkpoint directory::

    config.json            {"format": "neurodecode.checkpoint", "version": 1,
                            "model": <registered class name>, "config": {...},
                            "extra": {...}}
    model.safetensors      the module's state dict (weights and buffers)
    optimizer.safetensors  optional: optimizer tensors (resumable training)
    trainer_state.json     optional: epoch, history, optimizer scalars, RNG
    model_card.json / README.md   optional, written by `foundation.pretrain`

A model is rebuilt with ``MODEL_CLASSES[name](**config)`` and its weights are
loaded with ``strict=True``: nothing is unpickled, so loading a checkpoint
cannot run code. Directories are written atomically: everything goes into a
temporary sibling directory, which is then renamed onto the target (the old
one is moved aside first and removed after the swap, so a reader sees either
the old or the new checkpoint, never a mix).

Examples
--------
>>> import tempfile
>>> from neurodecode.models.mae import TokenMAE
>>> from neurodecode.models.checkpoint import save_checkpoint, from_pretrained
>>> m = TokenMAE(n_tokens=4, n_times=32, patch_size=8, embed_dim=16, depth=1, n_heads=2)
>>> d = save_checkpoint(m, tempfile.mkdtemp() + "/ckpt")
>>> type(from_pretrained(d)).__name__
'TokenMAE'
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

__all__ = ["MODEL_CLASSES", "register_model", "save_checkpoint", "from_pretrained",
           "load_config", "save_optimizer_state", "load_optimizer_state", "write_json"]

_FORMAT = "neurodecode.checkpoint"
_VERSION = 1

#: Registered torch head classes: name -> class with ``config`` (JSON-able kwargs).
MODEL_CLASSES: dict[str, type] = {}


def register_model(name):
    """Class decorator: make ``from_pretrained`` able to rebuild this module by name."""
    def deco(cls):
        MODEL_CLASSES[name] = cls
        cls.model_name = name
        return cls
    return deco


def _jsonable(obj):
    """Convert numpy scalars/arrays (and tuples) so `json.dumps` accepts them."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    return obj


def write_json(path, obj):
    """Write ``obj`` as indented JSON (numpy values converted)."""
    Path(path).write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_directory(directory):
    """Yield a fresh temporary directory; swap it onto ``directory`` on success."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        yield tmp
        old = None
        if directory.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".old",
                                        dir=directory.parent))
            os.rmdir(old)
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _state_tensors(module):
    # safetensors refuses shared or non-contiguous storage: copy each tensor.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def save_checkpoint(model, directory, *, extra=None, optimizer=None, trainer_state=None,
                    files=None):
    """Write ``model`` (and optionally the optimizer/trainer state) to ``directory``.

    Parameters
    ----------
    model : torch.nn.Module
        An instance of a class registered with `register_model`; its
        ``config`` attribute (constructor keyword arguments) must be JSON-able.
    directory : path-like
        Target directory; replaced atomically if it exists.
    extra : dict, optional
        JSON-able information stored next to the config (preprocessing
        statistics, class labels, …).
    optimizer : torch.optim.Optimizer, optional
        Saved to ``optimizer.safetensors`` + ``trainer_state.json`` so training
        can resume.
    trainer_state : dict, optional
        JSON-able trainer bookkeeping (epoch, history, early-stopping state).
    files : dict, optional
        Extra text files ``name -> content`` (model cards).

    Returns
    -------
    pathlib.Path
        ``directory``.
    """
    from safetensors.torch import save_file

    name = getattr(type(model), "model_name", None)
    if name is None or MODEL_CLASSES.get(name) is not type(model):
        raise TypeError(f"save_checkpoint: {type(model).__name__} is not registered with "
                        "register_model; it could not be rebuilt by from_pretrained")
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        write_json(tmp / "config.json", {"format": _FORMAT, "version": _VERSION, "model": name,
                                         "config": model.config, "extra": extra or {}})
        save_file(_state_tensors(model), str(tmp / "model.safetensors"))
        state = dict(trainer_state or {})
        if optimizer is not None:
            tensors, scalars = _flatten_optimizer(optimizer)
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            state["optimizer"] = scalars
        if state:
            write_json(tmp / "trainer_state.json", state)
        for fname, content in (files or {}).items():
            (tmp / fname).write_text(content)
    return directory


def load_config(directory) -> dict:
    """The parsed ``config.json`` of a checkpoint; `DataError` if it is not one."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise DataError("not a neurodecode checkpoint (config.json missing)", Path(directory))
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"config.json is not valid JSON ({err})", path) from None
    if cfg.get("format") != _FORMAT:
        raise DataError(f"format is {cfg.get('format')!r}, expected {_FORMAT!r}", path)
    if cfg.get("model") not in MODEL_CLASSES:
        _import_heads()
    if cfg.get("model") not in MODEL_CLASSES:
        raise DataError(f"unknown model {cfg.get('model')!r}; known: {sorted(MODEL_CLASSES)}", path)
    return cfg


def _import_heads():
    # Registration happens at import; a checkpoint may be loaded before any head module.
    from . import cross_subject, mae  # noqa: F401


def from_pretrained(directory, map_location="cpu"):
    """Rebuild the model saved in ``directory`` (no pickles; strict weight loading).

    Parameters
    ----------
    directory : path-like
        A directory written by `save_checkpoint`.
    map_location : str or torch.device
        Device the weights are loaded onto.

    Returns
    -------
    torch.nn.Module
        In eval mode; ``model.checkpoint_extra`` holds the saved ``extra`` dict.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg = load_config(directory)
    model = MODEL_CLASSES[cfg["model"]](**cfg["config"])
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise DataError("model.safetensors missing", directory)
    try:
        state = load_file(str(weights), device=str(map_location))
    except Exception as err:  # safetensors raises its own error types
        raise DataError(f"cannot read weights ({err})", weights) from None
    model.load_state_dict(state, strict=True)
    model.to(map_location)
    model.eval()
    model.checkpoint_extra = cfg.get("extra", {})
    return model


# ---------------------------------------------------------------- optimizer
def _flatten_optimizer(optimizer):
    """Split an optimizer state dict into tensors (safetensors) and JSON scalars."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {"param_groups": sd["param_groups"], "state": {}}
    for idx, state in sd["state"].items():
        entry = {}
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{key}"] = value.detach().to("cpu").contiguous().clone()
            else:
                entry[key] = value
        scalars["state"][str(idx)] = entry
    return tensors, scalars


def save_optimizer_state(optimizer, path):
    """Save an optimizer's state without pickles: ``path`` (.safetensors) + ``path``.json."""
    from safetensors.torch import save_file

    tensors, scalars = _flatten_optimizer(optimizer)
    save_file(tensors, str(path))
    write_json(str(path) + ".json", scalars)


def load_optimizer_state(optimizer, directory):
    """Restore the optimizer saved by `save_checkpoint` in ``directory``; False if none."""
    from safetensors.torch import load_file

    directory = Path(directory)
    tpath, spath = directory / "optimizer.safetensors", directory / "trainer_state.json"
    if not tpath.is_file() or not spath.is_file():
        return False
    scalars = json.loads(spath.read_text()).get("optimizer")
    if scalars is None:
        return False
    tensors = load_file(str(tpath))
    state = {}
    for idx, entry in scalars["state"].items():
        s = dict(entry)
        prefix = f"{idx}."
        for key, value in tensors.items():
            if key.startswith(prefix):
                s[key[len(prefix):]] = value
        state[int(idx)] = s
    optimizer.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})
    return True
