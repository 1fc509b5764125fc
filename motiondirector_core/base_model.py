"""A loaded base model: its components, and how prompts become embeddings and frames become latents and back.

Every family loads into this one shape (families/); the trainer, sampler and inverter use nothing else.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import MotionDirectorError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise MotionDirectorError(f"dtype {dtype!r} is not supported: use one of {', '.join(DTYPES)}.")
    return DTYPES[dtype]


@dataclass
class BaseModel:
    family: "ModelFamily"  # noqa: F821 - families/family.py; this module stays below the families
    name: str
    path: Path  # the diffusers folder, or the checkpoint of a single-file model
    source: "ModelSource"  # noqa: F821 - everything it was loaded from
    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler_config: dict
    dtype: torch.dtype
    device: torch.device
    vae_chunk: int = 8

    @property
    def dtype_name(self) -> str:
        """The dtype as a config name: fp32, fp16 or bf16."""
        return next(name for name, value in DTYPES.items() if value == self.dtype)

    @property
    def latent_scale(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.in_channels)

    @property
    def vae_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def max_prompt_tokens(self) -> int:
        return int(self.tokenizer.model_max_length)

    def check_size(self, width: int, height: int) -> None:
        f = self.vae_factor
        for label, value in (("width", width), ("height", height)):
            if value <= 0 or value % f:
                raise MotionDirectorError(
                    f"{label} {value} is not a positive multiple of {f}: pick e.g. {max(f, round(value / f) * f)}."
                )

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Text embeddings [B, tokens, dim] on the model's device; long prompts are cut with a warning."""
        limit = self.max_prompt_tokens
        tokens = self.tokenizer(prompts, padding="max_length", max_length=limit, truncation=True, return_tensors="pt")
        for prompt in prompts:
            n = len(self.tokenizer(prompt, truncation=False, verbose=False).input_ids)
            if n > limit:
                warnings.warn(f"Prompt is {n} tokens, the text encoder reads {limit}; cut to: {prompt[:60]!r}...")
        device = next(self.text_encoder.parameters()).device
        hidden = self.text_encoder(tokens.input_ids.to(device))[0]
        return hidden.to(self.device, self.dtype)

    @torch.no_grad()
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [F, H, W, 3] in 0..1 -> scaled latents [1, C, F, H/8, W/8] (the posterior mean)."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise MotionDirectorError(f"expected frames shaped [F, H, W, 3], got {list(frames.shape)}.")
        self.check_size(frames.shape[2], frames.shape[1])
        vae_device = next(self.vae.parameters()).device
        vae_dtype = next(self.vae.parameters()).dtype
        pixels = frames.permute(0, 3, 1, 2) * 2.0 - 1.0
        chunks = []
        for chunk in pixels.split(self.vae_chunk):
            posterior = self.vae.encode(chunk.to(vae_device, vae_dtype)).latent_dist
            chunks.append(posterior.mean.float())
        latents = torch.cat(chunks) * self.latent_scale
        return latents.permute(1, 0, 2, 3).unsqueeze(0).to(self.device)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents [1, C, F, h, w] -> frames [F, H, W, 3] float in 0..1 on the CPU."""
        vae_device = next(self.vae.parameters()).device
        vae_dtype = next(self.vae.parameters()).dtype
        flat = latents[0].permute(1, 0, 2, 3) / self.latent_scale
        frames = []
        for chunk in flat.split(self.vae_chunk):
            image = self.vae.decode(chunk.to(vae_device, vae_dtype)).sample.float()
            frames.append(((image + 1.0) / 2.0).clamp(0, 1).cpu())
        return torch.cat(frames).permute(0, 2, 3, 1).contiguous()

    def offload_encoders(self, device: str | torch.device = "cpu") -> None:
        """Move the VAE and text encoder off the training device once latents and embeddings are cached."""
        self.vae.to(device)
        self.text_encoder.to(device)

    def onload_encoders(self) -> None:
        self.vae.to(self.device)
        self.text_encoder.to(self.device)
