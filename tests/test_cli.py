"""The command line: `neurodecode benchmark` on sim-eeg, pipelines, the default, the model-command hook."""

from __future__ import annotations

import sqlite3
import sys
import types

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from neurodecode import cli
from neurodecode import pipelines as registry


def _var_lr():
    return make_pipeline(FunctionTransformer(np.var, kw_args={"axis": -1}), FunctionTransformer(np.log),
                         StandardScaler(), LogisticRegression(C=0.5))


@pytest.fixture
def test_pipeline(monkeypatch):
    """A pipeline registered inside the test (the Riemannian ones may not be installed)."""
    import neurodecode.evaluation  # noqa: F401  (registers the baselines first)

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_pipeline("test-var-lr", _var_lr, "log-variance + LR, registered by the CLI test",
                               modality="eeg", overwrite=True)
    return "test-var-lr"


def test_benchmark_on_sim_eeg_prints_summary_and_writes_report(tmp_path, capsys, test_pipeline):
    out = tmp_path / "results"
    argv = ["benchmark", "--dataset", "sim-eeg", "--pipelines", f"{test_pipeline},logvar-lr",
            "--subjects", "1-4", "--split", "leave-subject-out", "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert test_pipeline in text and "logvar-lr" in text
    assert "±" in text and "bound" in text and "wilcoxon_p" in text and "permutation_p" in text

    results = pd.read_csv(out / "results.csv")
    assert len(results) == 2 * 4
    assert sorted(results["subject"].astype(str).unique()) == ["1", "2", "3", "4"]
    assert set(results["pipeline"]) == {test_pipeline, "logvar-lr"}
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["pipeline"]) == [test_pipeline, "logvar-lr"]
    assert len(pd.read_csv(out / "comparisons.csv")) == 1
    report = (out / "report.md").read_text()
    assert "neurodecode benchmark --dataset sim-eeg" in report and "## Paired comparisons" in report
    assert (out / "report.html").exists()
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert len(figures) == 2 and figures[1].startswith("strip_")
    with sqlite3.connect(out / "results.sqlite") as con:
        assert con.execute("SELECT COUNT(*) FROM folds").fetchone()[0] == 8

    # a second run reads the store: same table, nothing added
    assert cli.main(argv) == 0
    again = pd.read_csv(out / "results.csv")
    pd.testing.assert_frame_equal(again, results)
    with sqlite3.connect(out / "results.sqlite") as con:
        assert con.execute("SELECT COUNT(*) FROM folds").fetchone()[0] == 8


def test_benchmark_other_split_and_options(tmp_path, capsys, test_pipeline):
    out = tmp_path / "ws"
    assert cli.main(["benchmark", "--dataset", "sim-eeg", "--pipelines", test_pipeline, "--subjects", "2,3",
                     "--split", "within-session", "--n-splits", "3", "--backend", "sequential",
                     "--random-state", "5", "--out", str(out), "--no-progress"]) == 0
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 2 * 3 and (results["random_state"] == 5).all()
    assert set(results["split"]) == {"within-session"}


def test_no_argument_default_falls_back_to_simulated_data(tmp_path, capsys, monkeypatch, test_pipeline):
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "no-mne-data"))
    monkeypatch.setitem(cli.DEFAULT_BENCHMARK, "fallback_pipelines", [test_pipeline, "logvar-lr"])
    monkeypatch.chdir(tmp_path)
    dataset, pipes, subjects, why = cli._default_benchmark()
    assert dataset == "sim-eeg" and "not on this machine" in why
    if not all(p in registry.list_pipelines() for p in cli.DEFAULT_BENCHMARK["pipelines"]):
        assert pipes == [test_pipeline, "logvar-lr"]
        assert cli.main(["benchmark", "--no-progress", "--subjects", "1-3"]) == 0
        text = capsys.readouterr().out
        assert "default benchmark: sim-eeg" in text
        assert len(pd.read_csv(tmp_path / "results" / "results.csv")) == 2 * 3


def test_default_prefers_physionet_when_data_and_pipelines_exist(monkeypatch):
    from neurodecode.registry import get_dataset

    info = get_dataset("physionet-mi")
    monkeypatch.setattr(type(info), "is_available", lambda self: True)
    monkeypatch.setattr(type(info), "load_function", lambda self: (lambda **kw: None))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    for name in cli.DEFAULT_BENCHMARK["pipelines"]:
        registry.register_pipeline(name, _var_lr, "stand-in", overwrite=True)
    dataset, pipes, subjects, _ = cli._default_benchmark()
    assert (dataset, pipes, subjects) == ("physionet-mi", ["cov-ts-lr", "recentered-cov-ts-lr"], [1, 2, 3, 4, 5])


def test_pipelines_command_lists_registered_names(capsys, test_pipeline):
    assert cli.main(["pipelines"]) == 0
    text = capsys.readouterr().out
    assert test_pipeline in text and "subject-logvar-lr" in text
    assert cli.main(["pipelines", "--modality", "fmri"]) == 0
    assert test_pipeline not in capsys.readouterr().out


def test_info_and_datasets_still_work(capsys):
    assert cli.main(["info"]) == 0
    assert "neurodecode" in capsys.readouterr().out
    assert cli.main(["datasets"]) == 0
    assert "sim-eeg" in capsys.readouterr().out


def test_clear_errors_exit_2(tmp_path, capsys, test_pipeline):
    assert cli.main(["benchmark", "--dataset", "sim-eeg", "--pipelines", "no-such-pipe",
                     "--out", str(tmp_path), "--no-progress"]) == 2
    assert "unknown pipeline 'no-such-pipe'" in capsys.readouterr().err
    assert cli.main(["benchmark", "--dataset", "no-such-data", "--pipelines", test_pipeline,
                     "--out", str(tmp_path)]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    assert cli.main(["benchmark", "--dataset", "sim-eeg", "--pipelines", test_pipeline, "--subjects", "5-2",
                     "--out", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        cli.main(["benchmark", "--split", "no-such-split"])
    assert cli.main(["benchmark", "--dataset", "sim-eeg", "--pipelines", test_pipeline, "--threads", "0",
                     "--out", str(tmp_path)]) == 2
    assert "--threads must be a positive integer" in capsys.readouterr().err


def test_benchmark_limits_threads_and_restores_them(tmp_path, capsys, test_pipeline, monkeypatch):
    import torch
    from threadpoolctl import threadpool_info

    seen = {}
    real = cli._run_benchmark

    def spy(args):
        seen["torch"] = torch.get_num_threads()
        seen["blas"] = {pool["num_threads"] for pool in threadpool_info()}
        return real(args)

    monkeypatch.setattr(cli, "_run_benchmark", spy)
    before = torch.get_num_threads()
    assert cli.main(["benchmark", "--dataset", "sim-eeg", "--pipelines", test_pipeline, "--subjects", "1-3",
                     "--threads", "1", "--out", str(tmp_path), "--no-progress"]) == 0
    assert seen["torch"] == 1 and seen["blas"] <= {1}
    assert torch.get_num_threads() == before


def test_parse_subjects():
    assert cli.parse_subjects("1-5") == [1, 2, 3, 4, 5]
    assert cli.parse_subjects("1,2,3") == [1, 2, 3]
    assert cli.parse_subjects(" 3, 7-8 ,") == [3, 7, 8]
    assert cli.parse_subjects("sub-01,02") == ["sub-01", 2]
    assert cli.parse_subjects(None) is None and cli.parse_subjects("") is None


def test_model_commands_hook_is_called(monkeypatch, capsys):
    fake = types.ModuleType("neurodecode.models.cli_commands")

    def add_commands(subparsers):
        p = subparsers.add_parser("hello", help="test command")
        p.set_defaults(func=lambda args: print("hello from the models") or 0)

    fake.add_commands = add_commands
    monkeypatch.setitem(sys.modules, "neurodecode.models.cli_commands", fake)
    assert cli.main(["hello"]) == 0
    assert "hello from the models" in capsys.readouterr().out
