"""Generate a video with the pipeline's LoRAs, optionally starting from an inverted reference (noise prior)."""

from comfy_api.latest import io

from ..motiondirector_core.sample import SampleSettings, generate
from ..motiondirector_core.schedulers import SCHEDULERS
from .progress import SamplingProgress, cancel_requested, interruptible
from .types import CATEGORY, Noise, Pipeline


def sampling_inputs() -> list:
    """The settings every sampling node shares (sample, sweep)."""
    return [
        io.String.Input("negative_prompt", default="", multiline=True, tooltip="What to steer away from."),
        io.Int.Input("frames", default=16, min=1, max=256, tooltip="Frames to generate (16 at 384x384 by default)."),
        io.Int.Input("width", default=384, min=8, max=2048, step=8, tooltip="Width, a multiple of 8."),
        io.Int.Input("height", default=384, min=8, max=2048, step=8, tooltip="Height, a multiple of 8."),
        io.Int.Input("steps", default=30, min=1, max=500, tooltip="Denoising steps (the method uses 30 DDIM steps)."),
        io.Float.Input("cfg", default=12.0, min=0.0, max=50.0, step=0.5,
                       tooltip="Classifier-free guidance (12 in the paper); 1 or less turns it off."),
        io.Combo.Input("scheduler", options=list(SCHEDULERS), default="ddim", tooltip="The sampler."),
        Noise.Input("noise", optional=True,
                    tooltip="An inverted reference (Invert Reference node): the video starts closer to its layout."),
        io.Float.Input("noise_prior", default=0.5, min=0.0, max=1.0, step=0.05, tooltip=(
            "How much of the inverted reference the start noise keeps (0.1-0.5 for one video, 0 = none); used only "
            "with a noise input.")),
    ]


class Sample(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MD_Sample",
            display_name="MotionDirector Sample",
            category=f"{CATEGORY}/sample",
            description="Generates frames from a prompt with the pipeline's motion and appearance LoRAs.",
            inputs=[
                Pipeline.Input("pipeline", tooltip="Base model with LoRAs applied."),
                io.String.Input("prompt", default="", multiline=True, tooltip="What to show, e.g. 'a tiger running'."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=True,
                             tooltip="The same seed gives the same video whatever was loaded before."),
                *sampling_inputs(),
            ],
            outputs=[io.Image.Output(display_name="frames")],
        )

    @classmethod
    def execute(cls, pipeline, prompt, seed, negative_prompt, frames, width, height, steps, cfg, scheduler,
                noise_prior, noise=None) -> io.NodeOutput:
        settings = SampleSettings(
            prompt=prompt, negative_prompt=negative_prompt, frames=frames, width=width, height=height, steps=steps,
            cfg=cfg, seed=seed, scheduler=scheduler, noise_prior=noise_prior if noise is not None else 0.0,
        )
        pipeline.activate()
        with interruptible():
            video = generate(pipeline.model, settings, reference_latents=noise,
                             on_step=SamplingProgress(steps), should_cancel=cancel_requested)
        return io.NodeOutput(video)
