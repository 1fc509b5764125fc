"""Checking and converting the clips the metrics take: [F, H, W, 3] frames in 0..1 (torch or numpy)."""

import numpy as np
import torch

from ..errors import MotionDirectorError

MIN_SIDE = 8


def video_tensor(frames, name: str = "frames", min_frames: int = 2) -> torch.Tensor:
    """frames as a float32 CPU tensor [F, H, W, 3], or a MotionDirectorError that says what is wrong."""
    if hasattr(frames, "frames") and not isinstance(frames, (torch.Tensor, np.ndarray)):
        frames = frames.frames  # a ToyClip or a training Clip
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, torch.Tensor):
        kind = type(frames).__name__
        raise MotionDirectorError(f"{name} must be frames [F, H, W, 3] (a tensor or array), got {kind}.")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise MotionDirectorError(f"{name} must have the shape [frames, height, width, 3], got {list(frames.shape)}.")
    count, height, width, _ = frames.shape
    if count < min_frames:
        raise MotionDirectorError(f"{name} needs at least {min_frames} frames to show motion, got {count}.")
    if height < MIN_SIDE or width < MIN_SIDE:
        raise MotionDirectorError(f"{name} must be at least {MIN_SIDE}x{MIN_SIDE} pixels, got {width}x{height}.")
    if frames.dtype == torch.uint8:  # decoded video (read_video, PyAV): 0..255
        return frames.detach().to("cpu", torch.float32).div(255.0).contiguous()
    if not (frames.is_floating_point() or frames.dtype == torch.bool):
        raise MotionDirectorError(f"{name} must be float frames in 0..1 or uint8 in 0..255, got {frames.dtype}.")
    frames = frames.detach().to("cpu", torch.float32)
    if not torch.isfinite(frames).all():
        raise MotionDirectorError(f"{name} contain NaN or infinite values.")
    if frames.numel() and float(frames.max()) > 1.5:  # decoders overshoot 1 a little; 0..255 is a whole other scale
        raise MotionDirectorError(
            f"{name} go up to {float(frames.max()):.4g}: float frames must be in 0..1 (divide 0..255 values by 255).")
    return frames.clamp(0.0, 1.0).contiguous()


def split_clips(batch, frames_per_clip: int, name: str = "frames") -> list[torch.Tensor]:
    """An IMAGE batch of several clips one after another (a sweep's output) as clips of frames_per_clip frames each;
    0 takes the whole batch as one clip."""
    batch = video_tensor(batch, name, min_frames=1)
    if isinstance(frames_per_clip, bool) or not isinstance(frames_per_clip, int) or frames_per_clip < 0:
        raise MotionDirectorError(f"frames_per_clip must be 0 (one clip) or a whole number, got {frames_per_clip!r}.")
    size = frames_per_clip or batch.shape[0]
    if batch.shape[0] % size:
        raise MotionDirectorError(
            f"{name} has {batch.shape[0]} frames, which is not a whole number of clips of {size} frames.")
    clips = list(batch.split(size))
    for clip in clips:
        video_tensor(clip, name)
    return clips


def as_list(clips) -> list:
    """One clip (frames, a ToyClip, tracks ...) or a list/tuple of them, as a list."""
    if isinstance(clips, (list, tuple)):
        if not clips:
            raise MotionDirectorError("no clips were given.")
        return list(clips)
    return [clips]


def resample_time(values: torch.Tensor, count: int, dim: int = 1) -> torch.Tensor:
    """values with `count` samples along dim, linearly interpolated over the same span of time."""
    length = values.shape[dim]
    if length == count:
        return values
    moved = values.movedim(dim, -1)
    position = torch.linspace(0, length - 1, count, dtype=torch.float64)
    low = position.floor().long().clamp(max=length - 1)
    high = (low + 1).clamp(max=length - 1)
    frac = (position - low).to(values.dtype)
    out = moved[..., low] * (1 - frac) + moved[..., high] * frac
    return out.movedim(-1, dim)
