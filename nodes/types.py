"""The pack's own ComfyUI types; everything else uses ComfyUI's core types (IMAGE, VIDEO, LOSS_MAP ...)."""

from comfy_api.latest import io

CATEGORY = "MotionDirector"

# A base model with a stack of LoRAs (motiondirector_core.pipeline.Pipeline); never mutated by a node.
Pipeline = io.Custom("MD_PIPELINE")
# One or more training clips of one motion (list[motiondirector_core.clips.Clip]).
Clips = io.Custom("MD_CLIPS")
# The LoRAs of a training run, checkpoint or file (motiondirector_core.pipeline.LoraSet).
Lora = io.Custom("MD_LORA")
# A DDIM-inverted reference latent (motiondirector_core.invert.NoisePrior).
Noise = io.Custom("MD_NOISE")
