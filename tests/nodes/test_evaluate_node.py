"""Evaluate Motion: scores of generated frames against reference frames, as ComfyUI runs the node."""

import json

import pytest
import torch

from motiondirector_core.toyworld.clips import make_clip
from tests.nodes.conftest import pack_module, run_node


def frames(motion, shape, colour, seed=0, background="plain", count=8):
    return make_clip(size=32, frames=count, motion=motion, shape=shape, colour=colour, seed=seed,
                     background=background).frames


def test_new_look_with_the_reference_motion(comfy):
    reference = frames("orbit", "circle", "red")
    samples = torch.cat([frames("orbit", "triangle", "blue", seed=1), frames("orbit", "triangle", "red", seed=2)])
    fidelity, report = run_node(comfy, "MD_EvaluateMotion", generated=samples, reference=reference,
                                frames_per_clip=8, prompt="a blue triangle orbiting",
                                reference_prompt="a red circle orbiting")
    report = json.loads(report)
    assert isinstance(fidelity, float) and fidelity == report["motion_fidelity"] > 0.8
    assert report["samples"] == 2 and report["references"] == 1 and report["trajectory_fidelity"] > 0.8
    assert report["text_alignment"] == {"colour": 0.5, "shape": 1.0, "overall": 0.5, "samples": 2}
    assert report["appearance_leakage"] == {"colour": 0.5, "shape": 0.0, "overall": 0.5, "samples": 2}
    assert report["reference_appearance"]["colour_from"] == "reference_prompt"
    assert [o["colour"] for o in report["generated_objects"]] == ["blue", "red"]
    assert report["look_kept_frames_per_sample"] == [8, 0] and report["look_kept_every_frame"] == 1


def test_wrong_motion_scores_low_and_prompts_are_optional(comfy):
    fidelity, report = run_node(comfy, "MD_EvaluateMotion", generated=frames("left", "square", "green"),
                                reference=frames("right", "circle", "red", background="textured"), frames_per_clip=0)
    report = json.loads(report)
    assert fidelity < 0.3 and report["trajectory_fidelity"] < 0.3
    assert report["text_alignment"] is None and report["appearance_leakage"] is None


def test_clips_that_do_not_split_evenly_are_refused(comfy):
    error = pack_module(comfy, "motiondirector_core.errors").MotionDirectorError
    with pytest.raises(error, match="not a whole number of clips"):
        run_node(comfy, "MD_EvaluateMotion", generated=torch.rand(12, 32, 32, 3), reference=torch.rand(8, 32, 32, 3),
                 frames_per_clip=8)
