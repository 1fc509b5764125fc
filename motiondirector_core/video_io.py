"""Video and image files: decode with PyAV, write mp4/webm/mov/mkv/gif and png previews atomically."""

import contextlib
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import MotionDirectorError
from .files import atomic_path

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".gif", ".avi")

# extension -> (container format, codec, encoder options); PyAV cannot guess the format from a temp name.
_WRITE_FORMATS = {
    ".mp4": ("mp4", "libx264", {"crf": "17", "preset": "medium"}),
    ".mov": ("mov", "libx264", {"crf": "17", "preset": "medium"}),
    ".mkv": ("matroska", "libx264", {"crf": "17", "preset": "medium"}),
    ".webm": ("webm", "libvpx-vp9", {"crf": "20", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}),
}
_GIF = ".gif"
_IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def _to_uint8(frames, what: str, ndim: int) -> np.ndarray:
    """float 0..1 (clamped) or uint8, torch or numpy -> a uint8 numpy array with a trailing RGB axis."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if not isinstance(frames, torch.Tensor):
        raise MotionDirectorError(f"{what} must be a tensor, got {type(frames).__name__}.")
    if frames.ndim != ndim or frames.shape[-1] != 3 or frames.numel() == 0:
        layout = "[F, H, W, 3]" if ndim == 4 else "[H, W, 3]"
        raise MotionDirectorError(f"{what} must be a non-empty RGB tensor {layout}, got shape {tuple(frames.shape)}.")
    frames = frames.detach().cpu()
    if frames.dtype != torch.uint8:
        frames = (torch.nan_to_num(frames.float()).clamp(0, 1) * 255).round().to(torch.uint8)
    return frames.contiguous().numpy()


def _pad_even(frames: np.ndarray) -> np.ndarray:
    """yuv420p needs an even width and height: replicate the last row/column where they are odd."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


def _frame_rate(fps: float) -> Fraction:
    if not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise MotionDirectorError(f"fps must be a positive number, got {fps!r}.")
    return Fraction(fps).limit_denominator(1001)


def write_video(path: str | Path, frames, fps: float = 8.0) -> Path:
    """Write frames [F, H, W, 3] (float 0..1 or uint8) to mp4/mov/mkv (h264), webm (vp9) or gif, atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _WRITE_FORMATS and suffix != _GIF:
        accepted = ", ".join([*_WRITE_FORMATS, _GIF])
        raise MotionDirectorError(f"cannot write video {path}: unsupported extension; use one of {accepted}.")
    array = _to_uint8(frames, "video frames", ndim=4)
    rate = _frame_rate(fps)
    with atomic_path(path) as tmp:
        if suffix == _GIF:
            _write_gif(tmp, array, rate)
        else:
            _write_encoded(tmp, _pad_even(array), rate, *_WRITE_FORMATS[suffix])
    return path


def _write_encoded(tmp: Path, array: np.ndarray, rate: Fraction, fmt: str, codec: str, options: dict) -> None:
    try:
        with av.open(str(tmp), "w", format=fmt) as container:
            stream = container.add_stream(codec, rate=rate, options=options)
            stream.width, stream.height = array.shape[2], array.shape[1]
            stream.pix_fmt = "yuv420p"
            for image in array:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(stream.encode())
    except av.error.FFmpegError as exc:
        raise MotionDirectorError(f"could not encode the video with {codec} ({exc}).") from exc


def _write_gif(tmp: Path, array: np.ndarray, rate: Fraction) -> None:
    # PIL picks an adaptive palette per frame; PyAV's gif encoder only offers a fixed, dithered one.
    images = [Image.fromarray(image) for image in array]
    duration_ms = round(1000 / float(rate))
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)


def write_image(path: str | Path, image) -> Path:
    """Write one image [H, W, 3] (float 0..1 or uint8) as png (or jpg/webp by extension), atomically."""
    path = Path(path)
    image_format = _IMAGE_FORMATS.get(path.suffix.lower())
    if image_format is None:
        raise MotionDirectorError(f"cannot write image {path}: use a .png, .jpg or .webp name.")
    array = _to_uint8(image, "image", ndim=3)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format=image_format)
    return path


@contextlib.contextmanager
def decoding_errors(path: Path):
    """Turn PyAV failures on a bad file into one MotionDirectorError that names the file."""
    try:
        yield
    except (av.error.FFmpegError, UnicodeDecodeError, OverflowError, ValueError) as exc:
        # Besides FFmpeg's own errors: UnicodeDecodeError on metadata that is not UTF-8 (found by the fuzzer), and
        # the ValueError / OverflowError that PyAV's conversions of a damaged size or time base can raise.
        raise MotionDirectorError(
            f"cannot decode video {path}: the file is corrupt, truncated or not a video "
            f"({getattr(exc, 'strerror', None) or exc}). "
            "Re-export or re-download it, or remove it from the clips."
        ) from exc


@contextlib.contextmanager
def open_video(path: str | Path):
    """Open a video file and yield (container, first video stream); every failure is a MotionDirectorError."""
    path = Path(path)
    if not path.is_file():
        raise MotionDirectorError(f"video file not found: {path}. Check the path.")
    with decoding_errors(path):
        container = av.open(str(path))
    try:
        if not container.streams:  # a file cut before its index, or a recording stopped before its first frame
            raise MotionDirectorError(
                f"cannot decode video {path}: the file is corrupt, truncated or not a video (it holds no streams). "
                "Re-export or re-download it, or remove it from the clips."
            )
        if not container.streams.video:
            raise MotionDirectorError(f"{path} has no video stream (audio only?). Use a file that contains video.")
        yield container, container.streams.video[0]
    finally:
        container.close()


def frame_times(path: str | Path) -> list[float]:
    """Presentation times (seconds, from 0) of every frame, read from the packets without decoding them."""
    path = Path(path)
    with open_video(path) as (container, stream), decoding_errors(path):
        stamps = [
            packet.pts if packet.pts is not None else packet.dts
            for packet in container.demux(stream)
            if packet.size > 0
        ]
        time_base = stream.time_base
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not stamps:
        raise MotionDirectorError(f"{path} contains no video frames. Use a file that holds at least one frame.")
    if any(stamp is None for stamp in stamps) or time_base is None:
        step = 1.0 / float(rate) if rate else 1.0 / 8
        return [index * step for index in range(len(stamps))]
    seconds = sorted(float(stamp * time_base) for stamp in stamps)
    return [time - seconds[0] for time in seconds]


def frame_to_array(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as uint8 RGB [H, W, 3], turned upright where the file says it is rotated."""
    array = frame.to_ndarray(format="rgb24")
    quarter_turns = round((frame.rotation or 0) / 90) % 4
    if quarter_turns:
        # The display matrix angle is counter-clockwise; np.rot90 turns counter-clockwise too.
        array = np.ascontiguousarray(np.rot90(array, k=quarter_turns))
    return array


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Decode frames one at a time in presentation order; stop iterating to stop decoding."""
    path = Path(path)
    with open_video(path) as (container, stream), decoding_errors(path):
        for frame in container.decode(stream):
            yield frame_to_array(frame)


def read_video(path: str | Path) -> tuple[torch.Tensor, float]:
    """Decode a whole video: (uint8 [F, H, W, 3], frames per second). Meant for small files and tests."""
    path = Path(path)
    with open_video(path) as (container, stream):
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    frames = [torch.from_numpy(array) for array in iter_frames(path)]
    if not frames:
        raise MotionDirectorError(f"{path} contains no video frames. Use a file that holds at least one frame.")
    return torch.stack(frames), float(rate) if rate else 0.0


def resize_images(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bilinear resize of float images [N, H, W, 3] to [N, height, width, 3]."""
    if images.shape[1:3] == (height, width):
        return images
    channels_first = images.permute(0, 3, 1, 2)
    resized = F.interpolate(channels_first, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return resized.clamp(0, 1).permute(0, 2, 3, 1).contiguous()


def _as_float_frames(frames, what: str) -> torch.Tensor:
    """float 0..1 [F, H, W, 3] on the CPU, from float or uint8 frames; F may be 0."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise MotionDirectorError(f"{what} must be RGB frames [F, H, W, 3], got {shape}.")
    frames = frames.detach().cpu()
    if frames.dtype == torch.uint8:
        return frames.float() / 255
    return torch.nan_to_num(frames.float()).clamp(0, 1)


def side_by_side(top_frames, bottom_frames, columns: int = 8) -> torch.Tensor:
    """A preview grid [H, W, 3] float 0..1: top frames (the reference) in the first rows, bottom (generated) below.

    Every frame is resized to the bottom frames' height, keeping its aspect ratio; short rows are padded black.
    """
    if not isinstance(columns, int) or columns < 1:
        raise MotionDirectorError(f"columns must be a positive integer, got {columns!r}.")
    top = _as_float_frames(top_frames, "reference frames")
    bottom = _as_float_frames(bottom_frames, "generated frames")
    if top.shape[0] == 0 and bottom.shape[0] == 0:
        raise MotionDirectorError("side_by_side needs at least one frame.")
    height = bottom.shape[1] if bottom.shape[0] else top.shape[1]
    blocks = []
    for frames in (top, bottom):
        if frames.shape[0] == 0:
            continue
        width = max(1, round(frames.shape[2] * height / frames.shape[1]))
        blocks.append(_grid(resize_images(frames, height, width), columns))
    canvas_width = max(block.shape[1] for block in blocks)
    padded = [F.pad(block, (0, 0, 0, canvas_width - block.shape[1])) for block in blocks]
    return torch.cat(padded, dim=0).contiguous()


def _grid(frames: torch.Tensor, columns: int) -> torch.Tensor:
    count, height, width, _ = frames.shape
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    filled = torch.zeros(rows * columns, height, width, 3)
    filled[:count] = frames
    # [rows, columns, H, W, 3] -> [rows, H, columns, W, 3] -> [rows*H, columns*W, 3]
    tiles = filled.view(rows, columns, height, width, 3).permute(0, 2, 1, 3, 4)
    return tiles.reshape(rows * height, columns * width, 3)
