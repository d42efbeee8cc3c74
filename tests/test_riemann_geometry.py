"""Parity of neurodecode.riemann with pyRiemann 0.12 (float64, 1e-8)."""

import warnings

import numpy as np
import pytest
import torch

warnings.filterwarnings("ignore", category=DeprecationWarning)
from pyriemann.geometry import base as pbase  # noqa: E402
from pyriemann.geometry import distance as pdist  # noqa: E402
from pyriemann.geometry import mean as pmean  # noqa: E402
from pyriemann.geometry import tangentspace as pts  # noqa: E402

from neurodecode import riemann as nr  # noqa: E402

ATOL = 1e-8


def make_spd(rng, n_matrices=40, n=8, scale=1.0):
    A = rng.standard_normal((n_matrices, n, 3 * n))
    return scale * A @ A.transpose(0, 2, 1) / (3 * n) + 1e-3 * np.eye(n)


@pytest.fixture
def spd(rng):
    return make_spd(rng)


@pytest.mark.parametrize("name", ["sqrtm", "invsqrtm", "logm", "expm"])
def test_matrix_functions_match_pyriemann(spd, name):
    ours = getattr(nr, name)(spd, device="cpu")
    ref = getattr(pbase, name)(spd)
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, ref, atol=ATOL, rtol=0)


def test_powm_matches_pyriemann(spd):
    np.testing.assert_allclose(nr.powm(spd, 0.3, device="cpu"), pbase.powm(spd, 0.3), atol=ATOL)


def test_torch_in_torch_out(spd):
    T = torch.from_numpy(spd)
    out = nr.logm(T)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), pbase.logm(spd), atol=ATOL)


def test_sqrtm_squares_back(spd):
    S = nr.sqrtm(spd, device="cpu")
    np.testing.assert_allclose(S @ S, spd, atol=1e-10)
    np.testing.assert_allclose(nr.expm(nr.logm(spd, device="cpu"), device="cpu"), spd, atol=1e-10)


def test_non_spd_is_refused_with_a_clear_error(spd):
    bad = spd.copy()
    bad[3] = -np.eye(spd.shape[-1])
    with pytest.raises(ValueError, match="not positive definite.*\\[3\\]"):
        nr.logm(bad, device="cpu")
    bad[3, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        nr.sqrtm(bad, device="cpu")
    with pytest.raises(ValueError, match="square"):
        nr.logm(np.ones((3, 4)), device="cpu")


@pytest.mark.parametrize("weighted", [False, True])
def test_means_match_pyriemann(spd, rng, weighted):
    w = rng.uniform(0.5, 2.0, len(spd)) if weighted else None
    np.testing.assert_allclose(nr.mean_euclid(spd, w, device="cpu"),
                               pmean.mean_euclid(spd, sample_weight=w), atol=ATOL)
    np.testing.assert_allclose(nr.mean_logeuclid(spd, w, device="cpu"),
                               pmean.mean_logeuclid(spd, sample_weight=w), atol=ATOL)
    np.testing.assert_allclose(nr.mean_riemann(spd, sample_weight=w, device="cpu"),
                               pmean.mean_riemann(spd, sample_weight=w), atol=ATOL)


def test_mean_riemann_tolerance_and_maxiter_follow_pyriemann(spd):
    for kw in ({"tol": 1e-3}, {"maxiter": 2}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = nr.mean_riemann(spd, device="cpu", **kw)
            ref = pmean.mean_riemann(spd, **kw)
        np.testing.assert_allclose(ours, ref, atol=ATOL)
    with pytest.warns(UserWarning, match="Convergence"):
        nr.mean_riemann(spd, maxiter=1, device="cpu")


def test_mean_riemann_of_commuting_matrices_is_geometric_mean():
    X = np.stack([np.diag([1.0, 4.0]), np.diag([4.0, 1.0])])
    np.testing.assert_allclose(nr.mean_riemann(X, device="cpu"), 2 * np.eye(2), atol=1e-10)


def test_mean_of_empty_set_is_refused():
    with pytest.raises(ValueError, match="no matrices"):
        nr.mean_riemann(np.zeros((0, 3, 3)), device="cpu")


@pytest.mark.parametrize("metric", ["riemann", "logeuclid", "euclid"])
def test_distances_match_pyriemann(spd, metric):
    A, B = spd[:20], spd[20:]
    ours = nr.distance(A, B, metric=metric, device="cpu")
    ref = pdist.distance(A, B, metric=metric)
    np.testing.assert_allclose(ours, ref, atol=ATOL)
    # stack against one reference: pyRiemann's (n, 1) layout
    ours = nr.distance(A, B[0], metric=metric, device="cpu")
    ref = pdist.distance(A, B[0], metric=metric)
    assert ours.shape == ref.shape == (20, 1)
    np.testing.assert_allclose(ours, ref, atol=ATOL)


def test_distance_riemann_is_affine_invariant(spd, rng):
    W = rng.standard_normal((spd.shape[-1],) * 2)
    d1 = nr.distance_riemann(spd[:5], spd[5:10], device="cpu")
    d2 = nr.distance_riemann(W @ spd[:5] @ W.T, W @ spd[5:10] @ W.T, device="cpu")
    np.testing.assert_allclose(d1, d2, rtol=1e-7)
    np.testing.assert_allclose(nr.distance_riemann(spd[:5], spd[5:10], squared=True, device="cpu"),
                               d1 ** 2, rtol=1e-12)


def test_upper_unupper_match_pyriemann(spd):
    L = pbase.logm(spd)
    T = nr.upper(L, device="cpu")
    np.testing.assert_allclose(T, pts.upper(L), atol=1e-14)
    np.testing.assert_allclose(nr.unupper(T, device="cpu"), L, atol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(T, axis=1), np.linalg.norm(L, axis=(1, 2)), rtol=1e-12)


@pytest.mark.parametrize("metric", ["riemann", "logeuclid", "euclid"])
def test_tangent_space_matches_pyriemann(spd, metric):
    Cref = pmean.mean_riemann(spd)
    ours = nr.tangent_space(spd, Cref, metric=metric, device="cpu")
    ref = pts.tangent_space(spd, Cref, metric=metric)
    np.testing.assert_allclose(ours, ref, atol=ATOL)
    back = nr.untangent_space(ours, Cref, metric=metric, device="cpu")
    np.testing.assert_allclose(back, pts.untangent_space(ref, Cref, metric=metric), atol=ATOL)
    np.testing.assert_allclose(back, spd, atol=1e-8)


def test_tangent_space_checks_sizes(spd):
    with pytest.raises(ValueError, match="Cref"):
        nr.tangent_space(spd, np.eye(3), device="cpu")
    with pytest.raises(ValueError, match="unknown tangent-space metric"):
        nr.tangent_space(spd, np.eye(spd.shape[-1]), metric="wasserstein", device="cpu")


# ------------------------------------------------ Newton solver of the estimators
@pytest.mark.parametrize("weighted", [False, True])
def test_newton_mean_reaches_the_fixed_point_in_few_passes(spd, rng, weighted, monkeypatch):
    from neurodecode.riemann import mean as nm

    w = rng.uniform(0.5, 2.0, len(spd)) if weighted else None
    X = torch.from_numpy(spd)
    wt = nm._weights(w, len(spd), X)
    passes = []
    real = nm._whitened_eigh
    monkeypatch.setattr(nm, "_whitened_eigh", lambda *a: passes.append(1) or real(*a))
    M, logs = nm._mean_riemann_newton(X, wt, return_logs=True)
    n_passes = len(passes)
    monkeypatch.setattr(nm, "_whitened_eigh", real)
    # the tightly converged fixed point of pyRiemann's own iteration
    exact = nm._mean_riemann(X, wt, tol=1e-14, maxiter=500)
    # gradient norm <= 1e-10 at M: M is that close to the fixed point
    np.testing.assert_allclose(M.numpy(), exact.numpy(), atol=1e-10, rtol=0)
    np.testing.assert_allclose(M.numpy(), pmean.mean_riemann(spd, sample_weight=w), atol=ATOL, rtol=0)
    assert n_passes <= 5, n_passes  # the fixed-point iteration needs ~9 for a 100x looser test
    # the returned logs are the log map at the returned mean, and their weighted sum is ~0
    np.testing.assert_allclose(logs.numpy(), pts.log_map_riemann(spd, M.numpy()), atol=1e-11, rtol=0)
    assert np.linalg.norm(np.tensordot(wt.numpy(), logs.numpy(), axes=1)) <= 1e-10


def test_newton_mean_refuses_non_spd(spd):
    from neurodecode.riemann import mean as nm

    bad = spd.copy()
    bad[2] = -np.eye(spd.shape[-1])
    with pytest.raises(ValueError, match="positive definite"):
        nm.tensor_mean(torch.from_numpy(bad), "riemann", solver="newton")
    with pytest.raises(ValueError, match="solver"):
        nm.tensor_mean(torch.from_numpy(spd), "riemann", solver="bfgs")


# ------------------------------------------------ eigendecompositions over CPU threads
@pytest.mark.parametrize("n_threads", [2, 3])
def test_threaded_eigh_equals_one_thread(rng, n_threads):
    from neurodecode.riemann import base as nb

    A = rng.standard_normal((5, 41, 40, 60))  # 205 40x40 matrices in a 2-level batch, uneven chunks
    C = torch.from_numpy(A @ A.transpose(0, 1, 3, 2))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        w1, V1 = nb.eigh(C)
        e1 = nb.eigvalsh(C)
        torch.set_num_threads(n_threads)
        w2, V2 = nb.eigh(C)
        e2 = nb.eigvalsh(C)
        small = nb.eigvalsh(C[0, :3])  # too little work to split: the plain call
        chunks = []
        nb._threaded_over_batch(lambda x: chunks.append(x.shape[0]) or torch.linalg.eigvalsh(x), C)
    finally:
        torch.set_num_threads(before)
    assert w2.shape == (5, 41, 40) and V2.shape == (5, 41, 40, 40)
    # each matrix goes through the same LAPACK call: bit-identical, whatever the split
    assert torch.equal(w1, w2) and torch.equal(V1, V2) and torch.equal(e1, e2)
    assert torch.equal(small, e1[0, :3])
    assert len(chunks) == n_threads and sum(chunks) == 205  # the stack really was split
