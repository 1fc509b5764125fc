"""Motion metrics: the point tracker, the track-based motion fidelity, and the toy world's object measurements."""

import itertools
import json
from functools import lru_cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from motiondirector_core.errors import MotionDirectorError
from motiondirector_core.metrics.evaluate import evaluate
from motiondirector_core.metrics.frames import split_clips
from motiondirector_core.metrics.motion_fidelity import correlation, motion_fidelity, moving_tracks, track_fidelity
from motiondirector_core.metrics.toyworld_eval import (
    appearance_leakage, look_kept_per_frame, parse_caption, text_alignment, trajectory_fidelity,
    trajectory_similarity,
)
from motiondirector_core.metrics.toyworld_object import find_object, largest_blob
from motiondirector_core.metrics.tracking import track_points
from motiondirector_core.toyworld.clips import COLOURS, MOTIONS, SHAPES, caption, make_clip

SIZE, FRAMES = 32, 8
LOOK = dict(shape="circle", colour="red", background="plain", seed=0)
OTHER_LOOK = dict(shape="triangle", colour="blue", background="textured", seed=3)  # and another path offset
MOVING = ("left", "up", "zigzag", "orbit", "bounce", "zoom in")
NOT_SYMMETRIC = ("left", "up", "orbit")  # bounce and zigzag look much the same played backwards


@lru_cache(maxsize=None)
def clip(motion, look="look", size=SIZE, frames=FRAMES, reverse=False):
    params = LOOK if look == "look" else OTHER_LOOK
    made = make_clip(size=size, frames=frames, motion=motion, **params)
    return made.frames.flip(0) if reverse else made.frames


@lru_cache(maxsize=None)
def tracks(*args, **kwargs):
    return track_points(clip(*args, **kwargs))


@lru_cache(maxsize=None)
def toy_object(*args, **kwargs):
    return find_object(clip(*args, **kwargs))


def noisy(frames, seed=0, sigma=0.04, speckle=0.05):
    """Gaussian noise plus uniformly coloured speckle that changes every frame, as an undertrained model leaves."""
    generator = torch.Generator().manual_seed(seed)
    out = frames + sigma * torch.randn(frames.shape, generator=generator)
    spots = (torch.rand(frames.shape[:3], generator=generator) < speckle)[..., None]
    colour = 0.6 * torch.rand(frames.shape[0], 1, 1, 3, generator=generator)
    return torch.where(spots, colour.expand_as(frames), out).clamp(0, 1)


def shifted_texture(shifts, size=48, seed=0):
    """Frames of one smooth random texture translated by each (dx, dy), sub-pixel exact (bilinear resampling)."""
    generator = torch.Generator().manual_seed(seed)
    big = F.interpolate(torch.rand(1, 3, 8, 8, generator=generator), size=(2 * size, 2 * size), mode="bicubic",
                        align_corners=True).clamp(0, 1)
    coords = torch.arange(size) + 0.5 + size / 2
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    frames = []
    for dx, dy in shifts:
        grid = torch.stack([(xs - dx) / size - 1, (ys - dy) / size - 1], dim=-1)[None]
        frames.append(F.grid_sample(big, grid, align_corners=False)[0].permute(1, 2, 0))
    return torch.stack(frames)


# --- tracker ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shift", [(0.3, -0.7), (2.5, 1.25), (6.0, -4.0)])
def test_tracker_recovers_a_known_translation(shift):
    shifts = [(0.0, 0.0), shift, (2 * shift[0], 2 * shift[1])]
    result = track_points(shifted_texture(shifts))

    assert result.points.shape == (256, 3, 2) and result.visible.shape == (256, 3)
    start = result.points[:, 0]
    end = start + 2 * torch.tensor(shift)
    inner = ((torch.minimum(start, end) > 8) & (torch.maximum(start, end) < 40)).all(dim=1)  # clear of the border
    assert inner.sum() >= 40 and result.visible[inner].all()
    for step in (1, 2):
        error = (result.points[inner, step] - result.points[inner, step - 1] - torch.tensor(shift)).norm(dim=-1)
        assert error.max() < 0.25 and error.median() < 0.1


def test_tracker_follows_the_toy_object_and_keeps_the_background_still():
    made = make_clip(size=SIZE, frames=FRAMES, motion="orbit", **OTHER_LOOK)
    result = track_points(made.frames)
    start = torch.tensor(made.centres[0], dtype=torch.float32)
    on_object = (result.points[:, 0] - start).norm(dim=-1) < 2.0
    assert on_object.sum() >= 2 and result.reliable[on_object].all()
    travelled = result.points[on_object] - result.points[on_object, :1]
    expected = torch.tensor(made.centres - made.centres[0], dtype=torch.float32)
    assert (travelled - expected).norm(dim=-1).max() < 0.5
    # the textured background away from the object's path: even its weakest texture is not dragged along
    weak = track_points(made.frames, min_texture=0.0)
    clear = torch.cdist(weak.points[:, 0], torch.tensor(made.centres, dtype=torch.float32)).amin(dim=1) > 10
    assert clear.sum() > 30 and weak.reliable[clear].float().mean() > 0.8
    kept = clear & weak.reliable
    assert (weak.points[kept] - weak.points[kept, :1]).norm(dim=-1).max() < 0.3


def test_forward_backward_check_and_texture_hide_what_cannot_be_followed():
    unrelated = torch.cat([shifted_texture([(0, 0)], seed=1), shifted_texture([(0, 0)], seed=2)])
    assert track_points(unrelated).visible[:, 1].float().mean() < 0.5  # nothing in frame 2 matches frame 1
    flat = torch.full((4, 32, 32, 3), 0.4)
    assert not track_points(flat).visible.any()  # nothing to lock onto
    assert moving_tracks(track_points(flat)).moving == 0


def test_decoded_uint8_frames_read_as_their_float_values():
    frames = clip("left")  # float 0..1
    as_uint8 = (frames * 255).round().to(torch.uint8)
    a, b = find_object(frames), find_object(as_uint8)
    assert (a.colour, a.shape) == (b.colour, b.shape) and b.shape is not None
    assert np.allclose(a.centres, b.centres, atol=0.05)
    assert find_object(as_uint8.numpy()).colour == a.colour
    with pytest.raises(MotionDirectorError, match="divide 0..255 values by 255"):
        find_object(as_uint8.float())
    with pytest.raises(MotionDirectorError, match="uint8 in 0..255"):
        find_object(as_uint8.to(torch.int64))


def test_tracker_rejects_bad_frames():
    for frames, message in [(torch.rand(1, 32, 32, 3), "at least 2 frames"), (torch.rand(4, 32, 32), "shape"),
                            (torch.rand(4, 4, 4, 3), "at least 8x8"), ("frames.mp4", "tensor or array"),
                            (torch.full((2, 16, 16, 3), float("nan")), "NaN")]:
        with pytest.raises(MotionDirectorError, match=message):
            track_points(frames)
    with pytest.raises(MotionDirectorError, match="grid"):
        track_points(torch.rand(2, 16, 16, 3), grid=0)
    with pytest.raises(MotionDirectorError, match="min_texture"):
        track_points(torch.rand(2, 16, 16, 3), min_texture=2.0)


# --- track-based motion fidelity -------------------------------------------------------------------------------


@pytest.mark.parametrize("motion", MOVING)
def test_motion_fidelity_self_other_look_and_static(motion):
    assert track_fidelity(tracks(motion), tracks(motion)) > 0.95
    assert track_fidelity(tracks(motion), tracks(motion, "other")) > 0.8  # other shape, colour, background, path
    assert track_fidelity(tracks(motion), tracks("static")) < 0.3
    assert track_fidelity(tracks("static", "other"), tracks(motion, "other")) < 0.3


@pytest.mark.parametrize("motion", NOT_SYMMETRIC)
def test_motion_fidelity_against_time_reversal_is_low(motion):
    same = track_fidelity(tracks(motion), tracks(motion, "other"))
    reversed_ = track_fidelity(tracks(motion), tracks(motion, "other", reverse=True))
    assert reversed_ < 0.3 and same - reversed_ > 0.6


@pytest.mark.parametrize("motion,other", [("left", "up"), ("orbit", "bounce"), ("zigzag", "orbit"), ("bounce", "left")])
def test_motion_fidelity_tells_motions_apart(motion, other):
    same = track_fidelity(tracks(motion), tracks(motion, "other"))
    assert same - track_fidelity(tracks(motion), tracks(other, "other")) > 0.5


def test_motion_fidelity_static_cases_are_defined():
    assert track_fidelity(tracks("static"), tracks("static", "other")) == 1.0  # no motion in either: the same
    assert track_fidelity(tracks("left"), tracks("static")) == 0.0


def test_motion_fidelity_survives_noise_and_other_frame_counts():
    noisy_other = track_points(noisy(clip("orbit", "other")))
    assert track_fidelity(tracks("orbit"), noisy_other) > 0.8
    assert track_fidelity(track_points(noisy(clip("static"))), tracks("orbit")) < 0.3
    assert track_fidelity(tracks("left", size=48, frames=12), tracks("left", "other")) > 0.8  # resampled in time


def test_several_references_mean_or_max():
    same, reverse = tracks("left", "other"), tracks("left", "other", reverse=True)
    a, b = track_fidelity(tracks("left"), same), track_fidelity(tracks("left"), reverse)
    assert motion_fidelity(tracks("left"), [same, reverse]) == pytest.approx((a + b) / 2)
    assert motion_fidelity(tracks("left"), [same, reverse], reduce="max") == pytest.approx(a)
    assert motion_fidelity(clip("left"), clip("left", "other")) == pytest.approx(a)  # frames tracked on the way
    with pytest.raises(MotionDirectorError, match="reduce"):
        motion_fidelity(tracks("left"), same, reduce="median")
    with pytest.raises(MotionDirectorError, match="reference 0"):
        motion_fidelity(tracks("left"), torch.rand(1, 32, 32, 3))


def test_correlation_is_the_mean_cosine_of_displacements_with_still_steps():
    right, up, still = [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]
    a = torch.tensor([[right, right, right, up]], dtype=torch.float64)
    b = torch.tensor([[right, up, [-1.0, 0.0], up], [still, right, right, still], [still, still, right, up]],
                     dtype=torch.float64)
    matrix = correlation(a, b, still_step=0.1)
    assert matrix.shape == (1, 3)
    assert matrix[0, 0].item() == pytest.approx((1 + 0 - 1 + 1) / 4)
    assert matrix[0, 1].item() == pytest.approx((0 + 1 + 1 + 0) / 4)  # still in one track only: 0
    both_still = torch.tensor([[still, still, right]], dtype=torch.float64)
    assert correlation(both_still, both_still, 0.1)[0, 0].item() == pytest.approx(1.0)  # resting together: left out


# --- toy world: object, colour, shape, trajectory ----------------------------------------------------------------


@pytest.mark.parametrize("size,frames", [(32, 8), (64, 8)])
def test_object_colour_shape_and_path_of_rendered_clips(size, frames):
    cases = list(itertools.product(SHAPES, COLOURS, ("plain", "textured"), MOTIONS))[::7]
    right_shape = right_colour = 0
    for index, (shape, colour, background, motion) in enumerate(cases):
        made = make_clip(size=size, frames=frames, shape=shape, colour=colour, background=background,
                         motion=motion, seed=index)
        found = find_object(made.frames)
        right_shape += found.shape == shape
        right_colour += found.colour == colour
        assert found.found.all()
        assert np.abs(found.centres - made.centres).max() < 0.5
        assert np.abs(found.sizes - 0.12 * size * made.scales).max() < 0.1 * size * 0.12 + 0.3
    assert right_shape / len(cases) >= 0.95 and right_colour / len(cases) >= 0.95


def test_object_is_found_through_speckle_and_a_static_object_too():
    made = make_clip(size=SIZE, frames=FRAMES, motion="zigzag", shape="square", colour="green", seed=4)
    found = find_object(noisy(made.frames, seed=1, sigma=0.05, speckle=0.08))
    assert (found.shape, found.colour) == ("square", "green")
    assert np.abs(found.centres - made.centres).max() < 1.0
    still = make_clip(size=SIZE, frames=FRAMES, motion="static", shape="triangle", colour="purple", seed=2,
                      background="textured")
    found = find_object(still.frames)  # covers the same pixels in every frame: not part of the background
    assert (found.shape, found.colour) == ("triangle", "purple") and found.found.all()


def test_no_object_in_flat_or_faint_frames():
    for frames in (torch.full((4, 32, 32, 3), 0.3), noisy(torch.full((4, 32, 32, 3), 0.3), sigma=0.01, speckle=0)):
        found = find_object(frames)
        assert not found.found.any() and found.colour is None and found.shape is None
        assert trajectory_similarity(found, found) == 1.0  # both without motion


def test_largest_blob_is_8_connected_and_follows_long_shapes():
    mask = torch.zeros(2, 24, 24, dtype=torch.bool)
    for row in range(0, 24, 4):  # a snake of 6 rows joined at alternate ends: one long component
        mask[0, row, 2:22] = True
        if row + 4 < 24:
            mask[0, row:row + 4, 21 if row % 8 == 0 else 2] = True
    mask[0, 22:24, 0] = True  # a small separate piece
    mask[1, 2:7, 2:7] = True  # 25 pixels ...
    mask[1, 10:14, 10:14] = True  # 16 pixels ...
    mask[1, 14, 14] = mask[1, 15, 15] = True  # ... joined diagonally with 2 more: still smaller
    blob = largest_blob(mask)
    assert torch.equal(blob[0], mask[0] & ~((torch.arange(24)[:, None] >= 22) & (torch.arange(24)[None] == 0)))
    assert blob[1].sum() == 25 and blob[1, 4, 4]
    mask[1, 7, 7] = mask[1, 8, 8] = mask[1, 9, 9] = True  # a diagonal bridge joins them: 25 + 3 + 18
    assert largest_blob(mask)[1].sum() == 46


@pytest.mark.parametrize("motion", MOVING)
def test_trajectory_fidelity_self_other_look_and_static(motion):
    assert trajectory_similarity(toy_object(motion), toy_object(motion)) > 0.95
    assert trajectory_similarity(toy_object(motion), toy_object(motion, "other")) > 0.8
    assert trajectory_similarity(toy_object(motion), toy_object("static", "other")) < 0.3
    assert trajectory_similarity(toy_object(motion), find_object(noisy(clip(motion, "other")))) > 0.8


@pytest.mark.parametrize("motion", (*NOT_SYMMETRIC, "zoom in"))
def test_trajectory_fidelity_against_time_reversal_is_low(motion):
    # zoom in played backwards shrinks: its tracks point every way in both clips, so the track-based score cannot
    # tell (the literature's metric ignores where tracks are); the object's size can
    reversed_ = trajectory_similarity(toy_object(motion), toy_object(motion, "other", reverse=True))
    assert reversed_ < 0.3


def test_trajectory_fidelity_over_references_and_frame_counts():
    same, other = toy_object("orbit", "other"), toy_object("left", "other")
    a, b = trajectory_similarity(toy_object("orbit"), same), trajectory_similarity(toy_object("orbit"), other)
    assert trajectory_fidelity(toy_object("orbit"), [same, other]) == pytest.approx((a + b) / 2)
    assert trajectory_fidelity(toy_object("orbit"), [same, other], reduce="max") == pytest.approx(a)
    longer = find_object(make_clip(size=48, frames=16, motion="orbit", **LOOK).frames)
    assert trajectory_similarity(longer, same) > 0.8


# --- captions, leakage and text alignment ---------------------------------------------------------------------


def test_captions_parse_back_to_their_colour_shape_and_motion():
    for shape, colour, motion in itertools.product(SHAPES, COLOURS, MOTIONS):
        parts = parse_caption(caption(shape, colour, motion))
        assert (parts.colour, parts.shape, parts.motion) == (colour, shape, motion)
    parts = parse_caption("Two BLUE squares, zigzagging!")
    assert (parts.colour, parts.shape, parts.motion) == ("blue", "square", "zigzag")
    assert parse_caption("a cat") == parse_caption("")
    assert parse_caption("a cat").colour is parse_caption("a cat").motion is None
    with pytest.raises(MotionDirectorError, match="text"):
        parse_caption(None)


def test_appearance_leakage_and_text_alignment_count_samples():
    def sample(shape, colour, seed):
        return make_clip(size=SIZE, frames=FRAMES, motion="orbit", shape=shape, colour=colour, seed=seed).frames

    # the prompt asks for a blue triangle; the reference was a red circle
    samples = [sample("triangle", "blue", 1), sample("triangle", "blue", 2), sample("triangle", "red", 3),
               sample("circle", "red", 4)]
    leakage = appearance_leakage(samples, "red", "circle", "blue", "triangle")
    assert (leakage.colour, leakage.shape, leakage.overall, leakage.samples) == (0.5, 0.25, 0.5, 4)
    aligned = text_alignment(samples, "blue", "triangle")
    assert (aligned.colour, aligned.shape, aligned.overall) == (0.5, 0.75, 0.5)
    colour_only = text_alignment(samples, "blue", None)
    assert (colour_only.colour, colour_only.shape, colour_only.overall) == (0.5, None, 0.5)
    same_colour = appearance_leakage(samples, "red", "circle", "red", "triangle")  # colour cannot leak: asked for
    assert same_colour.colour is None and same_colour.shape == 0.25 and same_colour.overall == 0.25
    with pytest.raises(MotionDirectorError, match="colour must be one of"):
        text_alignment(samples, "teal", "circle")
    with pytest.raises(MotionDirectorError, match="shape must be one of"):
        appearance_leakage(samples, "red", "hexagon", "blue", "triangle")


def test_evaluate_report():
    generated = [make_clip(size=SIZE, frames=FRAMES, motion="orbit", shape="triangle", colour="blue", seed=s).frames
                 for s in (1, 2)]
    report = evaluate(generated, [clip("orbit")], prompt="a blue triangle orbiting", reference_prompt="")
    json.dumps(report)
    assert report["samples"] == 2 and report["references"] == 1
    assert report["motion_fidelity"] > 0.8 and report["trajectory_fidelity"] > 0.8
    assert len(report["motion_fidelity_per_sample"]) == 2
    assert report["text_alignment"]["overall"] == 1.0 and report["appearance_leakage"]["overall"] == 0.0
    assert report["reference_appearance"] == {"colour": "red", "shape": "circle", "colour_from": "reference frames",
                                              "shape_from": "reference frames"}
    static = evaluate([clip("static")], [clip("orbit")])
    assert static["motion_fidelity"] < 0.3 and static["text_alignment"] is None


def test_the_look_is_read_from_each_frame_alone():
    # a purple circle zigzagging that turns into a red square for its last two frames (the same path)
    asked = make_clip(size=32, frames=8, motion="zigzag", shape="circle", colour="purple", seed=3).frames
    other = make_clip(size=32, frames=8, motion="zigzag", shape="square", colour="red", seed=3).frames
    turning = torch.cat([asked[:6], other[6:]])
    found = find_object(turning)
    assert (found.colour, found.shape) == ("purple", "circle")  # the clip's look: its most common one
    assert found.frame_colours == ("purple",) * 6 + ("red",) * 2
    assert found.frame_shapes == ("circle",) * 6 + ("square",) * 2
    assert look_kept_per_frame(turning, "purple", "circle") == [True] * 6 + [False] * 2
    assert look_kept_per_frame(turning, "red", None) == [False] * 6 + [True] * 2
    assert look_kept_per_frame(asked, "purple", "circle") == [True] * 8
    vanishing = asked.clone()
    vanishing[7] = vanishing[7, :1, :1]  # the last frame: background only
    assert look_kept_per_frame(vanishing, "purple", "circle") == [True] * 7 + [False]

    report = evaluate([turning, asked], [asked], prompt="a purple circle moving in a zigzag")
    assert report["look_kept_frames_per_sample"] == [6, 8] and report["look_kept_every_frame"] == 1
    assert report["text_alignment"]["overall"] == 1.0  # by their most common look both are purple circles
    assert report["generated_objects"][0]["frame_colours"][-1] == "red"
    json.dumps(report)


def test_split_clips():
    batch = torch.rand(12, 16, 16, 3)
    assert [c.shape[0] for c in split_clips(batch, 4)] == [4, 4, 4]
    assert len(split_clips(batch, 0)) == 1
    with pytest.raises(MotionDirectorError, match="not a whole number of clips"):
        split_clips(batch, 5)
    with pytest.raises(MotionDirectorError, match="at least 2 frames"):
        split_clips(batch, 1)
