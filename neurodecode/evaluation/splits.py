"""Cross-validation splits defined as functions of ``Trials.meta``.

Every split is a small class with a registered name and one method,
``split(trials)``, yielding ``(train_idx, test_idx, info)``:

* ``train_idx`` / ``test_idx``: integer arrays of trial positions;
* ``info``: a dict with a stable ``fold`` identifier (``"subject=3"``,
  ``"subject=1|session=0|fold=2"`` …), the held-out ``subject`` /
  ``session`` / ``site`` where they are unique, and ``data_subjects``: the
  sorted subjects whose trials the fold touches (train and test). The results
  store keys a fold on ``data_subjects``, so a fold is only ever reused when it
  would be computed from exactly the same subjects' data.

Folds are seeded and do not depend on which or how many subjects run: a
subject's random draws come from a seed derived from a hash of
``(random_state, subject)`` (`subject_seed`), never from iteration order.
The one exception is ``within-session``, which follows MOABB's definition
exactly (a fresh ``StratifiedKFold(5, shuffle=True, random_state)`` per
subject and session) so its scores can be compared with MOABB's; that is
independent of the other subjects too.

Registered names: ``leave-subject-out``, ``leave-site-out``,
``leave-group-out`` (any ``meta`` column), ``grouped-kfold``,
``within-session``, ``cross-session``, ``few-shot``.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from neurodecode import Trials
>>> from neurodecode.evaluation.splits import get_split
>>> t = Trials(np.zeros((6, 2)), y=[0, 1] * 3, sfreq=float("nan"), modality="eeg",
...            meta=pd.DataFrame({"subject": [1, 1, 2, 2, 3, 3]}))
>>> [info["fold"] for _, _, info in get_split("leave-subject-out").split(t)]
['subject=1', 'subject=2', 'subject=3']
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

__all__ = [
    "Split",
    "LeaveSubjectOut",
    "LeaveGroupOut",
    "GroupedKFold",
    "WithinSession",
    "CrossSession",
    "FewShot",
    "SPLITS",
    "get_split",
    "list_splits",
    "subject_seed",
    "sorted_values",
]


def subject_seed(random_state: int, value) -> int:
    """A 32-bit seed from a hash of ``(random_state, value)``.

    Independent of iteration order and of which other subjects run, and stable
    across processes and Python versions (unlike ``hash``).

    Examples
    --------
    >>> subject_seed(0, 7) == subject_seed(0, 7) != subject_seed(1, 7)
    True
    """
    digest = hashlib.blake2b(f"{int(random_state)}|{value!s}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def _natural_key(value):
    # Subjects may be ints, numpy ints or strings; order numbers numerically.
    if isinstance(value, (int, np.integer, float, np.floating)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def sorted_values(values) -> list:
    """Unique values in natural order (numbers numerically, then strings)."""
    if not isinstance(values, (pd.Series, np.ndarray)):
        values = pd.Series(list(values))
    return sorted(pd.unique(values), key=_natural_key)


def _label(value) -> str:
    if isinstance(value, (np.integer,)):
        value = int(value)
    return str(value)


def _unique_or_joined(series: pd.Series):
    vals = sorted_values(series)
    if len(vals) == 1:
        return _label(vals[0])
    return "+".join(_label(v) for v in vals)


class Split:
    """Base class: a named, seeded rule that turns ``meta`` into folds.

    Subclasses implement `_folds` and set ``name``. ``random_state`` is set by
    `evaluate` when the split is given by name.
    """

    name = "split"
    uses_labels = False

    def __init__(self, random_state: int = 0):
        self.random_state = random_state

    def params(self) -> dict:
        """Everything that defines the folds (hashed into the results key)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def _check(self, trials, columns=("subject",)):
        for col in columns:
            if col not in trials.meta.columns:
                raise KeyError(
                    f"split {self.name!r} needs meta column {col!r}; columns: {list(trials.meta.columns)}"
                )
        if self.uses_labels and trials.y is None:
            raise ValueError(f"split {self.name!r} needs labels (trials.y is None)")

    def split(self, trials) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
        """Yield ``(train_idx, test_idx, info)`` for each fold, in a fixed order."""
        meta = trials.meta
        n_folds = 0
        for train, test, info in self._folds(trials):
            train = np.asarray(train, dtype=np.int64)
            test = np.asarray(test, dtype=np.int64)
            if len(train) == 0 or len(test) == 0:
                continue
            touched = np.concatenate([train, test])
            info.setdefault("data_subjects", [_label(s) for s in sorted_values(meta["subject"].iloc[touched])])
            test_meta = meta.iloc[test]
            info.setdefault("subject", _unique_or_joined(test_meta["subject"]))
            info.setdefault("session", _unique_or_joined(test_meta["session"]))
            if "site" in meta.columns:
                info.setdefault("site", _unique_or_joined(test_meta["site"]))
            n_folds += 1
            yield train, test, info
        if n_folds == 0:
            raise ValueError(f"split {self!r} produced no fold for these trials ({len(meta)} trials)")

    def _folds(self, trials):  # pragma: no cover - abstract
        raise NotImplementedError


class LeaveGroupOut(Split):
    """Hold out each value of a ``meta`` column in turn (``leave-group-out``).

    Parameters
    ----------
    column : str
        The ``meta`` column (``"site"`` gives ``leave-site-out``).
    """

    name = "leave-group-out"

    def __init__(self, column: str = "subject", random_state: int = 0):
        super().__init__(random_state)
        self.column = column

    def _folds(self, trials):
        self._check(trials, (self.column,))
        values = trials.meta[self.column].to_numpy()
        groups = sorted_values(values)
        if len(groups) < 2:
            raise ValueError(f"split {self.name!r}: meta[{self.column!r}] has one value; need at least 2 groups")
        for g in groups:
            test = values == g
            yield np.flatnonzero(~test), np.flatnonzero(test), {"fold": f"{self.column}={_label(g)}"}


class LeaveSubjectOut(LeaveGroupOut):
    """Leave one subject out: train on all other subjects, test on one."""

    name = "leave-subject-out"

    def __init__(self, random_state: int = 0):
        super().__init__("subject", random_state)


class GroupedKFold(Split):
    """K folds of whole groups (subjects by default), for many subjects.

    Groups are shuffled with ``random_state`` and dealt round-robin into
    ``n_splits`` folds. Which groups share a fold depends on the full group
    list, so these folds are keyed on all subjects and never reused for a
    different subject list.
    """

    name = "grouped-kfold"

    def __init__(self, n_splits: int = 5, column: str = "subject", random_state: int = 0):
        super().__init__(random_state)
        self.n_splits = n_splits
        self.column = column

    def _folds(self, trials):
        self._check(trials, (self.column,))
        values = trials.meta[self.column].to_numpy()
        groups = sorted_values(values)
        if len(groups) < self.n_splits:
            raise ValueError(
                f"grouped-kfold: {len(groups)} groups in meta[{self.column!r}] < n_splits={self.n_splits}"
            )
        order = np.random.RandomState(self.random_state).permutation(len(groups))
        fold_of = {groups[g]: i % self.n_splits for i, g in enumerate(order)}
        assignment = np.array([fold_of[v] for v in values])
        for k in range(self.n_splits):
            test = assignment == k
            yield np.flatnonzero(~test), np.flatnonzero(test), {"fold": f"fold={k}"}


class WithinSession(Split):
    """MOABB's within-session k-fold, fold for fold.

    For each subject and session (natural order), labels are encoded with
    ``LabelEncoder`` and split by ``StratifiedKFold(n_splits, shuffle=True,
    random_state=random_state)`` with a fresh seed per partition, exactly as
    ``moabb.evaluations.WithinSessionEvaluation`` does. A fold touches one
    subject only, so it is reused when more subjects are asked for.
    """

    name = "within-session"
    uses_labels = True

    def __init__(self, n_splits: int = 5, random_state: int = 0):
        super().__init__(random_state)
        self.n_splits = n_splits

    def _folds(self, trials):
        self._check(trials, ("subject", "session"))
        meta = trials.meta
        _, y = np.unique(trials.y, return_inverse=True)
        for subject in sorted_values(meta["subject"]):
            in_subject = (meta["subject"] == subject).to_numpy()
            for session in sorted_values(meta.loc[in_subject, "session"]):
                idx = np.flatnonzero(in_subject & (meta["session"] == session).to_numpy())
                cv = StratifiedKFold(self.n_splits, shuffle=True, random_state=self.random_state)
                for k, (tr, te) in enumerate(cv.split(idx, y[idx])):
                    fold = f"subject={_label(subject)}|session={_label(session)}|fold={k}"
                    yield idx[tr], idx[te], {"fold": fold}


class CrossSession(Split):
    """Within each subject, leave one session out (MOABB's cross-session).

    Subjects with a single session are skipped; a clear error is raised when
    no subject has two sessions.
    """

    name = "cross-session"

    def _folds(self, trials):
        self._check(trials, ("subject", "session"))
        meta = trials.meta
        for subject in sorted_values(meta["subject"]):
            in_subject = (meta["subject"] == subject).to_numpy()
            sessions = sorted_values(meta.loc[in_subject, "session"])
            if len(sessions) < 2:
                continue
            for session in sessions:
                test = in_subject & (meta["session"] == session).to_numpy()
                train = in_subject & ~test
                yield np.flatnonzero(train), np.flatnonzero(test), {
                    "fold": f"subject={_label(subject)}|session={_label(session)}"
                }


class FewShot(Split):
    """Few-shot calibration on a new subject: the learning curve of fine-tuning.

    For each target subject and each ``n`` in ``n_shots``: train on all other
    subjects plus ``n`` labelled trials **per class** of the target subject,
    test on the rest of the target subject. The calibration trials are drawn
    per class with a seed from ``(random_state, subject)`` and are nested
    (the 5-shot set is inside the 10-shot set). ``n`` values that would
    leave fewer than ``min_test_per_class`` test trials in a class are
    skipped for that subject.
    """

    name = "few-shot"
    uses_labels = True

    def __init__(self, n_shots: Sequence[int] = (0, 5, 10, 20, 40), min_test_per_class: int = 1,
                 random_state: int = 0):
        super().__init__(random_state)
        self.n_shots = tuple(int(n) for n in n_shots)
        if any(n < 0 for n in self.n_shots):
            raise ValueError(f"n_shots={n_shots!r}: counts must be >= 0")
        self.min_test_per_class = int(min_test_per_class)

    def _folds(self, trials):
        self._check(trials, ("subject",))
        meta = trials.meta
        y = np.asarray(trials.y)
        classes = np.unique(y)
        for subject in sorted_values(meta["subject"]):
            target = (meta["subject"] == subject).to_numpy()
            others = np.flatnonzero(~target)
            rng = np.random.RandomState(subject_seed(self.random_state, subject))
            pools = {c: rng.permutation(np.flatnonzero(target & (y == c))) for c in classes}
            smallest = min(len(p) for p in pools.values())
            for n in self.n_shots:
                if n > smallest - self.min_test_per_class:
                    continue
                calib = np.concatenate([p[:n] for p in pools.values()]).astype(np.int64)
                test = np.setdiff1d(np.flatnonzero(target), calib)
                train = np.sort(np.concatenate([others, calib]))
                yield train, test, {"fold": f"subject={_label(subject)}|shots={n}", "n_shots": n}


SPLITS = {
    "leave-subject-out": LeaveSubjectOut,
    "leave-site-out": lambda random_state=0, **kw: LeaveGroupOut("site", random_state=random_state, **kw),
    "leave-group-out": LeaveGroupOut,
    "grouped-kfold": GroupedKFold,
    "within-session": WithinSession,
    "cross-session": CrossSession,
    "few-shot": FewShot,
}


def list_splits() -> list[str]:
    """The registered split names."""
    return list(SPLITS)


def get_split(split, random_state: int = 0, **params) -> Split:
    """Return a `Split` from a registered name (or pass a `Split` through).

    Parameters
    ----------
    split : str or Split
        A registered name (`list_splits`) or a `Split` instance.
    random_state : int
        Seed of the folds (ignored for a `Split` instance, which keeps its own).
    **params
        Options of the split class (``column=``, ``n_splits=``, ``n_shots=``).
    """
    if isinstance(split, Split):
        return split
    if not isinstance(split, str):
        raise TypeError(f"split={split!r}: expected a registered name or a Split instance")
    try:
        factory = SPLITS[split]
    except KeyError:
        raise KeyError(f"unknown split {split!r}; registered: {list(SPLITS)}") from None
    obj = factory(random_state=random_state, **params)
    if split == "leave-site-out":
        obj.name = "leave-site-out"
    return obj
