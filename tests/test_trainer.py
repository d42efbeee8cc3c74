"""Trainer: device choice, determinism, subject-wise early stopping, atomic checkpoints, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neurodecode.errors import DataError
from neurodecode.models.checkpoint import from_pretrained, load_config, save_checkpoint
from neurodecode.models.mae import TokenMAE
from neurodecode.models.trainer import (Trainer, TrainerConfig, autocast_dtype, select_device,
                                        split_validation)

torch.set_num_threads(1)


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4, 32)).astype("float32")
    groups = np.repeat(np.arange(6), n // 6)
    return [{"x": X}], [groups]


def _mae(seed=0):
    torch.manual_seed(seed)
    return TokenMAE(n_tokens=4, n_times=32, patch_size=8, embed_dim=16, depth=1, n_heads=2,
                    decoder_dim=8)


def test_select_device_matches_cuda_availability():
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert select_device("cpu").type == "cpu"
    assert autocast_dtype(torch.device("cpu")) is None


def test_split_validation_holds_out_whole_subjects():
    groups = np.repeat(np.arange(10), 7)
    mask = split_validation(groups, 0.2, seed=1, by="subject")
    held = set(groups[mask])
    assert len(held) == 2
    # no subject on both sides
    assert not held & set(groups[~mask])
    # one subject: falls back to trials, both sides non-empty
    mask1 = split_validation(np.zeros(20), 0.25, seed=0)
    assert mask1.sum() == 5
    assert split_validation(groups, 0.0).sum() == 0


def test_fixed_seed_gives_identical_losses_on_cpu():
    parts, groups = _data()
    cfg = TrainerConfig(max_epochs=3, batch_size=16, seed=3, device="cpu")
    h1 = Trainer(cfg).fit(_mae(), parts, groups).history
    h2 = Trainer(cfg).fit(_mae(), parts, groups).history
    assert h1 == h2
    h3 = Trainer(cfg, seed=4).fit(_mae(), parts, groups).history
    assert h3 != h1


def test_early_stopping_restores_best_weights():
    parts, groups = _data()
    # lr so large that validation loss gets worse quickly
    cfg = TrainerConfig(max_epochs=40, batch_size=8, lr=0.5, patience=2, device="cpu", grad_clip=None)
    model = _mae()
    res = Trainer(cfg).fit(model, parts, groups)
    assert res.stopped_early
    assert len(res.history) == res.best_epoch + 1 + cfg.patience
    best = min(h["val_loss"] for h in res.history)
    assert res.best_val_loss == best
    # restored weights reproduce the best validation loss
    t = Trainer(cfg)
    val = split_validation(np.concatenate(groups).astype(str), cfg.val_fraction, cfg.seed, "subject")
    again = t.evaluate_loss(model, parts, [np.flatnonzero(val)], torch.device("cpu"))
    assert again == pytest.approx(best, rel=1e-5)


def test_checkpoint_roundtrip_and_resume(tmp_path):
    parts, groups = _data()
    ckpt = tmp_path / "run"
    cfg = TrainerConfig(max_epochs=4, batch_size=16, device="cpu", val_fraction=0.0,
                        checkpoint_dir=str(ckpt))
    full = Trainer(cfg).fit(_mae(), parts, groups)
    # interrupted run: 2 epochs, then resume to 4
    ckpt2 = tmp_path / "run2"
    Trainer(cfg, max_epochs=2, checkpoint_dir=str(ckpt2)).fit(_mae(), parts, groups)
    state = json.loads((ckpt2 / "trainer_state.json").read_text())
    assert state["epoch"] == 1 and "optimizer" in state
    resumed_model = _mae(seed=99)  # weights come from the checkpoint, not this init
    resumed = Trainer(cfg, checkpoint_dir=str(ckpt2), resume=True).fit(resumed_model, parts, groups)
    assert [h["train_loss"] for h in resumed.history] == pytest.approx(
        [h["train_loss"] for h in full.history], rel=1e-5)
    # no pickle anywhere in the checkpoint
    names = sorted(p.name for p in ckpt.iterdir())
    assert "model.safetensors" in names and "config.json" in names
    assert not any(n.endswith((".pt", ".pkl", ".bin")) for n in names)
    loaded = from_pretrained(ckpt)
    x = torch.randn(3, 4, 32)
    a = from_pretrained(ckpt2)
    torch.testing.assert_close(loaded.encode(x), a.encode(x), rtol=1e-4, atol=1e-5)


def test_save_is_atomic_and_overwrites(tmp_path):
    m = _mae()
    d = save_checkpoint(m, tmp_path / "c", extra={"note": 1})
    m2 = _mae(seed=5)
    save_checkpoint(m2, d)
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no temp dirs left
    x = torch.randn(2, 4, 32)
    m2.eval()
    torch.testing.assert_close(from_pretrained(d).encode(x), m2.encode(x), rtol=0, atol=0)
    assert load_config(d)["extra"] == {}


def test_bad_checkpoint_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="config.json"):
        from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(DataError, match="JSON"):
        from_pretrained(tmp_path)


def test_unregistered_module_cannot_be_saved(tmp_path):
    with pytest.raises(TypeError, match="register_model"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "x")
