"""DDIM inversion of a reference clip and the noise prior built from it.

MotionDirector starts sampling from `sqrt(p) * z_inv + sqrt(1 - p) * eps`, where `z_inv` is the
reference clip's latents DDIM-inverted with the base model (no LoRA, empty prompt, no guidance).
Inverted latents are kept in a small safetensors file, and cached by content so a clip is inverted once.
"""

import hashlib
import logging
from pathlib import Path

import torch

from . import lora
from .errors import Cancelled, MotionDirectorError
from .files import read_safetensors, write_safetensors
from .noise_prior import NoisePrior, fit_latents, mix_noise_prior, prior_latents  # noqa: F401 - this module's API too
from .schedulers import make_scheduler, scheduler_from_config

log = logging.getLogger(__name__)

FORMAT = "motiondirector-noise"
FORMAT_VERSION = "1"


def inverse_scheduler(model, steps: int):
    """A DDIMInverseScheduler whose timesteps are those the DDIM sampler walks with the model's own config, reversed.

    Each inverse step at t lifts x between the same two noise levels as the sampling step at t lowers it
    (alphas_cumprod[t - 1000/steps] and alphas_cumprod[t]), for every timestep_spacing: DDIMInverseScheduler builds
    only leading and trailing grids itself, and a linspace model (AnimateDiff's configs) would be inverted on other
    timesteps than it is sampled on.
    """
    from diffusers import DDIMInverseScheduler

    sampler = make_scheduler(model, "ddim")
    sampler.set_timesteps(steps, device=model.device)
    inverse = scheduler_from_config(DDIMInverseScheduler, model.scheduler_config, timestep_spacing="leading")
    inverse.set_timesteps(steps, device=model.device)  # sets num_inference_steps, which its step() reads
    inverse.timesteps = sampler.timesteps.flip(0)
    return inverse


@torch.no_grad()
def ddim_invert(model, latents: torch.Tensor, steps: int = 50, prompt: str = "", on_step=None, should_cancel=None):
    """Clean latents [1, C, F, h, w] -> z_inv, with the base model (every adapter off while it runs).

    Each step mirrors one DDIM sampling step: sampling at timestep t uses eps(x_t, t) to go from the
    noise level alphas_cumprod[t] down to alphas_cumprod[t - 1000/steps] (alphas_cumprod[0] below 0,
    as set_alpha_to_one=False says); inversion at t uses eps(x_{t-1000/steps}, t) to go back up between
    the same two levels, timesteps ascending. The only error left is eps(x_prev, t) ~ eps(x_t, t).
    """
    if latents.ndim != 5 or latents.shape[:2] != (1, model.latent_channels):
        raise MotionDirectorError(
            f"latents to invert must be shaped [1, {model.latent_channels}, F, h, w], got {list(latents.shape)}."
        )
    train_steps = int(model.scheduler_config.get("num_train_timesteps", 1000))
    if not isinstance(steps, int) or not 1 <= steps <= train_steps:
        raise MotionDirectorError(f"inversion steps must be a whole number from 1 to {train_steps}, got {steps!r}.")
    scheduler = inverse_scheduler(model, steps)
    unet = model.unet
    saved_scales, was_training = lora.active_scales(unet), unet.training
    lora.set_scales(unet, {})
    unet.eval()
    try:
        embeddings = model.encode_prompts([prompt]).to(model.device, model.dtype)
        x = latents.to(model.device, torch.float32)
        total = len(scheduler.timesteps)
        for i, t in enumerate(scheduler.timesteps):
            if should_cancel is not None and should_cancel():
                raise Cancelled(f"inversion cancelled at step {i}/{total}")
            eps = unet(x.to(model.dtype), t, encoder_hidden_states=embeddings).sample.float()
            x = scheduler.step(eps, t, x).prev_sample
            if on_step is not None:
                on_step(i + 1, total, x)
    finally:
        lora.set_scales(unet, saved_scales)
        unet.train(was_training)
    return x


def save_noise(path: str | Path, prior: NoisePrior) -> Path:
    path = Path(path)
    metadata = dict(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        source=prior.source,
        steps=prior.steps,
        model=prior.model,
        frames=prior.frames,
        width=prior.width,
        height=prior.height,
    )
    latents = prior.latents.detach().float().cpu().contiguous()
    return write_safetensors(path, {"latents": latents}, metadata)


def load_noise(path: str | Path) -> NoisePrior:
    path = Path(path)
    if not path.is_file():
        raise MotionDirectorError(f"noise file {path} does not exist: invert the reference clip first.")
    tensors, metadata = read_safetensors(path, "invert the reference again.")
    latents = tensors.get("latents")
    if metadata.get("format") != FORMAT or latents is None or latents.ndim != 5:
        raise MotionDirectorError(
            f"{path} is not a MotionDirector noise file (inverted reference latents): "
            "pick a file made by Invert reference."
        )
    try:
        return NoisePrior(
            latents=latents.float(),
            source=metadata.get("source", ""),
            steps=int(metadata["steps"]),
            model=metadata.get("model", ""),
            frames=int(metadata["frames"]),
            width=int(metadata["width"]),
            height=int(metadata["height"]),
        )
    except (KeyError, ValueError) as exc:
        raise MotionDirectorError(f"{path} has damaged metadata ({exc}): invert the reference again.") from exc


def cache_key(model, frames: torch.Tensor, steps: int) -> str:
    digest = hashlib.sha256()
    digest.update(str(tuple(frames.shape)).encode())
    digest.update(frames.detach().float().cpu().contiguous().numpy().tobytes())
    digest.update(f"|{Path(model.path).resolve()}|{model.name}|{model.dtype}|{steps}".encode())
    return digest.hexdigest()


def invert_frames(
    model,
    frames: torch.Tensor,
    steps: int = 50,
    source: str = "",
    cache_dir: str | Path | None = None,
    on_step=None,
    should_cancel=None,
) -> NoisePrior:
    """Encode frames [F, H, W, 3] (0..1; F == 1 for a still image) and DDIM-invert them with the base model."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        shape = list(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise MotionDirectorError(f"frames to invert must be a tensor shaped [F, H, W, 3], got {shape}.")
    cached = None
    if cache_dir is not None:
        cached = Path(cache_dir) / f"{cache_key(model, frames, steps)}.safetensors"
        if cached.is_file():
            try:
                prior = load_noise(cached)
                prior.source = source or prior.source
                return prior
            except MotionDirectorError as exc:
                log.warning("ignoring a damaged inversion cache file: %s", exc)
    latents = model.encode_frames(frames.float())
    z_inv = ddim_invert(model, latents, steps=steps, on_step=on_step, should_cancel=should_cancel)
    prior = NoisePrior(
        latents=z_inv.float().cpu(),
        source=source,
        steps=steps,
        model=model.name,
        frames=int(frames.shape[0]),
        width=int(frames.shape[2]),
        height=int(frames.shape[1]),
    )
    if cached is not None:
        save_noise(cached, prior)
    return prior
