"""course_lib.runtime: device choice, budget profiles, seeding, the data folder, progress bars, mixed precision."""
from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import runtime
from course_lib.runtime import PROFILES, Profile, get_device, get_profile, seed_everything


@pytest.fixture
def no_env(monkeypatch):
    for name in ("COURSE_DEVICE", "COURSE_PROFILE", "COURSE_DATA"):
        monkeypatch.delenv(name, raising=False)


def _fake_hardware(monkeypatch, *, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_get_device_prefers_cuda_then_mps_then_cpu(no_env, monkeypatch, cuda, mps, expected):
    _fake_hardware(monkeypatch, cuda=cuda, mps=mps)
    assert get_device().type == expected


def test_course_device_overrides_the_choice(no_env, monkeypatch):
    _fake_hardware(monkeypatch, cuda=True, mps=False)
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    assert get_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "gpu", "CUDA"])
def test_unknown_device_lists_the_valid_ones(no_env, monkeypatch, name):
    with pytest.raises(ValueError, match="cpu, cuda, mps"):
        get_device(name)
    monkeypatch.setenv("COURSE_DEVICE", name)
    with pytest.raises(ValueError, match="cpu, cuda, mps"):
        get_device()


def test_unavailable_device_says_so(no_env, monkeypatch):
    _fake_hardware(monkeypatch, cuda=False, mps=False)
    for name in ("cuda", "cuda:0", "mps"):
        with pytest.raises(ValueError, match="not available"):
            get_device(name)


def test_device_index_and_malformed_names(no_env, monkeypatch):
    _fake_hardware(monkeypatch, cuda=True, mps=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert get_device("cuda:0") == torch.device("cuda", 0)
    assert get_device(torch.device("cpu")) == torch.device("cpu")  # a torch.device works too
    with pytest.raises(ValueError, match="1 CUDA device"):
        get_device("cuda:3")
    with pytest.raises(ValueError, match="invalid device 'cpu:x'"):
        get_device("cpu:x")


def test_get_profile_reads_the_environment_and_the_argument_wins(no_env, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    assert get_profile("full").name == "full"


@pytest.mark.parametrize("device, expected", [("cuda", "full"), ("cpu", "quick"), ("mps", "quick")])
def test_default_profile_depends_on_the_device(no_env, device, expected):
    assert get_profile(device=device).name == expected
    assert get_profile(device=torch.device(device)).name == expected


def test_default_profile_without_a_device_probes_it(no_env, monkeypatch):
    _fake_hardware(monkeypatch, cuda=False, mps=False)
    assert get_profile().name == "quick"
    monkeypatch.setenv("COURSE_PROFILE", "")  # an empty variable counts as unset
    assert get_profile().name == "quick"


def test_unknown_profile_lists_the_valid_ones(no_env, monkeypatch):
    with pytest.raises(ValueError, match="smoke, quick, full"):
        get_profile("fast")
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match="smoke, quick, full"):
        get_profile()


def test_profiles_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROFILES["quick"].gan_seconds = 1.0
    assert all(isinstance(p, Profile) and p.name == name for name, p in PROFILES.items())


def test_budgets_grow_from_smoke_to_quick_to_full():
    """Every numeric budget is at most as large in smoke as in quick, and in quick as in full (None = no cap)."""
    def value(profile, field):
        number = getattr(profile, field)
        return math.inf if number is None else number

    for field in dataclasses.fields(Profile):
        if field.name in ("name", "train"):
            continue
        smoke, quick, full = (value(PROFILES[n], field.name) for n in ("smoke", "quick", "full"))
        assert smoke <= quick <= full, f"{field.name}: smoke {smoke}, quick {quick}, full {full}"
    assert not PROFILES["smoke"].train and PROFILES["quick"].train and PROFILES["full"].train


def test_describe_profile_lists_every_budget():
    text = runtime.describe_profile(PROFILES["smoke"])
    assert all(field.name in text for field in dataclasses.fields(Profile))


def _draws():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_seed_everything_makes_runs_repeat():
    gen = seed_everything(123)
    first, first_gen = _draws(), torch.rand(2, generator=gen).tolist()
    gen = seed_everything(123)
    assert _draws() == first and torch.rand(2, generator=gen).tolist() == first_gen
    seed_everything(124)
    assert _draws() != first


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None])
def test_seed_everything_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="non-negative int"):
        seed_everything(seed)


def test_data_dir_honours_course_data(no_env, monkeypatch, tmp_path):
    repo_data = Path(runtime.__file__).resolve().parent.parent / "data"
    assert runtime.data_dir() == repo_data  # next to pyproject.toml, wherever the notebook runs from
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    assert runtime.data_dir() == tmp_path
    assert runtime.checkpoint_path("gan.pt") == tmp_path / "checkpoints" / "gan.pt"
    assert not (tmp_path / "checkpoints").exists()  # asking for a path creates nothing


# ---------------------------------------------------------------- mixed precision
def _fake_gpu(monkeypatch, capability: tuple[int, int], name: str = "Tesla T4") -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)


@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16), ((7, 0), torch.float16),
                                                  ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16),
                                                  ((6, 1), None)])
def test_amp_dtype_on_cuda_follows_the_compute_capability(monkeypatch, capability, expected):
    _fake_gpu(monkeypatch, capability)
    assert runtime.amp_dtype("cuda") is expected
    assert runtime.amp_dtype(torch.device("cuda", 0)) is expected


@pytest.mark.parametrize("has_bf16, expected", [(True, torch.bfloat16), (False, None)])
def test_amp_dtype_on_cpu_needs_native_bfloat16(monkeypatch, has_bf16, expected):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: has_bf16)
    assert runtime.amp_dtype("cpu") is expected


def test_amp_dtype_on_mps_is_float32(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)  # the host CPU's bfloat16 does not count
    assert runtime.amp_dtype("mps") is None


def test_amp_reason_on_a_t4_says_float16_and_why(monkeypatch):
    _fake_gpu(monkeypatch, (7, 5))
    assert runtime.amp_reason("cuda") == ("float16 autocast with a GradScaler: Tesla T4 is compute capability 7.5, "
                                          "which has float16 tensor cores but no bfloat16 hardware")


@pytest.mark.parametrize("device, gpu, has_bf16, start", [
    ("cuda", ((9, 0), "NVIDIA H100"), False, "bfloat16 autocast: NVIDIA H100 is compute capability 9.0"),
    ("cuda", ((6, 1), "GeForce GTX 1080"), False, "float32: GeForce GTX 1080 is compute capability 6.1"),
    ("cpu", None, True, "bfloat16 autocast: this CPU"),
    ("cpu", None, False, "float32: this CPU"),
    ("mps", None, True, "float32:"),
])
def test_amp_reason_starts_with_the_chosen_dtype(monkeypatch, device, gpu, has_bf16, start):
    if gpu is not None:
        _fake_gpu(monkeypatch, *gpu)
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: has_bf16)
    assert runtime.amp_reason(device).startswith(start)


# ---------------------------------------------------------------- COURSE_TIME_SCALE (make rehearse)
def test_time_scale_shrinks_time_and_iteration_budgets_only(monkeypatch):
    from course_lib.runtime import PROFILES, get_profile

    monkeypatch.setenv("COURSE_TIME_SCALE", "0.1")
    full, scaled = PROFILES["full"], get_profile("full")
    assert (scaled.gan_seconds, scaled.diffusion_seconds) == pytest.approx((full.gan_seconds / 10, full.diffusion_seconds / 10))
    assert (scaled.style_steps, scaled.inversion_steps) == (full.style_steps // 10, full.inversion_steps // 10)
    assert (scaled.judge_samples, scaled.reference_steps) == (full.judge_samples // 10, full.reference_steps // 10)
    assert scaled.time_scale == 0.1 and scaled.name == "full"
    for kept in ("image_size", "mnist_limit", "max_pixels", "train"):
        assert getattr(scaled, kept) == getattr(full, kept), kept


def test_time_scale_keeps_budgets_at_their_floors_and_none_as_none():
    from course_lib.runtime import PROFILES, scale_profile

    tiny = scale_profile(PROFILES["smoke"], 1e-6)
    assert tiny.gan_steps == 1 and tiny.style_steps == 1
    assert (tiny.judge_samples, tiny.sample_steps, tiny.reference_steps) == (200, 10, 50)  # the floors
    assert scale_profile(PROFILES["full"], 0.5).gan_steps is None


@pytest.mark.parametrize("value", ["fast", "0", "2"])
def test_a_bad_time_scale_is_refused_with_the_fix(monkeypatch, value):
    from course_lib.runtime import get_profile

    monkeypatch.setenv("COURSE_TIME_SCALE", value)
    with pytest.raises(ValueError, match="COURSE_TIME_SCALE|time scale must be in"):
        get_profile("full")


def test_check_choice_returns_a_valid_value_and_lists_the_choices_otherwise():
    assert runtime.check_choice("sampler", "ddim", ("ddpm", "ddim")) == "ddim"
    with pytest.raises(ValueError, match=r"^unknown sampler 'euler': use one of ddpm, ddim \(see scheduler_for\)$"):
        runtime.check_choice("sampler", "euler", ("ddpm", "ddim"), " (see scheduler_for)")


# ---------------------------------------------------------------- the progress bar and mixed precision
def test_progress_bar_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    with runtime.progress(range(3), desc="x") as bar:
        assert bar.disable and list(bar) == [0, 1, 2]


def test_autocast_uses_bfloat16_on_cpu_only_where_the_hardware_has_it(monkeypatch):
    x = torch.ones(2, 2)
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)  # looked up by runtime.amp_dtype
    with runtime.autocast("cpu"):
        assert (x @ x).dtype == torch.bfloat16
    with runtime.autocast("cpu", enabled=False):
        assert (x @ x).dtype == torch.float32
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    with runtime.autocast("cpu"):
        assert (x @ x).dtype == torch.float32


def test_autocast_runs_float16_where_amp_dtype_chooses_it(monkeypatch):
    monkeypatch.setattr(runtime, "amp_dtype", lambda device: torch.float16)  # as on a T4
    x = torch.ones(2, 2)
    with runtime.autocast("cpu"):
        assert (x @ x).dtype == torch.float16


@pytest.mark.parametrize("dtype, enabled", [(torch.float16, True), (torch.bfloat16, False), (None, False)])
def test_grad_scaler_is_on_only_under_float16(monkeypatch, dtype, enabled):
    monkeypatch.setattr(runtime, "amp_dtype", lambda device: dtype)
    assert runtime.grad_scaler("cpu").is_enabled() == enabled
    assert not runtime.grad_scaler("cpu", enabled=False).is_enabled()  # mixed_precision=False: no scaling


def test_disabled_grad_scaler_passes_everything_through():
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([param], lr=0.5)
    scaler = runtime.grad_scaler("cpu", enabled=False)
    loss = param.sum()
    assert scaler.scale(loss) is loss
    loss.backward()
    scaler.step(optimizer)
    scaler.update()
    torch.testing.assert_close(param.detach(), torch.full((2,), 0.5))  # a plain SGD step


def test_float16_grad_scaler_skips_a_step_on_inf_gradients_and_lowers_the_scale(monkeypatch):
    monkeypatch.setattr(runtime, "amp_dtype", lambda device: torch.float16)
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([param], lr=0.5)
    scaler = runtime.grad_scaler("cpu")
    scaler.scale(param.sum() * math.inf).backward()  # an overflowed float16 gradient
    scaler.step(optimizer)
    scaler.update()
    assert torch.equal(param.detach(), torch.ones(2)) and scaler.get_scale() == 2.0**15
