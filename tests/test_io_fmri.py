"""fMRI loaders: ABIDE PCP (.1D and npz), development fMRI, NIfTI through nilearn maskers, NSD-style HDF5.

Counts come from abide_pcp/SOURCE.md and development_fmri/SOURCE.md.
"""

from __future__ import annotations

import collections

import numpy as np
import pandas as pd
import pytest

from conftest import require_dataset
from neurodecode.errors import DataError
from neurodecode.io.fmri_roi import (
    ABIDE_SITE_TR,
    load_abide_pcp,
    load_afni_1d,
    load_development_fmri,
    read_afni_1d,
)

# SITE_ID: (n, autism, control, min length, max length) from abide_pcp/SOURCE.md
ABIDE_SITES = {
    "CALTECH": (15, 5, 10, 146, 146), "CMU": (11, 6, 5, 202, 316), "KKI": (33, 12, 21, 124, 152),
    "LEUVEN_1": (28, 14, 14, 246, 246), "LEUVEN_2": (28, 12, 16, 246, 246),
    "MAX_MUN": (46, 19, 27, 116, 196), "NYU": (172, 74, 98, 176, 176), "OHSU": (25, 12, 13, 78, 78),
    "OLIN": (28, 14, 14, 206, 206), "PITT": (50, 24, 26, 196, 196), "SBL": (26, 12, 14, 196, 196),
    "SDSU": (27, 8, 19, 176, 176), "STANFORD": (25, 12, 13, 176, 236), "TRINITY": (44, 19, 25, 146, 146),
    "UCLA_1": (64, 37, 27, 116, 116), "UCLA_2": (21, 11, 10, 116, 116), "UM_1": (86, 34, 52, 296, 296),
    "UM_2": (34, 13, 21, 296, 296), "USM": (67, 43, 24, 232, 236), "YALE": (41, 22, 19, 196, 196),
}


@pytest.fixture(scope="module")
def abide_dir():
    return require_dataset("abide_pcp", "abide_pcp_cpac_filt_noglobal_rois_ho.npz")


@pytest.fixture(scope="module")
def abide(abide_dir):
    return load_abide_pcp()


# ------------------------------------------------------------------ ABIDE
def test_abide_counts(abide):
    t = abide
    assert t.n_trials == 871 and t.modality == "fmri" and t.is_ragged
    assert t.n_channels == 111 and all(x.shape[0] == 111 for x in t.X)
    assert t.X[0].dtype == np.float32
    assert len(set(t.meta["subject"])) == 871
    assert collections.Counter(t.y.tolist()) == {1: 403, 0: 468}
    assert (t.meta.loc[t.y == 1, "diagnosis"] == "autism").all()
    assert t.meta["site"].nunique() == 20
    assert int(t.meta["n_times"].min()) == 78 and int(t.meta["n_times"].max()) == 316
    assert int(t.meta["n_times"].sum()) == 168434
    assert collections.Counter(t.meta["sex"]) == {"M": 727, "F": 144}
    assert t.meta["age"].min() == pytest.approx(6.47) and t.meta["age"].max() == pytest.approx(58)
    assert np.isnan(t.sfreq)  # TR differs across sites
    for site, (n, asd, tdc, lo, hi) in ABIDE_SITES.items():
        m = t.meta[t.meta["site"] == site]
        assert len(m) == n, site
        assert (m["dx_group"] == 1).sum() == asd and (m["dx_group"] == 2).sum() == tdc, site
        assert m["n_times"].min() == lo and m["n_times"].max() == hi, site
        assert (m["tr"] == ABIDE_SITE_TR[site]).all()


def test_abide_meta_matches_subject_table(abide, abide_dir):
    ref = pd.read_csv(abide_dir / "subjects_871.csv")
    m = abide.meta
    assert m["FILE_ID"].tolist() == ref["FILE_ID"].tolist()
    np.testing.assert_array_equal(m["SUB_ID"], ref["SUB_ID"])
    assert m["subject"].tolist() == ref["SUB_ID"].astype(str).tolist()
    np.testing.assert_array_equal(m["site"], ref["SITE_ID"])
    np.testing.assert_allclose(m["age"], ref["AGE_AT_SCAN"])
    np.testing.assert_allclose(m["mean_fd"], ref["func_mean_fd"])
    np.testing.assert_array_equal(m["dx_group"], ref["DX_GROUP"])
    np.testing.assert_array_equal(m["sex"], np.where(ref["SEX"] == 1, "M", "F"))
    np.testing.assert_array_equal(m["n_times"], ref["n_timepoints"])


def test_abide_select_site_and_subjects(abide):
    nyu = load_abide_pcp(sites=["nyu"], dtype=np.float64)
    assert nyu.n_trials == 172 and nyu.sfreq == pytest.approx(0.5) and nyu.X[0].dtype == np.float64
    full = abide.select(site="NYU")
    for a, b in zip(nyu.X[:5], full.X[:5]):
        np.testing.assert_array_equal(a, b.astype(np.float64))
    two = load_abide_pcp(subjects=[50003, "50004"])
    assert two.meta["FILE_ID"].tolist() == ["Pitt_0050003", "Pitt_0050004"]
    assert two.sfreq == pytest.approx(1 / 1.5)
    with pytest.raises(ValueError, match="unknown site"):
        load_abide_pcp(sites=["MARS"])
    with pytest.raises(ValueError, match="SUB_ID"):
        load_abide_pcp(subjects=[1])


@pytest.mark.parametrize("file_id", ["OHSU_0050160", "UCLA_1_0051237", "Caltech_0051464"])
def test_afni_1d_matches_npz(abide, abide_dir, file_id):
    series, names = read_afni_1d(abide_dir / "original_1D" / f"{file_id}_rois_ho.1D")
    assert names == abide.ch_names and names[:3] == ["10", "11", "12"] and len(names) == 111
    i = abide.meta.index[abide.meta["FILE_ID"] == file_id][0]
    packed = abide.X[i].astype(np.float64)
    assert series.shape == packed.shape
    # float16 keeps 11 significant bits: error <= 4.8e-4 of the subject's largest |value|
    assert np.abs(series - packed).max() <= 4.9e-4 * np.abs(series).max()
    if file_id == "OHSU_0050160":
        assert series.shape == (111, 78)
        assert (np.abs(series).max(axis=1) == 0).sum() == 1  # one all-zero ROI (SOURCE.md)


def test_load_afni_1d_files(abide_dir):
    paths = sorted((abide_dir / "original_1D").glob("*.1D"))
    t = load_afni_1d(paths, tr=2.0)
    assert t.n_trials == 3 and t.is_ragged and t.sfreq == 0.5
    assert sorted(t.meta["n_times"].tolist()) == [78, 116, 146]


@pytest.mark.parametrize("text, match", [
    ("#1\t#2\n1.0\t2.0\n3.0\n", "line 3 has 1 values; expected 2"),
    ("#1\t#2\n1.0\tx\n", "line 2: 'x' is not a number"),
    ("#1\t#2\n", "no data rows"),
])
def test_afni_1d_malformed(tmp_path, text, match):
    path = tmp_path / "bad.1D"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as err:
        read_afni_1d(path)
    assert str(path) in str(err.value)


# ------------------------------------------------------------ development
def test_development_fmri():
    require_dataset("development_fmri", "development_fmri_basc064_timeseries.npz")
    t = load_development_fmri()
    assert t.X.shape == (155, 64, 168) and t.sfreq == 0.5 and t.modality == "fmri"
    assert collections.Counter(t.y.tolist()) == {0: 122, 1: 33}
    assert collections.Counter(t.meta["child_adult"]) == {"child": 122, "adult": 33}
    assert collections.Counter(t.meta["gender"]) == {"F": 84, "M": 71}
    assert collections.Counter(t.meta["age_group"]) == {"3yo": 17, "4yo": 14, "5yo": 34, "7yo": 23,
                                                        "8-12yo": 34, "Adult": 33}
    kids = t.meta[t.meta["child_adult"] == "child"]["age"]
    adults = t.meta[t.meta["child_adult"] == "adult"]["age"]
    assert kids.min() == pytest.approx(3.52, abs=0.01) and kids.max() == pytest.approx(12.3, abs=0.01)
    assert adults.min() == pytest.approx(18, abs=0.01) and adults.max() == pytest.approx(39, abs=0.01)
    assert t.meta["subject"].iloc[0] == "sub-pixar001" and t.meta["subject"].nunique() == 155
    assert t.ch_names == [str(i) for i in range(1, 65)]
    # standardize=True at extraction: every ROI series has (population) std 1. The means are
    # ~0 but not to 1e-12 as SOURCE.md says: 55 of 9920 series (subjects 0-123, ROIs 4/8/10/14/43/47)
    # have |mean| up to 3.8e-3, measured on the npz.
    assert np.abs(t.X.mean(axis=2)).max() < 5e-3
    assert np.median(np.abs(t.X.mean(axis=2))) < 1e-6
    np.testing.assert_allclose(t.X.astype(np.float64).std(axis=2), 1.0, atol=1e-5)
