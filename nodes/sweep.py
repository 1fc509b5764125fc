"""Prompts x LoRA scales x seeds, each video written to output/motiondirector/<prefix>/ with its settings."""

import comfy.utils
import torch
from comfy_api.latest import io, ui

from ..motiondirector_core.errors import MotionDirectorError
from ..motiondirector_core.sample import SampleSettings
from ..motiondirector_core.sweep import SweepSpec, run_sweep
from . import paths
from .progress import cancel_requested, frame_preview, interruptible
from .sample import sampling_inputs
from .types import CATEGORY, Pipeline


def parse_numbers(text: str, label: str, cast=float) -> list:
    try:
        values = [cast(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise MotionDirectorError(f"{label} must be numbers separated by commas, e.g. '0.6, 0.8, 1.0'; got {text!r}.")
    if not values:
        raise MotionDirectorError(f"{label} is empty: give at least one value.")
    return values


class Sweep(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MD_Sweep",
            display_name="MotionDirector Sweep",
            category=f"{CATEGORY}/sample",
            description=("Generates every prompt x temporal scale x spatial scale x seed; writes one video and one "
                         "JSON per result plus index.json/index.csv; outputs all frames in order."),
            inputs=[
                Pipeline.Input("pipeline", tooltip="Base model with the LoRAs whose scales are swept."),
                io.String.Input("prompts", default="", multiline=True, tooltip="One prompt per line."),
                io.String.Input("temporal_scales", default="0.6, 0.8, 1.0", tooltip="Motion LoRA strengths, comma-separated."),
                io.String.Input("spatial_scales", default="0", tooltip=(
                    "Appearance LoRA strengths, comma-separated. Several appearance LoRAs on the pipeline share each "
                    "strength equally (their mean).")),
                io.String.Input("seeds", default="0, 1", tooltip="Seeds, comma-separated."),
                io.String.Input("folder", default="sweep", tooltip="Sub-folder of output/motiondirector for the results."),
                io.Float.Input("fps", default=8.0, min=1.0, max=60.0, step=1.0, tooltip="Frame rate of the written videos."),
                *sampling_inputs(),
            ],
            outputs=[io.Image.Output(display_name="frames"), io.String.Output(display_name="index")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, pipeline, prompts, temporal_scales, spatial_scales, seeds, folder, fps, negative_prompt,
                frames, width, height, steps, cfg, scheduler, noise_prior, noise=None) -> io.NodeOutput:
        prompt_list = [line.strip() for line in prompts.splitlines() if line.strip()]
        spec = SweepSpec(
            prompts=prompt_list,
            temporal_scales=parse_numbers(temporal_scales, "temporal_scales"),
            spatial_scales=parse_numbers(spatial_scales, "spatial_scales"),
            seeds=parse_numbers(seeds, "seeds", int),
            base=SampleSettings(prompt="", negative_prompt=negative_prompt, frames=frames, width=width, height=height,
                                steps=steps, cfg=cfg, scheduler=scheduler,
                                noise_prior=noise_prior if noise is not None else 0.0),
            temporal_adapters=pipeline.adapters_of("temporal", "coupled"),
            spatial_adapters=pipeline.adapters_of("spatial"),
            fps=fps,
        )
        total = len(spec.prompts) * len(spec.temporal_scales) * len(spec.spatial_scales) * len(spec.seeds)
        bar, videos = comfy.utils.ProgressBar(max(total, 1)), []

        def on_result(_result, video):
            videos.append(video)
            bar.update_absolute(len(videos), total, frame_preview(video[video.shape[0] // 2]))

        out_dir = paths.output_path(folder, "", "folder")
        pipeline.activate()
        with interruptible():
            run_sweep(pipeline.model, spec, out_dir, reference_latents=noise, on_result=on_result,
                      should_cancel=cancel_requested)
        index = str(out_dir / "index.json")
        return io.NodeOutput(torch.cat(videos), index, ui=ui.PreviewText(index))
