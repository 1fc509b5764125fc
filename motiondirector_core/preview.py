"""Cheap previews of latents (no VAE decode), for progress bars."""

import torch

# Linear map from SD-VAE latent channels to RGB (the factors ComfyUI and others use for SD 1.x previews);
# ModelScope/ZeroScope share that VAE. A model with another VAE gets a rougher, still recognisable preview.
SD_LATENT_RGB = torch.tensor(
    [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]]
)


def latents_to_rgb(latent: torch.Tensor, upscale: int = 8) -> torch.Tensor:
    """One frame's latents [C, h, w] -> an approximate image [h*upscale, w*upscale, 3] in 0..1."""
    channels = latent.shape[0]
    factors = SD_LATENT_RGB if channels == 4 else torch.ones(channels, 3) / channels
    rgb = torch.einsum("chw,cr->rhw", latent.detach().float().cpu(), factors)
    rgb = ((rgb + 1) / 2).clamp(0, 1)
    if upscale > 1:
        rgb = torch.nn.functional.interpolate(rgb[None], scale_factor=upscale, mode="nearest")[0]
    return rgb.permute(1, 2, 0).contiguous()
