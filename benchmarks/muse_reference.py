"""Muse cueing: leave-one-subject-out Cov(oas)+TangentSpace+LR on our loader's epochs.

Checks `neurodecode.io.muse.load_muse_cueing` against the reference numbers
of ``eeg_notebooks_muse/SOURCE.md`` (computed there with the same recipe on
independently loaded epochs): (a) cue left vs right 0.487 ± 0.068, (b) target
vs pre-cue 0.587 ± 0.129 mean held-out ROC-AUC over 66 subjects, and the
per-subject values of ``reference_auc_per_subject.csv``.

    OMP_NUM_THREADS=1 python benchmarks/muse_reference.py     # ~3 min on 1 core
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def loso_auc(trials, positive):
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    # Per-epoch, label-free covariances: computing them once equals computing them per fold.
    C = Covariances("oas").fit_transform(trials.X)
    y = (trials.y == positive).astype(int)
    groups = trials.meta["subject"].to_numpy()
    out = {}
    for s in pd.unique(groups):
        test = groups == s
        if len(set(y[test])) < 2:
            continue
        ts = TangentSpace(metric="riemann").fit(C[~test])
        lr = LogisticRegression(max_iter=1000).fit(ts.transform(C[~test]), y[~test])
        out[s] = roc_auc_score(y[test], lr.predict_proba(ts.transform(C[test]))[:, 1])
    return pd.Series(out)


def main():
    from neurodecode.io.muse import load_muse_cueing
    from neurodecode.paths import dataset_path

    ref = pd.read_csv(dataset_path("eeg_notebooks_muse") / "reference_auc_per_subject.csv").set_index("subject")
    for task, positive, column, expected in (("cue", "cue_right", "a_cov_oas_ts_lr", "0.487 ± 0.068"),
                                             ("target", "target", "b_cov_oas_ts_lr", "0.587 ± 0.129")):
        auc = loso_auc(load_muse_cueing(task), positive)
        diff = np.nanmax(np.abs(auc - ref[column].reindex(auc.index)))
        print(f"task={task}: {len(auc)} held-out subjects, ROC-AUC {auc.mean():.3f} ± {auc.std(ddof=1):.3f} "
              f"(SOURCE.md {expected}); max |ours - reference| per subject {diff:.1e}")


if __name__ == "__main__":
    main()
