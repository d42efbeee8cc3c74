"""Loading from the raw files vs from the neurodecode HDF5 cache.

Times `load_physionet_mi(subjects=[1, 2, 3])` (MOABB LeftRightImagery on the
local EDF files, offline) with ``use_cache=False`` and then from a filled
cache, each the median of 3 runs in this process, and prints the ratio.
MOABB is imported before timing, so the raw numbers leave out its import
(seconds), which a cache hit never pays: the real gain for a fresh process is
larger than the printed ratio. ``--muse`` also times the Muse cueing study
(all 131 recordings, task "cue").

Run from the repository root::

    OMP_NUM_THREADS=1 MNE_DATA=../shared/datasets/mne_data python benchmarks/cache_speed.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a script: import this checkout's neurodecode, not an installed one.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def median_time(fn, repeats=3):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def compare(label, load, repeats):
    raw_s, raw_all, raw = median_time(lambda: load(use_cache=False), repeats)
    load(use_cache=True)  # fill the cache
    cache_s, cache_all, cached = median_time(lambda: load(use_cache=True), repeats)
    assert (cached.X == raw.X).all() and (cached.y == raw.y).all(), "cache differs from raw load"
    print(f"{label}: {raw.n_trials} trials {raw.X.shape[1:]}")
    print(f"  raw   median {raw_s:7.3f} s  (runs: {', '.join(f'{t:.3f}' for t in raw_all)})")
    print(f"  cache median {cache_s:7.3f} s  (runs: {', '.join(f'{t:.3f}' for t in cache_all)})")
    print(f"  ratio raw / cache = {raw_s / cache_s:.1f}x")
    return raw_s / cache_s


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--muse", action="store_true", help="also time the Muse cueing study")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="neurodecode-cache-bench-") as cache:
        os.environ["NEURODECODE_CACHE"] = cache
        os.environ.pop("NEURODECODE_NO_CACHE", None)
        import moabb.datasets  # noqa: F401  (import cost kept out of the raw timing)
        import moabb.paradigms  # noqa: F401

        from neurodecode.io.moabb_data import load_physionet_mi

        compare("PhysionetMI subjects 1-3 (LeftRightImagery)",
                lambda use_cache: load_physionet_mi(subjects=[1, 2, 3], use_cache=use_cache), args.repeats)
        if args.muse:
            from neurodecode.io.muse import load_muse_cueing

            compare("Muse cueing, all recordings, task='cue'",
                    lambda use_cache: load_muse_cueing("cue", use_cache=use_cache), args.repeats)


if __name__ == "__main__":
    main()
