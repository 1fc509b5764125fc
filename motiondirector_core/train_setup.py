"""What a training run works on, decided and prepared once: the mode, the adapters, the cached
latents and text embeddings, the weight decay and the optimizers."""

import warnings
from dataclasses import dataclass

import torch

from .clips import Clip
from .errors import MotionDirectorError

OPTIMIZERS = ("adamw", "adamw8bit")


@dataclass
class PreparedClip:
    latents: torch.Tensor  # [1, C, F, h, w] fp32 on the model's device
    flipped: torch.Tensor | None  # images: the horizontally flipped latents, for the random flip
    embedding: torch.Tensor  # [1, tokens, dim] in the model's dtype
    prompt: str
    width: int  # pixels
    height: int

    @property
    def frames(self) -> int:
        return int(self.latents.shape[2])

    @property
    def is_image(self) -> bool:
        return self.frames == 1


def check_clips(clips: list[Clip]) -> None:
    if not clips:
        raise MotionDirectorError("no training clips were given: add at least one video (or images for appearance).")
    for i, clip in enumerate(clips):
        frames = clip.frames
        where = f"clip {i}" + (f" ({clip.source})" if clip.source else "")
        if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
            shape = list(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise MotionDirectorError(f"{where}: frames must be a tensor shaped [F, H, W, 3], got {shape}.")
        if not isinstance(clip.prompt, str):
            raise MotionDirectorError(f"{where}: the prompt must be text, got {type(clip.prompt).__name__}.")


def effective_mode(mode: str, clips: list[Clip]) -> str:
    """The train mode to run: images carry no motion, so they only ever train the spatial path."""
    check_clips(clips)
    images = sum(clip.is_image for clip in clips)
    if images == len(clips) and mode == "both":
        warnings.warn("all training clips are still images: training the spatial (appearance) LoRA only.")
        return "spatial"
    if images and mode in ("temporal", "coupled"):
        raise MotionDirectorError(
            f"{images} of the clips are still images, which have no motion for {mode!r} training: use videos of at "
            f"least 2 frames, or train 'spatial' (appearance) from the images."
        )
    return mode


def plan_adapters(mode: str, clips: list[Clip], spatial_per_clip: bool) -> dict[str, str]:
    """Adapter name -> kind. Temporal first: adapters are created, saved and logged in this order."""
    if mode == "coupled":
        return {"coupled": "coupled"}
    plan = {"temporal": "temporal"} if mode in ("both", "temporal") else {}
    if mode in ("both", "spatial"):
        if spatial_per_clip and len(clips) > 1:
            plan.update({f"spatial_{i}": "spatial" for i in range(len(clips))})
        else:
            plan["spatial"] = "spatial"
    return plan


def resolved_weight_decay(weight_decay: float | None, clips: list[Clip]) -> float:
    """The reference's values: 1e-2 for a single video, 1e-4 for several videos or for images."""
    if weight_decay is not None:
        return float(weight_decay)
    single_video = len(clips) == 1 and not clips[0].is_image
    return 1e-2 if single_video else 1e-4


def prepare_clips(model, clips: list[Clip], flip: bool) -> list[PreparedClip]:
    """Encode every clip once (and the flipped version of each image when flips are on)."""
    embeddings = model.encode_prompts([clip.prompt for clip in clips])
    prepared = []
    for i, clip in enumerate(clips):
        frames = clip.frames.detach().float().cpu()
        try:
            latents = model.encode_frames(frames)
            flipped = model.encode_frames(frames.flip(2)) if flip and clip.is_image else None
        except MotionDirectorError as exc:
            raise MotionDirectorError(f"clip {i} ({clip.source or 'unnamed'}): {exc}") from exc
        height, width = frames.shape[1:3]
        prepared.append(PreparedClip(latents.float(), flipped, embeddings[i : i + 1], clip.prompt, int(width), int(height)))
    return prepared


def _fused_devices() -> set[str]:
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices

        return set(_get_fused_kernels_supported_devices())
    except ImportError:
        return {"cuda"}


def build_optimizer(kind: str, params: list[torch.nn.Parameter], lr: float, weight_decay: float):
    """AdamW (fused where the device has the kernel) or bitsandbytes' 8-bit AdamW."""
    if kind == "adamw8bit":
        try:
            import bitsandbytes
        except ImportError as exc:
            raise MotionDirectorError(
                "optimizer 'adamw8bit' needs the bitsandbytes package: pip install bitsandbytes, or use 'adamw'."
            ) from exc
        return bitsandbytes.optim.AdamW8bit(params, lr=lr, weight_decay=weight_decay)
    if kind != "adamw":
        raise MotionDirectorError(f"optimizer {kind!r} is unknown: use one of {', '.join(OPTIMIZERS)}.")
    device = params[0].device.type
    fused = device in _fused_devices() and all(p.dtype == torch.float32 for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)
