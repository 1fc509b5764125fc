import math

import pytest
import torch

from motiondirector_core.losses import appearance_debiased_loss, debias, noise_mse, temporal_loss


def latents(seed: int, frames: int = 3) -> torch.Tensor:
    return torch.randn(1, 2, frames, 2, 2, generator=torch.Generator().manual_seed(seed))


def test_debias_with_beta_zero_is_identity():
    eps = latents(0)
    assert torch.equal(debias(eps, 0.0, anchor=1), eps)


def test_debias_subtracts_the_anchor_frame_from_every_frame():
    eps = latents(1)
    out = debias(eps, 1.0, anchor=2)
    expected = math.sqrt(2.0) * eps - eps[:, :, 2:3]
    torch.testing.assert_close(out, expected)
    # What every frame shares (here: a constant appearance) is damped relative to what differs between frames.
    shared = torch.ones(1, 1, 4, 1, 1)
    torch.testing.assert_close(debias(shared, 1.0, anchor=0), (math.sqrt(2.0) - 1.0) * shared)


def test_ad_loss_is_zero_when_prediction_equals_noise():
    eps = latents(2)
    assert appearance_debiased_loss(eps.clone(), eps, beta=1.0, anchor=0).item() == 0.0
    total, ad = temporal_loss(eps.clone(), eps, beta=1.0, anchor=1)
    assert total.item() == 0.0 and ad.item() == 0.0


def test_ad_loss_hand_computed_value():
    # Two frames, one value each; beta = 1, anchor = frame 0.
    pred = torch.tensor([1.0, 3.0]).view(1, 1, 2, 1, 1)
    noise = torch.tensor([0.0, 1.0]).view(1, 1, 2, 1, 1)
    r2 = math.sqrt(2.0)
    # phi(pred) = [r2*1 - 1, r2*3 - 1]; phi(noise) = [0, r2*1 - 0]
    diffs = [(r2 - 1.0) - 0.0, (3 * r2 - 1.0) - r2]
    expected_ad = sum(d * d for d in diffs) / 2
    ad = appearance_debiased_loss(pred, noise, beta=1.0, anchor=0)
    assert ad.item() == pytest.approx(expected_ad, rel=1e-6)
    total, ad_part = temporal_loss(pred, noise, beta=1.0, anchor=0)
    assert total.item() == pytest.approx((1.0 + 4.0) / 2 + expected_ad, rel=1e-6)
    assert ad_part.item() == pytest.approx(expected_ad, rel=1e-6)


def test_beta_zero_leaves_plain_mse():
    pred, noise = latents(3), latents(4)
    total, ad = temporal_loss(pred, noise, beta=0.0, anchor=0)
    assert ad.item() == 0.0
    assert total.item() == pytest.approx(noise_mse(pred, noise).item())


def test_losses_are_fp32_and_differentiable_from_half_predictions():
    pred = latents(5).to(torch.bfloat16).requires_grad_(True)
    total, _ = temporal_loss(pred, latents(6), beta=1.0, anchor=0)
    assert total.dtype == torch.float32
    total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad.float()).all()
