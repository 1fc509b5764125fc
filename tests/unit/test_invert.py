import dataclasses
from types import SimpleNamespace

import pytest
import torch

from motiondirector_core import invert, lora
from motiondirector_core.errors import Cancelled, MotionDirectorError
from motiondirector_core.invert import (
    NoisePrior,
    ddim_invert,
    fit_latents,
    invert_frames,
    load_noise,
    mix_noise_prior,
    save_noise,
)
from motiondirector_core.lora_files import save_lora
from motiondirector_core.sample import SampleSettings, denoise


def relative_error(result: torch.Tensor, target: torch.Tensor) -> float:
    return float((result - target).norm() / target.norm())


def round_trip(model, latents: torch.Tensor, invert_steps: int = 50, sample_steps: int = 50) -> float:
    """Invert, then DDIM-sample back from z_inv with no guidance and the empty prompt."""
    z_inv = ddim_invert(model, latents, steps=invert_steps)
    frames, height, width = latents.shape[2:]
    settings = SampleSettings(prompt="", frames=frames, width=width * 8, height=height * 8, steps=sample_steps, cfg=1.0)
    return relative_error(denoise(model, settings, z_inv), latents)


original_inverse_scheduler = invert.inverse_scheduler


def shuffled_inverse_scheduler(model, steps):
    scheduler = original_inverse_scheduler(model, steps)
    order = torch.randperm(len(scheduler.timesteps), generator=torch.Generator().manual_seed(0))
    scheduler.timesteps = scheduler.timesteps[order.to(scheduler.timesteps.device)]
    return scheduler


class TimeOnlyNoise(torch.nn.Module):
    """A stand-in UNet whose noise prediction depends on the timestep only: DDIM inversion is then exact."""

    def __init__(self, shape):
        super().__init__()
        self.config = SimpleNamespace(in_channels=shape[1])
        self.direction = torch.randn(shape, generator=torch.Generator().manual_seed(1))

    def forward(self, sample, timestep, encoder_hidden_states=None):
        t = float(timestep)
        return SimpleNamespace(sample=(torch.cos(torch.tensor(t / 150.0)) + t / 1000.0) * self.direction)


def test_round_trip_through_the_tiny_model_reproduces_the_latents(tiny_model):
    latents = torch.randn(1, 4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    # An exact inversion measures 0.17 on this random-weight UNet (its noise prediction is no smooth denoiser,
    # so eps(x_prev, t) != eps(x_t, t) costs that much); shuffled timesteps measure 0.82.
    assert round_trip(tiny_model, latents) < 0.25


def test_round_trip_fails_when_the_inversion_steps_are_shuffled(tiny_model, monkeypatch):
    latents = torch.randn(1, 4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(invert, "inverse_scheduler", shuffled_inverse_scheduler)
    assert round_trip(tiny_model, latents) > 0.5


@pytest.mark.parametrize("spacing, offset", [("leading", 0), ("leading", 1), ("trailing", 0), ("linspace", 0),
                                             ("linspace", 1)])
def test_inversion_uses_exactly_the_alphas_of_the_matching_sampling_steps(tiny_model, spacing, offset):
    """For every timestep spacing (AnimateDiff's configs use linspace with steps_offset 1), the inversion walks the
    DDIM sampler's own timesteps back, so a UNet whose noise prediction depends on t alone is inverted exactly
    (an epsilon model: a v prediction mixes in the sample itself)."""
    latents = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    config = {**tiny_model.scheduler_config, "timestep_spacing": spacing, "steps_offset": offset,
              "prediction_type": "epsilon"}
    model = dataclasses.replace(tiny_model, unet=TimeOnlyNoise(latents.shape), scheduler_config=config)
    # Measured 2e-6 (float32 rounding); swapping two of the 50 timesteps gives 1e-4, an initial alpha of 1 gives 3e-2.
    assert round_trip(model, latents, 50, 50) < 2e-5
    assert round_trip(model, latents, 10, 10) < 2e-5
    # Inverting on another grid of timesteps than the sampler's leaves a clear error.
    assert round_trip(model, latents, 25, 50) > 1e-2


def test_inversion_runs_the_base_model_and_restores_the_callers_adapters(tiny_model):
    latents = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(3))
    base = ddim_invert(tiny_model, latents, steps=3)
    lora.add_adapter(tiny_model.unet, tiny_model.family, "temporal", "temporal", rank=4)
    with torch.no_grad():
        for _, layer in lora.lora_layers(tiny_model.unet):
            layer.lora_B["temporal"].weight.normal_(0, 0.5)
    lora.set_scales(tiny_model.unet, {"temporal": 0.7})
    tiny_model.unet.train()
    assert torch.equal(ddim_invert(tiny_model, latents, steps=3), base)
    assert lora.active_scales(tiny_model.unet) == {"temporal": 0.7}
    assert tiny_model.unet.training

    with pytest.raises(Cancelled, match="inversion cancelled at step 0/3"):
        ddim_invert(tiny_model, latents, steps=3, should_cancel=lambda: True)
    assert lora.active_scales(tiny_model.unet) == {"temporal": 0.7}


def test_inversion_reports_progress_and_checks_its_inputs(tiny_model):
    calls = []
    latents = torch.zeros(1, 4, 2, 4, 4)
    ddim_invert(tiny_model, latents, steps=3, on_step=lambda step, total, x: calls.append((step, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(MotionDirectorError, match="shaped"):
        ddim_invert(tiny_model, torch.zeros(4, 2, 4, 4))
    with pytest.raises(MotionDirectorError, match="inversion steps"):
        ddim_invert(tiny_model, latents, steps=0)


def test_fit_latents_keeps_a_matching_shape_and_repeats_one_frame():
    z = torch.randn(1, 4, 3, 4, 4)
    assert torch.equal(fit_latents(z, 3, 4, 4), z)
    still = torch.randn(1, 4, 1, 4, 4)
    repeated = fit_latents(still, 5, 4, 4)
    assert repeated.shape == (1, 4, 5, 4, 4)
    assert all(torch.equal(repeated[:, :, i], still[:, :, 0]) for i in range(5))


def test_fit_latents_resizes_and_keeps_each_channels_statistics():
    z = torch.randn(1, 4, 4, 6, 6) * torch.tensor([1.0, 2.0, 0.5, 1.5]).view(1, 4, 1, 1, 1)
    fitted = fit_latents(z, 7, 10, 12)
    assert fitted.shape == (1, 4, 7, 10, 12)
    dims = (0, 2, 3, 4)
    assert torch.allclose(fitted.std(dim=dims), z.std(dim=dims), atol=1e-4)
    assert torch.allclose(fitted.mean(dim=dims), z.mean(dim=dims), atol=1e-4)
    from_still = fit_latents(torch.randn(1, 4, 1, 6, 6), 3, 4, 4)
    assert from_still.shape == (1, 4, 3, 4, 4)
    assert torch.equal(from_still[:, :, 0], from_still[:, :, 2])
    with pytest.raises(MotionDirectorError, match="shaped"):
        fit_latents(torch.randn(4, 3, 4, 4), 3, 4, 4)


def test_mix_noise_prior_checks_strength_and_shapes():
    eps, z = torch.randn(1, 4, 2, 4, 4), torch.randn(1, 4, 2, 4, 4)
    assert torch.equal(mix_noise_prior(eps, z, 0.0), eps)
    assert torch.equal(mix_noise_prior(eps, z, 1.0), z)
    with pytest.raises(MotionDirectorError, match="from 0 to 1"):
        mix_noise_prior(eps, z, 1.2)
    with pytest.raises(MotionDirectorError, match="fit them first"):
        mix_noise_prior(eps, torch.randn(1, 4, 3, 4, 4), 0.5)


def test_noise_file_round_trip(tmp_path):
    latents = torch.randn(1, 4, 2, 4, 4)
    prior = NoisePrior(latents, source="car.mp4", steps=50, model="tiny", frames=2, width=32, height=32)
    path = save_noise(tmp_path / "noise" / "car.safetensors", prior)
    loaded = load_noise(path)
    assert torch.equal(loaded.latents, prior.latents)
    assert dataclasses.replace(loaded, latents=None) == dataclasses.replace(prior, latents=None)


def test_load_noise_rejects_files_that_are_not_noise(tmp_path, tiny_model):
    with pytest.raises(MotionDirectorError, match="does not exist"):
        load_noise(tmp_path / "missing.safetensors")
    text = tmp_path / "notes.safetensors"
    text.write_text("not tensors")
    with pytest.raises(MotionDirectorError, match="not a readable safetensors"):
        load_noise(text)
    lora.add_adapter(tiny_model.unet, tiny_model.family, "spatial", "spatial", rank=2)
    weights = lora.LoraWeights("spatial", lora.adapter_state(tiny_model.unet, "spatial"))
    lora_file = save_lora(tmp_path / "spatial.safetensors", weights)
    with pytest.raises(MotionDirectorError, match="not a MotionDirector noise file"):
        load_noise(lora_file)


def count_unet_calls(model) -> list[int]:
    calls = []
    model.unet.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls


def test_invert_frames_caches_by_content(tiny_model, tmp_path):
    frames = torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(4))
    calls = count_unet_calls(tiny_model)
    first = invert_frames(tiny_model, frames, steps=3, source="clip.mp4", cache_dir=tmp_path)
    assert len(calls) == 3
    assert (first.frames, first.width, first.height, first.steps, first.model) == (2, 32, 32, 3, tiny_model.name)
    assert first.latents.shape == (1, 4, 2, 4, 4)
    cached_files = list(tmp_path.glob("*.safetensors"))
    assert len(cached_files) == 1 and len(cached_files[0].stem) == 64

    again = invert_frames(tiny_model, frames.clone(), steps=3, source="clip.mp4", cache_dir=tmp_path)
    assert len(calls) == 3
    assert torch.equal(again.latents, first.latents) and again.source == "clip.mp4"

    invert_frames(tiny_model, frames, steps=2, cache_dir=tmp_path)
    invert_frames(tiny_model, frames.flip(0), steps=3, cache_dir=tmp_path)
    assert len(calls) == 3 + 2 + 3
    assert len(list(tmp_path.glob("*.safetensors"))) == 3


def test_a_damaged_cache_file_is_recomputed(tiny_model, tmp_path):
    frames = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(5))
    first = invert_frames(tiny_model, frames, steps=2, cache_dir=tmp_path)
    (cached,) = tmp_path.glob("*.safetensors")
    cached.write_bytes(b"broken")
    again = invert_frames(tiny_model, frames, steps=2, cache_dir=tmp_path)
    assert torch.equal(again.latents, first.latents)
    assert load_noise(cached).steps == 2


def test_a_still_image_inverts_to_one_frame(tiny_model):
    prior = invert_frames(tiny_model, torch.rand(1, 32, 32, 3), steps=2, source="photo.jpg")
    assert prior.latents.shape == (1, 4, 1, 4, 4) and prior.frames == 1
    assert fit_latents(prior.latents, 4, 4, 4).shape == (1, 4, 4, 4, 4)


def test_invert_frames_rejects_bad_frames(tiny_model):
    with pytest.raises(MotionDirectorError, match=r"\[F, H, W, 3\]"):
        invert_frames(tiny_model, torch.rand(32, 32, 3))
    with pytest.raises(MotionDirectorError, match="width 30"):
        invert_frames(tiny_model, torch.rand(1, 32, 30, 3))
