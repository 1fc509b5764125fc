"""Does a small-world model follow its captions? Generate, find the shape, compare colour, shape and direction.

    report = evaluate(model, seeds=(0, 1))
    report["accuracy"]   # {'colour': 0.9, 'shape': 0.7, 'direction': 0.8, 'all': 0.6, 'opposite_word': 1.0}

Reading a clip needs no model: the object, its colour and its shape come from metrics.toyworld_object.find_object
(the same reader the motion metrics use), the direction from the first-to-last move of its centre.

Direction alone can hide a model that ignores the word: one that always gets the axis right and picks the sense
from the seed's noise scores 50% on moving captions by chance. So each moving caption is also sampled, at the same
seed, with the opposite word ("left" for "right"), and `opposite_word` is the share of those pairs that move
opposite ways: 0 for a model that draws the same path for both words, whatever its direction score.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import MotionDirectorError
from ..metrics import toyworld_eval
from ..metrics.toyworld_object import find_object
from .clips import COLOURS, PRETRAIN_MOTIONS, SHAPES, caption

STILL = 0.12  # a centre that moves less than this fraction of the frame size is standing still
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


@dataclass
class Reading:
    found: bool
    colour: str | None
    shape: str | None
    direction: str | None
    rgb: tuple[float, float, float] | None
    displacement: tuple[float, float]  # first-to-last centre move (x, y) as fractions of the frame size
    frames_found: int


def parse_caption(text: str) -> tuple[str, str, str]:
    """'a red circle moving left' -> ('circle', 'red', 'left'); only an exact small-world caption is accepted."""
    parts = toyworld_eval.parse_caption(text)
    named = (parts.shape, parts.colour, parts.motion)
    if None in named or caption(*named) != " ".join(text.lower().split()):
        example = caption("circle", "red", "left")
        raise MotionDirectorError(f"{text!r} is not a small-world caption such as {example!r}.")
    return named


def read_clip(frames) -> Reading:
    """Colour, shape and direction of the object in frames [F, H, W, 3] (0..1)."""
    found = find_object(frames)
    seen = np.flatnonzero(found.found)
    if len(seen) == 0:
        return Reading(False, None, None, None, None, (0.0, 0.0), 0)
    dx, dy = (found.centres[seen[-1]] - found.centres[seen[0]]) / max(found.height, found.width)
    rgb = None if found.rgb is None else tuple(float(v) for v in found.rgb)
    return Reading(True, found.colour, found.shape, direction(dx, dy), rgb, (float(dx), float(dy)), len(seen))


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

    def read(prompt: str, seed: int) -> tuple[Reading, object]:
        settings = SampleSettings(prompt=prompt, frames=frames, width=size, height=size, steps=steps, cfg=cfg,
                                  seed=int(seed), scheduler=scheduler)
        video = generate(model, settings)
        return read_clip(video), video

    samples = []
    for prompt in prompts:
        shape, colour, motion = parse_caption(prompt)
        for seed in seeds:
            reading, video = read(prompt, seed)
            sample = {"prompt": prompt, "seed": int(seed), **score(prompt, reading), "reading": asdict(reading)}
            if motion in OPPOSITE:
                twin, _ = read(caption(shape, colour, OPPOSITE[motion]), seed)
                sample["opposite_word"] = moves_opposite(motion, reading, twin)
            samples.append(sample)
            if on_sample is not None:
                on_sample(sample, video)
    accuracy = {key: sum(s[key] for s in samples) / len(samples) for key in ("colour", "shape", "direction", "all")}
    pairs = [s["opposite_word"] for s in samples if "opposite_word" in s]
    accuracy["opposite_word"] = sum(pairs) / len(pairs) if pairs else None
    settings = {"steps": steps, "cfg": cfg, "frames": frames, "size": size, "scheduler": scheduler}
    return {"accuracy": accuracy, "samples": samples, "settings": settings}


def moves_opposite(motion: str, reading: Reading, twin: Reading) -> bool:
    """Whether a clip of `motion` and its twin (the same seed, the opposite word) move opposite ways along the
    motion's axis, each by more than standing still."""
    axis = 0 if motion in ("left", "right") else 1
    a, b = reading.displacement[axis], twin.displacement[axis]
    return reading.found and twin.found and min(abs(a), abs(b)) >= STILL and a * b < 0
