"""Covariances: parity with pyRiemann / scikit-learn, rank-deficient input, API."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.covariance import shrunk_covariance

warnings.filterwarnings("ignore", category=DeprecationWarning)
from pyriemann.estimation import Covariances as PCovariances  # noqa: E402

from neurodecode.preprocessing.covariance import Covariances, covariances  # noqa: E402


@pytest.fixture
def trials(rng):
    mixing = rng.standard_normal((8, 8))
    return np.einsum("ij,njt->nit", mixing, rng.standard_normal((30, 8, 120)))


@pytest.mark.parametrize("estimator", ["scm", "cov", "lwf", "oas", "sch"])
def test_covariances_match_pyriemann(trials, estimator):
    ours = Covariances(estimator, device="cpu").fit_transform(trials)
    ref = PCovariances(estimator).fit_transform(trials)
    assert ours.dtype == np.float64 and ours.shape == (30, 8, 8)
    np.testing.assert_allclose(ours, ref, atol=1e-8, rtol=1e-10)


def test_fixed_shrinkage_matches_sklearn(trials):
    scm = PCovariances("scm").fit_transform(trials)
    ref = np.stack([shrunk_covariance(c, 0.3) for c in scm])
    np.testing.assert_allclose(covariances(trials, "shrunk", shrinkage=0.3, device="cpu"), ref, atol=1e-12)


def test_shrinkage_estimators_match_at_small_sample_size(rng):
    X = rng.standard_normal((5, 16, 10))  # fewer samples than channels
    for est in ("lwf", "oas"):
        np.testing.assert_allclose(covariances(X, est, device="cpu"),
                                   PCovariances(est).fit_transform(X), atol=1e-10)


def test_trace_norm(trials):
    C = covariances(trials, "oas", trace_norm=True, device="cpu")
    np.testing.assert_allclose(np.trace(C, axis1=1, axis2=2), 1.0, atol=1e-12)


def test_torch_input_gives_torch_output(trials):
    out = covariances(torch.from_numpy(trials), "lwf", device="cpu")
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64


def test_ragged_list_of_trials(trials):
    ragged = [trials[0], trials[1][:, :80], trials[2], trials[3][:, :80]]
    out = covariances(ragged, "oas", device="cpu")
    for i, x in enumerate(ragged):
        np.testing.assert_allclose(out[i], PCovariances("oas").fit_transform(x[None])[0], atol=1e-10)


def _car(X):
    return X - X.mean(axis=1, keepdims=True)


@pytest.mark.parametrize("case", ["car", "short", "flat"])
def test_rank_deficient_scm_raises_and_says_what_to_do(trials, case):
    X = trials.copy()
    if case == "car":
        X = _car(X)
    elif case == "short":
        X = X[:, :, :5]
    else:
        X[7, 2] = 0.0
    with pytest.raises(ValueError, match="rank deficient") as info:
        covariances(X, "scm", device="cpu")
    msg = str(info.value)
    assert "'lwf' or 'oas'" in msg and "regularize" in msg
    if case == "flat":
        assert "1 of 30" in msg and "trial 7: rank 7/8" in msg
    if case == "car":
        assert "rank 7/8" in msg


def test_rank_deficient_regularize_repairs_only_bad_trials(trials):
    X = trials.copy()
    X[4] = _car(X[4:5])[0]
    C = covariances(X, "scm", on_rank_deficient="regularize", reg=1e-4, device="cpu")
    ref = PCovariances("scm").fit_transform(X)
    good = np.arange(30) != 4
    np.testing.assert_allclose(C[good], ref[good], atol=1e-14)
    expected = ref[4] + 1e-4 * np.trace(ref[4]) / 8 * np.eye(8)
    np.testing.assert_allclose(C[4], expected, atol=1e-14)
    ev = np.linalg.eigvalsh(C[4])
    assert ev.min() > 1e-5 * ev.max()
    # and nothing downstream turns into NaN
    from neurodecode.riemann import logm
    assert np.isfinite(logm(C, device="cpu")).all()


def test_shrinkage_handles_common_average_reference(trials):
    C = covariances(_car(trials), "oas", device="cpu")
    assert np.linalg.eigvalsh(C).min() > 0


def test_bad_input_errors(trials):
    with pytest.raises(ValueError, match="unknown covariance estimator"):
        covariances(trials, "mcd", device="cpu")
    with pytest.raises(ValueError, match=r"\(n_trials, n_channels, n_times\)"):
        covariances(trials[0], device="cpu")
    X = trials.copy()
    X[3, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values \(trials \[3\]\)"):
        covariances(X, device="cpu")
    with pytest.raises(ValueError, match="on_rank_deficient"):
        Covariances(on_rank_deficient="ignore").fit(trials)
    with pytest.raises(ValueError, match="shrinkage"):
        Covariances("shrunk", shrinkage=1.5).fit(trials)
    with pytest.raises(ValueError, match="4 channels but Covariances was fitted on 8"):
        Covariances(device="cpu").fit(trials).transform(trials[:, :4])


def test_estimator_api(trials):
    est = Covariances("lwf", device="cpu")
    assert clone(est).get_params() == est.get_params()
    assert est.fit(trials) is est and est.n_channels_ == 8


def test_chunked_centring_and_cholesky_check_equal_the_direct_computation(rng):
    from neurodecode.preprocessing import covariance as cov

    # more trials than one centring chunk, with large DC offsets
    X = rng.standard_normal((150, 6, 50)) + rng.uniform(-1e3, 1e3, (150, 6, 1))
    Xc = X - X.mean(-1, keepdims=True)
    np.testing.assert_allclose(covariances(X, "scm", device="cpu"),
                               Xc @ Xc.transpose(0, 2, 1) / 50, rtol=1e-12, atol=0)
    # the Cholesky pre-test never clears a matrix that the eigenvalue test flags
    C = torch.from_numpy(Xc @ Xc.transpose(0, 2, 1) / 50)
    lam = torch.linalg.eigvalsh(C)
    for k, tol in enumerate(np.geomspace(1e-12, 1.0, 30)):
        C[k] = C[k] + (tol * lam[k, -1] - lam[k, 0]) * torch.eye(6, dtype=C.dtype)  # smallest = tol * largest
    for rank_tol in (1e-10, 1e-6, 1e-3, 1e-2):
        flags, _ = cov.rank_deficient(C, rank_tol)
        cleared = cov._surely_well_conditioned(C, rank_tol)
        assert not bool((cleared & flags).any())
        assert bool(cleared.any())
