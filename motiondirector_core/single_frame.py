"""Single-frame bypass of a UNet's temporal layers.

MotionDirector's spatial path runs the UNet on one frame and needs every temporal layer to be the identity there.
Stock diffusers still runs them on one frame (a temporal conv pads with zeros, a temporal transformer mixes a frame
with itself), so the output is not that of the spatial layers alone. A diffusers hook on each temporal layer
returns its input unchanged when it is called with num_frames == 1 and runs the stock forward otherwise; the
module, its class and its state-dict keys stay as they are. Each family says which layer classes are temporal
and how such a layer hands back its input (families/).
"""

import inspect
from collections.abc import Callable

import torch
from diffusers.hooks import HookRegistry, ModelHook

HOOK_NAME = "motiondirector_single_frame"

# A temporal layer's result when it is the identity: (its input hidden states, how it was called) -> output.
Identity = Callable[[torch.Tensor, tuple, dict], object]


def plain_identity(hidden_states: torch.Tensor, args: tuple, kwargs: dict) -> torch.Tensor:
    return hidden_states


class SingleFrameIdentity(ModelHook):
    def __init__(self, frames_position: int, identity: Identity):
        super().__init__()
        self.frames_position, self.identity = frames_position, identity

    def new_forward(self, module, *args, **kwargs):
        frames = kwargs.get("num_frames", args[self.frames_position] if len(args) > self.frames_position else 1)
        if frames == 1:
            hidden_states = args[0] if args else kwargs["hidden_states"]
            return self.identity(hidden_states, args, kwargs)
        return self.fn_ref.original_forward(*args, **kwargs)


def install_single_frame_bypass(unet: torch.nn.Module, layers: dict[type, Identity]) -> int:
    """Make every layer of `unet` of one of the `layers` classes the identity on one frame; idempotent. Returns how
    many layers carry the bypass."""
    installed = 0
    for module in unet.modules():
        identity = next((layers[kind] for kind in type(module).__mro__ if kind in layers), None)
        if identity is None:
            continue
        registry = HookRegistry.check_if_exists_or_initialize(module)
        if registry.get_hook(HOOK_NAME) is None:
            position = list(inspect.signature(type(module).forward).parameters).index("num_frames") - 1
            registry.register_hook(SingleFrameIdentity(position, identity), HOOK_NAME)
        installed += 1
    return installed
