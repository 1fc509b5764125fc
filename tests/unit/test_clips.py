import numpy as np
import pytest
import torch
from PIL import Image

from motiondirector_core.clips import FrameSampling, clips_from_frames, read_clip, read_clips, select_indices
from motiondirector_core.errors import MotionDirectorError
from motiondirector_core.video_io import read_video
from tests.fixtures.media import moving_square, square_index, write_audio_only, write_pyav

NATIVE = dict(width=128, height=32, resize="squash")  # the moving-square videos' own size: no resampling


def _square_video(tmp_path, count=12, fps=8, suffix=".mp4", name="clip", **kwargs):
    return write_pyav(tmp_path / f"{name}{suffix}", moving_square(count), fps=fps, **kwargs)


def _taken(clip, scale_x=1.0):
    return [square_index(frame, scale_x) for frame in clip.frames]


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mov", ".mkv", ".gif", ".avi"])
def test_every_video_container_is_read_with_stride(tmp_path, suffix):
    path = _square_video(tmp_path, suffix=suffix, fps=10)

    clip = read_clip(path, FrameSampling(frames=4, stride=2, **NATIVE), prompt="a square")

    assert clip.frames.shape == (4, 32, 128, 3)
    assert clip.frames.dtype == torch.float32 and clip.frames.is_contiguous()
    assert 0 <= clip.frames.min() and clip.frames.max() <= 1
    assert _taken(clip) == [0, 2, 4, 6] == clip.indices
    assert clip.prompt == "a square" and clip.source == str(path) and not clip.is_image


def test_start_and_stride_pick_those_source_frames(tmp_path):
    clip = read_clip(_square_video(tmp_path, count=16), FrameSampling(frames=4, stride=3, start=3, **NATIVE), "p")

    assert _taken(clip) == [3, 6, 9, 12]


def test_fps_sampling_follows_the_real_frame_rate(tmp_path):
    video_24 = _square_video(tmp_path, count=30, fps=24, name="a")
    video_30 = _square_video(tmp_path, count=40, fps=30, name="b", suffix=".webm")

    at_8_from_24 = read_clip(video_24, FrameSampling(frames=5, fps=8, **NATIVE), "p")
    at_8_from_30 = read_clip(video_30, FrameSampling(frames=5, fps=8, start=2, **NATIVE), "p")

    assert _taken(at_8_from_24) == [0, 3, 6, 9, 12]
    assert at_8_from_24.frame_rate == pytest.approx(8.0) and at_8_from_24.sampling.fps == 8
    # 30/8 = 3.75 source frames per step from frame 2: nearest to 2, 5.75, 9.5 (a tie), 13.25, 17
    taken = _taken(at_8_from_30)
    assert [taken[k] for k in (0, 1, 3, 4)] == [2, 6, 13, 17] and taken[2] in (9, 10)


def test_fps_above_the_clips_own_rate_takes_every_frame_once(tmp_path):
    slow = read_clip(_square_video(tmp_path, count=12, fps=5), FrameSampling(frames=6, fps=8, **NATIVE), "p")
    assert _taken(slow) == [0, 1, 2, 3, 4, 5] and slow.frame_rate == pytest.approx(5.0)
    with pytest.raises(MotionDirectorError, match=r"12 frames at 5 fps \(the clip's own rate; 8 asked\) need 2.20 s"):
        read_clip(tmp_path / "clip.mp4", FrameSampling(frames=12, fps=8, start=1, **NATIVE), "p")


def test_stride_and_fps_together_are_refused(tmp_path):
    with pytest.raises(MotionDirectorError, match="stride 7 and fps 8 are both set.*set fps to 0"):
        read_clip(_square_video(tmp_path), FrameSampling(frames=2, fps=8, stride=7, **NATIVE), "p")


def test_stride_sampling_records_the_rate_of_the_frames_taken(tmp_path):
    clip = read_clip(_square_video(tmp_path, count=12, fps=10), FrameSampling(frames=4, stride=2, **NATIVE), "p")
    assert clip.frame_rate == pytest.approx(5.0) and clip.sampling.stride == 2


def test_random_start_is_reproducible_and_varies_with_the_seed(tmp_path):
    path = _square_video(tmp_path, count=20)

    def taken(seed):
        return _taken(read_clip(path, FrameSampling(frames=4, stride=2, random_start=True, seed=seed, **NATIVE), "p"))

    first = taken(3)
    assert taken(3) == first
    assert first == list(range(first[0], first[0] + 8, 2)) and 0 <= first[0] <= 13
    times = [index / 8 for index in range(20)]
    starts = {
        select_indices(times, FrameSampling(frames=4, stride=2, random_start=True, seed=seed), "v")[0]
        for seed in range(12)
    }
    assert len(starts) > 3 and min(starts) >= 0 and max(starts) <= 13


def test_random_start_never_goes_below_start():
    def start(seed):
        return select_indices(list(range(10)), FrameSampling(frames=2, start=5, random_start=True, seed=seed), "v")[0]

    starts = {start(seed) for seed in range(20)}

    assert starts <= set(range(5, 9)) and len(starts) > 1


def test_too_short_clip_says_what_it_has_and_how_to_fix_it(tmp_path):
    path = _square_video(tmp_path, count=10)

    with pytest.raises(MotionDirectorError) as by_stride:
        read_clip(path, FrameSampling(frames=8, stride=2, **NATIVE), "p")
    with pytest.raises(MotionDirectorError) as by_fps:
        read_clip(path, FrameSampling(frames=8, fps=4, **NATIVE), "p")

    message = str(by_stride.value)
    for fragment in (str(path), "has 10 frames", "8 frames with stride 2", "need 15", "repeat_short"):
        assert fragment in message
    assert "8 frames at 4 fps" in str(by_fps.value) and "lasts 1.12 s" in str(by_fps.value)
    with pytest.raises(MotionDirectorError, match="start is frame 10. Lower start below 10"):
        read_clip(path, FrameSampling(frames=2, start=10, repeat_short=True, **NATIVE), "p")


def test_repeat_short_spreads_the_request_over_the_clip(tmp_path):
    path = _square_video(tmp_path, count=10)

    clip = read_clip(path, FrameSampling(frames=16, stride=2, repeat_short=True, **NATIVE), "p")

    expected = [int(k) for k in np.floor(np.linspace(0, 9, 16))]
    assert clip.indices == expected and _taken(clip) == expected


def _circle_image(path, width, height, radius):
    y, x = np.mgrid[:height, :width]
    inside = (x - (width - 1) / 2) ** 2 + (y - (height - 1) / 2) ** 2 <= radius**2
    image = np.zeros((height, width, 3), np.uint8)
    image[inside] = 255
    Image.fromarray(image).save(path)
    return path


def _extent(frame, axis):
    mask = frame.mean(dim=-1) > 0.5
    return int(mask.any(dim=axis).sum())


@pytest.mark.parametrize(("width", "height"), [(128, 64), (64, 128)])
def test_crop_keeps_the_aspect_and_squash_stretches(tmp_path, width, height):
    path = _circle_image(tmp_path / "circle.png", width, height, radius=20)

    cropped = read_clip(path, FrameSampling(width=32, height=32, resize="crop"), "p").frames[0]
    squashed = read_clip(path, FrameSampling(width=32, height=32, resize="squash"), "p").frames[0]

    assert _extent(cropped, 0) == pytest.approx(20, abs=1) and _extent(cropped, 1) == pytest.approx(20, abs=1)
    long_side, short_side = (1, 0) if width > height else (0, 1)  # axis=1 counts rows, axis=0 counts columns
    assert _extent(squashed, long_side) == pytest.approx(20, abs=1)
    assert _extent(squashed, short_side) == pytest.approx(10, abs=1)


def test_crop_centres_a_known_pixel(tmp_path):
    image = np.zeros((40, 80, 3), np.uint8)
    image[18:22, 30:34] = (255, 0, 0)  # 10 pixels left of the centre of a wide frame
    Image.fromarray(image).save(tmp_path / "marker.png")

    frame = read_clip(tmp_path / "marker.png", FrameSampling(width=40, height=40), "p").frames[0]

    red = (frame[..., 0] > 0.5) & (frame[..., 1] < 0.3)
    rows, columns = red.nonzero(as_tuple=True)
    assert rows.float().mean() == pytest.approx(19.5, abs=0.5)
    assert columns.float().mean() == pytest.approx(11.5, abs=0.5)


def test_crop_works_on_video_frames(tmp_path):
    clip = read_clip(_square_video(tmp_path, count=40), FrameSampling(frames=40, width=64, height=32), "p")

    # 128x32 frames cropped to 64x32 keep source columns 32..95: the square (at 2 * i) shifts left by 32.
    assert clip.frames.shape == (40, 32, 64, 3)
    assert clip.frames[:12].max() < 0.1  # frames 0..11 have their square left of the window
    right_edges = [int((frame.mean(dim=-1) > 0.5).any(dim=0).nonzero().max()) for frame in clip.frames[20:40:5]]
    assert right_edges == [2 * i + 7 - 32 for i in range(20, 40, 5)]


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".bmp"])
def test_images_are_one_frame_clips_whatever_the_frame_settings(tmp_path, suffix):
    path = _circle_image(tmp_path / f"image{suffix}", 48, 40, radius=12)

    clip = read_clip(path, FrameSampling(frames=16, stride=4, start=7, width=24, height=16), "a circle")

    assert clip.frames.shape == (1, 16, 24, 3) and clip.is_image and clip.indices == [0]


def test_sidecar_prompt_beats_the_shared_prompt(tmp_path):
    path = _circle_image(tmp_path / "shot.png", 16, 16, radius=4)
    other = _circle_image(tmp_path / "other.png", 16, 16, radius=4)
    (tmp_path / "shot.txt").write_text("  a white disc on black \n", encoding="utf-8")
    (tmp_path / "other.txt").write_text("   \n", encoding="utf-8")  # empty: falls back to the shared prompt
    sampling = FrameSampling(width=16, height=16)

    assert read_clip(path, sampling, prompt="shared").prompt == "a white disc on black"
    assert read_clip(path, sampling).prompt == "a white disc on black"
    assert read_clip(other, sampling, prompt=" shared ").prompt == "shared"
    with pytest.raises(MotionDirectorError, match="other.txt"):
        read_clip(other, sampling)


def test_folders_give_their_clips_sorted_by_name_and_filtered(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    _square_video(folder, count=4, name="b")
    _circle_image(folder / "a.PNG", 16, 16, radius=4)
    _circle_image(folder / "c.jpg", 16, 16, radius=4)
    (folder / "a.txt").write_text("the a prompt")
    (folder / "notes.md").write_text("not a clip")
    (folder / "._b.mp4").write_bytes(b"macOS resource fork")
    (folder / "nested").mkdir()
    _circle_image(folder / "nested" / "d.png", 16, 16, radius=4)
    extra = _circle_image(tmp_path / "z.png", 16, 16, radius=4)

    clips = read_clips([folder, str(extra)], FrameSampling(frames=2, width=16, height=16), prompt="shared")

    assert [clip.source.split("/")[-1] for clip in clips] == ["a.PNG", "b.mp4", "c.jpg", "z.png"]
    assert [clip.prompt for clip in clips] == ["the a prompt", "shared", "shared", "shared"]
    assert [clip.frames.shape[0] for clip in clips] == [1, 2, 1, 1]


def test_empty_folders_and_missing_paths_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("prompt only")
    sampling = FrameSampling()

    for folder in ("empty", "texts"):
        with pytest.raises(MotionDirectorError, match=rf"{folder} holds no clips.*\.mp4.*\.png"):
            read_clips([tmp_path / folder], sampling, "p")
    with pytest.raises(MotionDirectorError, match="not found"):
        read_clips([tmp_path / "absent"], sampling, "p")
    with pytest.raises(MotionDirectorError, match="no clips given"):
        read_clips([], sampling, "p")
    with pytest.raises(MotionDirectorError, match="is a folder"):
        read_clip(tmp_path / "empty", sampling, "p")


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"width": 30}, "width must be a positive multiple of 8.*try 32"),
        ({"height": 0}, "height must be a positive multiple of 8"),
        ({"height": 100.0}, "height must be a positive multiple of 8"),
        ({"frames": 0}, "frames must be"),
        ({"stride": 0}, "stride must be"),
        ({"start": -1}, "start must be"),
        ({"fps": 0.0}, "fps must be"),
        ({"resize": "stretch"}, "resize must be one of crop, squash"),
    ],
)
def test_bad_sampling_settings_are_rejected(tmp_path, settings, fragment):
    path = _circle_image(tmp_path / "image.png", 16, 16, radius=4)

    with pytest.raises(MotionDirectorError, match=fragment):
        read_clip(path, FrameSampling(**settings), "p")


def _bad_file(tmp_path, kind):
    if kind == "corrupt_video":
        path = tmp_path / "corrupt.mp4"
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    elif kind == "truncated_video":
        whole = _square_video(tmp_path, count=12, name="whole").read_bytes()
        path = tmp_path / "truncated.mp4"
        path.write_bytes(whole[: len(whole) // 2])
    elif kind == "empty_video":
        path = tmp_path / "empty.webm"
        path.write_bytes(b"")
    elif kind == "audio_only":
        path = write_audio_only(tmp_path / "audio.mp4")
    elif kind == "corrupt_image":
        path = tmp_path / "corrupt.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    elif kind == "truncated_image":
        _circle_image(tmp_path / "whole.jpg", 64, 64, radius=20)
        path = tmp_path / "truncated.jpg"
        path.write_bytes((tmp_path / "whole.jpg").read_bytes()[:300])
    elif kind == "unsupported":
        path = tmp_path / "clip.flv"
        path.write_bytes(b"FLV")
    elif kind == "missing":
        path = tmp_path / "missing.mp4"
    return path


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("corrupt_video", "corrupt"),
        ("truncated_video", "corrupt"),
        ("empty_video", "corrupt"),
        ("audio_only", "no video stream"),
        ("corrupt_image", "corrupt"),
        ("truncated_image", "corrupt"),
        ("unsupported", r"unsupported file type \.flv; use one of \.mp4.*\.bmp"),
        ("missing", "not found"),
    ],
)
def test_bad_files_raise_a_clear_error_naming_the_file(tmp_path, kind, fragment):
    path = _bad_file(tmp_path, kind)

    with pytest.raises(MotionDirectorError, match=fragment) as caught:
        read_clip(path, FrameSampling(frames=2, width=16, height=16), "p")

    assert str(path) in str(caught.value)


def test_decoding_stops_after_the_last_needed_frame(tmp_path):
    # Index first (faststart), then cut the tail: the early frames are intact, the late ones are gone.
    whole = _square_video(tmp_path, count=40, name="whole", faststart=True, options={"g": "1"}).read_bytes()
    path = tmp_path / "tail_cut.mp4"
    path.write_bytes(whole[: len(whole) * 2 // 3])

    clip = read_clip(path, FrameSampling(frames=3, **NATIVE), "p")

    assert _taken(clip) == [0, 1, 2]
    with pytest.raises(MotionDirectorError, match="corrupt"):
        read_video(path)  # decoding everything reaches the cut
    with pytest.raises(MotionDirectorError, match="tail_cut.mp4"):
        read_clip(path, FrameSampling(frames=40, **NATIVE), "p")


def test_rotated_video_is_read_upright(tmp_path):
    stored = np.zeros((2, 32, 48, 3), np.uint8)
    stored[:, :8, :8] = 255
    path = write_pyav(tmp_path / "portrait.mp4", stored, rotation=-90)

    clip = read_clip(path, FrameSampling(frames=2, width=32, height=48, resize="squash"), "p")

    assert clip.frames.shape == (2, 48, 32, 3)
    assert clip.frames[0, :8, -8:].mean() > 0.8 and clip.frames[0, -8:, :8].mean() < 0.2


def test_clips_from_frames_keeps_or_samples_an_image_batch():
    batch = torch.from_numpy(moving_square(12)).float() / 255

    kept = clips_from_frames(batch, " a square ")
    every_4th = FrameSampling(frames=3, stride=4, start=1, width=64, height=16, resize="squash")
    sampled = clips_from_frames(batch, "p", every_4th)
    timed = clips_from_frames(batch, "p", FrameSampling(frames=3, fps=8, **NATIVE), frame_rate=24)

    assert kept.frames.shape == (12, 32, 128, 3) and torch.equal(kept.frames, batch) and kept.prompt == "a square"
    assert sampled.frames.shape == (3, 16, 64, 3) and sampled.indices == [1, 5, 9]
    assert _taken(sampled, scale_x=0.5) == [1, 5, 9]
    assert _taken(timed) == [0, 3, 6]
    one = clips_from_frames(batch[:1], "p", FrameSampling(frames=16, width=16, height=16))
    assert one.frames.shape == (1, 16, 16, 3) and one.is_image


@pytest.mark.parametrize(
    ("frames", "prompt", "sampling", "fragment"),
    [
        (torch.rand(4, 8, 8), "p", None, "IMAGE batch"),
        (torch.rand(0, 8, 8, 3), "p", None, "IMAGE batch"),
        (np.zeros((2, 8, 8, 3)), "p", None, "IMAGE batch"),
        (torch.zeros(2, 8, 8, 3, dtype=torch.uint8), "p", None, "float"),
        (torch.rand(2, 8, 8, 3), "  ", None, "no prompt"),
        (torch.rand(4, 8, 8, 3), "p", FrameSampling(frames=2, fps=8, width=8, height=8), "frame_rate"),
        (torch.rand(4, 8, 8, 3), "p", FrameSampling(frames=3, stride=2, width=8, height=8), "has 4 frames"),
    ],
)
def test_clips_from_frames_rejects_bad_batches(frames, prompt, sampling, fragment):
    with pytest.raises(MotionDirectorError, match=fragment):
        clips_from_frames(frames, prompt, sampling)


def test_reference_clips_read_at_64(reference_data):
    data = reference_data / "test_data"
    sampling = FrameSampling(frames=16, fps=8, width=64, height=64)

    car = read_clip(data / "car_turn" / "car-turn.mp4", sampling, prompt="a car turning")
    bicycles = read_clips([data / "bicycle"], sampling, prompt="a person riding a bicycle")
    warriors = read_clips([data / "Terracotta_Warrior"], sampling, prompt="a terracotta warrior")
    photo = read_clips([data / "img_car"], sampling, prompt="a car")

    assert car.frames.shape == (16, 64, 64, 3) and car.indices == list(range(16))  # an 8 fps file at 8 fps
    assert [clip.frames.shape for clip in bicycles] == [(16, 64, 64, 3)] * 4
    assert all(clip.indices[1] - clip.indices[0] in (3, 4) for clip in bicycles)  # 25-30 fps sampled at 8
    assert [clip.frames.shape for clip in warriors] == [(1, 64, 64, 3)] * 8
    assert [clip.frames.shape for clip in photo] == [(1, 64, 64, 3)]
    for clip in [car, *bicycles, *warriors, *photo]:
        assert clip.frames.dtype == torch.float32 and 0 <= clip.frames.min() and clip.frames.max() <= 1
        assert clip.frames.std() > 0.05  # real content, not a blank frame
