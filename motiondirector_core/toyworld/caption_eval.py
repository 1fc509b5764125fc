"""Does a small-world model follow its captions? Generate, find the shape, compare colour, shape and direction.

    report = evaluate(model, seeds=(0, 1))
    report["accuracy"]   # {'colour': 0.9, 'shape': 0.7, 'direction': 0.8, 'all': 0.6}

Reading a clip is self-contained and needs no model: in every frame the background is the frame's median colour
(the shape covers a few percent of it), the shape is the largest 4-connected blob of pixels far from it; its
median colour gives the nearest named colour, and the first-to-last move of its centroid the direction. The shape
is the nearest of three prototypes in two measures of the blob's core: how much of its bounding box it fills
(square 1, circle pi/4, triangle 1/2) and how far it reaches along the diagonals relative to the axes (a square
~1.3, a circle or triangle ~1); the prototypes are measured on rendered shapes at the frame size, so slightly
rounded squares (a VAE's) still read as squares.
"""

import math
from collections import deque
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch

from ..errors import MotionDirectorError
from .clips import COLOURS, PRETRAIN_MOTIONS, SHAPES, caption

SHAPE_SCALES = (0.2, 0.15)  # how much fill and diagonal reach count in the distance to a shape prototype
THRESHOLD = 0.25  # RGB distance from the background colour above which a pixel is foreground
STILL = 0.12  # a centroid that moves less than this fraction of the frame size is standing still


@dataclass
class Reading:
    found: bool
    colour: str | None
    shape: str | None
    direction: str | None
    fill: float
    reach: float  # diagonal over axis extent of the blob's core
    rgb: tuple[float, float, float]
    displacement: tuple[float, float]  # first-to-last centroid move (x, y) as fractions of the frame size
    frames_found: int


def parse_caption(text: str) -> tuple[str, str, str]:
    """'a red circle moving left' -> ('circle', 'red', 'left') for any small-world caption."""
    table = _caption_table()
    key = " ".join(text.lower().split())
    if key not in table:
        example = caption("circle", "red", "left")
        raise MotionDirectorError(f"{text!r} is not a small-world caption such as {example!r}.")
    return table[key]


def _caption_table() -> dict[str, tuple[str, str, str]]:
    from .clips import MOTIONS

    return {caption(s, c, m): (s, c, m) for s in SHAPES for c in COLOURS for m in MOTIONS}


def largest_blob(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a boolean [H, W] mask (all False when the mask is empty)."""
    seen = np.zeros_like(mask, dtype=bool)
    best: list[tuple[int, int]] = []
    height, width = mask.shape
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        seen[y0, x0] = True
        queue, blob = deque([(y0, x0)]), []
        while queue:
            y, x = queue.popleft()
            blob.append((y, x))
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        if len(blob) > len(best):
            best = blob
    out = np.zeros_like(mask, dtype=bool)
    if best:
        ys, xs = zip(*best)
        out[list(ys), list(xs)] = True
    return out


def read_clip(frames: torch.Tensor | np.ndarray, threshold: float = THRESHOLD) -> Reading:
    """Colour, shape and direction of the main object in frames [F, H, W, 3] (0..1)."""
    frames = frames.detach().cpu().float().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames, float)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise MotionDirectorError(f"expected frames shaped [F, H, W, 3], got {list(frames.shape)}.")
    size = max(frames.shape[1:3])
    centres, shapes, pixels = [], [], []
    for frame in frames:
        background = np.median(frame.reshape(-1, 3), axis=0)
        blob = largest_blob(np.linalg.norm(frame - background, axis=-1) > threshold)
        if blob.sum() < 2:
            centres.append(None)
            continue
        ys, xs = np.nonzero(blob)
        centres.append((xs.mean() + 0.5, ys.mean() + 0.5))
        shapes.append(_shape_measures(frame, blob, background))
        pixels.append(frame[blob])
    found = [c for c in centres if c is not None]
    if not found:
        return Reading(False, None, None, None, 0.0, 0.0, (0.0, 0.0, 0.0), (0.0, 0.0), 0)
    rgb = np.median(np.concatenate(pixels), axis=0)
    colour = min(COLOURS, key=lambda name: float(np.linalg.norm(rgb - np.asarray(COLOURS[name]))))
    fill, reach = (float(v) for v in np.median(np.asarray(shapes), axis=0))
    shape = nearest_shape(fill, reach, size)
    dx, dy = (np.asarray(found[-1]) - np.asarray(found[0])) / size
    return Reading(
        True, colour, shape, direction(dx, dy), fill, reach, tuple(float(v) for v in rgb), (float(dx), float(dy)),
        len(found),
    )


def _shape_measures(frame: np.ndarray, blob: np.ndarray, background: np.ndarray) -> tuple[float, float]:
    """(fill, reach) of the blob's core, the pixels at least half of the way from the background to its colour:
    the fraction of its bounding box it covers, and its mean extent along the diagonals over that along the axes."""
    contrast = np.median(frame[blob], axis=0) - background
    alpha = (frame - background) @ contrast / max(float(contrast @ contrast), 1e-6)
    core = blob & (alpha >= 0.5)
    if not core.any():
        core = blob
    ys, xs = np.nonzero(core)
    width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    sums, diffs = xs + ys, ys - xs
    diagonal = (sums.max() - sums.min() + diffs.max() - diffs.min() + 2) / (2 * math.sqrt(2))
    return float(core.sum() / (width * height)), float(diagonal / ((width + height) / 2))


@lru_cache(maxsize=16)
def shape_prototypes(size: int) -> dict[str, tuple[float, float]]:
    """(fill, reach) of each shape as rendered at `size` pixels: the median over a few positions."""
    from .clips import make_clip

    prototypes = {}
    for shape in SHAPES:
        measures = []
        for seed in range(6):
            frame = make_clip(max(size, 16), 1, shape, "white", "static", "plain", seed).frames[0].numpy()
            background = np.median(frame.reshape(-1, 3), axis=0)
            blob = largest_blob(np.linalg.norm(frame - background, axis=-1) > THRESHOLD)
            measures.append(_shape_measures(frame, blob, background))
        prototypes[shape] = tuple(float(v) for v in np.median(np.asarray(measures), axis=0))
    return prototypes


def nearest_shape(fill: float, reach: float, size: int) -> str:
    def distance(shape: str) -> float:
        proto_fill, proto_reach = shape_prototypes(size)[shape]
        return math.hypot((fill - proto_fill) / SHAPE_SCALES[0], (reach - proto_reach) / SHAPE_SCALES[1])

    return min(SHAPES, key=distance)


def direction(dx: float, dy: float) -> str:
    """'static', 'left', 'right', 'up' or 'down' from a move in fractions of the frame (y down)."""
    if math.hypot(dx, dy) < STILL:
        return "static"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def default_prompts(count: int = 15) -> list[str]:
    """Captions cycling through shapes, colours and pretraining motions together (3, 7, 5: every pairing)."""
    colours = list(COLOURS)
    return [
        caption(SHAPES[i % len(SHAPES)], colours[i % len(colours)], PRETRAIN_MOTIONS[i % len(PRETRAIN_MOTIONS)])
        for i in range(count)
    ]


def score(prompt: str, reading: Reading) -> dict[str, bool]:
    shape, colour, motion = parse_caption(prompt)
    if motion not in PRETRAIN_MOTIONS:
        raise MotionDirectorError(f"{prompt!r}: only pretraining motions ({', '.join(PRETRAIN_MOTIONS)}) are scored.")
    hits = {"colour": reading.colour == colour, "shape": reading.shape == shape,
            "direction": reading.direction == motion}
    hits["all"] = all(hits.values())
    return hits


def evaluate(model, prompts=None, seeds=(0, 1), steps: int = 25, cfg: float = 7.5, frames: int = 8,
             size: int = 32, scheduler: str = "ddim", on_sample=None) -> dict:
    """Generate every prompt x seed with `model` and score it; accuracies are fractions of the samples."""
    from ..sample import SampleSettings, generate

    prompts = default_prompts() if prompts is None else list(prompts)
    if not prompts or not seeds:
        raise MotionDirectorError("caption evaluation needs at least one prompt and one seed.")
    samples = []
    for prompt in prompts:
        for seed in seeds:
            settings = SampleSettings(prompt=prompt, frames=frames, width=size, height=size, steps=steps, cfg=cfg,
                                      seed=int(seed), scheduler=scheduler)
            video = generate(model, settings)
            reading = read_clip(video)
            sample = {"prompt": prompt, "seed": int(seed), **score(prompt, reading), "reading": asdict(reading)}
            samples.append(sample)
            if on_sample is not None:
                on_sample(sample, video)
    accuracy = {key: sum(s[key] for s in samples) / len(samples) for key in ("colour", "shape", "direction", "all")}
    settings = {"steps": steps, "cfg": cfg, "frames": frames, "size": size, "scheduler": scheduler}
    return {"accuracy": accuracy, "samples": samples, "settings": settings}
