"""Few-shot new-subject curve on simulated NSD betas: cross-subject reset-tuning vs per-subject models.

For each target subject: pretrain the cross-subject decoder on the other
subjects, then fine-tune on n labelled trials per class of the target
(n = 5, 10, 20, 40; seeded draw) and score the rest. Per-subject baselines on the
same trials: the same network trained from scratch, and logistic regression.
n = 0 is chance for every method here (a new subject's voxel map is unknown
without any of its trials), so it is not run.

    OMP_NUM_THREADS=1 python benchmarks/heads_fewshot_nsd.py --noise 2.0
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from neurodecode.models.adapter import CrossSubjectClassifier
from neurodecode.models.foundation import finetune, pretrain
from neurodecode.simulation import simulate_nsd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--noise", type=float, default=2.0)
    ap.add_argument("--voxels", type=int, nargs=2, default=(40, 60))
    ap.add_argument("--subjects", type=int, default=5)
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--targets", type=int, default=2, help="how many subjects serve as the new subject")
    ap.add_argument("--latent", type=int, default=8)
    ap.add_argument("--shared-dim", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = simulate_nsd(n_subjects=args.subjects, n_stimuli=200, n_trials_per_subject=args.trials,
                        n_voxels=tuple(args.voxels), latent_dim=args.latent, noise=args.noise, random_state=0)
    subjects = sorted(data)
    arch = dict(shared_dim=args.shared_dim, hidden_dim=64, latent_dim=16, device="cpu")
    rows = []
    t0 = time.time()
    for target in subjects[-args.targets:]:
        ckpt = pretrain([data[s] for s in subjects if s != target], head="cross-subject",
                        out_dir=tempfile.mkdtemp() + "/cs", model=arch,
                        trainer=dict(max_epochs=40, batch_size=32, patience=8))
        new = data[target]
        for n in (5, 10, 20, 40):
            tuned = finetune(ckpt, new, n_trials=n, epochs=100, random_state=n, **arch)
            idx = tuned.finetune_index_
            rest = np.setdiff1d(np.arange(new.n_trials), idx)
            scratch = CrossSubjectClassifier(**arch, max_epochs=100, val_fraction=0.0, lr=3e-3,
                                             random_state=n).fit(new.X[idx], new.y[idx])
            lr = LogisticRegression(max_iter=2000).fit(new.X[idx], new.y[idx])
            row = {"target": target, "n": n,
                   "cross_subject_reset": float((tuned.predict(new.X[rest], meta=new.meta.iloc[rest])
                                                 == new.y[rest]).mean()),
                   "scratch_same_net": float((scratch.predict(new.X[rest]) == new.y[rest]).mean()),
                   "per_subject_logreg": float(lr.score(new.X[rest], new.y[rest]))}
            rows.append(row)
            print(row, f"{time.time() - t0:.0f}s", flush=True)
    import pandas as pd

    df = pd.DataFrame(rows)
    print(df.groupby("n")[["cross_subject_reset", "scratch_same_net", "per_subject_logreg"]].mean().round(3))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
