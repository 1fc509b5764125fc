"""Training clips: frames plus the prompt that describes them."""

from dataclasses import dataclass

import torch


@dataclass
class Clip:
    frames: torch.Tensor  # [F, H, W, 3] float32 in 0..1 on the CPU; F == 1 for an image
    prompt: str
    source: str = ""

    @property
    def is_image(self) -> bool:
        return self.frames.shape[0] == 1


@dataclass
class FrameSampling:
    frames: int = 16
    stride: int = 1
    fps: float | None = None
    start: int = 0
    random_start: bool = False
    width: int = 384
    height: int = 384
    resize: str = "crop"
    repeat_short: bool = False
    seed: int | None = None
