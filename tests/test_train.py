"""course_lib.train: budgets, EMA, atomic checkpoints, divergence checks."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import pytest
import torch

import course_lib
from course_lib import train
from course_lib.train import EMA, Budget, CheckpointError, TrainingDiverged, load_checkpoint, save_checkpoint


@dataclass
class TinyConfig:
    width: int = 4
    lr: float = 1e-3


@dataclass
class OtherConfig:
    depth: int = 2


# ---------------------------------------------------------------- Budget
def test_step_budget():
    budget = Budget(max_steps=3)
    assert [budget.done(step) for step in range(5)] == [False, False, False, True, True]
    assert budget.total == 3


def test_seconds_budget_with_a_fake_clock(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(train.time, "perf_counter", lambda: clock[0])
    budget = Budget(max_seconds=2.0)
    assert not budget.done(0)  # the clock starts at the first call
    clock[0] = 101.5
    assert not budget.done(1_000_000) and budget.elapsed == pytest.approx(1.5)
    clock[0] = 102.0
    assert budget.done(1) and budget.total is None


def test_steps_and_seconds_stop_at_whichever_comes_first(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(train.time, "perf_counter", lambda: clock[0])
    assert Budget(max_steps=2, max_seconds=10.0).done(2)
    budget = Budget(max_steps=1000, max_seconds=1.0)
    budget.done(0)
    clock[0] = 5.0
    assert budget.done(3)


def test_budget_fraction_is_the_larger_share_capped_at_one(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(train.time, "perf_counter", lambda: clock[0])
    budget = Budget(max_steps=10, max_seconds=4.0).start()
    clock[0] = 1.0
    assert budget.fraction(5) == 0.5  # steps 5/10 beat seconds 1/4
    clock[0] = 3.0
    assert budget.fraction(5) == 0.75  # seconds 3/4 beat steps 5/10
    assert budget.fraction(20) == 1.0 and Budget(max_steps=0).fraction(0) == 0.0


@pytest.mark.parametrize("kwargs", [{}, {"max_steps": -1}, {"max_seconds": -0.5}])
def test_budget_rejects_bad_limits(kwargs):
    with pytest.raises(ValueError, match="max_steps|max_seconds"):
        Budget(**kwargs)


# ---------------------------------------------------------------- EMA
def test_ema_update_is_the_closed_form():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    old = [p.detach().clone() for p in model.parameters()]
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p))
    new = [p.detach().clone() for p in model.parameters()]
    ema.update(model)
    for p_ema, p_old, p_new in zip(ema.model.parameters(), old, new):
        assert torch.allclose(p_ema, 0.9 * p_old + 0.1 * p_new, atol=1e-6)  # d * old + (1 - d) * new
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), new))  # the model itself is untouched


def test_ema_decay_override_buffers_and_frozen_copy():
    model = torch.nn.BatchNorm1d(3)
    ema = EMA(model, decay=0.99)
    model.running_mean.fill_(5.0)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model, decay=0.0)  # decay 0: copy
    assert torch.equal(ema.model.weight, model.weight) and torch.equal(ema.model.running_mean, model.running_mean)
    assert not ema.model.training and not any(p.requires_grad for p in ema.model.parameters())


def test_ema_warm_up_by_step_uses_min_of_decay_and_1_plus_n_over_10_plus_n():
    model = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(model, decay=0.99)
    assert [ema.warmup_decay(n) for n in (0, 90, 10_000)] == [0.1, 91 / 100, 0.99]
    with torch.no_grad():
        ema.model.weight.fill_(0.0)
        model.weight.fill_(1.0)
    ema.update(model, 0)  # decay 0.1 at update 0
    assert ema.model.weight.item() == pytest.approx(0.9)


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5])
def test_ema_rejects_bad_decay(decay):
    with pytest.raises(ValueError, match="decay"):
        EMA(torch.nn.Linear(1, 1), decay=decay)


# ---------------------------------------------------------------- checkpoints
def _save(path, **kwargs):
    state = {"weight": torch.arange(6.0).view(2, 3)}
    return save_checkpoint(path, kind="tiny", config=TinyConfig(width=8), state=state, **kwargs)


def test_checkpoint_round_trip(tmp_path):
    path = _save(tmp_path / "sub" / "model.pt", step=7)
    ckpt = load_checkpoint(path, kind="tiny", config_cls=TinyConfig)
    assert ckpt["config"] == TinyConfig(width=8)
    assert torch.equal(ckpt["state"]["weight"], torch.arange(6.0).view(2, 3))
    assert ckpt["version"] == course_lib.__version__ and ckpt["step"] == 7
    assert load_checkpoint(path, kind="tiny")["config"] == {"width": 8, "lr": 1e-3}  # without config_cls: a dict


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = _save(tmp_path / "model.pt")

    def broken_save(payload, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(train.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, kind="tiny", config=TinyConfig(width=99), state={})
    monkeypatch.undo()
    assert load_checkpoint(path, kind="tiny", config_cls=TinyConfig)["config"].width == 8  # the old one, intact
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temp file left behind


def test_checkpoints_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = _save(tmp_path / "model.pt")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600


def test_wrong_kind_is_refused(tmp_path):
    path = _save(tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="'tiny'.*'gan'"):
        load_checkpoint(path, kind="gan")


def test_a_newer_format_is_refused_and_an_older_one_loads(tmp_path):
    newer = _save(tmp_path / "newer.pt", format=train.FORMAT_VERSION + 1)  # extra entries override the payload's
    with pytest.raises(CheckpointError, match=f"newer course_lib \\(format {train.FORMAT_VERSION + 1}, this one "
                                              f"reads up to {train.FORMAT_VERSION}\\): update the course with git pull"):
        load_checkpoint(newer, kind="tiny")
    older = tmp_path / "older.pt"
    torch.save({"kind": "tiny", "config": {"width": 8}, "state": {}}, older)  # before format 1: no "format" entry
    assert load_checkpoint(older, kind="tiny")["config"] == {"width": 8}


def test_config_mismatch_is_refused(tmp_path):
    path = _save(tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="lr|width"):
        load_checkpoint(path, kind="tiny", config_cls=OtherConfig)


def test_missing_config_field_is_refused(tmp_path):
    @dataclass
    class NeedsMore:
        width: int
        lr: float
        depth: int  # no default and not in the checkpoint

    with pytest.raises(CheckpointError, match="cannot rebuild NeedsMore"):
        load_checkpoint(_save(tmp_path / "model.pt"), kind="tiny", config_cls=NeedsMore)


class Payload:
    """Something that is not weights: weights_only loading must refuse to unpickle it."""


def test_loading_is_weights_only(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"kind": "tiny", "config": {}, "state": {}, "payload": Payload()}, path)
    with pytest.raises(CheckpointError, match="not a readable course checkpoint"):
        load_checkpoint(path, kind="tiny")


def test_foreign_and_missing_files(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError):
        load_checkpoint(garbage, kind="tiny")
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(1)}, plain)
    with pytest.raises(CheckpointError, match="not a course checkpoint"):
        load_checkpoint(plain, kind="tiny")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt", kind="tiny")


def test_config_must_be_a_dataclass_or_dict(tmp_path):
    with pytest.raises(TypeError, match="dataclass or dict"):
        save_checkpoint(tmp_path / "x.pt", kind="tiny", config=42, state={})
    assert not (tmp_path / "x.pt").exists()


# ---------------------------------------------------------------- check_finite, progress, autocast, grad_scaler
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 2e6, torch.tensor(float("nan"))])
def test_check_finite_raises_on_divergence(value):
    with pytest.raises(TrainingDiverged, match="loss_g.*step 12"):
        train.check_finite(12, loss_d=0.5, loss_g=value)


def test_check_finite_accepts_finite_losses():
    train.check_finite(3, loss=torch.tensor(0.25), other=-4.0)  # no exception
