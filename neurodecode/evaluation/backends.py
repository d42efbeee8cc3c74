"""Where folds run: in this process, in local processes (joblib), or on Ray.

All three yield ``(task_id, result)`` as folds finish, so the caller commits
each fold to the results store the moment it is done (a killed run loses at
most the folds in flight).

* ``"sequential"`` – one fold after the other in this process.
* ``"joblib"`` – ``n_jobs`` local loky processes. Each worker limits its BLAS
  / OpenMP pools to ``threads_per_job`` threads with threadpoolctl (default
  1), so ``n_jobs`` workers do not oversubscribe the cores.
* ``"ray"`` – one Ray task per fold, each declaring ``num_cpus`` /
  ``num_gpus`` (``ray_resources={"num_cpus": 1, "num_gpus": 0}``). With
  ``ray_address=None`` a local Ray instance with ``n_jobs`` CPUs is started
  (and shut down afterwards) unless Ray is already initialised. To use an
  existing cluster, start it (``ray start --head`` on one machine, ``ray start
  --address=HEAD:6379`` on the others, neurodecode installed on every node)
  and pass ``ray_address="HEAD:6379"`` (or ``"auto"`` on a cluster node, or
  ``"ray://HEAD:10001"`` through Ray Client). X, y and meta are put in the
  object store once and shared by all fold tasks.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BACKENDS", "run_tasks"]

BACKENDS = ("sequential", "joblib", "ray")


def _limited(fn, threads, *args):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return fn(*args)


def run_tasks(fn, tasks, shared, *, backend="sequential", n_jobs=1, threads_per_job=1,
              ray_address=None, ray_resources=None):
    """Run ``fn(*task_args, *shared)`` for each ``(task_id, task_args)``; yield as they finish.

    Parameters
    ----------
    fn : callable
        Importable module-level function (it is pickled to the workers).
    tasks : list of (hashable, tuple)
        Per-fold arguments.
    shared : tuple
        Arguments common to every task (the data); sent once per worker where
        the backend allows it.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: expected one of {BACKENDS}")
    if not tasks:
        return
    if backend == "sequential":
        for task_id, args in tasks:
            yield task_id, fn(*args, *shared)
    elif backend == "joblib":
        yield from _run_joblib(fn, tasks, shared, n_jobs, threads_per_job)
    else:
        yield from _run_ray(fn, tasks, shared, n_jobs, ray_address, ray_resources)


def _run_joblib(fn, tasks, shared, n_jobs, threads_per_job):
    from joblib import Parallel, delayed

    ids = [task_id for task_id, _ in tasks]
    parallel = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")
    results = parallel(
        delayed(_tagged)(i, _limited, fn, threads_per_job, *args, *shared)
        for i, (_, args) in enumerate(tasks)
    )
    for i, result in results:
        yield ids[i], result


def _tagged(i, fn, *args):
    return i, fn(*args)


def _run_ray(fn, tasks, shared, n_jobs, ray_address, ray_resources):
    try:
        import ray
    except ImportError:
        raise ImportError(
            "backend='ray' needs Ray: pip install 'neurodecode[ray]' (or pip install ray)"
        ) from None
    resources = {"num_cpus": 1, "num_gpus": 0}
    resources.update(ray_resources or {})
    started = False
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if ray_address is None:
            # A local instance: workers must import this checkout of neurodecode.
            root = str(Path(__file__).resolve().parents[2])
            path = os.pathsep.join([root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
            kwargs.update(num_cpus=max(int(n_jobs or 1), 1) if (n_jobs or 1) > 0 else None,
                          runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1",
                                                    "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}})
        else:
            kwargs["address"] = ray_address
        ray.init(**kwargs)
        started = True
    try:
        shared_refs = [ray.put(obj) for obj in shared]
        remote = ray.remote(_ray_call).options(**resources)
        pending = {remote.remote(fn, args, *shared_refs): task_id for task_id, args in tasks}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            yield pending.pop(ref), ray.get(ref)
    finally:
        if started:
            ray.shutdown()


def _ray_call(fn, args, *shared):
    # Ray resolves top-level ObjectRef arguments to their values.
    return _limited(fn, 1, *args, *shared)
