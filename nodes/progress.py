"""ComfyUI progress bars, previews and cancel, adapted to the core's callbacks."""

import contextlib

import comfy.model_management
import comfy.utils
import torch

from ..motiondirector_core.errors import Cancelled
from ..motiondirector_core.preview import latents_to_rgb

PREVIEW_SIZE = 512


def cancel_requested() -> bool:
    return comfy.model_management.processing_interrupted()


def frame_preview(frame: torch.Tensor):
    """A [H, W, 3] 0..1 frame as the (format, image, size) preview ComfyUI's progress hook sends to the UI."""
    from PIL import Image

    pixels = (frame.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return ("JPEG", Image.fromarray(pixels), PREVIEW_SIZE)


class SamplingProgress:
    """on_step for the core's sampling loops: advance the bar, preview the middle frame's latents."""

    def __init__(self, total: int, preview: bool = True):
        self.bar = comfy.utils.ProgressBar(total)
        self.preview = preview

    def __call__(self, step: int, total: int, latents: torch.Tensor) -> None:
        preview = None
        if self.preview:
            preview = frame_preview(latents_to_rgb(latents[0, :, latents.shape[2] // 2]))
        self.bar.update_absolute(step, total, preview)


def update_keeping_checkpoints(bar, value: int, total: int, preview=None) -> None:
    """Advance `bar` inside a training callback. The server's progress hook raises ComfyUI's interrupt at once,
    which would leave the trainer without writing its cancel checkpoint; the request is put back instead, for
    the trainer's own cancel check at the start of the next step (it saves, then stops)."""
    try:
        bar.update_absolute(value, total, preview)
    except comfy.model_management.InterruptProcessingException:
        comfy.model_management.interrupt_current_processing(True)


@contextlib.contextmanager
def interruptible():
    """Turn the core's Cancelled (raised after it saved what it had) into ComfyUI's own interrupt."""
    try:
        yield
    except Cancelled:
        comfy.model_management.throw_exception_if_processing_interrupted()
        raise
