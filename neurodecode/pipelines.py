"""Registered pipelines: names the harness and the CLI can resolve.

A pipeline is registered with a factory that builds a fresh, unfitted
scikit-learn estimator (usually a :class:`sklearn.pipeline.Pipeline`)::

    >>> from neurodecode.pipelines import list_pipelines, make_pipeline
    >>> "cov-ts-lr" in list_pipelines()                     # doctest: +SKIP
    True
    >>> clf = make_pipeline("cov-ts-lr", estimator="oas")   # doctest: +SKIP

Modules that provide pipelines expose ``register_pipelines(register)``;
they are listed in :data:`PLUGIN_MODULES` and imported lazily the first
time the registry is read, so importing :mod:`neurodecode` stays cheap and
a module that fails to import (an optional dependency missing) only removes
its own entries.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["PipelineInfo", "register_pipeline", "make_pipeline", "list_pipelines",
           "get_pipeline_info", "PLUGIN_MODULES"]

#: Modules that define ``register_pipelines(register)``; each adds its own names.
PLUGIN_MODULES = [
    "neurodecode.models.riemann_pipelines",
    "neurodecode.preprocessing.augmented_pipelines",
    "neurodecode.preprocessing.connectivity_pipelines",
    "neurodecode.models.head_pipelines",
]


@dataclass(frozen=True)
class PipelineInfo:
    """What a registered pipeline is and how to build it."""

    name: str
    factory: Callable
    description: str
    modality: tuple = ("eeg", "ieeg", "fmri")
    input_kind: str = "epochs"  # "epochs" (n, ch, t), "timeseries" (ragged ROI), "features"
    tags: tuple = field(default_factory=tuple)


_REGISTRY: dict[str, PipelineInfo] = {}
_PLUGINS_LOADED = False


def register_pipeline(name, factory, description, *, modality=("eeg", "ieeg", "fmri"),
                      input_kind="epochs", tags=(), overwrite=False):
    """Register ``factory(**params) -> estimator`` under ``name``.

    Parameters
    ----------
    name : str
        Lower-case, dash-separated (``"cov-ts-lr"``).
    factory : callable
        Returns a fresh unfitted estimator; keyword arguments are pipeline
        options (``make_pipeline(name, **params)``).
    description : str
        One line shown by ``neurodecode pipelines``.
    modality : str or tuple of str
        Modalities the pipeline applies to.
    input_kind : {"epochs", "timeseries", "features"}
        What ``X`` the pipeline expects.
    overwrite : bool
        Replace an existing entry instead of raising.
    """
    if not callable(factory):
        raise TypeError(f"register_pipeline: factory for {name!r} is not callable")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"register_pipeline: {name!r} is already registered "
                         "(pass overwrite=True to replace it)")
    if isinstance(modality, str):
        modality = (modality,)
    _REGISTRY[name] = PipelineInfo(name, factory, description, tuple(modality), input_kind,
                                   tuple(tags))


def _load_plugins():
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for module_name in PLUGIN_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            # A plugin that is not there yet (or whose optional dependency is
            # missing) removes only its own entries.
            if err.name and module_name.startswith(err.name) or err.name == module_name:
                continue
            warnings.warn(f"pipelines from {module_name} unavailable: {err}", stacklevel=2)
            continue
        register = getattr(module, "register_pipelines", None)
        if register is not None:
            register(_register_from_plugin)


def _register_from_plugin(name, factory, description, **kwargs):
    kwargs.setdefault("overwrite", True)
    register_pipeline(name, factory, description, **kwargs)


def list_pipelines(modality=None):
    """Names of registered pipelines, sorted, optionally for one modality."""
    _load_plugins()
    return sorted(n for n, info in _REGISTRY.items()
                  if modality is None or modality in info.modality)


def get_pipeline_info(name) -> PipelineInfo:
    """The :class:`PipelineInfo` for ``name``; a clear KeyError lists the names."""
    _load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown pipeline {name!r}; registered: "
                       f"{', '.join(list_pipelines()) or '(none)'}") from None


def make_pipeline(name, **params):
    """A fresh, unfitted estimator for the registered pipeline ``name``."""
    info = get_pipeline_info(name)
    if params:
        accepted = inspect.signature(info.factory).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
            unknown = sorted(set(params) - set(accepted))
            if unknown:
                raise TypeError(f"pipeline {name!r} has no option(s) {unknown}; "
                                f"options: {sorted(accepted)}")
    return info.factory(**params)
