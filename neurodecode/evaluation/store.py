"""On-disk results store: one SQLite row per evaluated fold.

Why SQLite (the standard library's ``sqlite3``):

* **atomic per-fold transactions** – each fold's result is committed in its
  own transaction the moment it is computed; a reader (or a resumed run)
  sees a fold completely or not at all;
* **kill -9 safe** – SQLite's journal rolls back a half-written transaction
  on the next open, so a run killed at any instant loses at most the fold in
  flight and never leaves a corrupt or duplicated row (the fold key is the
  primary key; inserts are ``INSERT OR IGNORE``);
* **cheap commits during a run** – `evaluate` writes through `writer`, one
  connection in write-ahead-log mode (``journal_mode=WAL``) for the whole
  run: each fold is still its own transaction, fsynced before the next fold
  starts (``synchronous=FULL``), but a WAL commit costs one fsync where the
  rollback journal costs three or four (6 ms instead of 26 ms per fold on
  this machine). At the end of the run the log is checkpointed into the
  database and the file goes back to the rollback journal, so a finished
  store is again one self-contained file. After a ``kill -9`` the committed
  folds are in ``<store>-wal`` until the next open recovers them: copy the
  ``-wal`` file with the store (or open it once) before moving it;
* **no extra dependency** and one portable file, readable from any language;
  HDF5 would need a whole-file rewrite or careful flushing to be kill-safe,
  and parquet is immutable (one file per fold).

A fold's key (`fold_key`) hashes everything that determines its result:
dataset name, a fingerprint of the data of exactly the subjects the fold
touches (``info["data_subjects"]``), the pipeline's name and parameters
(a stable representation of ``get_params``), the split and its parameters,
the fold identifier, the scorers and the package versions. Because the
subjects a fold *touches* (training and test) are in the key, a
leave-subject-out fold computed on subjects 1–10 is never reused when
subjects 1–12 are asked for (its training set changed), while a
within-session fold (one subject only) is.

Examples
--------
>>> import tempfile, os
>>> store = ResultStore(os.path.join(tempfile.mkdtemp(), "results.sqlite"))
>>> store.put("abc", {"score": 0.9, "pipeline": "p"})
True
>>> store.get("abc")["score"]
0.9
>>> store.put("abc", {"score": 0.1})      # a key is written once
False
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import sqlite3
import time
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["ResultStore", "fold_key", "stable_repr", "data_fingerprints"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS folds (
    key TEXT PRIMARY KEY,
    dataset TEXT,
    pipeline TEXT,
    split TEXT,
    fold TEXT,
    record TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def _default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


class ResultStore:
    """A SQLite file of fold results, keyed by `fold_key`.

    Parameters
    ----------
    path : str or Path
        The database file (created with its folder when missing).
    """

    def __init__(self, path):
        self._session = None  # the connection of an open `writer`, never pickled
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute(_SCHEMA)

    def _connect(self):
        # A fresh connection per operation: safe across fork and threads.
        con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        con.execute("PRAGMA synchronous=FULL")
        return _Closing(con)

    def get(self, key: str) -> dict | None:
        """The stored record for ``key`` or None."""
        with self._connect() as con:
            row = con.execute("SELECT record FROM folds WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def get_many(self, keys) -> dict:
        """``{key: record}`` for the keys present."""
        keys = list(keys)
        out = {}
        with self._connect() as con:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                q = f"SELECT key, record FROM folds WHERE key IN ({','.join('?' * len(chunk))})"
                for k, rec in con.execute(q, chunk):
                    out[k] = json.loads(rec)
        return out

    def put(self, key: str, record: dict) -> bool:
        """Commit one fold in its own transaction; False if the key existed."""
        text = json.dumps(record, default=_default, sort_keys=True)
        con = self._session
        if con is not None:
            return self._insert(con, key, record, text)
        with self._connect() as con:
            return self._insert(con, key, record, text)

    @staticmethod
    def _insert(con, key, record, text) -> bool:
        con.execute("BEGIN IMMEDIATE")
        try:
            cur = con.execute(
                "INSERT OR IGNORE INTO folds (key, dataset, pipeline, split, fold, record, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, str(record.get("dataset")), str(record.get("pipeline")),
                 str(record.get("split")), str(record.get("fold")), text, time.time()),
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return cur.rowcount == 1

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_session"] = None
        return state

    def writer(self):
        """A context manager for many `put` calls in a row (used by `evaluate`).

        Inside it, `put` goes through one connection in WAL mode: every
        fold is still committed and fsynced on its own (same guarantees as
        `put` outside), with one fsync per commit instead of several. On
        exit the log is checkpointed into the file and the database returns
        to the rollback journal (skipped, harmlessly, while another process
        has it open).
        """
        return _Writer(self)

    def __len__(self) -> int:
        with self._connect() as con:
            return con.execute("SELECT COUNT(*) FROM folds").fetchone()[0]

    def to_frame(self) -> pd.DataFrame:
        """Every stored fold as one tidy DataFrame (insertion order)."""
        with self._connect() as con:
            rows = con.execute("SELECT record FROM folds ORDER BY rowid").fetchall()
        return pd.DataFrame([json.loads(r[0]) for r in rows])

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r}, {len(self)} folds)"


class _Writer:
    def __init__(self, store: ResultStore):
        self.store = store

    def __enter__(self):
        if self.store._session is not None:  # nested: reuse the open session
            self.con = None
            return self.store
        con = sqlite3.connect(self.store.path, timeout=60.0, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            pass  # locked by another process: stay in the rollback journal (slower, same guarantees)
        con.execute("PRAGMA synchronous=FULL")
        self.con = con
        self.store._session = con
        return self.store

    def __exit__(self, *exc):
        if self.con is None:
            return False
        self.store._session = None
        try:
            # fold the log into the file and return to a single-file database
            self.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.con.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.OperationalError:
            pass  # another connection is open: it stays in WAL mode, still consistent
        finally:
            self.con.close()
        return False


class _Closing:
    def __init__(self, con):
        self.con = con

    def __enter__(self):
        return self.con

    def __exit__(self, *exc):
        self.con.close()
        return False


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def stable_repr(obj) -> str:
    """A representation of an estimator (or parameter) that is stable across runs.

    Estimators become their class path and sorted ``get_params(deep=False)``,
    recursively; arrays become a digest of their bytes; functions their
    qualified name and a digest of their code; memory addresses are removed.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> stable_repr(LogisticRegression(C=2.0)) == stable_repr(LogisticRegression(C=2.0))
    True
    >>> stable_repr(LogisticRegression(C=2.0)) == stable_repr(LogisticRegression(C=1.0))
    False
    """
    if hasattr(obj, "get_params") and not isinstance(obj, type):
        params = obj.get_params(deep=False)
        inner = ", ".join(f"{k}={stable_repr(params[k])}" for k in sorted(params))
        return f"{type(obj).__module__}.{type(obj).__qualname__}({inner})"
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{stable_repr(k)}: {stable_repr(obj[k])}" for k in sorted(obj, key=str)) + "}"
    if isinstance(obj, (list, tuple)):
        body = ", ".join(stable_repr(v) for v in obj)
        return f"[{body}]" if isinstance(obj, list) else f"({body})"
    if isinstance(obj, np.ndarray):
        return f"ndarray({obj.dtype},{obj.shape},{hashlib.blake2b(np.ascontiguousarray(obj).tobytes(), digest_size=8).hexdigest()})"
    if isinstance(obj, np.random.RandomState):
        state = obj.get_state()
        return f"RandomState({hashlib.blake2b(state[1].tobytes(), digest_size=8).hexdigest()},{state[2]})"
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        code = getattr(obj, "__code__", None)
        digest = ""
        if code is not None:
            digest = hashlib.blake2b(code.co_code + repr(code.co_consts).encode(), digest_size=8).hexdigest()
        return f"{obj.__module__}.{obj.__qualname__}#{digest}"
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    return _ADDRESS.sub("", repr(obj))


def _hash_update_array(h, x):
    x = np.ascontiguousarray(x)
    h.update(f"{x.dtype}{x.shape}".encode())
    try:
        h.update(memoryview(x).cast("B"))  # the same bytes as x.tobytes(), without copying them
    except (TypeError, ValueError):  # object arrays and other formats a buffer cannot give
        h.update(x.tobytes())


def data_fingerprints(trials) -> dict:
    """``{subject label: digest}`` of each subject's X, y and meta.

    A lazy (h5py) ``X`` is fingerprinted by its shape and file only, to avoid
    reading it.
    """
    from .splits import _label, sorted_values

    meta = trials.meta
    out = {}
    subjects = meta["subject"].to_numpy()
    for s in sorted_values(subjects):
        idx = np.flatnonzero(subjects == s)
        h = hashlib.blake2b(digest_size=16)
        if trials.is_ragged:
            for i in idx:
                _hash_update_array(h, trials.X[i])
        elif trials.is_lazy:
            h.update(f"{trials.X.file.filename}:{trials.X.name}:{trials.X.shape}:{idx.tolist()}".encode())
        elif len(idx) and idx[-1] - idx[0] + 1 == len(idx):
            # a subject's rows are usually one block: hash a view instead of a fancy-indexed copy
            _hash_update_array(h, trials.X[idx[0]:idx[-1] + 1])
        else:
            _hash_update_array(h, trials.X[idx])
        if trials.y is not None:
            y = np.asarray(trials.y)[idx]
            h.update(repr(y.tolist()).encode())
        h.update(meta.iloc[idx].to_json(orient="split", index=False, default_handler=str).encode())
        out[_label(s)] = h.hexdigest()
    return out


def fold_key(*, dataset: str, pipeline: str, pipeline_repr: str, split_repr: str, fold: str,
             data_subjects, fingerprints: dict, scoring, versions: dict) -> str:
    """The hash that identifies one fold's result (see the module docstring)."""
    payload = {
        "dataset": dataset,
        "pipeline": pipeline,
        "pipeline_params": pipeline_repr,
        "split": split_repr,
        "fold": fold,
        "subjects": list(data_subjects),
        "data": [fingerprints[s] for s in data_subjects],
        "scoring": list(scoring),
        "versions": versions,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()
