"""Training clips: frames plus the prompt that describes them, read from videos, images or IMAGE batches."""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import MotionDirectorError
from .video_io import VIDEO_EXTENSIONS, frame_times, iter_frames, resize_images

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
CLIP_EXTENSIONS = VIDEO_EXTENSIONS + IMAGE_EXTENSIONS
RESIZE_MODES = ("crop", "squash")


@dataclass
class Clip:
    frames: torch.Tensor  # [F, H, W, 3] float32 in 0..1 on the CPU; F == 1 for an image
    prompt: str
    source: str = ""
    indices: list[int] = field(default_factory=list)  # the source frames taken, in order
    frame_rate: float | None = None  # frames per second of real time between the frames taken, where known
    sampling: "FrameSampling | None" = None  # how the frames were taken; None: an IMAGE batch as it came

    @property
    def is_image(self) -> bool:
        return self.frames.shape[0] == 1


@dataclass
class FrameSampling:
    frames: int = 16
    stride: int = 1
    # Set: the frame nearest to each 1/fps step of real time (never faster than the clip's own rate, so no frame is
    # taken twice); None: every stride-th frame. Training reads videos at 8 fps by default, as the reference does.
    fps: float | None = None
    start: int = 0  # first frame; with random_start, the earliest start drawn
    random_start: bool = False
    width: int = 384
    height: int = 384
    resize: str = "crop"  # crop: cover width x height keeping the aspect, then center-crop; squash: stretch
    repeat_short: bool = False  # too short: spread `frames` over what there is instead of failing
    seed: int | None = None

    def check(self) -> None:
        """Raise MotionDirectorError naming the first bad setting."""
        for name in ("frames", "stride"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise MotionDirectorError(f"{name} must be a whole number of at least 1, got {value!r}.")
        if not _is_int(self.start) or self.start < 0:
            raise MotionDirectorError(f"start must be a frame index of 0 or more, got {self.start!r}.")
        fps_ok = isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0
        if self.fps is not None and not fps_ok:
            raise MotionDirectorError(
                f"fps must be a positive number or None (use every stride-th frame), got {self.fps!r}."
            )
        if self.fps is not None and self.stride != 1:
            raise MotionDirectorError(
                f"stride {self.stride} and fps {self.fps:g} are both set, and only one can choose the frames: set fps "
                f"to 0 (none) to take every {self.stride}th frame, or stride to 1 to sample at {self.fps:g} fps."
            )
        for name in ("width", "height"):
            value = getattr(self, name)
            if not _is_int(value) or value < 8 or value % 8:
                raise MotionDirectorError(
                    f"{name} must be a positive multiple of 8 (the VAE downsamples by 8), got {value!r}: "
                    f"try {max(8, round(value / 8) * 8) if isinstance(value, (int, float)) else 384}."
                )
        if self.resize not in RESIZE_MODES:
            raise MotionDirectorError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {self.resize!r}.")
        if self.seed is not None and not _is_int(self.seed):
            raise MotionDirectorError(f"seed must be a whole number or None, got {self.seed!r}.")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def select_indices(times: Sequence[float], sampling: FrameSampling, source: str) -> list[int]:
    """Which source frames to take, given every frame's presentation time in seconds (sorted)."""
    count = len(times)
    start = sampling.start
    rate = _sampling_rate(times, sampling.fps)
    if rate is None:
        last_start = count - ((sampling.frames - 1) * sampling.stride + 1)
    else:
        span = (sampling.frames - 1) / rate
        # A target may fall up to half a frame interval past the last frame's timestamp.
        tolerance = 0.5 * _frame_interval(times)
        last_start = max((s for s in range(count) if times[s] + span <= times[-1] + tolerance), default=-1)
    if start > last_start:
        if sampling.repeat_short and start < count:
            # Spread the request over what is there: the motion is kept, only slowed down.
            return [start + int(k) for k in np.floor(np.linspace(0, count - 1 - start, sampling.frames))]
        raise MotionDirectorError(_too_short_message(times, sampling, source))
    if sampling.random_start:
        generator = torch.Generator().manual_seed(sampling.seed or 0)
        start += int(torch.randint(0, last_start - start + 1, (1,), generator=generator))
    if rate is None:
        return [start + k * sampling.stride for k in range(sampling.frames)]
    stamps = np.asarray(times)
    targets = times[start] + np.arange(sampling.frames) / rate
    return [int(np.argmin(np.abs(stamps - target))) for target in targets]


def _sampling_rate(times: Sequence[float], fps: float | None) -> float | None:
    """The rate to sample at: `fps`, but never faster than the clip's own frame rate."""
    if fps is None:
        return None
    interval = _frame_interval(times)
    return min(float(fps), 1.0 / interval) if interval > 0 else float(fps)


def _frame_interval(times: Sequence[float]) -> float:
    return float(np.median(np.diff(times))) if len(times) > 1 else 0.0


def _too_short_message(times: Sequence[float], sampling: FrameSampling, source: str) -> str:
    count, start = len(times), sampling.start
    if start >= count:
        return f"{source} has {count} frames, but start is frame {start}. Lower start below {count}."
    rate = _sampling_rate(times, sampling.fps)
    if rate is None:
        needed = (sampling.frames - 1) * sampling.stride + 1
        ask = f"{sampling.frames} frames with stride {sampling.stride} need {needed} frames from frame {start}"
        fix = "Lower frames or stride"
    else:
        interval = _frame_interval(times)
        native = f", {1 / interval:.3g} fps" if interval > 0 else ""
        slower = f" (the clip's own rate; {sampling.fps:g} asked)" if rate < sampling.fps else ""
        ask = (
            f"{sampling.frames} frames at {rate:.3g} fps{slower} need "
            f"{(sampling.frames - 1) / rate:.2f} s from frame {start} "
            f"(the clip lasts {times[-1]:.2f} s{native})"
        )
        fix = "Lower frames or fps"
    return f"{source} has {count} frames, but {ask}. {fix}, or set repeat_short to stretch the clip."


def fit_frame(image: np.ndarray | torch.Tensor, sampling: FrameSampling) -> torch.Tensor:
    """One RGB image [H, W, 3] (uint8, or float 0..1) -> float32 [height, width, 3], cropped or squashed."""
    frame = torch.as_tensor(image)
    if sampling.resize == "crop":
        height, width = frame.shape[:2]
        # Cut the centered region with the target aspect first, then resize it: scale-to-cover + center crop.
        if width * sampling.height > height * sampling.width:
            keep = max(1, round(height * sampling.width / sampling.height))
            left = (width - keep) // 2
            frame = frame[:, left : left + keep]
        else:
            keep = max(1, round(width * sampling.height / sampling.width))
            top = (height - keep) // 2
            frame = frame[top : top + keep]
    frame = frame.float() / 255 if frame.dtype == torch.uint8 else frame.float()
    return resize_images(frame.unsqueeze(0), sampling.height, sampling.width)[0]


def read_clip(path: str | Path, sampling: FrameSampling, prompt: str | None = None) -> Clip:
    """A video (sampled as `sampling` says) or an image (one frame) with its prompt: `<stem>.txt` beside it wins."""
    path = Path(path)
    sampling.check()
    if path.is_dir():
        raise MotionDirectorError(f"{path} is a folder: pass it in the clips list to read every file inside it.")
    if not path.is_file():
        raise MotionDirectorError(f"clip file not found: {path}. Check the path.")
    suffix = path.suffix.lower()
    if suffix not in CLIP_EXTENSIONS:
        raise MotionDirectorError(
            f"cannot read clip {path}: unsupported file type {path.suffix or '(none)'}; "
            f"use one of {', '.join(CLIP_EXTENSIONS)}."
        )
    text = _prompt_for(path, prompt)
    if suffix in IMAGE_EXTENSIONS:
        frames = fit_frame(_read_image(path), sampling).unsqueeze(0)
        return Clip(frames=frames, prompt=text, source=str(path), indices=[0])
    times = frame_times(path)
    indices = select_indices(times, sampling, str(path))
    return Clip(frames=_decode_indices(path, indices, sampling), prompt=text, source=str(path), indices=indices,
                frame_rate=_rate_taken(times, indices), sampling=sampling)


def _rate_taken(times: Sequence[float], indices: list[int]) -> float | None:
    """The mean frame rate, in real time, of the frames taken (None for one frame)."""
    span = times[indices[-1]] - times[indices[0]]
    return (len(indices) - 1) / span if len(indices) > 1 and span > 0 else None


def _decode_indices(path: Path, indices: list[int], sampling: FrameSampling) -> torch.Tensor:
    """Decode up to the last wanted frame, fitting each wanted one as it comes (full-size frames are not kept)."""
    wanted, last = set(indices), max(indices)
    fitted: dict[int, torch.Tensor] = {}
    decoded = 0
    for index, image in enumerate(iter_frames(path)):
        decoded = index + 1
        if index in wanted:
            fitted[index] = fit_frame(image, sampling)
        if index == last:
            break
    if last not in fitted:
        raise MotionDirectorError(
            f"cannot decode video {path}: only {decoded} frames could be decoded, frame {last} was needed; "
            "the file is probably truncated. Re-export it, or ask for fewer frames."
        )
    return torch.stack([fitted[index] for index in indices]).contiguous()


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            return np.array(upright.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise MotionDirectorError(
            f"cannot read image {path}: the file is corrupt, truncated or not an image ({exc}). "
            "Re-export it, or remove it from the clips."
        ) from exc


def _prompt_for(path: Path, prompt: str | None) -> str:
    sidecar = path.with_suffix(".txt")
    if sidecar.is_file():
        try:
            text = sidecar.read_text(encoding="utf-8-sig").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise MotionDirectorError(f"cannot read the prompt file {sidecar} ({exc}); save it as UTF-8 text.") from exc
        if text:
            return text
    if prompt is not None and prompt.strip():
        return prompt.strip()
    raise MotionDirectorError(
        f"no prompt for {path}: pass a prompt, or write one in {sidecar.name} beside the file."
    )


def read_clips(paths: Sequence[str | Path], sampling: FrameSampling, prompt: str | None = None) -> list[Clip]:
    """Every clip in `paths`: files as given, folders as every video/image inside (by name, not recursive)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise MotionDirectorError("no clips given: pass at least one video, image or folder.")
    return [read_clip(file, sampling, prompt) for file in media_files(paths)]


def media_files(paths: Sequence[str | Path], extensions: Sequence[str] = CLIP_EXTENSIONS, recursive: bool = False,
                label: str = "clip path", noun: str = "clips", hint: str = "videos or images") -> list[Path]:
    """Files as given, folders as every file inside with one of `extensions` (sorted by path; with `recursive`,
    subfolders too). `label`, `noun` and `hint` word the errors: a missing path, a folder with none of them."""
    files: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            # Hidden names are skipped: macOS "._clip.mp4" resource forks carry a video extension but no video.
            found = sorted(child for child in (entry.rglob("*") if recursive else entry.iterdir())
                           if child.is_file() and child.suffix.lower() in extensions and not child.name.startswith("."))
            if not found:
                raise MotionDirectorError(
                    f"folder {entry} holds no {noun}: put {hint} in it ({', '.join(extensions)}).")
            files.extend(found)
        elif entry.exists():
            files.append(entry)
        else:
            raise MotionDirectorError(f"{label} not found: {entry}. Check the path.")
    return files


def clips_from_frames(
    frames: torch.Tensor,
    prompt: str,
    sampling: FrameSampling | None = None,
    source: str = "frames",
    frame_rate: float | None = None,
) -> Clip:
    """A clip from an IMAGE batch [F, H, W, 3] float 0..1; with a sampling, frames are selected and fitted like files.

    `frame_rate` (the batch's frames per second) is needed only when sampling.fps is set.
    """
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise MotionDirectorError(f"{source} must be an IMAGE batch [frames, height, width, 3], got {shape}.")
    if not frames.is_floating_point():
        raise MotionDirectorError(f"{source} must hold float values in 0..1, got {frames.dtype}.")
    if not isinstance(prompt, str) or not prompt.strip():
        raise MotionDirectorError(f"no prompt for {source}: describe what the frames show.")
    frames = frames.detach().to("cpu", torch.float32)
    count = frames.shape[0]
    if sampling is None:
        return Clip(frames=frames.contiguous(), prompt=prompt.strip(), source=source, indices=list(range(count)),
                    frame_rate=frame_rate if frame_rate and count > 1 else None)
    sampling.check()
    if count == 1:
        indices = [0]
    else:
        if sampling.fps is not None and not (frame_rate and frame_rate > 0):
            raise MotionDirectorError(
                f"sampling {source} at {sampling.fps:g} fps needs its frame rate: "
                "pass frame_rate, or use stride instead."
            )
        times = [index / (frame_rate or 1.0) for index in range(count)]
        indices = select_indices(times, sampling, source)
    fitted = torch.stack([fit_frame(frames[index], sampling) for index in indices])
    rate = _rate_taken(times, indices) if frame_rate and count > 1 else None
    return Clip(frames=fitted.contiguous(), prompt=prompt.strip(), source=source, indices=indices, frame_rate=rate,
                sampling=sampling)
