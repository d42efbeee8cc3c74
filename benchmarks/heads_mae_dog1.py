"""MAE on Dog_1 iEEG clips: pretrain on all 596 clips unlabeled, then grouped 5-fold ROC-AUC.

Linear probe (frozen encoder) and full fine-tuning, folds = StratifiedGroupKFold(5)
on meta["group"] (one group per seizure / interictal run). Reference: the
Riemannian baseline in datasets/kaggle_seizure_dog1/SOURCE.md (0.9927, folds
StratifiedGroupKFold(5, shuffle=True, random_state=42)); the same folds are used
here and the baseline is recomputed on them.

    OMP_NUM_THREADS=1 python benchmarks/heads_mae_dog1.py --epochs 20 --out /tmp/mae-dog1
"""

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

from neurodecode.io.seizure import load_dog1_seizure
from neurodecode.models.adapter import MAEClassifier
from neurodecode.models.foundation import pretrain


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--finetune-epochs", type=int, default=15)
    ap.add_argument("--out", default="/tmp/mae-dog1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--patch-size", type=int, default=20)
    ap.add_argument("--embed-dim", type=int, default=64)
    ap.add_argument("--checkpoint", help="reuse this pretrained MAE (skip pretraining)")
    ap.add_argument("--modes", nargs="+", default=["probe", "finetune"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t = load_dog1_seizure()
    t0 = time.time()
    model = dict(patch_size=args.patch_size, embed_dim=args.embed_dim, depth=2, n_heads=4,
                 decoder_dim=32, mask_ratio=0.5)
    ckpt = Path(args.checkpoint) if args.checkpoint else pretrain(t, head="mae", out_dir=args.out, model=model,
                    trainer=dict(max_epochs=args.epochs, batch_size=32, patience=5, device="auto",
                                 progress=True),
                    group_column="group")
    t_pre = time.time() - t0
    card = json.loads((ckpt / "model_card.json").read_text())
    X, y, groups = np.asarray(t.X, dtype=np.float32), t.y, t.meta["group"].to_numpy()
    res = {"pretrain_s": round(t_pre, 1), "pretrain_scores": card["scores"]}
    # the folds of the SOURCE.md reference (random_state=42)
    folds = list(StratifiedGroupKFold(5, shuffle=True, random_state=42).split(X, y, groups))
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    base = []
    for tr, te in folds:
        clf = make_pipeline(Covariances(estimator="oas"), TangentSpace(metric="riemann"),
                            LogisticRegression(max_iter=1000))
        Xd = X.astype(np.float64)
        base.append(roc_auc_score(y[te], clf.fit(Xd[tr], y[tr]).predict_proba(Xd[te])[:, 1]))
    res["riemann_oas_ts_lr"] = {"auc_mean": float(np.mean(base)), "auc_folds": [round(a, 4) for a in base]}
    print("riemann", res["riemann_oas_ts_lr"], flush=True)
    for mode in args.modes:
        aucs = []
        t1 = time.time()
        for k, (tr, te) in enumerate(folds):
            est = MAEClassifier(mode=mode, checkpoint=str(ckpt), max_epochs=args.finetune_epochs,
                                batch_size=32, patience=5, val_column="group", random_state=0)
            est.fit(X[tr], y[tr], meta=t.meta.iloc[tr].reset_index(drop=True))
            aucs.append(roc_auc_score(y[te], est.predict_proba(X[te])[:, 1]))
        res[mode] = {"auc_mean": float(np.mean(aucs)), "auc_folds": [round(a, 4) for a in aucs],
                     "seconds": round(time.time() - t1, 1)}
        print(mode, res[mode], flush=True)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
