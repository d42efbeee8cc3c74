"""Every real dataset folder loads through the public API with the counts of its SOURCE.md.

PhysioNet MI and the Muse study are tested on their own branch (tests/test_io_eeg*.py).
Also: dataset cards exist for registry entries, ``neurodecode datasets`` lists them, and a
truncated npz gives a `DataError` that names the file.
"""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import numpy as np
import pytest

import neurodecode
from conftest import require_dataset
from neurodecode import DataError, list_datasets, load_dataset
from neurodecode.registry import get_dataset

REPO = Path(__file__).resolve().parent.parent
# Cards written on another branch; skipped here until it is merged.
OTHER_BRANCH_CARDS = {"physionet-mi", "muse-cueing"}


# ------------------------------------------------------------------ counts
def test_abide_pcp_public_api():
    require_dataset("abide_pcp", "abide_pcp_cpac_filt_noglobal_rois_ho.npz")
    t = load_dataset("abide-pcp")
    assert t.name == "abide-pcp" and t.modality == "fmri" and t.is_ragged
    assert t.n_trials == 871 and t.meta["subject"].nunique() == 871
    assert t.meta["site"].nunique() == 20
    assert t.n_channels == 111 and len(t.ch_names) == 111
    assert collections.Counter(t.y.tolist()) == {1: 403, 0: 468}
    assert collections.Counter(t.meta["sex"]) == {"M": 727, "F": 144}
    assert int(t.n_times.sum()) == 168_434
    assert (t.n_times.min(), t.n_times.max()) == (78, 316)


def test_development_fmri_public_api():
    require_dataset("development_fmri", "development_fmri_basc064_timeseries.npz")
    t = load_dataset("development-fmri")
    assert t.X.shape == (155, 64, 168) and t.sfreq == 0.5
    assert t.meta["subject"].nunique() == 155
    assert collections.Counter(t.meta["child_adult"]) == {"child": 122, "adult": 33}
    assert int(t.y.sum()) == 33
    assert collections.Counter(t.meta["gender"]) == {"F": 84, "M": 71}


def test_dog1_seizure_public_api():
    require_dataset("kaggle_seizure_dog1", "dog1_ictal_interictal.npz")
    t = load_dataset("dog1-seizure")
    assert t.X.shape == (596, 16, 400) and t.modality == "ieeg"
    assert t.sfreq == pytest.approx(399.609756097561)
    assert collections.Counter(t.y.tolist()) == {1: 178, 0: 418}
    assert t.ch_names[0] == "NVC0905_22_002_Ecog_c001" and t.ch_names[-1] == "NVC0905_22_002_Ecog_c016"
    # 5 seizures of 31, 35, 33, 41, 38 clips; 11 interictal runs of 38
    sizes = t.meta.groupby("group").size()
    assert sizes.loc[0:4].tolist() == [31, 35, 33, 41, 38]
    assert (sizes.loc[5:15] == 38).all() and len(sizes) == 16


def test_mne_ecog_public_api():
    require_dataset("ieeg_mne_misc", "ecog/sample_ecog.edf")
    t = load_dataset("mne-ecog")
    sfreq = 999.4121105232217
    # 21,658 samples at 1-s windows; onset 10.2287 s: 10 windows before, the straddling one dropped
    n_windows = int((21_658 / sfreq) // 1.0)
    n_pre = int(10.2287 // 1.0)
    assert t.sfreq == pytest.approx(sfreq)
    assert t.n_channels == 64 and np.isfinite(t.positions).all()
    assert t.n_trials == n_windows - 1
    assert collections.Counter(t.y.tolist()) == {"pre": n_pre, "post": n_windows - n_pre - 1}


def test_mne_seeg_public_api():
    require_dataset("ieeg_mne_misc", "seeg/sample_seeg.edf")
    t = load_dataset("mne-seeg")
    assert t.X.shape == (20, 88, 1000) and t.sfreq == 1000.0 and t.y is None
    assert np.isfinite(t.positions).all() and t.coord_frame == "mni_tal"
    # MNI millimetres of SOURCE.md, stored in metres
    assert t.positions[:, 0].min() == pytest.approx(-53.8e-3, abs=1e-4)
    shafts = collections.Counter(name.split("'")[0] + "'" for name in t.ch_names)
    assert shafts == {"L'": 14, "F'": 14, "G'": 16, "N'": 12, "O'": 16, "X'": 16}
    full = load_dataset("mne-seeg", picks=None)
    assert full.n_channels == 98 and int(np.isnan(full.positions).any(axis=1).sum()) == 10


# ---------------------------------------------------------- registry & cards
def test_registry_cards_exist_and_name_the_dataset():
    for row in list_datasets().itertuples():
        info = get_dataset(row.name)
        card = REPO / "datasets" / info.card
        assert info.card, f"{row.name} has no card"
        if not card.exists() and row.name in OTHER_BRANCH_CARDS:
            continue
        assert card.is_file(), f"{row.name}: card {card} missing"
        text = card.read_text()
        assert f"`{row.name}`" in text, f"{card.name} does not mention `{row.name}`"
        for section in ("License", "Citation", "Layout"):
            assert section.lower() in text.lower(), f"{card.name} lacks a {section} section"
        if not info.simulated:
            assert info.source in text, f"{card.name} does not give the source {info.source}"


def test_registry_subject_counts_match_loaded():
    """The registry's subject counts are those the loaders return (fMRI and iEEG sets here)."""
    for name, folder, marker in [("abide-pcp", "abide_pcp", "abide_pcp_cpac_filt_noglobal_rois_ho.npz"),
                                 ("development-fmri", "development_fmri", "participants.tsv"),
                                 ("dog1-seizure", "kaggle_seizure_dog1", "dog1_ictal_interictal.npz")]:
        require_dataset(folder, marker)
        assert get_dataset(name).is_available()
        assert load_dataset(name).meta["subject"].nunique() == get_dataset(name).n_subjects


def test_cli_datasets_lists_source_and_availability(capsys):
    from neurodecode.cli import main

    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for row in list_datasets().itertuples():
        assert row.name in out
    assert "preprocessed-connectomes-project.org" in out  # where it would be downloaded from
    assert "available" in out.splitlines()[0]


# ------------------------------------------------------------- corrupted npz
@pytest.mark.parametrize("name, folder, npz", [
    ("abide-pcp", "abide_pcp", "abide_pcp_cpac_filt_noglobal_rois_ho.npz"),
    ("development-fmri", "development_fmri", "development_fmri_basc064_timeseries.npz"),
    ("dog1-seizure", "kaggle_seizure_dog1", "dog1_ictal_interictal.npz"),
])
def test_truncated_npz_names_the_file(name, folder, npz, tmp_path, monkeypatch):
    src = require_dataset(folder, npz)
    dst = tmp_path / folder
    dst.mkdir()
    for f in src.iterdir():  # the small side files (tables), not the big npz
        if f.is_file() and f.name != npz and f.stat().st_size < 2_000_000:
            shutil.copy(f, dst / f.name)
    with open(src / npz, "rb") as f:
        head = f.read(200_000)  # a cut-off download: no zip central directory
    (dst / npz).write_bytes(head)
    monkeypatch.setenv("NEURODECODE_DATA", str(tmp_path))
    monkeypatch.setenv("NEURODECODE_NO_CACHE", "1")
    with pytest.raises(DataError) as err:
        load_dataset(name)
    assert str(dst / npz) in str(err.value)
    assert err.value.path == str(dst / npz)


def test_npz_missing_key_names_the_file(tmp_path, monkeypatch):
    src = require_dataset("development_fmri", "development_fmri_basc064_timeseries.npz")
    dst = tmp_path / "development_fmri"
    dst.mkdir()
    shutil.copy(src / "participants.tsv", dst / "participants.tsv")
    with np.load(src / "development_fmri_basc064_timeseries.npz") as z:
        parts = {k: z[k] for k in z.files if k != "offsets"}
    np.savez(dst / "development_fmri_basc064_timeseries.npz", **parts)
    monkeypatch.setenv("NEURODECODE_DATA", str(tmp_path))
    monkeypatch.setenv("NEURODECODE_NO_CACHE", "1")
    with pytest.raises(DataError, match=r"development_fmri_basc064_timeseries.npz: npz lacks key\(s\) \['offsets'\]"):
        load_dataset("development-fmri")


def test_missing_dataset_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURODECODE_DATA", str(tmp_path))
    with pytest.raises(neurodecode.DatasetNotFoundError, match="abide_pcp.*never downloads"):
        load_dataset("abide-pcp")
    table = list_datasets().set_index("name")
    assert not table.loc["abide-pcp", "available"] and table.loc["sim-nsd", "available"]


def test_damaged_side_tables_name_the_file(tmp_path, monkeypatch):
    """A junk participants.tsv or a truncated phenotypic CSV: DataError naming the table."""
    dev = require_dataset("development_fmri", "development_fmri_basc064_timeseries.npz")
    abide = require_dataset("abide_pcp", "abide_pcp_cpac_filt_noglobal_rois_ho.npz")
    (tmp_path / "development_fmri").mkdir()
    (tmp_path / "abide_pcp").mkdir()
    npz = "development_fmri_basc064_timeseries.npz"
    (tmp_path / "development_fmri" / npz).symlink_to(dev / npz)
    (tmp_path / "development_fmri" / "participants.tsv").write_bytes(bytes(range(128, 256)) * 4)
    npz = "abide_pcp_cpac_filt_noglobal_rois_ho.npz"
    (tmp_path / "abide_pcp" / npz).symlink_to(abide / npz)
    pheno = "Phenotypic_V1_0b_preprocessed1.csv"
    (tmp_path / "abide_pcp" / pheno).write_bytes((abide / pheno).read_bytes()[:300_000])
    monkeypatch.setenv("NEURODECODE_DATA", str(tmp_path))
    monkeypatch.setenv("NEURODECODE_NO_CACHE", "1")
    with pytest.raises(DataError, match="participants.tsv: not a readable table"):
        load_dataset("development-fmri")
    with pytest.raises(DataError, match=f"FILE_ID.*not in {pheno}"):
        load_dataset("abide-pcp")
