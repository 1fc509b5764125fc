"""Activation (gradient) checkpointing for UNets whose diffusers class does not offer it.

diffusers' text-to-video UNet3D sets `_supports_gradient_checkpointing = False`, so
`enable_gradient_checkpointing()` refuses, and the other families' UNets do it differently. Here each down, mid
and up block's forward is wrapped in
`torch.utils.checkpoint.checkpoint(use_reentrant=False)`: its activations are recomputed in the
backward pass instead of kept, with the same RNG state (so LoRA dropout masks match). Weights,
module tree and state-dict keys are untouched; only an instance attribute `forward` is added.
"""

import functools

import torch
from torch.utils.checkpoint import checkpoint

_MARK = "_motiondirector_checkpointed"


def checkpointable_blocks(unet: torch.nn.Module) -> list[torch.nn.Module]:
    blocks = list(getattr(unet, "down_blocks", [])) + list(getattr(unet, "up_blocks", []))
    mid = getattr(unet, "mid_block", None)
    if mid is not None:
        blocks.append(mid)
    return blocks


def _checkpointed_forward(block: torch.nn.Module):
    plain_forward = type(block).forward.__get__(block)

    @functools.wraps(plain_forward)
    def forward(*args, **kwargs):
        if not torch.is_grad_enabled():
            return plain_forward(*args, **kwargs)
        return checkpoint(plain_forward, *args, use_reentrant=False, **kwargs)

    return forward


def enable_activation_checkpointing(unet: torch.nn.Module) -> int:
    """Checkpoint every down/mid/up block of `unet`; idempotent; returns the number of blocks wrapped."""
    wrapped = 0
    for block in checkpointable_blocks(unet):
        if not getattr(block, _MARK, False):
            block.forward = _checkpointed_forward(block)
            setattr(block, _MARK, True)
            wrapped += 1
    return wrapped


def disable_activation_checkpointing(unet: torch.nn.Module) -> None:
    for block in checkpointable_blocks(unet):
        if getattr(block, _MARK, False):
            del block.forward
            delattr(block, _MARK)


def activation_checkpointing_enabled(unet: torch.nn.Module) -> bool:
    return any(getattr(block, _MARK, False) for block in checkpointable_blocks(unet))
