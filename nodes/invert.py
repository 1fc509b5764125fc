"""DDIM-invert a reference clip or image with the base model: the noise prior for sampling."""

from pathlib import Path

import folder_paths
from comfy_api.latest import io

from ..motiondirector_core.invert import invert_frames
from .progress import SamplingProgress, cancel_requested, interruptible
from .types import CATEGORY, Noise, Pipeline


def inversion_cache() -> Path:
    return Path(folder_paths.get_temp_directory()) / "motiondirector_inversions"


class InvertReference(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MD_InvertReference",
            display_name="MotionDirector Invert Reference",
            category=f"{CATEGORY}/sample",
            description=("DDIM-inverts reference frames with the base model (LoRAs off). Give the frames at the size "
                         "you will generate; a single image is spread over all frames (animate an image)."),
            inputs=[
                Pipeline.Input("pipeline", tooltip="Any pipeline of the base model: its LoRAs are ignored here."),
                io.Image.Input("images", tooltip="Reference frames (or one image), e.g. from Load Clips or Load Video."),
                io.Int.Input("steps", default=50, min=1, max=1000, tooltip="Inversion steps (50 in the method)."),
            ],
            outputs=[Noise.Output(display_name="noise")],
        )

    @classmethod
    def execute(cls, pipeline, images, steps) -> io.NodeOutput:
        with interruptible():
            prior = invert_frames(pipeline.model, images, steps=steps, source="reference frames",
                                  cache_dir=inversion_cache(), on_step=SamplingProgress(steps, preview=False),
                                  should_cancel=cancel_requested)
        return io.NodeOutput(prior)
