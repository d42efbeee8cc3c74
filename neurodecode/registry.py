"""The dataset registry: names users type, in Python and on the command line.

Each entry says what the dataset is, where it would be downloaded from (never
done automatically), whether it is on this machine, and which loader reads
it. Loaders are imported lazily, so listing datasets is fast.

Examples
--------
>>> from neurodecode import list_datasets
>>> table = list_datasets()           # a DataFrame, one row per dataset
>>> "physionet-mi" in set(table["name"])
True
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .errors import DatasetNotFoundError
from .paths import data_root, dataset_path, mne_data_path

__all__ = ["DatasetInfo", "register_dataset", "get_dataset", "list_datasets", "load_dataset"]


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows about one dataset.

    Attributes
    ----------
    name : str
        Registered name (``physionet-mi``, ``abide-pcp``…).
    modality : str
        ``eeg``, ``ieeg`` or ``fmri``.
    n_subjects : int
        Subjects in the local copy the loader reads.
    subjects_per_task : dict
        ``{task: subjects}`` when the loader's ``task`` argument changes how
        many subjects have trials (Muse: a subject without a usable cue epoch
        still has target epochs); empty otherwise.
    description : str
        One line.
    loader : str
        ``"module:function"`` returning `Trials`.
    folder : str or None
        Folder under the data root (``None`` for simulated data).
    source : str
        Where the data would be obtained (URL); nothing is downloaded.
    card : str
        Dataset card file in the repository's ``datasets/`` folder.
    marker : str
        A file inside ``folder`` whose presence means the data is there.
    """

    name: str
    modality: str
    n_subjects: int
    description: str
    loader: str
    folder: str | None = None
    source: str = ""
    card: str = ""
    marker: str = ""
    defaults: dict = field(default_factory=dict)
    subjects_per_task: dict = field(default_factory=dict)

    @property
    def subjects_text(self) -> str:
        """Subject count(s) as listed: ``"871"``, or ``"cue 66, target 67"`` per task."""
        if self.subjects_per_task:
            return ", ".join(f"{task} {n}" for task, n in self.subjects_per_task.items())
        return str(self.n_subjects)

    @property
    def path(self) -> Path | None:
        if self.folder is None:
            return None
        if self.folder == "mne_data":
            return mne_data_path()
        return dataset_path(self.folder)

    @property
    def simulated(self) -> bool:
        return self.folder is None

    def is_available(self) -> bool:
        if self.simulated:
            return True
        target = self.path / self.marker if self.marker else self.path
        return target.exists()

    def load_function(self):
        module, func = self.loader.split(":")
        return getattr(importlib.import_module(module), func)


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Add (or replace) a dataset in the registry."""
    _REGISTRY[info.name] = info
    return info


def get_dataset(name: str) -> DatasetInfo:
    """Return the registry entry for ``name`` (a clear error lists the names)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; registered: {sorted(_REGISTRY)}") from None


def list_datasets() -> pd.DataFrame:
    """One row per registered dataset: name, modality, subjects, availability, path, source.

    ``subjects`` is text, per task where the loader's ``task`` changes it
    (``"cue 66, target 67"``); ``n_subjects`` is the number of subjects in
    the local copy.
    """
    rows = []
    for info in _REGISTRY.values():
        rows.append({
            "name": info.name,
            "modality": info.modality,
            "subjects": info.subjects_text,
            "n_subjects": info.n_subjects,
            "available": info.is_available(),
            "path": "(simulated)" if info.simulated else str(info.path),
            "source": info.source or "(simulated)",
            "description": info.description,
        })
    return pd.DataFrame(rows)


def load_dataset(name: str, **kwargs):
    """Load a registered dataset as `Trials` (keyword arguments go to its loader).

    Raises
    ------
    DatasetNotFoundError
        When the files are not on this machine; the message says where they
        are expected and where they come from.
    """
    info = get_dataset(name)
    if not info.is_available():
        raise DatasetNotFoundError(
            f"dataset {name!r} is not on this machine: expected it under {info.path} "
            f"(data root {data_root()}). neurodecode never downloads data: get it from "
            f"{info.source} and set NEURODECODE_DATA (or MNE_DATA for MNE datasets) to its parent folder."
        )
    params = {**info.defaults, **kwargs}
    return info.load_function()(**params)


def _register_builtin():
    builtin = [
        DatasetInfo(
            "physionet-mi", "eeg", 15,
            "PhysioNet EEG motor imagery (MOABB PhysionetMI), left vs right hand imagery, runs 4/8/12",
            "neurodecode.io.moabb_data:load_physionet_mi", folder="mne_data",
            source="https://physionet.org/content/eegmmidb/1.0.0/", card="physionet-mi.md",
            marker="MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf",
        ),
        DatasetInfo(
            "muse-cueing", "eeg", 67,
            "NeuroTechX eeg-notebooks visual cueing study, Muse 4-channel (cue L/R or target vs pre-cue)",
            "neurodecode.io.muse:load_muse_cueing", folder="eeg_notebooks_muse",
            source="https://github.com/NeuroTechX/eeg-notebooks_v0.1", card="muse-cueing.md",
            marker="index.csv",
            # subject1311's only usable recording holds one cue marker: no cue epoch, one pre-cue epoch
            subjects_per_task={"cue": 66, "target": 67},
        ),
        DatasetInfo(
            "mne-ecog", "ieeg", 1, "MNE misc ECoG recording (78 ch, 64 with positions), seizure onset annotated",
            "neurodecode.io.ieeg:load_mne_ecog", folder="ieeg_mne_misc",
            source="https://github.com/mne-tools/mne-misc-data", card="mne-ieeg.md",
            marker="ecog/sample_ecog.edf",
        ),
        DatasetInfo(
            "mne-seeg", "ieeg", 1, "MNE misc sEEG recording (98 ch, 88 with MNI positions)",
            "neurodecode.io.ieeg:load_mne_seeg", folder="ieeg_mne_misc",
            source="https://github.com/mne-tools/mne-misc-data", card="mne-ieeg.md",
            marker="seeg/sample_seeg.edf",
        ),
        DatasetInfo(
            "dog1-seizure", "ieeg", 1, "Kaggle 2014 seizure detection, Dog_1: 596 1-s clips, 16 ch, ictal vs interictal",
            "neurodecode.io.seizure:load_dog1_seizure", folder="kaggle_seizure_dog1",
            source="https://www.kaggle.com/c/seizure-detection", card="dog1-seizure.md",
            marker="dog1_ictal_interictal.npz",
        ),
        DatasetInfo(
            "abide-pcp", "fmri", 871, "ABIDE I PCP (C-PAC filt_noglobal) Harvard-Oxford 111-ROI series, autism vs control",
            "neurodecode.io.fmri_roi:load_abide_pcp", folder="abide_pcp",
            source="http://preprocessed-connectomes-project.org/abide/", card="abide-pcp.md",
            marker="abide_pcp_cpac_filt_noglobal_rois_ho.npz",
        ),
        DatasetInfo(
            "development-fmri", "fmri", 155, "nilearn development fMRI (Pixar movie), BASC-064 ROI series, child vs adult",
            "neurodecode.io.fmri_roi:load_development_fmri", folder="development_fmri",
            source="https://openneuro.org/datasets/ds000228", card="development-fmri.md",
            marker="development_fmri_basc064_timeseries.npz",
        ),
        DatasetInfo(
            "sim-eeg", "eeg", 10, "Simulated EEG trials: class-dependent covariance, subject-specific mixing",
            "neurodecode.simulation:simulate_eeg", card="simulated.md",
        ),
        DatasetInfo(
            "sim-fmri", "fmri", 60, "Simulated ROI series: planted connectivity difference plus site effects",
            "neurodecode.simulation:simulate_fmri", card="simulated.md",
        ),
        DatasetInfo(
            "sim-nsd", "fmri", 4, "Simulated NSD-style betas: shared latent stimulus code, per-subject voxel maps",
            "neurodecode.simulation:simulate_nsd", card="simulated.md",
        ),
    ]
    for info in builtin:
        register_dataset(info)


_register_builtin()
