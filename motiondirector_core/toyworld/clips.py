"""Deterministic clips of one coloured shape moving on a plain or textured background, with a caption.

    clip = make_clip(size=64, frames=16, shape="circle", colour="red", motion="left")
    clip.frames   # torch float32 [16, 64, 64, 3] in 0..1
    clip.caption  # "a red circle moving left"
    clip.centres  # numpy [16, 2]: the shape's centre (x, y) in pixels in every frame

The same parameters always give the same pixels. The seed moves the path a little (and draws the
texture); it never changes the motion itself. Shapes are drawn antialiased from signed distances and
have the same area at the same scale, so only their outline tells them apart. Motions in
PRETRAIN_MOTIONS are the base model's vocabulary; HELD_OUT_MOTIONS are what customization must teach.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MotionDirectorError
from ..files import write_text
from ..video_io import write_video

SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (0.90, 0.12, 0.10),
    "orange": (0.98, 0.55, 0.08),
    "yellow": (0.95, 0.88, 0.15),
    "green": (0.15, 0.75, 0.20),
    "blue": (0.15, 0.35, 0.95),
    "purple": (0.60, 0.20, 0.85),
    "white": (0.95, 0.95, 0.95),
}
BACKGROUNDS = ("plain", "textured")
PLAIN_BACKGROUND = (0.12, 0.12, 0.14)
PRETRAIN_MOTIONS = ("static", "left", "right", "up", "down")
HELD_OUT_MOTIONS = ("zigzag", "orbit", "bounce", "zoom in")
MOTIONS = PRETRAIN_MOTIONS + HELD_OUT_MOTIONS
PHRASES = {
    "static": "standing still",
    "left": "moving left",
    "right": "moving right",
    "up": "moving up",
    "down": "moving down",
    "zigzag": "moving in a zigzag",
    "orbit": "orbiting",
    "bounce": "bouncing",
    "zoom in": "zooming in",
}

RADIUS = 0.12  # a circle's radius at scale 1, as a fraction of the frame size; other shapes have its area
TRAVEL = (0.28, 0.72)  # where straight motions start and end (fractions of the frame)
JITTER = 0.06  # how far the seed may shift a path
MIN_SIZE = 16


@dataclass(frozen=True, eq=False)
class ToyClip:
    frames: torch.Tensor  # [F, H, W, 3] float32 0..1
    caption: str
    shape: str
    colour: str
    motion: str
    background: str
    seed: int
    centres: np.ndarray  # [F, 2] the shape's centre (x, y) in pixels, x to the right, y down
    scales: np.ndarray  # [F] the shape's size relative to scale 1


def caption(shape: str, colour: str | None, motion: str) -> str:
    """'a red circle moving left', 'an orange square orbiting' ...; colour None names the shape alone."""
    shape, motion = _choice("shape", shape, SHAPES), _motion(motion)
    words = shape if colour is None else f"{_choice('colour', colour, COLOURS)} {shape}"
    article = "an" if words[0] in "aeiou" else "a"
    return f"{article} {words} {PHRASES[motion]}"


def _choice(name: str, value, allowed) -> str:
    if value not in allowed:
        raise MotionDirectorError(f"{name} must be one of {', '.join(allowed)}; got {value!r}.")
    return value


def _motion(motion) -> str:
    """'zoom_in' and 'Zoom In' are 'zoom in'."""
    if isinstance(motion, str):
        motion = " ".join(motion.replace("_", " ").lower().split())
    return _choice("motion", motion, MOTIONS)


def _check_int(name: str, value, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise MotionDirectorError(f"{name} must be a whole number of at least {least}, got {value!r}.")
    return int(value)


def trajectory(motion: str, frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The path of a motion: centres [F, 2] (x, y as fractions of the frame) and scales [F]."""
    motion = _motion(motion)
    frames = _check_int("frames", frames, 1)
    rng = np.random.default_rng(_check_int("seed", seed, 0))
    jx, jy = rng.uniform(-JITTER, JITTER, size=2)
    t = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    loop = np.arange(frames) / frames  # periodic motions: the clip loops without repeating a frame
    start, end = TRAVEL
    x, y, scale = np.full(frames, 0.5 + jx), np.full(frames, 0.5 + jy), np.ones(frames)
    if motion == "left":
        x = end + (start - end) * t
    elif motion == "right":
        x = start + (end - start) * t
    elif motion == "up":
        y = end + (start - end) * t
    elif motion == "down":
        y = start + (end - start) * t
    elif motion == "zigzag":  # rightwards while going up and down in straight strokes, two periods
        x = 0.26 + 0.48 * t
        phase = 2.0 * t
        y = 0.5 + jy + 0.15 * (2.0 * np.abs(2.0 * (phase - np.floor(phase + 0.5))) - 1.0)
    elif motion == "orbit":  # one clockwise turn (on screen) around the centre, starting at the top
        angle = -math.pi / 2 + 2.0 * math.pi * loop
        x, y = 0.5 + jx / 2 + 0.2 * np.cos(angle), 0.5 + jy / 2 + 0.2 * np.sin(angle)
    elif motion == "bounce":  # up and down in place: two hops from the floor, fastest at the floor
        y = 0.72 - 0.4 * np.abs(np.sin(2.0 * math.pi * loop))
    elif motion == "zoom in":  # towards the camera: the shape grows in place
        scale = 0.6 + 1.3 * t
    return np.stack([x, y], axis=1), scale


def _coverage(shape: str, size: int, cx: float, cy: float, radius: float) -> np.ndarray:
    """[size, size] antialiased coverage (0..1) of a shape centred at (cx, cy) pixels with a circle's radius."""
    coords = np.arange(size, dtype=np.float64) + 0.5
    px, py = coords[None, :] - cx, coords[:, None] - cy
    if shape == "circle":
        distance = np.hypot(px, py) - radius
    elif shape == "square":
        half = radius * math.sqrt(math.pi) / 2  # the circle's area
        qx, qy = np.abs(px) - half, np.abs(py) - half
        distance = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
    else:
        distance = _triangle_distance(px, -py, radius * math.sqrt(math.pi / math.sqrt(3)))
    return np.clip(0.5 - distance, 0.0, 1.0)


def _triangle_distance(px: np.ndarray, py: np.ndarray, half_side: float) -> np.ndarray:
    """Signed distance to an upright equilateral triangle centred on its centroid (y up)."""
    k = math.sqrt(3.0)
    px, py = np.broadcast_arrays(np.abs(px) - half_side, py + half_side / k)
    fold = px + k * py > 0
    px, py = np.where(fold, (px - k * py) / 2, px), np.where(fold, (-k * px - py) / 2, py)
    px = px - np.clip(px, -2.0 * half_side, 0.0)
    return -np.hypot(px, py) * np.sign(py)


def render_background(size: int, background: str = "plain", seed: int = 0) -> torch.Tensor:
    """The static background [size, size, 3]: one dark grey, or dark smooth colour blotches drawn from the seed."""
    size = _check_int("size", size, MIN_SIZE)
    background = _choice("background", background, BACKGROUNDS)
    if background == "plain":
        return torch.tensor(PLAIN_BACKGROUND, dtype=torch.float32).expand(size, size, 3).clone()
    generator = torch.Generator().manual_seed(10_000 + _check_int("seed", seed, 0))
    blotches = 0.08 + 0.27 * torch.rand(1, 3, 5, 5, generator=generator)
    grey = blotches.mean(dim=1, keepdim=True)
    blotches = grey + 0.4 * (blotches - grey)  # muted, so no blotch passes for a shape's colour
    field = F.interpolate(blotches, size=(size, size), mode="bicubic", align_corners=True)[0].permute(1, 2, 0)
    period = max(2, size // 8)
    rows, cols = torch.arange(size) // period, torch.arange(size) // period
    checker = ((rows[:, None] + cols[None, :]) % 2).float()[..., None]
    return (field + 0.04 * checker).clamp(0.0, 0.45).contiguous()


def make_clip(
    size: int = 64,
    frames: int = 16,
    shape: str = "circle",
    colour: str = "red",
    motion: str = "left",
    background: str = "plain",
    seed: int = 0,
    background_seed: int | None = None,
) -> ToyClip:
    """One clip of the small world (square frames of `size` pixels). The seed jitters the path and draws the
    texture; `background_seed` draws the texture instead, so that clips of different paths share one backdrop."""
    shape, colour, motion = _choice("shape", shape, SHAPES), _choice("colour", colour, COLOURS), _motion(motion)
    background = _choice("background", background, BACKGROUNDS)
    size = _check_int("size", size, MIN_SIZE)
    centres, scales = trajectory(motion, frames, seed)
    pixels = centres * size
    texture_seed = seed if background_seed is None else background_seed
    backdrop = render_background(size, background, texture_seed).numpy().astype(np.float64)
    fill = np.asarray(COLOURS[colour], dtype=np.float64)
    out = np.empty((len(scales), size, size, 3), dtype=np.float32)
    for index, ((cx, cy), scale) in enumerate(zip(pixels, scales)):
        alpha = _coverage(shape, size, cx, cy, RADIUS * size * scale)[..., None]
        out[index] = backdrop * (1.0 - alpha) + fill * alpha
    return ToyClip(
        frames=torch.from_numpy(out), caption=caption(shape, colour, motion), shape=shape, colour=colour,
        motion=motion, background=background, seed=seed, centres=pixels, scales=scales,
    )


def write_clip(path: str | Path, fps: float = 8.0, **params) -> ToyClip:
    """Write make_clip(**params) as a video (mp4, webm, gif ...) with its caption in <stem>.txt beside it."""
    path = Path(path)
    clip = make_clip(**params)
    write_video(path, clip.frames, fps=fps)
    write_text(path.with_suffix(".txt"), clip.caption + "\n")
    return clip
