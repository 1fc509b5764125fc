"""Every score of generated clips against reference clips, as one JSON-ready report (the Evaluate node's).

Motion: the track-based motion fidelity (motion_fidelity.py) and the toy world's object trajectory fidelity
(toyworld_eval.py), each per generated sample (the mean over the references) and their mean over the samples.
Appearance, for toy-world clips: text alignment with the colour and shape the prompt names, and leakage of the
reference's colour and shape; the reference's appearance comes from reference_prompt where it names it, else from
the objects found in the reference clips (their most common colour and shape). The look is also read frame by
frame: how many frames of each sample keep the prompt's colour and shape, and how many samples keep them in every
frame (a subject that turns into the reference's in its last frames still has the prompt's most common look).
"""

from collections import Counter

from .frames import as_list, video_tensor
from .motion_fidelity import MOVING_THRESHOLD, moving_tracks, track_fidelity
from .toyworld_eval import (
    appearance_leakage, look_kept_per_frame, parse_caption, text_alignment, trajectory_similarity,
)
from .toyworld_object import find_object
from .tracking import track_points


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _most_common(values: list) -> str | None:
    values = [value for value in values if value is not None]
    return Counter(values).most_common(1)[0][0] if values else None


def evaluate(generated, references, prompt: str = "", reference_prompt: str = "") -> dict:
    """The report for generated clip(s) against reference clip(s), each clip frames [F, H, W, 3] in 0..1."""
    generated = [video_tensor(clip, f"generated clip {i}") for i, clip in enumerate(as_list(generated))]
    references = [video_tensor(clip, f"reference clip {i}") for i, clip in enumerate(as_list(references))]
    generated_tracks, reference_tracks = [track_points(c) for c in generated], [track_points(c) for c in references]
    generated_objects, reference_objects = [find_object(c) for c in generated], [find_object(c) for c in references]
    motion = [_mean([track_fidelity(g, r) for r in reference_tracks]) for g in generated_tracks]
    trajectory = [_mean([trajectory_similarity(g, r) for r in reference_objects]) for g in generated_objects]
    report = {
        "motion_fidelity": _mean(motion),
        "trajectory_fidelity": _mean(trajectory),
        "motion_fidelity_per_sample": motion,
        "trajectory_fidelity_per_sample": trajectory,
        "samples": len(generated),
        "references": len(references),
        "reduce_over_references": "mean",
        "moving_tracks": {
            "generated": [moving_tracks(t, MOVING_THRESHOLD).moving for t in generated_tracks],
            "references": [moving_tracks(t, MOVING_THRESHOLD).moving for t in reference_tracks],
        },
        "generated_objects": [_describe(o) for o in generated_objects],
        "reference_objects": [_describe(o) for o in reference_objects],
        "prompt": None,
        "text_alignment": None,
        "appearance_leakage": None,
    }
    asked = parse_caption(prompt or "")
    if prompt:
        report["prompt"] = vars(asked)
    if asked.colour or asked.shape:
        report["text_alignment"] = text_alignment(generated_objects, asked.colour, asked.shape).as_dict()
        kept = [look_kept_per_frame(o, asked.colour, asked.shape) for o in generated_objects]
        report["look_kept_frames_per_sample"] = [sum(frames) for frames in kept]
        report["look_kept_every_frame"] = sum(all(frames) for frames in kept)
        named = parse_caption(reference_prompt or "")
        colour = named.colour or _most_common([o.colour for o in reference_objects])
        shape = named.shape or _most_common([o.shape for o in reference_objects])
        report["reference_appearance"] = {
            "colour": colour, "shape": shape,
            "colour_from": "reference_prompt" if named.colour else "reference frames",
            "shape_from": "reference_prompt" if named.shape else "reference frames",
        }
        report["appearance_leakage"] = appearance_leakage(
            generated_objects, colour, shape, asked.colour, asked.shape).as_dict()
    return report


def _describe(found) -> dict:
    return {"colour": found.colour, "shape": found.shape, "frames_found": int(found.found.sum()),
            "frame_colours": list(found.frame_colours), "frame_shapes": list(found.frame_shapes)}
