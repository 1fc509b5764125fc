"""ComfyUI glue for motiondirector_core: one module per concern, no method logic here."""

from comfy_api.latest import ComfyExtension, io

from . import paths
from .examples import install_example_inputs
from .clips import ClipsFromImages, LoadClips
from .evaluate import EvaluateMotion
from .invert import InvertReference
from .load import LoadAnimateDiffModel, LoadBaseModel
from .lora import ApplyLora, LoadLora, SaveLora
from .sample import Sample
from .sweep import Sweep
from .train import TrainMotion

NODES: list[type[io.ComfyNode]] = [
    LoadBaseModel,
    LoadAnimateDiffModel,
    LoadClips,
    ClipsFromImages,
    TrainMotion,
    SaveLora,
    LoadLora,
    ApplyLora,
    InvertReference,
    Sample,
    Sweep,
    EvaluateMotion,
]


class MotionDirectorExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


async def comfy_entrypoint() -> MotionDirectorExtension:
    paths.register()  # ComfyUI 0.3.75 never calls ComfyExtension.on_load
    install_example_inputs()
    return MotionDirectorExtension()
