"""Single-frame bypass of the UNet's temporal layers.

MotionDirector's spatial path runs the UNet on one frame and needs every temporal layer
(transformer_in, temporal convolutions, temporal transformers) to be the identity there. Stock
diffusers still runs them on one frame (a temporal conv pads with zeros, a temporal transformer
mixes a frame with itself), so the output is not that of the spatial layers alone. The classes
below swap in for the stock ones: same weights and state-dict keys, identity when num_frames == 1,
the stock forward otherwise.
"""

from typing import Any

import torch
from diffusers.models.resnet import TemporalConvLayer
from diffusers.models.transformers.transformer_temporal import (
    TransformerTemporalModel,
    TransformerTemporalModelOutput,
)


class BypassableTemporalConv(TemporalConvLayer):
    def forward(self, hidden_states: torch.Tensor, num_frames: int = 1) -> torch.Tensor:
        if num_frames == 1:
            return hidden_states
        return super().forward(hidden_states, num_frames=num_frames)


class BypassableTemporalTransformer(TransformerTemporalModel):
    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        timestep: torch.LongTensor | None = None,
        class_labels: torch.LongTensor | None = None,
        num_frames: int = 1,
        cross_attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
    ):
        if num_frames == 1:
            return TransformerTemporalModelOutput(sample=hidden_states) if return_dict else (hidden_states,)
        return super().forward(
            hidden_states,
            encoder_hidden_states=encoder_hidden_states,
            timestep=timestep,
            class_labels=class_labels,
            num_frames=num_frames,
            cross_attention_kwargs=cross_attention_kwargs,
            return_dict=return_dict,
        )


_SWAPS = {TemporalConvLayer: BypassableTemporalConv, TransformerTemporalModel: BypassableTemporalTransformer}


def install_single_frame_bypass(unet: torch.nn.Module) -> int:
    """Make every temporal layer of `unet` the identity on one frame. Idempotent; returns layers swapped."""
    swapped = 0
    for module in unet.modules():
        replacement = _SWAPS.get(type(module))
        if replacement is not None:
            module.__class__ = replacement
            swapped += 1
    return swapped
