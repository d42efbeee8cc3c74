"""Muse visual cueing study (eeg-notebooks, 4 channels): leave-one-subject-out, ROC-AUC.

Two tasks, as defined in ``eeg_notebooks_muse/SOURCE.md`` (1-30 Hz band-pass,
256 Hz, 1-s epochs, OAS covariances, 4 channels), loaded with
`neurodecode.io.muse.load_muse_cueing`:

* ``cue``: cue left vs cue right, 0.2-1.2 s after the cue. SOURCE.md's
  pyRiemann reference is **at chance** (0.487 ± 0.068, 66 subjects; the issue's
  0.519 is superseded by SOURCE.md);
* ``target``: 0-1 s after a target (11/12/21/22) vs the 1 s before the cue
  (reference 0.587 ± 0.129; the issue quotes 0.562).

Pipelines: ``cov-ts-lr``, ``recentered-cov-ts-lr`` and the ERP-aware
``xdawncov-ts-lr`` (Xdawn prototype covariances, 2 filters per class, OAS,
as in SOURCE.md's reference; the batched
`neurodecode.preprocessing.xdawn.XdawnCovariances`) on both tasks; paired
tests between every pair.
Chance is reported with the bounds of `neurodecode.evaluation.statistics`:
the one-sided 95 % bound of the pooled held-out AUC (normal approximation to
Mann-Whitney, ``chance_bound``) and a binomial sign test on the number of
held-out subjects above 0.5. A subject with a single class (subject1311) is
kept for training and gives no test fold, as in the reference.

Long runs can be split into chunks of test subjects (``--test-subjects``):
every chunk still trains on all loaded subjects, so the store keys are those
of the full run and the chunks add up to it; ``--report-only`` then reports
everything from the store.

Run::

    python benchmarks/real_muse.py              # both tasks, all subjects
    python benchmarks/real_muse.py --quick      # 8 subjects
    python benchmarks/real_muse.py --tasks target --pipelines xdawncov-ts-lr --test-subjects 101,102
    python benchmarks/real_muse.py --report-only  # tables from the store
"""

from __future__ import annotations

import real_common as rc  # first: sets the thread variables before numpy is imported

import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

TASKS = {"cue": ["cov-ts-lr", "recentered-cov-ts-lr", "xdawncov-ts-lr", "recentered-xdawncov-ts-lr"],
         "target": ["cov-ts-lr", "recentered-cov-ts-lr", "xdawncov-ts-lr", "recentered-xdawncov-ts-lr"]}
SOURCE_REF = {"cue": "0.487 ± 0.068 (Cov(oas)+TS+LR, 66 subjects; at chance)",
              "target": "0.587 ± 0.129 (Cov(oas)+TS+LR), 0.586 ± 0.124 (XdawnCovariances+TS+LR)"}
QUICK_SUBJECTS = [101, 102, 103, 104, 105, 106, 108, 109]


def main(argv=None):
    p = rc.base_parser(__doc__, "real_muse")
    p.add_argument("--tasks", default="cue,target")
    p.add_argument("--subjects", default=None, help="comma-separated subject numbers (default: all)")
    p.add_argument("--pipelines", default=None,
                   help="comma-separated subset of each task's pipelines (default: all of them)")
    p.add_argument("--test-subjects", default=None,
                   help="run only the leave-subject-out folds of these subjects (comma-separated numbers), "
                        "still training on every loaded subject: the store keys do not change, so chunks "
                        "of test subjects add up to the full run")
    args = p.parse_args(argv)
    rc.limit_threads()

    from neurodecode.io.muse import load_muse_cueing

    subjects = ([int(s) for s in args.subjects.split(",")] if args.subjects
                else (QUICK_SUBJECTS if args.quick else None))
    test_subjects = ([f"subject{int(s)}" for s in args.test_subjects.split(",")]
                     if args.test_subjects else None)
    report = rc.Report("real_muse", args)
    for task in args.tasks.split(","):
        t0 = time.perf_counter()
        trials = load_muse_cueing(task, subjects=subjects)
        load_s = time.perf_counter() - t0
        report.section(f"{task}: data", f"X {tuple(np.shape(trials.X))}, {trials.meta['subject'].nunique()} "
                       f"subjects, labels {dict(pd.Series(trials.y).value_counts())}; load {load_s:.1f} s. "
                       f"SOURCE.md reference: {SOURCE_REF[task]}.")
        names = TASKS[task]
        if args.pipelines:
            wanted = args.pipelines.split(",")
            names = [n for n in names if n in wanted]
            if not names:
                continue
        pipes, missing = rc.resolve_pipelines(names)
        if missing:
            report.section(f"{task}: skipped", f"not registered in this checkout: {', '.join(missing)}")
        df, wall = rc.run_eval(pipes, trials, rc.loso_scorable(test_subjects), args, scoring="roc_auc",
                               datasets_name=f"muse-{task}")
        summary = rc.summarize(df)
        report.section(f"{task}: held-out ROC-AUC (mean ± sd over subjects; chance bound of the pooled AUC)",
                       rc.fmt_table(summary, rc.SUMMARY_COLS) + f"\n\nwall {wall:.1f} s")
        pairs = rc.paired(df)
        report.section(f"{task}: paired tests", rc.fmt_table(pairs, rc.PAIRED_COLS))
        report.csv(df, task)
        report.csv(summary, f"{task}_summary")
        if not pairs.empty:
            report.csv(pairs, f"{task}_paired")
    report.finish()


if __name__ == "__main__":
    main()
