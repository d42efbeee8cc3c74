"""Connectivity: parity with nilearn's ConnectivityMeasure (1e-8) on real and simulated data."""

import warnings

import numpy as np
import pytest
from nilearn.connectome import ConnectivityMeasure
from sklearn.base import clone
from sklearn.covariance import EmpiricalCovariance
from sklearn.utils.estimator_checks import parametrize_with_checks

from neurodecode.preprocessing.connectivity import Connectivity, sym_matrix_to_vec
from neurodecode.simulation import simulate_fmri
from tests.conftest import require_dataset

KINDS = ["correlation", "partial correlation", "covariance", "tangent", "precision"]


def _nilearn(kind, train, test, **kw):
    """nilearn on the transposed (T, n_rois) layout."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn warns when its mean hits max_iter
        ref = ConnectivityMeasure(kind=kind, vectorize=True, **kw).fit([x.T for x in train])
        return ref.transform([x.T for x in test])


def _assert_parity(train, test, kinds=KINDS, **kw):
    for kind in kinds:
        for dd in (True, False):
            ours = Connectivity(kind=kind, vectorize=True, discard_diagonal=dd, **kw).fit(train).transform(test)
            ref = _nilearn(kind, train, test, discard_diagonal=dd, **kw)
            assert ours.shape == ref.shape
            np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-8 * max(1.0, np.abs(ref).max()),
                                       err_msg=f"kind={kind}, discard_diagonal={dd}")


def test_parity_simulated_ragged():
    t = simulate_fmri(n_subjects=12, n_rois=8, n_times=(40, 70), random_state=0)
    _assert_parity(t.X[:9], t.X)


def test_parity_custom_estimator_and_array_input():
    t = simulate_fmri(n_subjects=6, n_rois=6, n_times=50, random_state=1)
    assert isinstance(t.X, np.ndarray)
    _assert_parity(t.X, t.X, kinds=["covariance", "correlation", "tangent"], cov_estimator=EmpiricalCovariance())


def _npz_series(path, idx, transpose=True):
    d = np.load(path)
    X, off = d["timeseries"], d["offsets"]
    return [X[off[i]:off[i + 1]].astype(np.float64).T for i in idx]


def test_parity_development_fmri():
    root = require_dataset("development_fmri", "development_fmri_basc064_timeseries.npz")
    series = _npz_series(root / "development_fmri_basc064_timeseries.npz", range(0, 155, 8))
    assert series[0].shape == (64, 168)
    _assert_parity(series[:-4], series)


def test_parity_abide_with_zero_rois():
    root = require_dataset("abide_pcp", "abide_pcp_cpac_filt_noglobal_rois_ho.npz")
    path = root / "abide_pcp_cpac_filt_noglobal_rois_ho.npz"
    d = np.load(path)
    ts, off = d["timeseries"], d["offsets"]
    zero_col = [i for i in range(0, 871, 7) if (np.abs(ts[off[i]:off[i + 1]]).max(0) == 0).any()][:2]
    idx = sorted(set(list(range(0, 871, 97)) + zero_col))  # several sites, ragged lengths, all-zero ROIs
    series = _npz_series(path, idx)
    assert {s.shape[0] for s in series} == {111} and len({s.shape[1] for s in series}) > 1
    _assert_parity(series[:-3], series)


def test_matrix_output_and_mean():
    t = simulate_fmri(n_subjects=5, n_rois=6, random_state=0)
    conn = Connectivity(kind="correlation", vectorize=False).fit(t.X)
    mats = conn.transform(t.X)
    assert mats.shape == (5, 6, 6)
    np.testing.assert_allclose(np.diagonal(mats, axis1=1, axis2=2), 1.0)
    np.testing.assert_allclose(conn.mean_, mats.mean(0), atol=1e-12)
    vec = sym_matrix_to_vec(mats, discard_diagonal=True)
    assert vec.shape == (5, 15)


def test_tangent_is_fitted_on_training_scans_only():
    t = simulate_fmri(n_subjects=10, n_rois=6, random_state=0)
    a = Connectivity(kind="tangent").fit(t.X[:5]).transform(t.X[5:])
    b = Connectivity(kind="tangent").fit(t.X).transform(t.X[5:])
    assert not np.allclose(a, b)


def test_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="kind"):
        Connectivity(kind="coherence").fit([rng.standard_normal((3, 20))])
    with pytest.raises(ValueError, match=r"X\[1\] has 4 ROIs"):
        Connectivity().fit([rng.standard_normal((3, 20)), rng.standard_normal((4, 20))])
    with pytest.raises(ValueError, match="NaN"):
        Connectivity().fit([np.full((3, 20), np.nan)])
    with pytest.raises(ValueError, match="expected \\(n_scans, n_rois, n_times\\)"):
        Connectivity().fit(rng.standard_normal((3, 20)))
    conn = Connectivity().fit([rng.standard_normal((3, 20))])
    with pytest.raises(ValueError, match="fitted on 3"):
        conn.transform([rng.standard_normal((5, 20))])


def test_clone_and_params():
    c = Connectivity(kind="tangent", discard_diagonal=True)
    c2 = clone(c)
    assert c2.get_params()["kind"] == "tangent" and c2.discard_diagonal


# Connectivity reads (n_scans, n_rois, n_times) or ragged lists: the generic checks
# that feed 2-D (n_samples, n_features) tables cannot apply to it.
_TWO_D_REASON = "input is (n_scans, n_rois, n_times) or a ragged list; 2-D tables are rejected by design"


# Every one of these feeds a 2-D table and gets our shape error first (checked by hand);
# the properties they test (NaN rejection, fit returns self, clone…) are tested above on 3-D input.
_EXPECTED_FAILED = {name: _TWO_D_REASON for name in [
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit",
    "check_estimators_dtypes",
    "check_complex_data",
    "check_dtype_object",
    "check_estimators_empty_data_messages",
    "check_pipeline_consistency",
    "check_estimators_nan_inf",
    "check_estimator_sparse_tag",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
]}


@parametrize_with_checks([Connectivity()], expected_failed_checks=lambda est: _EXPECTED_FAILED)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_fit_returns_self_and_pickles():
    import pickle

    t = simulate_fmri(n_subjects=4, n_rois=6, random_state=0)
    c = Connectivity(kind="tangent")
    assert c.fit(t.X) is c
    c2 = pickle.loads(pickle.dumps(c))
    np.testing.assert_array_equal(c.transform(t.X), c2.transform(t.X))
