import dataclasses
import math

import pytest
import torch

from motiondirector_core import lora
from motiondirector_core.errors import Cancelled, MotionDirectorError
from motiondirector_core.invert import NoisePrior, fit_latents
from motiondirector_core.sample import (
    SCHEDULERS,
    SampleSettings,
    denoise,
    generate,
    initial_noise,
    make_scheduler,
)


def small(**changes) -> SampleSettings:
    return dataclasses.replace(SampleSettings(prompt="a cat", frames=2, width=32, height=32, steps=2), **changes)


def add_trained_adapter(model, name: str, kind: str, dropout: float = 0.0) -> None:
    """An adapter whose B is non-zero, so it changes the UNet's output."""
    lora.add_adapter(model.unet, model.family, name, kind, rank=4, dropout=dropout)
    with torch.no_grad():
        for _, layer in lora.lora_layers(model.unet):
            if name in layer.lora_B:
                layer.lora_B[name].weight.normal_(0, 0.5)


def record_unet_batches(model) -> list[int]:
    batches = []
    model.unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    return batches


def test_same_seed_gives_the_same_frames_and_another_seed_differs(tiny_model):
    first = generate(tiny_model, small(seed=3))
    again = generate(tiny_model, small(seed=3))
    other = generate(tiny_model, small(seed=4))
    assert first.shape == (2, 32, 32, 3) and first.dtype == torch.float32 and first.device.type == "cpu"
    assert 0 <= first.min() and first.max() <= 1
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_seed_reproduces_after_adding_and_removing_an_adapter(tiny_model):
    before = generate(tiny_model, small(seed=7))
    add_trained_adapter(tiny_model, "temporal", "temporal")  # draws from torch's global RNG
    torch.randn(1000)
    lora.remove_adapter(tiny_model.unet, "temporal")
    assert torch.equal(generate(tiny_model, small(seed=7)), before)


def test_batched_guidance_equals_the_unbatched_formula(tiny_model):
    settings = small(steps=1, cfg=7.5, negative_prompt="blurry", seed=1)
    start = initial_noise(tiny_model, settings)
    batched = denoise(tiny_model, settings, start)

    scheduler = make_scheduler(tiny_model, "ddim")
    scheduler.set_timesteps(1)
    (t,) = scheduler.timesteps
    with torch.no_grad():
        uncond = tiny_model.unet(start, t, encoder_hidden_states=tiny_model.encode_prompts(["blurry"])).sample
        cond = tiny_model.unet(start, t, encoder_hidden_states=tiny_model.encode_prompts(["a cat"])).sample
    by_hand = scheduler.step(uncond + 7.5 * (cond - uncond), t, start).prev_sample
    assert torch.allclose(batched, by_hand, atol=1e-5)
    assert not torch.allclose(batched, scheduler.step(cond, t, start).prev_sample, atol=1e-3)


@pytest.mark.parametrize("cfg", [1.0, 0.5])
def test_cfg_at_most_one_runs_the_conditional_pass_alone(tiny_model, cfg):
    settings = small(steps=1, cfg=cfg, negative_prompt="blurry")
    start = initial_noise(tiny_model, settings)
    batches = record_unet_batches(tiny_model)
    result = denoise(tiny_model, settings, start)
    assert batches == [1]

    scheduler = make_scheduler(tiny_model, "ddim")
    scheduler.set_timesteps(1)
    (t,) = scheduler.timesteps
    with torch.no_grad():
        cond = tiny_model.unet(start, t, encoder_hidden_states=tiny_model.encode_prompts(["a cat"])).sample
    assert torch.allclose(result, scheduler.step(cond, t, start).prev_sample, atol=1e-6)


def test_guidance_runs_one_batched_unet_call_per_step(tiny_model):
    batches = record_unet_batches(tiny_model)
    generate(tiny_model, small(steps=3, cfg=12.0))
    assert batches == [2, 2, 2]


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_scheduler_samples_differently_and_reproducibly(tiny_model, name):
    frames = generate(tiny_model, small(steps=3, scheduler=name))
    assert frames.shape == (2, 32, 32, 3) and torch.isfinite(frames).all()
    assert torch.equal(frames, generate(tiny_model, small(steps=3, scheduler=name)))
    others = [generate(tiny_model, small(steps=3, scheduler=other)) for other in SCHEDULERS if other != name]
    assert not any(torch.equal(frames, other) for other in others)  # the choice is not ignored


@pytest.mark.parametrize("name", ["ddim", "dpm++2m", "euler"])
def test_each_required_scheduler_is_that_diffusers_scheduler_on_the_models_schedule(tiny_model, name):
    import diffusers

    scheduler = make_scheduler(tiny_model, name)
    expected = {"ddim": diffusers.DDIMScheduler, "dpm++2m": diffusers.DPMSolverMultistepScheduler,
                "euler": diffusers.EulerDiscreteScheduler}[name]
    assert type(scheduler) is expected
    reference = diffusers.DDPMScheduler.from_config(tiny_model.scheduler_config)
    torch.testing.assert_close(scheduler.alphas_cumprod, reference.alphas_cumprod)  # the model's own noise levels
    if name == "ddim":  # the sampler's steps are those of a DDIM scheduler made from the model's config
        settings = small(steps=3, cfg=1.0)
        latents = initial_noise(tiny_model, settings)
        plain = diffusers.DDIMScheduler.from_config(tiny_model.scheduler_config)
        plain.set_timesteps(3)
        x = latents.clone()
        embeddings = tiny_model.encode_prompts([settings.prompt])
        with torch.no_grad():
            for t in plain.timesteps:
                eps = tiny_model.unet(x, t, encoder_hidden_states=embeddings).sample
                x = plain.step(eps, t, x).prev_sample
        torch.testing.assert_close(denoise(tiny_model, settings, latents), x)


def test_dpm_solver_is_second_order_dpmsolver_plus_plus(tiny_model):
    scheduler = make_scheduler(tiny_model, "dpm++2m")
    assert type(scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert scheduler.config.algorithm_type == "dpmsolver++" and scheduler.config.solver_order == 2
    assert scheduler.config.beta_schedule == tiny_model.scheduler_config["beta_schedule"]


def test_on_step_reports_every_step(tiny_model):
    calls = []
    generate(tiny_model, small(steps=4), on_step=lambda step, total, x: calls.append((step, total, x.shape)))
    assert calls == [(i, 4, (1, 4, 2, 4, 4)) for i in range(1, 5)]


def test_cancel_stops_sampling_and_restores_train_mode(tiny_model):
    tiny_model.unet.train()
    checks = []

    def cancel_on_second_check():
        checks.append(1)
        return len(checks) >= 2

    with pytest.raises(Cancelled, match="sampling cancelled at step 1/3"):
        generate(tiny_model, small(steps=3), should_cancel=cancel_on_second_check)
    assert tiny_model.unet.training


def test_sampling_runs_in_eval_mode_so_lora_dropout_is_off(tiny_model):
    add_trained_adapter(tiny_model, "temporal", "temporal", dropout=0.5)
    lora.set_scales(tiny_model.unet, {"temporal": 1.0})
    tiny_model.unet.train()
    modes = []
    tiny_model.unet.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    first = generate(tiny_model, small(seed=2))
    assert torch.equal(first, generate(tiny_model, small(seed=2)))
    assert modes and not any(modes)
    assert tiny_model.unet.training
    assert lora.active_scales(tiny_model.unet) == {"temporal": 1.0}


def test_adapter_scales_change_the_result(tiny_model):
    add_trained_adapter(tiny_model, "temporal", "temporal")
    plain = generate(tiny_model, small(seed=5))
    lora.set_scales(tiny_model.unet, {"temporal": 1.0})
    assert not torch.allclose(generate(tiny_model, small(seed=5)), plain)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"frames": 0}, "frames"),
        ({"width": 30}, "width 30"),
        ({"height": -8}, "height -8"),
        ({"steps": 0}, "steps"),
        ({"steps": 1001}, "steps"),
        ({"cfg": math.nan}, "cfg"),
        ({"seed": -1}, "seed"),
        ({"noise_prior": 1.5}, "noise_prior"),
        ({"noise_prior": -0.1}, "noise_prior"),
        ({"noise_prior": 0.3}, "no inverted reference"),
        ({"scheduler": "plms"}, "ddim, dpm\\+\\+2m, euler"),
        ({"prompt": None}, "prompt"),
    ],
)
def test_bad_settings_raise_a_clear_error(tiny_model, changes, message):
    with pytest.raises(MotionDirectorError, match=message):
        generate(tiny_model, small(**changes))


def test_settings_round_trip_through_a_dict():
    settings = small(cfg=9.0, scheduler="euler", noise_prior=0.2)
    assert SampleSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(MotionDirectorError, match="unknown sample settings"):
        SampleSettings.from_dict({**settings.to_dict(), "guidance": 3})


def test_noise_prior_zero_is_plain_noise(tiny_model):
    z_inv = torch.randn(1, 4, 2, 4, 4)
    plain = initial_noise(tiny_model, small(seed=9))
    assert torch.equal(initial_noise(tiny_model, small(seed=9, noise_prior=0.0), z_inv), plain)
    assert plain.dtype == torch.float32 and plain.shape == (1, 4, 2, 4, 4)
    expected = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(9))
    assert torch.equal(plain, expected)


@pytest.mark.parametrize("scheduler", ["ddim", "euler"])
def test_noise_prior_one_is_the_fitted_inverted_latents_times_init_sigma(tiny_model, scheduler):
    z_inv = torch.randn(1, 4, 1, 2, 2)  # one frame at another size: fitted to 3 frames of 4x4
    prior = NoisePrior(z_inv, source="ref", steps=50, model="tiny", frames=1, width=16, height=16)
    settings = small(frames=3, seed=1, noise_prior=1.0, scheduler=scheduler)
    sigma = make_scheduler(tiny_model, scheduler)
    sigma.set_timesteps(settings.steps)
    expected = fit_latents(z_inv, 3, 4, 4) * float(sigma.init_noise_sigma)
    assert torch.allclose(initial_noise(tiny_model, settings, prior), expected, atol=1e-6)
    assert torch.allclose(initial_noise(tiny_model, settings, z_inv), expected, atol=1e-6)
    if scheduler == "euler":
        assert float(sigma.init_noise_sigma) > 1.5  # so the test tells "times sigma" from "times 1"


def test_noise_prior_mixes_with_square_root_weights(tiny_model):
    z_inv = torch.randn(1, 4, 2, 4, 4)
    eps = initial_noise(tiny_model, small(seed=2))
    mixed = initial_noise(tiny_model, small(seed=2, noise_prior=0.25), z_inv)
    assert torch.allclose(mixed, 0.5 * z_inv + math.sqrt(0.75) * eps, atol=1e-6)


def test_reference_latents_of_another_model_are_rejected(tiny_model):
    with pytest.raises(MotionDirectorError, match="invert the reference with this model"):
        generate(tiny_model, small(noise_prior=0.5), reference_latents=torch.randn(1, 8, 2, 4, 4))
