"""Every notebook in ``notebooks/`` runs top to bottom on the local real data.

Each ``.ipynb`` is executed with nbclient in a fresh ``python3`` kernel that
imports this checkout's ``neurodecode`` (``PYTHONPATH``), from a temporary
working directory, so a notebook cannot rely on files left by an earlier run.
A notebook that raises fails its test with the cell and the traceback. Under
CI a missing tool or dataset is a failure, elsewhere a skip.

Notebooks are stored without outputs, next to their jupytext ``.py``
(percent format) twin, which is the file to edit and review; the twin test
keeps the two from drifting apart.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import IN_CI, require_dataset

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 900  # seconds per cell; a whole notebook takes 1-3 min on 2 free cores

# Data each notebook reads (folder under the data root, marker file).
NEEDS = {
    "01": [("mne_data", "MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf")],
    "02": [("abide_pcp", "abide_pcp_cpac_filt_noglobal_rois_ho.npz")],
    "03": [("ieeg_mne_misc", "seeg/sample_seeg.edf"), ("kaggle_seizure_dog1", "dog1_ictal_interictal.npz")],
    "04": [("mne_data", "MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf")],
}


def _require(module):
    try:
        return __import__(module)
    except ImportError as err:
        if IN_CI:
            pytest.fail(f"{module} missing under CI (install '.[test]'): {err}")
        pytest.skip(f"{module} not installed: {err}")


def test_notebooks_exist():
    assert NOTEBOOKS, "no notebooks in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_py_twin(path):
    nbformat = _require("nbformat")
    jupytext = _require("jupytext")
    twin = path.with_suffix(".py")
    assert twin.is_file(), f"{path.name} has no jupytext twin {twin.name}"
    stored = nbformat.read(path, as_version=4)
    from_py = jupytext.read(twin)
    code = [c.source.strip() for c in stored.cells if c.cell_type == "code"]
    code_py = [c.source.strip() for c in from_py.cells if c.cell_type == "code"]
    assert code == code_py, f"{path.name} and {twin.name} differ: run `jupytext --sync {twin}`"
    # Stored without outputs: the executed version is made by the test / the user.
    assert not any(c.get("outputs") for c in stored.cells if c.cell_type == "code"), \
        f"{path.name} is stored with outputs; clear them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    nbformat = _require("nbformat")
    nbclient = _require("nbclient")
    _require("ipykernel")
    for folder, marker in NEEDS.get(path.name[:2], []):
        require_dataset(folder, marker)

    # The kernel is a child process: it inherits this environment.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the failing cell

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert figures, f"{path.name} drew no figure"
