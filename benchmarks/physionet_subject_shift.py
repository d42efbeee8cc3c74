"""How far apart are the PhysionetMI subjects, next to the noise of a subject mean?

For subjects 1-15 (MOABB ``LeftRightImagery`` epochs, OAS covariances) it prints,
per subject: the dispersion (mean squared Riemannian distance of its trials to
its Riemannian mean), the distance between the means of two random halves of
its trials (how well ~22 trials fix a subject mean), the distance between its
two class means, and the distance of its mean to the grand mean of the subject
means. Used to explain the leave-subject-out re-centering results in
``docs/benchmarks.md``. About 20 s of CPU.

Run::

    MNE_DATA=../shared/datasets/mne_data MOABB_DOWNLOAD_PROVIDER=upstream \\
        python benchmarks/physionet_subject_shift.py
"""

from __future__ import annotations

import real_common as rc  # first: sets the thread variables before numpy is imported

import numpy as np  # noqa: E402


def main():
    rc.limit_threads()
    from neurodecode.io.moabb_data import load_physionet_mi
    from neurodecode.preprocessing.covariance import covariances
    from neurodecode.riemann import distance_riemann, mean_riemann

    t = load_physionet_mi(subjects=list(range(1, 16)))
    C = covariances(np.asarray(t.X, dtype=np.float64), "oas", device="cpu")
    subj, y = t.meta["subject"].to_numpy(), np.asarray(t.y)
    rng = np.random.default_rng(0)
    means, rows = {}, []
    for s in np.unique(subj):
        Cs, ys = C[subj == s], y[subj == s]
        means[s] = mean_riemann(Cs, device="cpu")
        disp = float(np.mean(distance_riemann(Cs, means[s], squared=True, device="cpu")))
        perm = rng.permutation(len(Cs))
        a, b = perm[: len(Cs) // 2], perm[len(Cs) // 2:]
        half = float(distance_riemann(mean_riemann(Cs[a], device="cpu"), mean_riemann(Cs[b], device="cpu"),
                                      device="cpu"))
        c0, c1 = np.unique(ys)
        cls = float(distance_riemann(mean_riemann(Cs[ys == c0], device="cpu"),
                                     mean_riemann(Cs[ys == c1], device="cpu"), device="cpu"))
        rows.append([s, disp, half, cls])
    grand = mean_riemann(np.stack(list(means.values())), device="cpu")
    for r in rows:
        r.append(float(distance_riemann(means[r[0]], grand, device="cpu")))
    print("| subject | dispersion | split-half mean distance | class-mean distance | to grand mean |")
    print("|---|---|---|---|---|")
    for s, disp, half, cls, g in rows:
        print(f"| {s} | {disp:.2f} | {half:.2f} | {cls:.2f} | {g:.2f} |")
    arr = np.array([r[1:] for r in rows])
    print(f"\nmeans over subjects: dispersion {arr[:, 0].mean():.2f} (RMS distance "
          f"{np.sqrt(arr[:, 0]).mean():.2f}), split-half {arr[:, 1].mean():.2f}, class-mean "
          f"{arr[:, 2].mean():.2f}, subject mean to grand mean {arr[:, 3].mean():.2f}")


if __name__ == "__main__":
    main()
