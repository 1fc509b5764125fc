"""Toy-world evaluation: the object's trajectory against the reference's, and whether generated objects carry the
prompt's colour and shape (text alignment) or the reference's (appearance leakage).

- trajectory_similarity(a, b): the object's path in both clips as per-frame features (x / W, y / H, r / max(H, W)),
  r the radius of a disc of its area, so that 'zoom in' (growing in place) is a motion too. The score is the
  normalised correlation of the two displacement sequences, sum_t <da_t, db_t> / sqrt(sum |da|^2 sum |db|^2):
  1 for the same motion whatever the appearance or start point, -1 for the reverse, about 0 for unrelated ones.
  A clip whose object never gets `moving_threshold` away from its first features (or that has no object) is
  static: static against static is 1.0, static against moving 0.0. Frames without an object are interpolated;
  different frame counts are compared over the same span of time.
- Several references: the mean of the scores (as for the track-based fidelity).
- appearance_leakage / text_alignment: shares of the generated samples; None where a share cannot be measured
  (no prompt colour, or the prompt asks for the reference's own colour, ...).
"""

import re
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import MotionDirectorError
from ..toyworld.clips import COLOURS, PHRASES, SHAPES
from .frames import as_list, resample_time
from .motion_fidelity import REDUCTIONS
from .toyworld_object import ToyObject, find_object

MOVING_THRESHOLD = 0.05  # of the frame size (x, y) or its larger side (r)

# Words of a caption that name a motion, besides the captions' own phrases (PHRASES), longest match first.
MOTION_WORDS = {
    "zooming in": "zoom in", "zoom in": "zoom in", "zooms in": "zoom in", "zigzag": "zigzag", "zigzagging": "zigzag",
    "orbiting": "orbit", "orbits": "orbit", "orbit": "orbit", "circling": "orbit", "bouncing": "bounce",
    "bounces": "bounce", "bounce": "bounce", "standing still": "static", "still": "static", "static": "static",
    "left": "left", "right": "right", "up": "up", "down": "down",
}  # fmt: skip


@dataclass(frozen=True)
class CaptionParts:
    colour: str | None
    shape: str | None
    motion: str | None


@dataclass(frozen=True)
class Shares:
    """Shares (0..1) of the generated samples; None where it cannot be measured."""

    colour: float | None  # ... with the colour in question
    shape: float | None  # ... with the shape in question
    overall: float | None  # leakage: colour or shape leaked; alignment: every asked-for attribute right
    samples: int

    def as_dict(self) -> dict:
        return {"colour": self.colour, "shape": self.shape, "overall": self.overall, "samples": self.samples}


def parse_caption(text: str) -> CaptionParts:
    """Colour, shape and motion named in a toy-world caption ('a red circle moving left'); None for each missing."""
    if not isinstance(text, str):
        raise MotionDirectorError(f"a caption must be text, got {type(text).__name__}.")
    words = re.findall(r"[a-z]+", text.lower())
    colour = next((word for word in words if word in COLOURS), None)
    shape = next((word.rstrip("s") for word in words if word.rstrip("s") in SHAPES), None)
    joined = f" {' '.join(words)} "
    phrases = {phrase: motion for motion, phrase in PHRASES.items()} | MOTION_WORDS
    motion = next((phrases[p] for p in sorted(phrases, key=len, reverse=True) if f" {p} " in joined), None)
    return CaptionParts(colour=colour, shape=shape, motion=motion)


def _object(clip, name: str = "clip") -> ToyObject:
    if isinstance(clip, ToyObject):
        return clip
    try:
        return find_object(clip)
    except MotionDirectorError as error:
        raise MotionDirectorError(f"{name}: {error}") from None


def path_features(found: ToyObject) -> np.ndarray | None:
    """[F, 3] (x / W, y / H, r / max(H, W)) with missing frames interpolated; None when fewer than 2 frames have it."""
    if found.found.sum() < 2:
        return None
    features = np.concatenate([found.centres / [found.width, found.height],
                               found.sizes[:, None] / max(found.height, found.width)], axis=1)
    frames, known = np.arange(len(features)), np.flatnonzero(found.found)
    return np.stack([np.interp(frames, known, features[known, k]) for k in range(3)], axis=1)


def _moves(features: np.ndarray | None, moving_threshold: float) -> bool:
    return features is not None and float(np.abs(features - features[:1]).max()) > moving_threshold


def trajectory_similarity(a, b, moving_threshold: float = MOVING_THRESHOLD) -> float:
    """How alike the object's motion is in two clips (frames, ToyClips or ToyObjects), in [-1, 1]."""
    features_a, features_b = path_features(_object(a, "first clip")), path_features(_object(b, "second clip"))
    moves_a, moves_b = _moves(features_a, moving_threshold), _moves(features_b, moving_threshold)
    if not (moves_a and moves_b):
        return 1.0 if moves_a == moves_b else 0.0
    frames = min(len(features_a), len(features_b))
    steps_a = np.diff(resample_time(torch.from_numpy(features_a), frames, dim=0).numpy(), axis=0)
    steps_b = np.diff(resample_time(torch.from_numpy(features_b), frames, dim=0).numpy(), axis=0)
    norm = np.sqrt((steps_a**2).sum() * (steps_b**2).sum())
    return float((steps_a * steps_b).sum() / norm) if norm > 0 else 0.0


def trajectory_fidelity(generated, references, reduce: str = "mean",
                        moving_threshold: float = MOVING_THRESHOLD) -> float:
    """trajectory_similarity of a generated clip against one reference or several, reduced by mean or max."""
    if reduce not in REDUCTIONS:
        raise MotionDirectorError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}.")
    generated = _object(generated, "generated")
    scores = [trajectory_similarity(generated, _object(reference, f"reference {index}"), moving_threshold)
              for index, reference in enumerate(as_list(references))]
    return max(scores) if reduce == "max" else sum(scores) / len(scores)


def _named(value, allowed, what: str) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise MotionDirectorError(f"{what} must be one of {', '.join(allowed)}, got {value!r}.")
    return value


def _share(hits: list[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def appearance_leakage(generated, reference_colour, reference_shape, prompt_colour, prompt_shape) -> Shares:
    """Shares of generated samples that carry the reference's colour / shape instead of the prompt's; overall: the
    share with either leaked. An attribute the prompt does not name, or names as the reference's own, is None."""
    reference_colour, prompt_colour = (_named(c, COLOURS, "a colour") for c in (reference_colour, prompt_colour))
    reference_shape, prompt_shape = (_named(s, SHAPES, "a shape") for s in (reference_shape, prompt_shape))
    objects = [_object(clip, f"generated {index}") for index, clip in enumerate(as_list(generated))]
    check_colour = reference_colour is not None and prompt_colour not in (None, reference_colour)
    check_shape = reference_shape is not None and prompt_shape not in (None, reference_shape)
    colour = [o.colour == reference_colour for o in objects] if check_colour else []
    shape = [o.shape == reference_shape for o in objects] if check_shape else []
    either = [any(pair) for pair in zip(colour or [False] * len(objects), shape or [False] * len(objects))]
    return Shares(colour=_share(colour), shape=_share(shape),
                  overall=_share(either) if (check_colour or check_shape) else None, samples=len(objects))


def text_alignment(generated, prompt_colour, prompt_shape) -> Shares:
    """Shares of generated samples with the prompt's colour, its shape, and (overall) everything it names."""
    prompt_colour, prompt_shape = _named(prompt_colour, COLOURS, "a colour"), _named(prompt_shape, SHAPES, "a shape")
    objects = [_object(clip, f"generated {index}") for index, clip in enumerate(as_list(generated))]
    colour = [o.colour == prompt_colour for o in objects] if prompt_colour else []
    shape = [o.shape == prompt_shape for o in objects] if prompt_shape else []
    both = [all(pair) for pair in zip(colour or [True] * len(objects), shape or [True] * len(objects))]
    return Shares(colour=_share(colour), shape=_share(shape),
                  overall=_share(both) if (prompt_colour or prompt_shape) else None, samples=len(objects))




def look_kept_per_frame(clip, prompt_colour, prompt_shape) -> list[bool]:
    """For each frame of a clip, whether that frame alone shows the prompt's colour and shape (what it names of
    them). A frame without an object, or whose object is too small to read the shape the prompt names, does not
    keep the look: a subject that vanishes or blurs is not the subject asked for."""
    prompt_colour, prompt_shape = _named(prompt_colour, COLOURS, "a colour"), _named(prompt_shape, SHAPES, "a shape")
    found = _object(clip)
    return [(prompt_colour is None or colour == prompt_colour) and (prompt_shape is None or shape == prompt_shape)
            and bool(present)
            for colour, shape, present in zip(found.frame_colours, found.frame_shapes, found.found)]
