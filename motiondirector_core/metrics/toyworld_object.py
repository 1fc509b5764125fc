"""The one object of a toy-world clip, measured from its pixels: where it is in every frame, its size, its colour
and its shape.

    found = find_object(frames)   # frames [F, H, W, 3] in 0..1, rendered or generated
    found.centres, found.sizes    # [F, 2] (x, y) and [F] equivalent radius, in pixels (NaN where not found)
    found.colour, found.shape     # the nearest named colour of toyworld COLOURS, 'circle' / 'square' / 'triangle'
    found.frame_colours, found.frame_shapes   # the same read from each frame alone (None where it cannot tell)

Generated clips keep residual speckle on the background (see TOYWORLD.md), so no fixed threshold on the pixels:
1. background: the per-pixel median over the frames in which that pixel looks like background (close to its
   frame's median colour); a pixel the object covers in every frame takes the clip's median colour instead, so a
   static object is still found, and a textured background is subtracted where the object moves;
2. strength: the distance of each pixel from that background, less the frame's median difference (a global
   shift of colour is no object), box-blurred 3x3 so that isolated speckles fade;
3. object: the largest 8-connected blob of pixels above half the frame's peak strength (a frame whose peak stays
   under 2 * MIN_STRENGTH has no object); its centroid and area are weighted by strength up to the blob's core
   level, so antialiased edges count by how much of them is covered.
Shape comes from rotation-invariant complex moments of that weighted blob (scale-free, exact for the renderer's
shapes): |C30| sqrt(m00) / C11^1.5 is about 0.80 for an equilateral triangle and 0 for a circle or a square,
|C40| m00 / C11^2 is 0.60 for a square and 0 for a circle or a triangle; the clip's median of both over its frames
goes to the nearest of the three prototypes. Each frame's own colour and shape come from its core pixels and its
moments alone: what tells a subject that changes look halfway through a clip.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..toyworld.clips import COLOURS
from .frames import video_tensor

MIN_STRENGTH = 0.1  # RGB distance; a frame whose peak strength stays under twice this has no object
MIN_AREA = 3.0  # pixels: a smaller blob is noise
MIN_SHAPE_AREA = 12.0  # pixels: smaller blobs are too coarse to tell their outline
PROTOTYPES = {"circle": (0.0, 0.0), "square": (0.0, 0.6), "triangle": (0.8, 0.0)}  # (triangle-ness, square-ness)


@dataclass(frozen=True)
class ToyObject:
    centres: np.ndarray  # [F, 2] (x, y) pixels, pixel i spanning [i, i + 1) as in ToyClip.centres; NaN: none
    sizes: np.ndarray  # [F] radius of a disc of the object's area, pixels; NaN where not found
    found: np.ndarray  # [F] bool
    colour: str | None  # nearest named colour; None when no frame has an object
    rgb: np.ndarray | None  # [3] median colour of the object's core pixels
    shape: str | None  # None when no frame has a blob large enough to tell
    shape_features: np.ndarray | None  # [2] median (triangle-ness, square-ness) over the frames
    frame_colours: tuple  # [F] each frame's nearest named colour; None where no object
    frame_shapes: tuple  # [F] each frame's nearest shape; None where its blob is too small to tell
    height: int
    width: int


def _box_blur(maps: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(F.pad(maps[:, None], (1, 1, 1, 1), mode="replicate"), 3, stride=1)[:, 0]


def _dilate(mask: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(mask[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0


def largest_blob(mask: torch.Tensor) -> torch.Tensor:
    """[F, H, W] bool: the largest 8-connected component of each frame's mask. Every pixel's label is the index of
    a pixel of its component; labels grow to the component's largest index by taking the neighbours' largest label
    and then the label of the pixel that label names (pointer jumping: a few dozen rounds even for large blobs)."""
    count, height, width = mask.shape
    index = torch.arange(1, height * width + 1, dtype=torch.float64).reshape(height, width)
    labels = torch.where(mask, index, torch.zeros((), dtype=torch.float64))
    while True:
        grown = F.max_pool2d(labels[:, None], 3, stride=1, padding=1)[:, 0] * mask
        named = (grown.long() - 1).clamp_min(0).flatten(1)
        jumped = torch.maximum(grown, grown.flatten(1).gather(1, named).view_as(grown) * mask)
        if torch.equal(jumped, labels):
            break
        labels = jumped
    out = torch.zeros_like(mask)
    for frame in range(count):
        values, sizes = labels[frame][mask[frame]].unique(return_counts=True)
        if len(values):
            out[frame] = labels[frame] == values[sizes.argmax()]
    return out


def _quantile(values: torch.Tensor, q: float) -> float:
    """The q-quantile (nearest rank) of a 1-D tensor of any length (torch.quantile stops at 16M values)."""
    return float(values.kthvalue(max(1, min(len(values), round(q * len(values))))).values)


def _strength(frames: torch.Tensor) -> torch.Tensor:
    """[F, H, W] how much each pixel differs from the clip's background (see the module's docstring)."""
    medians = frames.flatten(1, 2).median(dim=1).values  # [F, 3]
    distance = (frames - medians[:, None, None]).norm(dim=-1)
    level = max(0.5 * _quantile(distance.flatten(), 0.995), MIN_STRENGTH)
    background_like = (distance < level)[..., None]
    background = torch.where(background_like, frames, torch.full_like(frames, float("nan"))).nanmedian(dim=0).values
    background = torch.where(torch.isnan(background), medians.median(dim=0).values, background)
    residual = frames - background
    residual = residual - residual.flatten(1, 2).median(dim=1).values[:, None, None]
    return residual.norm(dim=-1)


def _shape_features(weights: torch.Tensor) -> tuple[float, float]:
    """(|C30| sqrt(m00) / C11^1.5, |C40| m00 / C11^2) of a weighted blob [H, W]."""
    height, width = weights.shape
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    w = weights.double()
    mass = w.sum()
    z = torch.complex(xs.double() - (w * xs).sum() / mass, ys.double() - (w * ys).sum() / mass)
    c11 = (w * z.abs() ** 2).sum()
    c30, c40 = (w * z**3).sum().abs(), (w * z**4).sum().abs()
    return float(c30 * mass.sqrt() / c11**1.5), float(c40 * mass / c11**2)


def nearest_colour(rgb) -> str:
    """The name of the toy world's colour nearest to rgb (0..1)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return min(COLOURS, key=lambda name: float(np.linalg.norm(np.asarray(COLOURS[name]) - rgb)))


def nearest_shape(features) -> str:
    """The shape whose moment prototype is nearest to (triangle-ness, square-ness)."""
    return min(PROTOTYPES, key=lambda name: math.dist(PROTOTYPES[name], tuple(features)))


def find_object(frames) -> ToyObject:
    """Measure the toy-world object in every frame of a clip (see the module's docstring)."""
    frames = video_tensor(frames, min_frames=1)
    count, height, width = frames.shape[:3]
    strength = _strength(frames)
    smooth = _box_blur(strength)
    peaks = smooth.flatten(1).amax(dim=1)
    blobs = largest_blob((smooth > 0.5 * peaks[:, None, None]) & (peaks >= 2 * MIN_STRENGTH)[:, None, None])
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    centres, sizes = np.full((count, 2), np.nan), np.full(count, np.nan)
    features, core_pixels = [], []
    frame_colours, frame_shapes = [None] * count, [None] * count
    for frame in range(count):
        blob = blobs[frame]
        if blob.sum() < MIN_AREA:
            continue
        core = _quantile(strength[frame][blob], 0.9)
        weights = (strength[frame] / core).clamp(0, 1) * _dilate(blob[None])[0]
        area = float(weights.sum())
        centres[frame] = float((weights * xs).sum()) / area, float((weights * ys).sum()) / area
        sizes[frame] = math.sqrt(area / math.pi)
        core_pixels.append(frames[frame][blob & (strength[frame] >= 0.75 * core)])
        frame_colours[frame] = nearest_colour(core_pixels[-1].median(dim=0).values.numpy().astype(np.float64))
        if area >= MIN_SHAPE_AREA:
            features.append(_shape_features(weights))
            frame_shapes[frame] = nearest_shape(features[-1])
    found = ~np.isnan(sizes)
    rgb = torch.cat(core_pixels).median(dim=0).values.numpy().astype(np.float64) if core_pixels else None
    shape_features = np.median(np.asarray(features), axis=0) if features else None
    return ToyObject(
        centres=centres, sizes=sizes, found=found, colour=None if rgb is None else nearest_colour(rgb), rgb=rgb,
        shape=None if shape_features is None else nearest_shape(shape_features), shape_features=shape_features,
        frame_colours=tuple(frame_colours), frame_shapes=tuple(frame_shapes), height=height, width=width,
    )
