"""Registry subject counts per task (Muse: cue 66, target 67), checked against the loader and the card."""

from __future__ import annotations

from pathlib import Path

from conftest import require_dataset

from neurodecode import get_dataset, list_datasets, load_dataset

REPO = Path(__file__).resolve().parents[1]


def test_listing_and_card_give_muse_subjects_per_task():
    info = get_dataset("muse-cueing")
    assert info.subjects_per_task == {"cue": 66, "target": 67}
    # n_subjects counts the local copy (67 folders); the default load (task="cue") has 66
    assert info.n_subjects == 67 == max(info.subjects_per_task.values())
    row = list_datasets().set_index("name").loc["muse-cueing"]
    assert row["subjects"] == "cue 66, target 67"
    assert row["n_subjects"] == 67
    card = (REPO / "datasets" / info.card).read_text()
    subjects_row = next(line for line in card.splitlines() if line.startswith("| subjects |"))
    assert "**66**" in subjects_row and "**67**" in subjects_row and "cue" in subjects_row


def test_single_task_datasets_list_one_number():
    table = list_datasets().set_index("name")
    for name in ("abide-pcp", "physionet-mi", "sim-eeg"):
        assert table.loc[name, "subjects"] == str(get_dataset(name).n_subjects)
        assert not get_dataset(name).subjects_per_task


def test_muse_subjects_per_task_match_the_loader():
    require_dataset("eeg_notebooks_muse", "index.csv")
    info = get_dataset("muse-cueing")
    assert load_dataset("muse-cueing").meta["subject"].nunique() == info.subjects_per_task["cue"]
    for task, n in info.subjects_per_task.items():
        assert load_dataset("muse-cueing", task=task).meta["subject"].nunique() == n, task
