"""The evaluation harness: splits, `evaluate`, results store, statistics, report.

>>> from neurodecode.evaluation import evaluate, list_splits   # doctest: +SKIP
"""

from . import baselines  # noqa: F401  (registers the logvar-lr / subject-logvar-lr baselines)
from .evaluate import LeakageError, check_unfitted, evaluate, resolve_scoring
from .splits import Split, get_split, list_splits
from .store import ResultStore

__all__ = [
    "evaluate",
    "resolve_scoring",
    "check_unfitted",
    "LeakageError",
    "Split",
    "get_split",
    "list_splits",
    "ResultStore",
]
