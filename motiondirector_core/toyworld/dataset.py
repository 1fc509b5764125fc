"""The pretraining data: every shape x colour x pretraining motion x background, in several seeded variants.

    data = ToyDataset(size=32, frames=8, variants=16, seed=0)
    len(data)                       # 3 shapes x 7 colours x 5 motions x 2 backgrounds x 16 variants = 3360
    data.specs[0].caption           # 'a blue circle moving down'
    pixels = data.render()          # uint8 [N, F, H, W, 3], the same bytes for the same arguments
    for indices in data.batches(16, steps=100): ...   # random batches, the same for the same seed

Only PRETRAIN_MOTIONS appear: the held-out motions are what customization must teach, so the base model never
sees them. The variants differ by the clip seed (a small shift of the path, another texture), drawn from `seed`.
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import MotionDirectorError
from .clips import BACKGROUNDS, COLOURS, PRETRAIN_MOTIONS, SHAPES, caption, make_clip, render_background


@dataclass(frozen=True)
class ClipSpec:
    shape: str
    colour: str
    motion: str
    background: str
    seed: int

    @property
    def caption(self) -> str:
        return caption(self.shape, self.colour, self.motion)


class ToyDataset:
    """A fixed, ordered list of clip specs; pixels are rendered on demand, batches drawn from a seeded stream."""

    def __init__(
        self,
        size: int = 32,
        frames: int = 8,
        variants: int = 16,
        seed: int = 0,
        shapes=SHAPES,
        colours=tuple(COLOURS),
        motions=PRETRAIN_MOTIONS,
        backgrounds=BACKGROUNDS,
    ):
        for name, value in (("size", size), ("frames", frames), ("variants", variants)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MotionDirectorError(f"{name} must be a whole number of at least 1, got {value!r}.")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise MotionDirectorError(f"seed must be a whole number of at least 0, got {seed!r}.")
        for name, chosen, allowed in (
            ("shapes", shapes, SHAPES), ("colours", colours, tuple(COLOURS)),
            ("motions", motions, PRETRAIN_MOTIONS), ("backgrounds", backgrounds, BACKGROUNDS),
        ):
            bad = [value for value in chosen if value not in allowed]
            if bad or not chosen:
                raise MotionDirectorError(
                    f"pretraining {name} must be some of {', '.join(allowed)}; got {list(chosen)!r}"
                    + (" (held-out motions are for customization only)" if name == "motions" else "") + "."
                )
        self.size, self.frames, self.seed = size, frames, seed
        clip_seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=variants)
        self.specs = [
            ClipSpec(shape, colour, motion, background, int(clip_seed))
            for clip_seed in clip_seeds
            for background in backgrounds
            for motion in motions
            for colour in colours
            for shape in shapes
        ]

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def captions(self) -> list[str]:
        return [spec.caption for spec in self.specs]

    def clip(self, index: int):
        spec = self.specs[index]
        return make_clip(self.size, self.frames, spec.shape, spec.colour, spec.motion, spec.background, spec.seed)

    def render(self, indices=None) -> torch.Tensor:
        """uint8 [N, F, H, W, 3] pixels of the clips at `indices` (all by default)."""
        indices = range(len(self)) if indices is None else indices
        out = torch.empty((len(indices), self.frames, self.size, self.size, 3), dtype=torch.uint8)
        for row, index in enumerate(indices):
            out[row] = to_uint8(self.clip(int(index)).frames)
        return out

    def foreground(self, pixels: torch.Tensor, indices=None) -> torch.Tensor:
        """float [N, F, H, W] in 0..1: where the shape is, from each clip's pixels minus its known background."""
        indices = range(len(self)) if indices is None else indices
        out = torch.empty(pixels.shape[:-1], dtype=torch.float32)
        for row, index in enumerate(indices):
            spec = self.specs[int(index)]
            backdrop = render_background(self.size, spec.background, spec.seed)
            colour = torch.tensor(COLOURS[spec.colour])
            contrast = (colour - backdrop).abs().sum(-1).clamp_min(1e-3)
            out[row] = ((pixels[row].float() / 255.0 - backdrop).abs().sum(-1) / contrast).clamp(0, 1)
        return out

    def batches(self, batch_size: int, steps: int, start: int = 0):
        """Index tensors [batch_size] for steps start .. steps-1; step s's batch depends only on (seed, s)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise MotionDirectorError(f"batch_size must be a whole number of at least 1, got {batch_size!r}.")
        for step in range(start, steps):
            yield self.batch(batch_size, step)

    def batch(self, batch_size: int, step: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return torch.randint(len(self), (batch_size,), generator=generator)


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    return (frames.clamp(0, 1) * 255.0).round().to(torch.uint8)


def to_float(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.float() / 255.0
