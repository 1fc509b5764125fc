"""Training clips: from video/image files on disk, or from IMAGE batches of other nodes."""

from pathlib import Path

import folder_paths
from comfy_api.latest import io

from ..motiondirector_core.clips import FrameSampling, clips_from_frames, read_clips
from ..motiondirector_core.errors import MotionDirectorError
from . import paths
from .types import CATEGORY, Clips


def _sampling(frames, stride, fps, start, random_start, width, height, resize, repeat_short, seed=0) -> FrameSampling:
    return FrameSampling(
        frames=frames, stride=stride, fps=fps or None, start=start, random_start=random_start,
        width=width, height=height, resize=resize, repeat_short=repeat_short, seed=seed,
    )


def _sampling_inputs(fps_default: float) -> list:
    return [
        io.Int.Input("frames", default=16, min=1, max=512,
                     tooltip="Frames taken from each clip (the method uses 16; 24 for ZeroScope 576x320)."),
        io.Int.Input("stride", default=1, min=1, max=64,
                     tooltip="With fps 0: take every n-th frame. Leave at 1 when sampling by fps."),
        io.Float.Input("fps", default=fps_default, min=0.0, max=120.0, step=0.5, tooltip=(
            "Sample at this frame rate in real time (8, as the reference trains; never faster than the clip's own "
            "rate). 0 uses stride instead.")),
        io.Int.Input("start", default=0, min=0, max=100000, tooltip="First frame (the earliest one with random start)."),
        io.Boolean.Input("random_start", default=False, tooltip="Draw the first frame at random (reproducible by seed)."),
        io.Int.Input("width", default=384, min=8, max=2048, step=8, tooltip="Training width, a multiple of 8."),
        io.Int.Input("height", default=384, min=8, max=2048, step=8, tooltip="Training height, a multiple of 8."),
        io.Combo.Input("resize", options=["crop", "squash"], default="crop",
                       tooltip="crop: keep the aspect ratio and center-crop; squash: stretch (the reference's way)."),
        io.Boolean.Input("repeat_short", default=False,
                         tooltip="A clip shorter than asked: spread the frames over it instead of failing."),
    ]


def resolve_input_path(path: str) -> Path:
    """An absolute path, or one relative to ComfyUI's input folder."""
    text = path.strip().strip('"')
    if not text:
        raise MotionDirectorError("path is empty: give a video, an image or a folder (relative to ComfyUI's input).")
    candidate = Path(text).expanduser()
    if not candidate.is_absolute():
        candidate = Path(folder_paths.get_input_directory()) / candidate
    return candidate


class LoadClips(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MD_LoadClips",
            display_name="Load MotionDirector Clips",
            category=f"{CATEGORY}/clips",
            description="Reads a video, an image, or a folder of them (several clips of one motion) for training.",
            inputs=[
                io.String.Input("path", default="", tooltip=(
                    "A video (mp4/webm/mov/mkv/gif/avi), an image (png/jpg/webp/bmp) or a folder of them; relative "
                    "paths start in ComfyUI's input folder.")),
                io.String.Input("prompt", default="", multiline=True, tooltip=(
                    "What the clips show (e.g. 'a car is running on the road'); a <name>.txt beside a clip wins.")),
                *_sampling_inputs(fps_default=8.0),  # video files know their frame rate
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=False,
                             tooltip="Seed of the random start."),
            ],
            outputs=[Clips.Output(display_name="clips"), io.Image.Output(display_name="first_clip")],
        )

    @classmethod
    def fingerprint_inputs(cls, path, **_settings):
        try:
            return path, paths.file_stamp(resolve_input_path(path))
        except (MotionDirectorError, OSError):
            return path, []  # execute says what is wrong

    @classmethod
    def execute(cls, path, prompt, frames, stride, fps, start, random_start, width, height, resize,
                repeat_short, seed) -> io.NodeOutput:
        sampling = _sampling(frames, stride, fps, start, random_start, width, height, resize, repeat_short, seed)
        clips = read_clips([resolve_input_path(path)], sampling, prompt=prompt or None)
        return io.NodeOutput(clips, clips[0].frames)


class ClipsFromImages(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MD_ClipsFromImages",
            display_name="MotionDirector Clips from Images",
            category=f"{CATEGORY}/clips",
            description=("Makes a training clip from an IMAGE batch (core Load Video -> Get Video Components, "
                         "VideoHelperSuite, ...); chain several for a motion seen in several clips."),
            inputs=[
                io.Image.Input("images", tooltip="The clip's frames, or one image for appearance training."),
                io.String.Input("prompt", default="", multiline=True, tooltip="What the frames show."),
                Clips.Input("clips", optional=True, tooltip="Clips to add this one to."),
                io.Boolean.Input("resample", default=False,
                                 tooltip="Select and resize frames with the settings below; off: take them as they are."),
                *_sampling_inputs(fps_default=0.0),  # an IMAGE batch does not know its frame rate
                io.Float.Input("frame_rate", default=0.0, min=0.0, max=240.0, step=0.01,
                               tooltip="The batch's frames per second, needed only to sample by fps."),
            ],
            outputs=[Clips.Output(display_name="clips")],
        )

    @classmethod
    def execute(cls, images, prompt, resample, frames, stride, fps, start, random_start, width, height, resize,
                repeat_short, frame_rate, clips=None) -> io.NodeOutput:
        sampling = None
        if resample:
            sampling = _sampling(frames, stride, fps, start, random_start, width, height, resize, repeat_short)
        index = len(clips or [])
        clip = clips_from_frames(images, prompt, sampling, source=f"images #{index}", frame_rate=frame_rate or None)
        return io.NodeOutput([*(clips or []), clip])
