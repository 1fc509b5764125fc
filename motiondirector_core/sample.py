"""Our own text-to-video sampling loop: diffusers schedulers, batched classifier-free guidance, callbacks.

LoRA scales are the caller's business (`lora.set_scales` before `generate`); this module only reads
the UNet as it is. Latents stay fp32 between steps; only the UNet inputs are cast to the model dtype.
"""

import dataclasses
import inspect
import math
from dataclasses import dataclass

import numpy as np
import torch

from .errors import Cancelled, MotionDirectorError
from .noise_prior import fit_latents, mix_noise_prior, prior_latents
from .schedulers import SCHEDULERS, make_scheduler

@dataclass
class SampleSettings:
    prompt: str
    negative_prompt: str = ""
    frames: int = 16
    width: int = 384
    height: int = 384
    steps: int = 30
    cfg: float = 12.0
    seed: int = 0
    scheduler: str = "ddim"
    noise_prior: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "SampleSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise MotionDirectorError(f"unknown sample settings {unknown}: the known ones are {sorted(known)}.")
        return cls(**values)


def check_settings(model, settings: SampleSettings, has_reference: bool = False) -> None:
    """Raise MotionDirectorError naming the first bad setting."""
    if not isinstance(settings.prompt, str) or not isinstance(settings.negative_prompt, str):
        raise MotionDirectorError("prompt and negative_prompt must be text.")
    if not _is_int(settings.frames) or settings.frames < 1:
        raise MotionDirectorError(f"frames must be a whole number of at least 1, got {settings.frames!r}.")
    check_frames(model, settings.frames)
    if not (_is_int(settings.width) and _is_int(settings.height)):
        raise MotionDirectorError(
            f"width and height must be whole numbers, got {settings.width!r} x {settings.height!r}."
        )
    model.check_size(settings.width, settings.height)
    train_steps = int(model.scheduler_config.get("num_train_timesteps", 1000))
    if not _is_int(settings.steps) or not 1 <= settings.steps <= train_steps:
        raise MotionDirectorError(f"steps must be a whole number from 1 to {train_steps}, got {settings.steps!r}.")
    if not isinstance(settings.cfg, (int, float)) or not math.isfinite(settings.cfg):
        raise MotionDirectorError(f"cfg must be a finite number (12 is the method's default), got {settings.cfg!r}.")
    if not _is_int(settings.seed) or not 0 <= settings.seed < 2**64:
        raise MotionDirectorError(f"seed must be a whole number from 0 to 2**64 - 1, got {settings.seed!r}.")
    if settings.scheduler not in SCHEDULERS:
        raise MotionDirectorError(f"scheduler {settings.scheduler!r} is unknown: use one of {', '.join(SCHEDULERS)}.")
    p = settings.noise_prior
    if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise MotionDirectorError(f"noise_prior must be from 0 to 1 (0.1-0.5 for one reference video), got {p!r}.")
    if p > 0 and not has_reference:
        raise _missing_reference(p)


def check_frames(model, frames: int) -> None:
    """A family whose temporal layers know a fixed number of positions (AnimateDiff's motion modules) takes no more."""
    limit = model.family.max_frames(model.unet)
    if limit is not None and frames > limit:
        raise MotionDirectorError(
            f"{frames} frames are more than this {model.family.name} model's temporal layers take ({limit}): use at "
            f"most {limit} (longer videos are made from the exported motion LoRA in AnimateDiff-Evolved, with "
            f"context windows)."
        )


def _missing_reference(p: float) -> MotionDirectorError:
    return MotionDirectorError(
        f"noise_prior is {p} but no inverted reference was given: invert a reference clip or set noise_prior to 0."
    )


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def latent_shape(model, settings: SampleSettings) -> tuple[int, int, int, int, int]:
    f = model.vae_factor
    return (1, model.latent_channels, settings.frames, settings.height // f, settings.width // f)


def initial_noise(model, settings: SampleSettings, reference_latents=None) -> torch.Tensor:
    """The starting latents [1, C, F, h, w] (fp32, on the model's device), scaled for the scheduler.

    eps comes from a private CPU generator, so a seed gives the same video on any device and whatever
    else used torch's global RNG before (e.g. a freshly initialised adapter).
    """
    shape = latent_shape(model, settings)
    eps = torch.randn(shape, generator=torch.Generator().manual_seed(int(settings.seed)), dtype=torch.float32)
    if settings.noise_prior > 0:
        if reference_latents is None:
            raise _missing_reference(settings.noise_prior)
        z_inv = prior_latents(reference_latents).float().cpu()
        if z_inv.ndim != 5 or z_inv.shape[1] != model.latent_channels:
            raise MotionDirectorError(
                f"the inverted reference is shaped {list(z_inv.shape)}, this model needs "
                f"[1, {model.latent_channels}, F, h, w]: invert the reference with this model."
            )
        eps = mix_noise_prior(eps, fit_latents(z_inv, *shape[2:]), settings.noise_prior)
    scheduler = make_scheduler(model, settings.scheduler)
    scheduler.set_timesteps(settings.steps)
    return (eps * float(scheduler.init_noise_sigma)).to(model.device)


def step_generator(seed: int) -> torch.Generator:
    """For ancestral schedulers: a stream independent of the initial noise (and of other seeds' noise)."""
    derived = int(np.random.SeedSequence([int(seed), 1]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator().manual_seed(derived)


@torch.no_grad()
def denoise(model, settings: SampleSettings, latents: torch.Tensor, on_step=None, should_cancel=None) -> torch.Tensor:
    """Run the scheduler from `latents` to clean latents; on_step(step, total, latents) after each step."""
    scheduler = make_scheduler(model, settings.scheduler)
    scheduler.set_timesteps(settings.steps, device=model.device)
    guided = settings.cfg > 1.0
    texts = [settings.negative_prompt, settings.prompt] if guided else [settings.prompt]
    embeddings = model.encode_prompts(texts)
    step_kwargs = {}
    if "generator" in inspect.signature(scheduler.step).parameters:
        step_kwargs["generator"] = step_generator(settings.seed)
    latents = latents.to(model.device, torch.float32)
    unet = model.unet
    was_training = unet.training
    unet.eval()
    try:
        total = len(scheduler.timesteps)
        for i, t in enumerate(scheduler.timesteps):
            if should_cancel is not None and should_cancel():
                raise Cancelled(f"sampling cancelled at step {i}/{total}")
            model_input = scheduler.scale_model_input(latents, t)
            if guided:
                model_input = torch.cat([model_input, model_input])
            noise = unet(model_input.to(model.dtype), t, encoder_hidden_states=embeddings).sample.float()
            if guided:
                uncond, cond = noise.chunk(2)
                noise = uncond + settings.cfg * (cond - uncond)
            latents = scheduler.step(noise, t, latents, **step_kwargs).prev_sample
            if on_step is not None:
                on_step(i + 1, total, latents)
    finally:
        unet.train(was_training)
    return latents


def generate(model, settings: SampleSettings, reference_latents=None, on_step=None, should_cancel=None) -> torch.Tensor:
    """Frames [F, H, W, 3] float in 0..1 on the CPU, with whatever LoRA scales the UNet has now."""
    check_settings(model, settings, has_reference=reference_latents is not None)
    latents = initial_noise(model, settings, reference_latents)
    latents = denoise(model, settings, latents, on_step=on_step, should_cancel=should_cancel)
    return model.decode_latents(latents)
