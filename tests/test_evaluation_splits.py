"""Splits: disjoint folds, held-out groups, seeding independent of the subject list."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurodecode import Trials
from neurodecode.evaluation.splits import (
    CrossSession,
    FewShot,
    GroupedKFold,
    LeaveGroupOut,
    WithinSession,
    get_split,
    list_splits,
    subject_seed,
)


def _trials(n_subjects=6, n_per=24, n_sessions=2, n_sites=3, seed=0):
    """Feature trials with subject/session/site meta and balanced labels."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(1, n_subjects + 1):
        for i in range(n_per):
            rows.append({"subject": s, "session": str(i % n_sessions), "run": "0",
                         "site": f"site{s % n_sites}"})
    meta = pd.DataFrame(rows)
    y = np.tile(np.repeat([0, 1], 2), len(meta) // 4 + 1)[: len(meta)]
    return Trials(rng.standard_normal((len(meta), 3)), y=y, meta=meta, sfreq=float("nan"),
                  modality="eeg", name="toy")


def _folds(split, trials):
    return [(tr, te, info) for tr, te, info in get_split(split).split(trials)] if isinstance(split, str) \
        else list(split.split(trials))


ALL = [
    ("leave-subject-out", {}),
    ("leave-site-out", {}),
    ("leave-group-out", {"column": "session"}),
    ("grouped-kfold", {"n_splits": 3}),
    ("within-session", {}),
    ("cross-session", {}),
    ("few-shot", {"n_shots": (0, 2, 4)}),
]


def test_every_registered_split_is_covered():
    assert {name for name, _ in ALL} == set(list_splits())


@pytest.mark.parametrize("name,params", ALL)
def test_train_and_test_disjoint_and_fold_ids_unique(name, params):
    t = _trials()
    folds = list(get_split(name, random_state=3, **params).split(t))
    assert folds, name
    ids = [info["fold"] for _, _, info in folds]
    assert len(set(ids)) == len(ids)
    for train, test, info in folds:
        assert len(np.intersect1d(train, test)) == 0
        assert len(np.unique(test)) == len(test) and len(np.unique(train)) == len(train)
        touched = sorted(set(t.meta["subject"].iloc[np.concatenate([train, test])].astype(str)))
        assert info["data_subjects"] == sorted(touched, key=int)


def test_leave_subject_out_holds_out_each_subject_once():
    t = _trials()
    folds = _folds("leave-subject-out", t)
    assert [info["subject"] for *_, info in folds] == [str(s) for s in range(1, 7)]
    tested = np.concatenate([te for _, te, _ in folds])
    assert np.array_equal(np.sort(tested), np.arange(t.n_trials))
    for train, test, info in folds:
        assert set(t.meta["subject"].iloc[test]) == {int(info["subject"])}
        assert int(info["subject"]) not in set(t.meta["subject"].iloc[train])


def test_leave_site_out_never_mixes_sites():
    t = _trials()
    folds = _folds("leave-site-out", t)
    assert len(folds) == 3
    for train, test, info in folds:
        test_sites = set(t.meta["site"].iloc[test])
        assert test_sites == {info["site"]}
        assert not test_sites & set(t.meta["site"].iloc[train])
    assert get_split("leave-site-out").name == "leave-site-out"


def test_grouped_kfold_keeps_subjects_whole():
    t = _trials(n_subjects=10)
    folds = list(GroupedKFold(n_splits=4, random_state=1).split(t))
    assert len(folds) == 4
    seen = []
    for train, test, _ in folds:
        subj_test = set(t.meta["subject"].iloc[test])
        assert not subj_test & set(t.meta["subject"].iloc[train])
        seen += list(subj_test)
    assert sorted(seen) == list(range(1, 11))
    with pytest.raises(ValueError, match="n_splits"):
        list(GroupedKFold(n_splits=11).split(t))


def test_within_session_stays_inside_one_subject_session_and_is_stratified():
    t = _trials()
    folds = _folds("within-session", t)
    assert len(folds) == 6 * 2 * 5
    for train, test, info in folds:
        both = t.meta.iloc[np.concatenate([train, test])]
        assert both["subject"].nunique() == 1 and both["session"].nunique() == 1
        assert info["data_subjects"] == [str(both["subject"].iloc[0])]
        assert set(t.y[test]) == {0, 1}


def test_within_session_matches_moabb_fold_for_fold():
    """Same train/test indices as MOABB's WithinSessionSplitter (the reference definition)."""
    splitters = pytest.importorskip("moabb.evaluations.splitters")
    t = _trials(n_subjects=3)
    ours = list(WithinSession(n_splits=5, random_state=42).split(t))
    theirs = []
    meta = t.meta.reset_index(drop=True)
    for subject in sorted(meta["subject"].unique()):
        for session in sorted(meta.loc[meta["subject"] == subject, "session"].unique()):
            part = meta[(meta["subject"] == subject) & (meta["session"] == session)]
            sp = splitters.WithinSessionSplitter(n_folds=5, shuffle=True, random_state=42)
            theirs += [(np.sort(part.index[tr]), np.sort(part.index[te]))
                       for tr, te in sp.split(t.y[part.index], part.reset_index(drop=True))]
    assert len(ours) == len(theirs)
    for (tr, te, _), (tr2, te2) in zip(ours, theirs):
        assert np.array_equal(np.sort(tr), tr2) and np.array_equal(np.sort(te), te2)


def test_cross_session_leaves_one_session_of_one_subject_out():
    t = _trials()
    folds = _folds("cross-session", t)
    assert len(folds) == 12
    for train, test, info in folds:
        tm, trm = t.meta.iloc[test], t.meta.iloc[train]
        assert tm["subject"].nunique() == 1 and tm["session"].nunique() == 1
        assert set(trm["subject"]) == set(tm["subject"])
        assert tm["session"].iloc[0] not in set(trm["session"])
    with pytest.raises(ValueError, match="no fold"):
        _folds("cross-session", _trials(n_sessions=1))


def test_few_shot_calibration_is_per_class_nested_and_from_the_target_only():
    t = _trials(n_subjects=4, n_per=40, n_sessions=1)
    folds = list(FewShot(n_shots=(0, 5, 10, 20, 40), random_state=0).split(t))
    # 40 trials per subject = 20 per class: 20 and 40 shots would leave no test trial
    assert sorted({info["n_shots"] for *_, info in folds}) == [0, 5, 10]
    by_subject = {}
    for train, test, info in folds:
        subj = int(info["subject"])
        target = np.flatnonzero(t.meta["subject"].to_numpy() == subj)
        calib = np.intersect1d(train, target)
        assert set(t.meta["subject"].iloc[test]) == {subj}
        counts = np.bincount(t.y[calib], minlength=2)
        assert list(counts) == [info["n_shots"]] * 2
        assert len(calib) + len(test) == len(target)
        others = np.setdiff1d(train, target)
        assert len(others) == t.n_trials - len(target)
        by_subject.setdefault(subj, {})[info["n_shots"]] = set(calib)
    for sets in by_subject.values():
        assert sets[0] <= sets[5] <= sets[10]


def _fold_map(split, trials):
    """``fold id -> (train subjects' trial keys, test trial keys)`` in terms of (subject, position)."""
    meta = trials.meta
    pos = meta.groupby("subject").cumcount().to_numpy()
    key = [f"{s}:{p}" for s, p in zip(meta["subject"], pos)]
    out = {}
    for train, test, info in split.split(trials):
        out[info["fold"]] = (sorted(key[i] for i in train), sorted(key[i] for i in test))
    return out


@pytest.mark.parametrize("split", [FewShot(n_shots=(0, 2, 4), random_state=7),
                                   WithinSession(random_state=7), CrossSession(random_state=7)])
def test_folds_do_not_depend_on_which_or_how_many_subjects_run(split):
    t = _trials(n_subjects=6)
    full = _fold_map(split, t)
    for subset in ([2, 5], [5, 3, 1], [4]):
        sub = t.select(subject=subset)
        part = _fold_map(split, sub)
        assert part
        for fold, (train, test) in part.items():
            # The held-out trials (and, for the few-shot calibration set, the
            # target subject's training trials) are the same whichever subjects run.
            subj = fold.split("|")[0].split("=")[1]
            f_train, f_test = full[fold]
            assert test == f_test
            assert [k for k in train if k.split(":")[0] == subj] == [k for k in f_train if k.split(":")[0] == subj]


def test_subject_seed_is_stable_and_distinct():
    assert subject_seed(0, 3) == subject_seed(0, 3)
    assert len({subject_seed(0, s) for s in range(50)}) == 50
    assert subject_seed(0, 3) != subject_seed(1, 3)


def test_clear_errors():
    t = _trials()
    with pytest.raises(KeyError, match="unknown split"):
        get_split("leave-one-out")
    with pytest.raises(KeyError, match="meta column 'scanner'"):
        list(LeaveGroupOut("scanner").split(t))
    with pytest.raises(ValueError, match="one value"):
        list(LeaveGroupOut("run").split(t))
    with pytest.raises(ValueError, match=">= 0"):
        FewShot(n_shots=(-1,))
