"""``neurodecode pretrain`` and ``neurodecode finetune``: thin wrappers over `foundation`.

Wired into `neurodecode.cli` by appending `add_commands` to its extra commands.

Examples (shell)::

    neurodecode pretrain --dataset dog1-seizure --head mae --out runs/mae-dog1 --epochs 30
    neurodecode pretrain --dataset sim-nsd --head cross-subject --exclude-subject subj04 --out runs/cs
    neurodecode finetune runs/cs --dataset sim-nsd --subject subj04 --n-trials 10
"""

from __future__ import annotations

import json

__all__ = ["add_commands"]


def _load(args):
    """Trials (list) from ``--trials FILE.h5`` or ``--dataset NAME``."""
    from ..trials import Trials

    if args.trials:
        out = [Trials.load(p) for p in args.trials]
    elif args.dataset:
        from ..registry import load_dataset

        kwargs = json.loads(args.dataset_kwargs) if args.dataset_kwargs else {}
        data = load_dataset(args.dataset, **kwargs)
        out = list(data.values()) if isinstance(data, dict) else [data]
    else:
        raise ValueError("give --dataset NAME or --trials FILE.h5")
    return out


def _cmd_pretrain(args) -> int:
    import numpy as np

    from .foundation import pretrain

    trials = _load(args)
    if args.exclude_subject:
        keep = []
        for t in trials:
            mask = ~t.meta["subject"].astype(str).isin(args.exclude_subject).to_numpy()
            if mask.any():
                keep.append(t[np.flatnonzero(mask)])
        trials = keep
    model = json.loads(args.model_json) if args.model_json else {}
    trainer = json.loads(args.trainer_json) if args.trainer_json else {}
    if args.epochs is not None:
        trainer["max_epochs"] = args.epochs
    if args.mask_ratio is not None:
        model["mask_ratio"] = args.mask_ratio
    trainer.setdefault("progress", True)
    out = pretrain(trials, head=args.head, out_dir=args.out, model=model, trainer=trainer,
                   group_column=args.group_column, random_state=args.seed)
    card = json.loads((out / "model_card.json").read_text())
    print(f"checkpoint: {out}")
    print(f"subjects: {card['n_subjects']}  scores: {card['scores']}")
    return 0


def _cmd_finetune(args) -> int:
    import numpy as np

    from .foundation import finetune

    trials = _load(args)
    if args.subject:
        trials = [t[np.flatnonzero(t.meta["subject"].astype(str).isin(args.subject).to_numpy())]
                  for t in trials if t.meta["subject"].astype(str).isin(args.subject).any()]
    if len(trials) != 1:
        raise ValueError(f"finetune needs the trials of one data set; got {len(trials)} "
                         "(use --subject to pick the new subject)")
    t = trials[0]
    params = json.loads(args.params_json) if args.params_json else {}
    est = finetune(args.checkpoint, t, n_trials=args.n_trials, mode=args.mode, epochs=args.epochs,
                   random_state=args.seed, out_dir=args.out, **params)
    rest = np.setdiff1d(np.arange(t.n_trials), est.finetune_index_)
    print(f"fine-tuned on {len(est.finetune_index_)} trials ({args.n_trials} per class)")
    if len(rest):
        X = [t.X[i] for i in rest] if isinstance(t.X, list) else np.asarray(t.X)[rest]
        meta = t.meta.iloc[rest].reset_index(drop=True)
        acc = float((est.predict(X, meta=meta) == np.asarray(t.y)[rest]).mean())
        print(f"accuracy on the other {len(rest)} trials: {acc:.4f}")
    if args.out:
        print(f"saved: {args.out}")
    return 0


def _data_args(p):
    p.add_argument("--dataset", help="registered dataset name (neurodecode datasets)")
    p.add_argument("--dataset-kwargs", help="JSON options of the dataset loader")
    p.add_argument("--trials", nargs="+", help="Trials HDF5 file(s) instead of --dataset")
    p.add_argument("--seed", type=int, default=0)


def add_commands(subparsers):
    """Add ``pretrain`` and ``finetune`` to the CLI's sub-command parsers."""
    p = subparsers.add_parser("pretrain", help="pretrain a torch head and write a checkpoint + model card")
    _data_args(p)
    p.add_argument("--head", choices=["mae", "cross-subject"], default="mae")
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--epochs", type=int, help="maximum epochs")
    p.add_argument("--mask-ratio", type=float, help="MAE masking ratio")
    p.add_argument("--exclude-subject", nargs="+", help="subjects kept out of pretraining")
    p.add_argument("--group-column", default="subject", help="meta column of the validation split")
    p.add_argument("--model-json", help="JSON model options")
    p.add_argument("--trainer-json", help="JSON TrainerConfig fields")
    p.set_defaults(func=_cmd_pretrain)

    p = subparsers.add_parser("finetune", help="fine-tune a checkpoint on a new subject's trials")
    p.add_argument("checkpoint", help="directory written by neurodecode pretrain")
    _data_args(p)
    p.add_argument("--subject", nargs="+", help="the new subject(s) to fine-tune on")
    p.add_argument("--n-trials", type=int, help="labelled trials per class (default: all)")
    p.add_argument("--mode", choices=["finetune", "probe"], default="finetune", help="MAE only")
    p.add_argument("--epochs", type=int, help="fine-tuning epochs")
    p.add_argument("--out", help="save the fine-tuned model here (cross-subject)")
    p.add_argument("--params-json", help="JSON estimator parameters")
    p.set_defaults(func=_cmd_finetune)
