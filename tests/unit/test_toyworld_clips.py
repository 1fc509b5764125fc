import math

import numpy as np
import pytest
import torch

from motiondirector_core.errors import MotionDirectorError
from motiondirector_core.toyworld.clips import (
    COLOURS, HELD_OUT_MOTIONS, MOTIONS, PRETRAIN_MOTIONS, SHAPES, caption, make_clip, render_background, write_clip,
)
from motiondirector_core.video_io import read_video


def coverage(clip) -> np.ndarray:
    """[F, H, W] how much of each pixel the shape covers, measured from the pixels (background subtracted)."""
    background = render_background(clip.frames.shape[1], clip.background, clip.seed)
    colour = torch.tensor(COLOURS[clip.colour])
    contrast = (colour - background).abs().sum(-1)
    return ((clip.frames - background).abs().sum(-1) / contrast).clamp(0, 1).numpy()


def tracked(clip) -> np.ndarray:
    """The shape's centroid (x, y) in every frame, measured from the pixels."""
    alpha = coverage(clip)
    ys, xs = np.mgrid[: alpha.shape[1], : alpha.shape[2]] + 0.5
    mass = alpha.sum(axis=(1, 2))
    return np.stack([(alpha * xs).sum(axis=(1, 2)) / mass, (alpha * ys).sum(axis=(1, 2)) / mass], axis=1)


def test_frames_are_rgb_in_range_with_the_caption():
    clip = make_clip(size=48, frames=6, shape="square", colour="orange", motion="orbit", background="textured", seed=2)

    assert clip.frames.shape == (6, 48, 48, 3) and clip.frames.dtype == torch.float32
    assert 0.0 <= float(clip.frames.min()) and float(clip.frames.max()) <= 1.0
    assert clip.caption == "an orange square orbiting"
    assert clip.centres.shape == (6, 2) and clip.scales.shape == (6,)


def test_same_parameters_same_pixels_and_the_seed_changes_them():
    params = dict(size=32, frames=4, shape="triangle", colour="blue", motion="zigzag", background="textured")

    first, again, other = make_clip(**params, seed=5), make_clip(**params, seed=5), make_clip(**params, seed=6)

    assert torch.equal(first.frames, again.frames)
    assert not torch.equal(first.frames, other.frames)
    assert not torch.equal(render_background(32, "textured", 5), render_background(32, "textured", 6))


@pytest.mark.parametrize("motion, axis, sign", [("left", 0, -1), ("right", 0, 1), ("up", 1, -1), ("down", 1, 1)])
def test_straight_motions_move_the_right_way(motion, axis, sign):
    clip = make_clip(size=64, frames=8, shape="circle", colour="red", motion=motion, seed=3)
    path = tracked(clip)

    steps = np.diff(path[:, axis]) * sign
    assert (steps > 1.0).all(), f"{motion}: {path[:, axis]}"
    assert np.ptp(path[:, 1 - axis]) < 0.5  # no drift across
    assert path[-1, axis] * sign - path[0, axis] * sign > 0.35 * 64


def test_static_stays_put():
    path = tracked(make_clip(size=64, frames=6, shape="square", colour="green", motion="static", background="textured"))

    assert np.ptp(path, axis=0).max() < 0.2


@pytest.mark.parametrize("motion", MOTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_the_pixels_follow_the_declared_path(motion, shape):
    clip = make_clip(size=64, frames=5, shape=shape, colour="yellow", motion=motion, background="textured", seed=1)

    assert np.abs(tracked(clip) - clip.centres).max() < 0.6


def test_zigzag_goes_right_while_turning_up_and_down():
    path = tracked(make_clip(size=64, frames=16, shape="circle", colour="white", motion="zigzag"))
    dy = np.sign(np.round(np.diff(path[:, 1]), 3))

    assert (np.diff(path[:, 0]) > 0.5).all()
    assert np.count_nonzero(dy[1:] != dy[:-1]) >= 3  # two periods: at least three turns
    assert np.ptp(path[:, 1]) > 0.2 * 64


def test_orbit_turns_clockwise_once_around_a_fixed_centre():
    path = tracked(make_clip(size=64, frames=12, shape="circle", colour="red", motion="orbit", seed=4))
    centre = path.mean(axis=0)
    offsets = path - centre
    angles = np.unwrap(np.arctan2(offsets[:, 1], offsets[:, 0]))  # y points down: growing angle is clockwise

    assert (np.diff(angles) > 0).all()
    assert angles[-1] - angles[0] == pytest.approx(2 * math.pi * 11 / 12, abs=0.1)
    assert np.ptp(np.hypot(offsets[:, 0], offsets[:, 1])) < 0.5


def test_bounce_hops_in_place_and_zoom_in_grows_in_place():
    bounce = tracked(make_clip(size=64, frames=16, shape="circle", colour="blue", motion="bounce"))
    zoom = make_clip(size=64, frames=6, shape="square", colour="purple", motion="zoom in")
    areas = coverage(zoom).sum(axis=(1, 2))

    assert np.ptp(bounce[:, 0]) < 0.2
    lows = [i for i in range(1, 15) if bounce[i, 1] < bounce[i - 1, 1] and bounce[i, 1] <= bounce[i + 1, 1]]
    assert len(lows) == 2  # two apexes (y is smallest at the top)
    assert np.ptp(tracked(zoom), axis=0).max() < 0.2
    assert (np.diff(areas) > 0).all() and areas[-1] > 4 * areas[0]


def test_shapes_have_the_same_area_but_different_outlines():
    masks = {shape: coverage(make_clip(size=64, frames=1, shape=shape, motion="static"))[0] for shape in SHAPES}
    areas = {shape: mask.sum() for shape, mask in masks.items()}

    assert max(areas.values()) / min(areas.values()) < 1.05
    for a in SHAPES:
        for b in SHAPES:
            if a < b:
                assert np.abs(masks[a] - masks[b]).sum() > 0.1 * areas[a], (a, b)
    fill = {}
    for shape, mask in masks.items():
        rows, cols = np.nonzero(mask > 0.5)
        fill[shape] = (mask > 0.5).sum() / ((np.ptp(rows) + 1) * (np.ptp(cols) + 1))
    assert fill["square"] > 0.95 and 0.72 < fill["circle"] < 0.85 and 0.4 < fill["triangle"] < 0.6
    rows = np.nonzero(masks["triangle"] > 0.5)[0]
    widths = [(masks["triangle"][r] > 0.5).sum() for r in (rows.min() + 1, rows.max() - 1)]
    assert widths[0] < widths[1]  # the apex points up


def test_captions_name_colour_shape_and_motion():
    assert caption("circle", "red", "left") == "a red circle moving left"
    assert caption("triangle", "orange", "zoom_in") == "an orange triangle zooming in"
    assert make_clip(size=16, frames=2, motion="Zoom In").caption == "a red circle zooming in"
    assert caption("square", None, "zigzag") == "a square moving in a zigzag"  # the class alone, colour unnamed
    captions = {caption("square", "blue", motion) for motion in MOTIONS}
    assert len(captions) == len(MOTIONS)
    assert not set(PRETRAIN_MOTIONS) & set(HELD_OUT_MOTIONS)


@pytest.mark.parametrize("bad, word", [
    (dict(shape="hexagon"), "shape"), (dict(colour="teal"), "colour"), (dict(motion="spin"), "motion"),
    (dict(background="stars"), "background"), (dict(size=8), "size"), (dict(frames=0), "frames"),
    (dict(seed=-1), "seed"), (dict(size=32.5), "size"),
])
def test_bad_parameters_are_named(bad, word):
    with pytest.raises(MotionDirectorError, match=word):
        make_clip(**{"size": 32, "frames": 2, **bad})


def test_write_clip_writes_the_video_and_its_caption(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", fps=8, size=32, frames=4, shape="triangle", colour="green",
                      motion="down", background="plain", seed=0)

    decoded, fps = read_video(tmp_path / "clip.mp4")
    assert decoded.shape == (4, 32, 32, 3) and fps == pytest.approx(8)
    assert (decoded.float() / 255 - clip.frames).abs().mean() < 0.03
    assert (tmp_path / "clip.txt").read_text(encoding="utf-8").strip() == "a green triangle moving down"
