"""The background-leak reader: how much of a reference's textured backdrop a clip carries."""

import pytest
import torch

from motiondirector_core.errors import MotionDirectorError
from motiondirector_core.metrics.toyworld_background import backdrop, background_share
from motiondirector_core.toyworld.clips import make_clip, render_background


def _reference(motion="zigzag", seed=0):
    return make_clip(size=32, frames=8, shape="square", colour="red", motion=motion, background="textured",
                     seed=seed, background_seed=7)


def test_clips_of_other_paths_share_the_background_seed_texture():
    a, b = _reference(seed=0), _reference(seed=1)
    assert not torch.equal(a.frames, b.frames)  # the paths differ, the backdrop is the background seed's
    texture = render_background(32, "textured", 7)
    assert not torch.allclose(texture, render_background(32, "textured", 0))
    for clip in (a, b):
        behind = (clip.frames[0] - texture).abs().amax(dim=-1) < 1e-6
        assert behind.float().mean() > 0.8


def test_backdrop_is_the_texture_behind_a_moving_object():
    clip = _reference()
    texture = render_background(32, "textured", 7)
    assert (backdrop(clip.frames) - texture).abs().median() < 1e-6


@pytest.mark.parametrize("motion", ["zigzag", "orbit", "bounce", "zoom in", "static"])
def test_share_reads_the_reference_pattern_at_its_contrast(motion):
    reference = _reference()
    other_subject = make_clip(size=32, frames=8, shape="circle", colour="blue", motion=motion, background="textured",
                              seed=5, background_seed=7)
    assert background_share(other_subject.frames, reference.frames) == pytest.approx(1.0, abs=0.05)
    plain = make_clip(size=32, frames=8, shape="circle", colour="blue", motion=motion, seed=5)
    assert abs(background_share(plain.frames, reference.frames)) < 0.05
    faded = 0.5 * other_subject.frames + 0.5 * plain.frames
    assert background_share(faded, reference.frames) == pytest.approx(0.5, abs=0.05)


def test_an_unrelated_texture_is_not_the_reference_pattern():
    reference = _reference()
    shares = [background_share(make_clip(size=32, frames=8, colour="blue", motion="orbit", background="textured",
                                         seed=s, background_seed=100 + s).frames, reference.frames)
              for s in range(16)]
    assert abs(sum(shares) / len(shares)) < 0.2  # what all textures share is not the reference's
    assert max(shares) < 0.6


def test_plain_references_and_other_sizes_are_refused_with_the_reason():
    plain = make_clip(size=32, frames=8, motion="zigzag")
    with pytest.raises(MotionDirectorError, match="plain"):
        background_share(_reference().frames, plain.frames)
    small = make_clip(size=16, frames=8, motion="zigzag", background="textured")
    with pytest.raises(MotionDirectorError, match="one size"):
        background_share(small.frames, _reference().frames)
