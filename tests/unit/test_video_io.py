import numpy as np
import pytest
import torch
from PIL import Image

from motiondirector_core.errors import MotionDirectorError
from motiondirector_core.video_io import frame_times, read_video, side_by_side, write_image, write_video
from tests.fixtures.media import moving_square, square_index, write_audio_only, write_pyav


def _square_frames(count=6, height=32, width=48) -> torch.Tensor:
    return torch.from_numpy(moving_square(count, height, width)).float() / 255


def test_mp4_round_trip_keeps_count_size_rate_and_pixels(tmp_path):
    frames = _square_frames() * 0.6 + 0.2  # mid-range values: no clipping hides encoding errors
    path = write_video(tmp_path / "clip.mp4", frames, fps=12)

    decoded, fps = read_video(path)

    assert path == tmp_path / "clip.mp4"
    assert decoded.dtype == torch.uint8 and decoded.shape == (6, 32, 48, 3)
    assert fps == pytest.approx(12)
    assert (decoded.float() / 255 - frames).abs().mean() < 0.02
    assert [square_index(frame) for frame in decoded] == list(range(6))


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mov", ".mkv", ".gif"])
def test_every_writable_container_round_trips_the_motion(tmp_path, suffix):
    path = write_video(tmp_path / f"clip{suffix}", _square_frames(count=5), fps=10)

    decoded, fps = read_video(path)

    assert decoded.shape == (5, 32, 48, 3)
    assert fps == pytest.approx(10, rel=0.05)
    assert [square_index(frame) for frame in decoded] == list(range(5))


def test_odd_sizes_are_padded_by_replicating_the_edge(tmp_path):
    rows = torch.linspace(0.2, 0.8, 17).view(1, 17, 1, 1)
    columns = torch.linspace(0.8, 0.3, 25).view(1, 1, 25, 1)
    frames = (rows * columns.new_tensor([1.0, 0.5, 0.2]) + columns * 0.3).expand(3, 17, 25, 3).contiguous()

    decoded, _ = read_video(write_video(tmp_path / "odd.mp4", frames))

    assert decoded.shape == (3, 18, 26, 3)
    restored = decoded.float() / 255
    assert (restored[:, :17, :25] - frames).abs().mean() < 0.02
    # The padding repeats the last real row and column, not black.
    assert (restored[:, 17, :25] - frames[:, 16]).abs().mean() < 0.03
    assert (restored[:, :17, 25] - frames[:, :, 24]).abs().mean() < 0.03


def test_uint8_frames_are_written_as_is_and_floats_are_clamped(tmp_path):
    uint8 = torch.full((2, 16, 16, 3), 128, dtype=torch.uint8)
    out_of_range = torch.full((2, 16, 16, 3), 3.0)
    out_of_range[:, :, :8] = -2.0

    from_uint8, _ = read_video(write_video(tmp_path / "u8.mp4", uint8))
    clamped, _ = read_video(write_video(tmp_path / "clamp.mp4", out_of_range))

    assert (from_uint8.float() - 128).abs().max() <= 3
    assert clamped[:, :, :6].float().max() <= 8 and clamped[:, :, 10:].float().min() >= 247


def test_write_is_atomic_and_replaces_the_previous_file(tmp_path):
    path = write_video(tmp_path / "clip.mp4", _square_frames(count=2))
    write_video(path, _square_frames(count=4))

    with pytest.raises(MotionDirectorError):
        write_video(path, torch.rand(4, 16, 16))  # not RGB: the file from before must survive

    assert read_video(path)[0].shape[0] == 4
    assert sorted(item.name for item in tmp_path.iterdir()) == ["clip.mp4"]


@pytest.mark.parametrize(
    ("name", "frames", "fps", "fragment"),
    [
        ("clip.avi", torch.rand(2, 16, 16, 3), 8, "unsupported extension"),
        ("clip.mp4", torch.rand(16, 16, 3), 8, "[F, H, W, 3]"),
        ("clip.mp4", torch.rand(0, 16, 16, 3), 8, "non-empty"),
        ("clip.mp4", torch.rand(2, 16, 16, 3), 0, "fps"),
        ("clip.mp4", torch.rand(2, 16, 16, 3), float("nan"), "fps"),
        ("clip.mp4", [[1, 2, 3]], 8, "tensor"),
    ],
)
def test_bad_write_requests_are_rejected(tmp_path, name, frames, fps, fragment):
    with pytest.raises(MotionDirectorError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        write_video(tmp_path / name, frames, fps=fps)
    assert not any(tmp_path.iterdir())


def _bad_video(tmp_path, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "junk":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        whole = write_pyav(tmp_path / "whole.mp4", moving_square(20, 32, 64)).read_bytes()
        path.write_bytes(whole[: len(whole) // 2])  # the index (moov) is at the end: cut off
    elif kind == "audio_only":
        write_audio_only(path)
    return path


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("missing", "not found"),
        ("empty", "corrupt"),
        ("junk", "corrupt"),
        ("truncated", "corrupt"),
        ("audio_only", "no video stream"),
    ],
)
def test_unreadable_videos_raise_a_clear_error(tmp_path, kind, fragment):
    path = _bad_video(tmp_path, kind)

    with pytest.raises(MotionDirectorError, match=fragment) as caught:
        read_video(path)

    assert str(path) in str(caught.value)


def test_frame_times_follow_the_stream_clock(tmp_path):
    path = write_pyav(tmp_path / "clip.mkv", moving_square(6, 32, 64), fps=24)

    assert frame_times(path) == pytest.approx([index / 24 for index in range(6)], abs=1e-3)


def test_rotated_videos_are_turned_upright(tmp_path):
    stored = np.zeros((2, 32, 48, 3), np.uint8)
    stored[:, :8, :8] = 255  # marker at the stored top-left corner
    # -90: what phones write for portrait video; players turn it a quarter clockwise.
    path = write_pyav(tmp_path / "portrait.mp4", stored, rotation=-90)

    decoded, _ = read_video(path)

    assert decoded.shape == (2, 48, 32, 3)
    assert decoded[0, :8, -8:].float().mean() > 200  # top-left went to top-right
    assert decoded[0, -8:, :8].float().mean() < 50


def test_write_image_png_round_trip(tmp_path):
    image = torch.rand(9, 13, 3)

    path = write_image(tmp_path / "preview.png", image)

    saved = np.asarray(Image.open(path))
    assert saved.shape == (9, 13, 3)
    assert np.array_equal(saved, (image * 255).round().to(torch.uint8).numpy())
    with pytest.raises(MotionDirectorError, match="png"):
        write_image(tmp_path / "preview.tiff", image)
    with pytest.raises(MotionDirectorError, match=r"\[H, W, 3\]"):
        write_image(tmp_path / "flat.png", torch.rand(2, 9, 13, 3))


def test_side_by_side_puts_reference_rows_above_generated_rows():
    colors = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9]])
    top = colors.view(3, 1, 1, 3).expand(3, 16, 32, 3)  # 2:1 reference frames, one solid color each
    bottom = torch.rand(5, 8, 8, 3)  # square generated frames

    grid = side_by_side(top, bottom, columns=4)

    # Reference frames resized to the generated height (8 x 16): one row of 3; generated: 2 rows of 4.
    assert grid.shape == (8 + 16, 3 * 16, 3) and grid.dtype == torch.float32
    for index, color in enumerate(colors):
        assert torch.allclose(grid[:8, 16 * index : 16 * (index + 1)], color.expand(8, 16, 3), atol=1 / 255)
    assert torch.allclose(grid[8:16, 8:16], bottom[1], atol=1 / 255)
    assert torch.allclose(grid[16:24, 0:8], bottom[4], atol=1 / 255)
    assert grid[8:16, 32:].abs().max() == 0  # black padding right of the 4 generated frames
    assert grid[16:24, 8:].abs().max() == 0


def test_side_by_side_rejects_bad_columns_and_no_frames():
    with pytest.raises(MotionDirectorError, match="columns"):
        side_by_side(torch.rand(1, 8, 8, 3), torch.rand(1, 8, 8, 3), columns=0)
    with pytest.raises(MotionDirectorError, match="at least one frame"):
        side_by_side(torch.rand(0, 8, 8, 3), torch.rand(0, 8, 8, 3))
