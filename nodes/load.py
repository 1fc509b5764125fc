"""Load a base text-to-video model from ComfyUI's models/diffusers folder."""

import torch
from comfy_api.latest import io

from ..motiondirector_core.errors import MotionDirectorError
from ..motiondirector_core.models import default_device, default_dtype, load_model
from ..motiondirector_core.pipeline import Pipeline as CorePipeline
from . import paths
from .types import CATEGORY, Pipeline


class LoadBaseModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MD_LoadBaseModel",
            display_name="Load MotionDirector Base Model",
            category=f"{CATEGORY}/load",
            description="Loads a ModelScope/ZeroScope text-to-video model (a diffusers folder in models/diffusers).",
            inputs=[
                io.Combo.Input(
                    "model", options=paths.model_names(),
                    tooltip="A diffusers folder with model_index.json under models/diffusers (e.g. zeroscope_v2_576w).",
                ),
                io.Combo.Input(
                    "dtype", options=["auto", "fp32", "fp16", "bf16"], default="auto",
                    tooltip="Precision of the frozen base weights; auto: bf16 on a GPU that has it (else fp16), fp32 on the CPU.",
                ),
                io.Combo.Input(
                    "device", options=["auto", "cpu", "cuda"], default="auto",
                    tooltip="Where the model runs; auto picks the GPU when there is one.",
                ),
            ],
            outputs=[Pipeline.Output(display_name="pipeline")],
        )

    @classmethod
    def execute(cls, model: str, dtype: str, device: str) -> io.NodeOutput:
        if device == "cuda" and not torch.cuda.is_available():
            raise MotionDirectorError("device is cuda, but this PyTorch sees no CUDA GPU: choose auto or cpu.")
        target = default_device() if device == "auto" else torch.device(device)
        if dtype == "auto":
            dtype = default_dtype(target)
        # ComfyUI runs nodes under inference_mode; weights made there could never take part in training.
        with torch.inference_mode(False):
            loaded = load_model(paths.model_path(model), dtype=dtype, device=target)
        return io.NodeOutput(CorePipeline(loaded))
