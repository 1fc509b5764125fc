"""MotionDirector's training losses: plain noise MSE and the appearance-debiased (AD) temporal loss.

Tensors are latents shaped [B, C, F, h, w]; the AD loss works along the frame axis (dim 2).
"""

import math

import torch
import torch.nn.functional as F

FRAME_DIM = 2


def noise_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error in fp32 (autocast may hand us half-precision predictions)."""
    return F.mse_loss(pred.float(), target.float(), reduction="mean")


def debias(eps: torch.Tensor, beta: float, anchor: int) -> torch.Tensor:
    """phi(e) = sqrt(beta^2 + 1) * e - beta * e[anchor frame]: removes what all frames share (appearance)."""
    if beta == 0:
        return eps
    anchor_frame = eps.narrow(FRAME_DIM, anchor, 1)
    return math.sqrt(beta * beta + 1.0) * eps - beta * anchor_frame


def appearance_debiased_loss(pred: torch.Tensor, target: torch.Tensor, beta: float, anchor: int) -> torch.Tensor:
    """MSE between phi(pred) and phi(target) for one anchor frame; 0 when beta is 0."""
    if beta == 0:
        return pred.new_zeros((), dtype=torch.float32)
    return noise_mse(debias(pred.float(), beta, anchor), debias(target.float(), beta, anchor))


def temporal_loss(
    pred: torch.Tensor, target: torch.Tensor, beta: float, anchor: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The temporal path's loss MSE(pred, target) + AD loss; returns (total, AD part)."""
    ad = appearance_debiased_loss(pred, target, beta, anchor)
    return noise_mse(pred, target) + ad, ad
