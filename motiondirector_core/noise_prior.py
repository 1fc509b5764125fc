"""The noise prior: sampling starts from sqrt(p) * z_inv + sqrt(1 - p) * eps, z_inv a reference's inverted latents
(invert.py), fitted to the frames and size being generated."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import MotionDirectorError


@dataclass
class NoisePrior:
    latents: torch.Tensor  # [1, C, F, h, w] float32 on the CPU: the inverted z_inv
    source: str
    steps: int
    model: str
    frames: int  # the reference's frame count and pixel size
    width: int
    height: int


def prior_latents(reference) -> torch.Tensor:
    """The z_inv tensor of a NoisePrior, or the tensor itself."""
    return reference.latents if isinstance(reference, NoisePrior) else reference


def fit_latents(z: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    """Fit z [1, C, F0, h0, w0] to `frames` frames of latent size height x width (pixels / VAE factor)."""
    if z.ndim != 5:
        raise MotionDirectorError(f"inverted latents must be shaped [1, C, F, h, w], got {list(z.shape)}.")
    z = z.float()
    target = (int(frames), int(height), int(width))
    if tuple(z.shape[2:]) == target:
        return z
    if z.shape[2] == 1:
        # A still image: its one inverted frame starts every frame.
        z = z.expand(-1, -1, target[0], -1, -1).contiguous()
        if tuple(z.shape[2:]) == target:
            return z
    dims = (0, 2, 3, 4)
    mean, std = z.mean(dim=dims, keepdim=True), z.std(dim=dims, keepdim=True)
    fitted = F.interpolate(z, size=target, mode="trilinear", align_corners=False)
    # Interpolation averages neighbours, which shrinks the variance; sqrt(p) * z + sqrt(1 - p) * eps has unit
    # variance only if z keeps the statistics of the inverted noise, so restore each channel's mean and std.
    fitted_std = fitted.std(dim=dims, keepdim=True).clamp_min(1e-6)
    return (fitted - fitted.mean(dim=dims, keepdim=True)) / fitted_std * std + mean


def mix_noise_prior(eps: torch.Tensor, z_inv: torch.Tensor, p: float) -> torch.Tensor:
    """sqrt(p) * z_inv + sqrt(1 - p) * eps (z_inv already fitted to eps's shape)."""
    if not 0.0 <= p <= 1.0:
        raise MotionDirectorError(f"noise prior strength must be from 0 to 1, got {p!r}.")
    if z_inv.shape != eps.shape:
        raise MotionDirectorError(
            f"inverted latents {list(z_inv.shape)} do not match the noise {list(eps.shape)}: fit them first."
        )
    return math.sqrt(p) * z_inv.to(eps.device, eps.dtype) + math.sqrt(1.0 - p) * eps
