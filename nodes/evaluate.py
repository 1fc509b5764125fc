"""Score generated frames against reference frames: motion fidelity, and the toy world's appearance checks."""

import json

from comfy_api.latest import io

from ..motiondirector_core.metrics.evaluate import evaluate
from ..motiondirector_core.metrics.frames import split_clips
from .types import CATEGORY


class EvaluateMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MD_EvaluateMotion",
            display_name="MotionDirector Evaluate Motion",
            category=f"{CATEGORY}/evaluate",
            description=("Motion fidelity of generated frames against reference frames (point tracks, both ways), "
                         "plus the toy world's object trajectory, text alignment and appearance leakage, and how many "
                         "frames of each sample keep the prompt's look."),
            inputs=[
                io.Image.Input("generated", tooltip="Generated frames (a Sample or Sweep output)."),
                io.Image.Input("reference", tooltip="The reference frames whose motion was learned."),
                io.Int.Input("frames_per_clip", default=0, min=0, max=4096, tooltip=(
                    "0: each input is one clip. n: both inputs are clips of n frames one after another (a sweep's "
                    "samples, several references); scores are means over the samples, each against every reference.")),
                io.String.Input("prompt", default="", optional=True, tooltip=(
                    "The generation's prompt. For toy-world clips, its colour and shape give the text alignment and "
                    "the leakage checks; leave empty to skip them.")),
                io.String.Input("reference_prompt", default="", optional=True, tooltip=(
                    "The reference clips' caption: the look that should not leak into the samples (empty: measured "
                    "from the reference frames).")),
            ],
            outputs=[io.Float.Output(display_name="motion_fidelity"), io.String.Output(display_name="report")],
        )

    @classmethod
    def execute(cls, generated, reference, frames_per_clip, prompt="", reference_prompt="") -> io.NodeOutput:
        report = evaluate(split_clips(generated, frames_per_clip, "generated"),
                          split_clips(reference, frames_per_clip, "reference"), prompt, reference_prompt)
        return io.NodeOutput(report["motion_fidelity"], json.dumps(report, indent=2))
