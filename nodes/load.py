"""Load a base model: a diffusers folder (models/diffusers), or AnimateDiff's single files (a checkpoint from
models/checkpoints with a motion module from models/animatediff_models)."""

import torch
from comfy_api.latest import io

from ..motiondirector_core.errors import MotionDirectorError
from ..motiondirector_core.models import default_device, default_dtype, load_model
from ..motiondirector_core.pipeline import Pipeline as CorePipeline
from . import paths
from .types import CATEGORY, Pipeline

CHECKPOINT_VAE = "(the checkpoint's own)"


def runtime_inputs() -> list:
    return [
        io.Combo.Input(
            "dtype", options=["auto", "fp32", "fp16", "bf16"], default="auto",
            tooltip=("Precision of the frozen base weights; auto: bf16 on a GPU that has it (else fp16), fp32 on the "
                     "CPU."),
        ),
        io.Combo.Input(
            "device", options=["auto", "cpu", "cuda"], default="auto",
            tooltip="Where the model runs; auto picks the GPU when there is one.",
        ),
    ]


def load_pipeline(dtype: str, device: str, **source) -> CorePipeline:
    if device == "cuda" and not torch.cuda.is_available():
        raise MotionDirectorError("device is cuda, but this PyTorch sees no CUDA GPU: choose auto or cpu.")
    target = default_device() if device == "auto" else torch.device(device)
    if dtype == "auto":
        dtype = default_dtype(target)
    # ComfyUI runs nodes under inference_mode; weights made there could never take part in training.
    with torch.inference_mode(False):
        return CorePipeline(load_model(dtype=dtype, device=target, **source))


class LoadBaseModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MD_LoadBaseModel",
            display_name="Load MotionDirector Base Model",
            category=f"{CATEGORY}/load",
            description=("Loads a text-to-video model from a diffusers folder in models/diffusers: ModelScope / "
                         "ZeroScope, or AnimateDiff (the SD 1.5 parts beside motion_adapter/)."),
            inputs=[
                io.Combo.Input(
                    "model", options=paths.model_names(),
                    tooltip="A diffusers folder with model_index.json under models/diffusers (e.g. zeroscope_v2_576w).",
                ),
                *runtime_inputs(),
            ],
            outputs=[Pipeline.Output(display_name="pipeline")],
        )

    @classmethod
    def execute(cls, model: str, dtype: str, device: str) -> io.NodeOutput:
        return io.NodeOutput(load_pipeline(dtype, device, model=paths.model_path(model)))


class LoadAnimateDiffModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MD_LoadAnimateDiffModel",
            display_name="Load MotionDirector AnimateDiff Model",
            category=f"{CATEGORY}/load",
            description=("Loads AnimateDiff from the files you already have: a Stable Diffusion 1.5 checkpoint and "
                         "an SD 1.5 motion module (v2 mm_sd_v15_v2, v3 v3_sd15_mm, AnimateLCM), the ones "
                         "AnimateDiff-Evolved uses."),
            inputs=[
                io.Combo.Input("checkpoint", options=paths.model_files("checkpoints"), tooltip=(
                    "A Stable Diffusion 1.5 checkpoint (or fine-tune) from models/checkpoints.")),
                io.Combo.Input("motion_module", options=paths.model_files(paths.MOTION_MODULES), tooltip=(
                    "An SD 1.5 AnimateDiff motion module from models/animatediff_models (AnimateDiff-Evolved's "
                    "folder): v2 has a mid-block module, v3 not; both learn motions here.")),
                io.Combo.Input("vae", options=[CHECKPOINT_VAE, *paths.model_files("vae")], default=CHECKPOINT_VAE,
                               tooltip="A separate VAE from models/vae, or the one inside the checkpoint."),
                *runtime_inputs(),
            ],
            outputs=[Pipeline.Output(display_name="pipeline")],
        )

    @classmethod
    def execute(cls, checkpoint: str, motion_module: str, vae: str, dtype: str, device: str) -> io.NodeOutput:
        files = dict(checkpoint=paths.model_file("checkpoints", checkpoint, "checkpoint"),
                     motion_module=paths.model_file(paths.MOTION_MODULES, motion_module, "motion module"))
        if vae != CHECKPOINT_VAE:
            files["vae"] = paths.model_file("vae", vae, "VAE")
        return io.NodeOutput(load_pipeline(dtype, device, **files))
