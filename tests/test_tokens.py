"""Region tokens on real recordings (ECoG, sEEG, PhysionetMI S001, ABIDE HO-111) and patching."""

import numpy as np
import pytest
from sklearn.base import clone

from neurodecode.preprocessing.tokens import (
    RegionTokenizer,
    Tokens,
    harvard_oxford_lobes,
    mni_lobe,
    patch_tokens,
    scalp_region,
    tokenize,
)
from neurodecode.trials import Trials
from tests.conftest import require_dataset

S001 = "MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf"


@pytest.fixture(scope="module")
def seeg_all():
    require_dataset("ieeg_mne_misc", "seeg/sample_seeg.edf")
    from neurodecode.io.ieeg import load_mne_seeg

    return load_mne_seeg(window=0.5, picks=None)


@pytest.fixture(scope="module")
def ecog():
    require_dataset("ieeg_mne_misc", "ecog/sample_ecog.edf")
    from neurodecode.io.ieeg import load_mne_ecog

    return load_mne_ecog(window=0.5)


def _assert_means(tokens, trials):
    """Each token is the mean of its member channels."""
    for name, members in zip(tokens.token_names, tokens.groups):
        idx = [trials.ch_names.index(m) for m in members]
        np.testing.assert_allclose(tokens.X[:, tokens.token_names.index(name)], trials.X[:, idx].mean(1))


def test_seeg_channel_lobe_parcel_scales(seeg_all):
    t = seeg_all
    assert t.X.shape[1] == 98 and t.coord_frame == "mni_tal"
    ch = tokenize(t, "channel")
    assert ch.n_tokens == 98 and ch.token_names == t.ch_names
    lobe = tokenize(t, "lobe")
    unplaced = [f"DC0{i}" for i in range(1, 9)] + ["EKG1", "EKG2"]
    # All 88 contacts are frontal (MNI y 7.5–56.6 mm, z 12–81 mm); 3 lie within 2 mm of x = 0.
    assert lobe.counts() == {"frontal-left": 85, "frontal-midline": 3, **{u: 1 for u in unplaced}}
    _assert_means(lobe, t)
    x_mm = t.positions[:, 0] * 1000
    midline = [n for n, x in zip(t.ch_names, x_mm) if abs(x) <= 2]
    assert sorted(lobe.groups[lobe.token_names.index("frontal-midline")]) == sorted(midline)
    dropped = tokenize(t, "lobe", missing="drop")
    assert dropped.token_names == ["frontal-left", "frontal-midline"]
    with pytest.raises(ValueError, match="cannot be placed"):
        tokenize(t, "lobe", missing="error")
    parcel = tokenize(t, "parcel", missing="drop")
    # ceil(85 / 8) = 11 parcels in frontal-left, 1 in frontal-midline; each parcel inside one lobe.
    assert parcel.n_tokens == 12 and sum(parcel.counts().values()) == 88
    lobe_of = {m: n for n, g in zip(dropped.token_names, dropped.groups) for m in g}
    for name, members in zip(parcel.token_names, parcel.groups):
        assert {lobe_of[m] for m in members} == {name.rsplit("-", 1)[0]}
    # Same seed, same parcels.
    assert tokenize(t, "parcel", missing="drop").groups == parcel.groups


def test_ecog_scales_need_mni_or_opt_in(ecog):
    t = ecog
    assert t.X.shape[1] == 64 and t.coord_frame == "head"
    assert tokenize(t, "channel").n_tokens == 64
    with pytest.raises(ValueError, match="assume_mni=True"):
        tokenize(t, "lobe")
    lobe = tokenize(t, "lobe", assume_mni=True)
    # A left-hemisphere grid (x -70…-11 mm): split at y = -18 mm into frontal and parietal.
    y_mm = t.positions[:, 1] * 1000
    assert lobe.counts() == {"parietal-left": int((y_mm < -18).sum()), "frontal-left": int((y_mm >= -18).sum())}
    assert lobe.counts() == {"parietal-left": 49, "frontal-left": 15}
    _assert_means(lobe, t)
    parcel = tokenize(t, "parcel", assume_mni=True)
    assert parcel.n_tokens == 7 + 2 and sum(parcel.counts().values()) == 64  # ceil(49/8) + ceil(15/8)
    np.testing.assert_allclose(parcel.token_positions[0],
                               t.positions[[t.ch_names.index(c) for c in parcel.groups[0]]].mean(0))


def test_label_image_parcels(seeg_all, tmp_path):
    import nibabel as nib

    data = np.zeros((91, 109, 91), dtype=np.int16)
    affine = np.array([[2, 0, 0, -90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1.0]])  # MNI 2 mm
    j30 = int(round((30 + 126) / 2))
    data[:, j30:, :] = 1   # y >= 30 mm
    data[:, :j30, :] = 2
    path = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    tok = tokenize(seeg_all, "parcel", label_image=str(path), label_names={1: "anterior", 2: "posterior"},
                   missing="drop")
    y_mm = seeg_all.positions[:, 1] * 1000
    voxel_j = np.rint((y_mm + 126) / 2)
    assert tok.counts() == {k: v for k, v in {"anterior": int((voxel_j[np.isfinite(y_mm)] >= j30).sum()),
                                              "posterior": int((voxel_j[np.isfinite(y_mm)] < j30).sum())}.items()}


def test_physionet_s001_scalp_regions():
    import mne

    root = require_dataset("mne_data", S001)
    raw = mne.io.read_raw_edf(root / S001, preload=True, verbose="error")
    assert len(raw.ch_names) == 64 and raw.ch_names[0] == "Fc5."
    X = raw.get_data()[:, :640].reshape(64, 4, 160).transpose(1, 0, 2)
    t = Trials(X, sfreq=raw.info["sfreq"], ch_names=raw.ch_names, modality="eeg")
    tok = tokenize(t, "region")
    assert tok.counts() == {
        "central-left": 6, "central-midline": 2, "central-right": 6,
        "parietal-left": 7, "parietal-midline": 2, "parietal-right": 7,
        "frontal-left": 7, "frontal-midline": 3, "frontal-right": 7,
        "temporal-left": 4, "temporal-right": 4,
        "occipital-left": 3, "occipital-midline": 3, "occipital-right": 3,
    }
    assert sorted(tok.groups[tok.token_names.index("temporal-left")]) == ["Ft7.", "T7..", "T9..", "Tp7."]
    _assert_means(tok, t)
    assert tok.X.shape == (4, 14, 160) and tok.sfreq == 160.0


def test_eeg_name_rules_and_position_fallback():
    import mne

    assert scalp_region("AFz") == ("frontal", "midline")
    assert scalp_region("PO7") == ("occipital", "left")
    assert scalp_region("FT10") == ("temporal", "right")
    assert scalp_region("STI 014") is None
    pos = mne.channels.make_standard_montage("standard_1005").get_positions()["ch_pos"]
    positions = np.array([pos["C3"], pos["O2"], [np.nan] * 3])
    tok = RegionTokenizer("region", ch_names=["X1", "X2", "EMG"], positions=positions).fit(np.zeros((1, 3, 5)))
    assert tok.token_names_ == ["central-left", "occipital-right", "EMG"]


def test_abide_ho111_rois_and_lobes():
    require_dataset("abide_pcp", "abide_pcp_cpac_filt_noglobal_rois_ho.npz")
    from neurodecode.io.fmri_roi import load_abide_pcp

    t = load_abide_pcp(sites=["CMU"])
    assert len(t.ch_names) == 111 and isinstance(t.X, list)
    roi = tokenize(t, "channel")
    assert roi.n_tokens == 111 and roi.token_names == t.ch_names
    np.testing.assert_allclose(roi.X[0], t.X[0])
    groups = harvard_oxford_lobes(t.ch_names)
    assert {k: len(v) for k, v in groups.items()} == {
        "cingulate": 4, "frontal": 24, "insula": 4, "occipital": 18, "parietal": 14, "subcortical": 14,
        "temporal": 32}
    lobes = tokenize(t, "groups", groups="harvard-oxford-lobes")
    assert lobes.n_tokens == 8 and lobes.counts()["3455"] == 1  # the label outside the HO rules stays its own
    sub = [t.ch_names.index(c) for c in groups["subcortical"]]
    np.testing.assert_allclose(lobes.X[2][lobes.token_names.index("subcortical")], t.X[2][sub].mean(0),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="not in ch_names"):
        tokenize(t, "groups", groups={"net": ["10", "99999"]})
    with pytest.raises(ValueError, match="is in 'a' and 'b'"):
        tokenize(t, "groups", groups={"a": ["10"], "b": ["10"]})


def test_mni_lobe_rules():
    assert mni_lobe([[-30, -20, -15]]) == [("temporal", "left")]       # hippocampus
    assert mni_lobe([[38, 5, 5]]) == [("insula", "right")]
    assert mni_lobe([[-12, -10, 8]]) == [("subcortical", "left")]     # thalamus
    assert mni_lobe([[0.5, -50, 40]]) == [("parietal", "midline")]    # precuneus


def test_patch_tokens():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 3, 100))
    p = patch_tokens(X, 20)
    assert p.shape == (2, 3, 5, 20)
    np.testing.assert_array_equal(p.reshape(2, 3, 100), X)
    q = patch_tokens(X, 20, step=10)
    assert q.shape == (2, 3, 9, 20)
    np.testing.assert_array_equal(q[:, :, 1], X[:, :, 10:30])
    q[0, 0, 0, 0] = 99.0  # a copy, not a view on X
    assert X[0, 0, 0] != 99.0
    tok = Tokens(X, ["a", "b", "c"], None, [["a"], ["b"], ["c"]], "channel")
    assert patch_tokens(tok, 25, 25).shape == (2, 3, 4, 25)
    assert patch_tokens(X, 30, 30).shape == (2, 3, 3, 30)  # trailing 10 samples dropped
    with pytest.raises(ValueError, match="longer than the series"):
        patch_tokens(X, 101)
    with pytest.raises(ValueError, match="ragged"):
        patch_tokens([X[0], X[1]], 10)


def test_tokenizer_in_pipeline_and_clone():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    rng = np.random.default_rng(1)
    X = rng.standard_normal((5, 4, 30))
    tok = RegionTokenizer("region", ch_names=["F3", "F4", "P3", "P4"])
    assert clone(tok).get_params() == tok.get_params()
    pipe = make_pipeline(tok, FunctionTransformer(lambda z: z.reshape(len(z), -1)))
    assert pipe.fit_transform(X).shape == (5, 4 * 30)
    with pytest.raises(ValueError, match="ch_names has 4 names but X has 3"):
        clone(tok).fit(X[:, :3])
    with pytest.raises(ValueError, match="expected"):
        RegionTokenizer("voxel").fit(X)
    with pytest.raises(ValueError, match="needs channel coordinates"):
        RegionTokenizer("lobe").fit(X)
