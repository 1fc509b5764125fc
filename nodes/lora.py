"""Save, load and apply MotionDirector LoRAs (ours and the authors' released .pt files)."""

from comfy_api.latest import io, ui

from ..motiondirector_core.errors import MotionDirectorError
from ..motiondirector_core.exports import export_loras, family_of
from ..motiondirector_core.lora_files import read_lora_source, save_lora
from ..motiondirector_core.pipeline import LoraSet
from . import paths
from .types import CATEGORY, Lora, Pipeline


def lora_file_names(lora_set: LoraSet) -> list[str]:
    """temporal, spatial (or spatial_<i> when there are several), coupled: as a training run names them."""
    spatial_count = len(lora_set.appearance)
    names, spatial_seen = [], 0
    for weights in lora_set.loras:
        if weights.kind == "spatial" and spatial_count > 1:
            names.append(f"spatial_{spatial_seen}")
            spatial_seen += 1
        else:
            names.append(weights.kind)
    return names


class SaveLora(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MD_SaveLora",
            display_name="Save MotionDirector LoRA",
            category=f"{CATEGORY}/lora",
            description="Writes each LoRA of the set to output/motiondirector/<prefix>_<kind>.safetensors.",
            inputs=[
                Lora.Input("lora", tooltip="LoRAs from training or a loader."),
                io.String.Input("filename_prefix", default="my_motion", tooltip=(
                    "Name inside output/motiondirector (may contain sub-folders); files end in _temporal, _spatial ...")),
                io.Boolean.Input("export_for_other_tools", default=False, optional=True, tooltip=(
                    "Also write the LoRAs in the formats the tools you already run read. AnimateDiff: the motion "
                    "LoRA into models/animatediff_motion_lora (AnimateDiff-Evolved's Load AnimateDiff LoRA) and the "
                    "appearance LoRA into models/loras (ComfyUI's Load LoRA, model only), named <prefix>_...")),
            ],
            outputs=[io.String.Output(display_name="files")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, lora: LoraSet, filename_prefix: str, export_for_other_tools: bool = False) -> io.NodeOutput:
        written = []
        for name, weights in zip(lora_file_names(lora), lora.loras):
            target = paths.output_path(filename_prefix, f"_{name}.safetensors")
            written.append(str(save_lora(target, weights)))
        if export_for_other_tools:
            paths.output_path(filename_prefix, "")  # the same rule for the name as for our own files
            family = family_of(lora.loras, lora.source)
            written += [str(p) for p in export_loras(family, lora.loras, paths.export_folder, filename_prefix)]
        text = "\n".join(written)
        return io.NodeOutput(text, ui=ui.PreviewText(text))


class LoadLora(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MD_LoadLora",
            display_name="Load MotionDirector LoRA",
            category=f"{CATEGORY}/lora",
            description="Loads a LoRA file from models/motiondirector or output/motiondirector: ours or the authors' .pt.",
            inputs=[
                io.Combo.Input("lora_name", options=paths.lora_names(), tooltip=(
                    "A .safetensors saved by this pack, an authors' released *unet*.pt (spatial/ or temporal/ "
                    "folder), or a motion LoRA of AnimateDiff-Evolved's folder (animatediff_motion_lora/...: "
                    "guoyww's v2_lora_*, the AnimateDiff-MotionDirector packs', exported ones).")),
                Pipeline.Input("pipeline", optional=True, tooltip=(
                    "Only for the authors' .pt files, which hold no layer names: the base model whose layers they "
                    "map onto (left empty: the ModelScope / ZeroScope UNet they were released for).")),
            ],
            outputs=[Lora.Output(display_name="lora")],
        )

    @classmethod
    def fingerprint_inputs(cls, lora_name: str, pipeline=None):
        try:
            return lora_name, paths.file_stamp(paths.lora_path(lora_name))
        except MotionDirectorError:
            return lora_name, []  # execute says what is wrong

    @classmethod
    def execute(cls, lora_name: str, pipeline=None) -> io.NodeOutput:
        path = paths.lora_path(lora_name)
        unet_config = pipeline.model.unet.config if pipeline is not None else None
        return io.NodeOutput(LoraSet(tuple(read_lora_source(path, unet_config=unet_config)), lora_name))


class ApplyLora(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MD_ApplyLora",
            display_name="Apply MotionDirector LoRA",
            category=f"{CATEGORY}/lora",
            description=("Adds LoRAs to a pipeline with separate motion (temporal) and appearance (spatial) strengths. "
                         "Chain several: e.g. the motion of one run with the look of another."),
            inputs=[
                Pipeline.Input("pipeline", tooltip="The base model (and LoRAs applied so far); it is not changed."),
                Lora.Input("lora", tooltip="LoRAs from training or a loader."),
                io.Float.Input("temporal_scale", default=1.0, min=-2.0, max=3.0, step=0.05, tooltip=(
                    "Strength of the motion (temporal or coupled) LoRA: smaller weakens the motion, much larger "
                    "gives discordant video; 0 leaves it out.")),
                io.Float.Input("spatial_scale", default=0.0, min=-2.0, max=3.0, step=0.05, tooltip=(
                    "Strength of the appearance (spatial) LoRA. 0 for motion transfer to new subjects; about 1 to "
                    "keep the trained look.")),
                io.Int.Input("spatial_index", default=0, min=-1, max=64, tooltip=(
                    "A run trained with spatial_per_clip holds one appearance LoRA per clip: the clip whose look to "
                    "use, 0 for the first (clips in the order they were loaded). -1 blends all of them: their mean, "
                    "each at spatial_scale / N. Ignored for a single appearance LoRA.")),
            ],
            outputs=[Pipeline.Output(display_name="pipeline")],
        )

    @classmethod
    def execute(cls, pipeline, lora, temporal_scale, spatial_scale, spatial_index) -> io.NodeOutput:
        return io.NodeOutput(pipeline.with_loras(lora, temporal_scale, spatial_scale, spatial_index))
