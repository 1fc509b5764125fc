"""AnimateDiff: a Stable Diffusion 1.5 UNet with a motion module (v2 with a mid-block module, v3 without), as the
diffusers UNetMotionModel.

Placement (METHOD.md): the spatial LoRA in SD 1.5's 16 spatial transformers (attn1 and the feed-forward, never the
cross-attention); the temporal LoRA in every motion module (its two temporal self-attention blocks, attn1 and attn2
in diffusers' names, and its feed-forward). On one frame every motion module is the identity.
"""

import dataclasses
import json
import logging
from pathlib import Path

import torch
from diffusers.hooks import ModelHook

from ...errors import MotionDirectorError
from ...single_frame import install_single_frame_bypass, plain_identity
from ..family import Export, FamilyDefaults, ModelFamily, ModelSource
from ..modelscope import ATTENTION_AND_FEED_FORWARD, BOTH_ATTENTIONS_AND_FEED_FORWARD
from . import formats, single_file

log = logging.getLogger(__name__)

MOTION_LORA = Export("animatediff-motion-lora", "temporal", "animatediff_motion_lora",
                     "AnimateDiff-Evolved's Load AnimateDiff LoRA", "_motion_lora.safetensors")
COMFY_LORA = Export("comfyui-lora", "spatial", "loras", "ComfyUI's Load LoRA (model only)",
                    "_appearance_lora.safetensors")


class TextPerFrame(ModelHook):
    """UNetMotionModel takes one text embedding per frame (its pipeline repeats them); the trainer and sampler
    pass one per clip, as every other family's UNet takes them: repeat each clip's for its frames."""

    name = "motiondirector_text_per_frame"

    def pre_forward(self, module, *args, **kwargs):
        sample = args[0] if args else kwargs["sample"]
        if "encoder_hidden_states" in kwargs:
            text = kwargs["encoder_hidden_states"]
            if text.shape[0] == sample.shape[0]:
                kwargs["encoder_hidden_states"] = text.repeat_interleave(sample.shape[2], dim=0)
        elif len(args) > 2 and args[2].shape[0] == sample.shape[0]:  # unet(sample, timestep, encoder_hidden_states)
            args = (*args[:2], args[2].repeat_interleave(sample.shape[2], dim=0), *args[3:])
        return args, kwargs


class AnimateDiffFamily(ModelFamily):
    name = "animatediff"
    label = "AnimateDiff (a Stable Diffusion 1.5 checkpoint with an SD 1.5 motion module: v2, v3, AnimateLCM)"
    defaults = FamilyDefaults(
        width=512, height=512, frames=16, fps=8.0, train_steps=300, lr_spatial=1e-4, lr_temporal=5e-4, rank=64,
        sample_steps=25, cfg=7.5,
        sources={
            "size, frames, sample_steps, cfg": "AnimateDiff's inference configs (configs/prompts/*.yaml): 512x512, "
                                               "16 frames, 25 DDIM steps, guidance 7.5",
            "fps": "AnimateDiff's training data (WebVid clips sampled at 8 fps, sample_stride 4) and MotionDirector's",
            "train_steps": "AnimateDiff-MotionDirector: about 300 steps per video",
            "lr_spatial, lr_temporal": "AnimateDiff-MotionDirector: 1e-4 spatial, 5e-4 temporal",
            "rank": "AnimateDiff-MotionDirector: rank 32 at 256 px, 64 at 384-512 px",
            "scheduler": "AnimateDiff's inference configs: DDIM, linear betas 0.00085..0.012, steps_offset 1, "
                         "clip_sample false; timestep_spacing linspace (diffusers' AnimateDiff pipeline)",
        },
    )
    spatial_linears = ATTENTION_AND_FEED_FORWARD
    temporal_linears = BOTH_ATTENTIONS_AND_FEED_FORWARD  # the two attention_blocks of each motion module
    feed_forward_linears = ("ff.net.0.proj", "ff.net.2")
    exports = (MOTION_LORA, COMFY_LORA)

    def recognises(self, source: ModelSource) -> bool:
        if source.folder is None:
            return source.checkpoint is not None
        index_file = source.folder / "model_index.json"
        index = json.loads(index_file.read_text()) if index_file.is_file() else {}
        return "motion_adapter" in index or (source.folder / "motion_adapter").is_dir()

    def transformer_types(self) -> dict[str, type]:
        from diffusers.models.transformers.transformer_2d import Transformer2DModel
        from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

        return {"spatial": Transformer2DModel, "temporal": AnimateDiffTransformer3D}

    def install_bypass(self, unet: torch.nn.Module) -> int:
        from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

        return install_single_frame_bypass(unet, {AnimateDiffTransformer3D: plain_identity})

    def prepare_unet(self, unet: torch.nn.Module) -> None:
        """The bypass, and one text embedding per clip: UNetMotionModel wants one per frame (its pipeline repeats
        them), the other families' UNets repeat them themselves."""
        from diffusers.hooks import HookRegistry

        self.install_bypass(unet)
        registry = HookRegistry.check_if_exists_or_initialize(unet)
        if registry.get_hook(TextPerFrame.name) is None:
            registry.register_hook(TextPerFrame(), TextPerFrame.name)

    def load(self, source: ModelSource, dtype: torch.dtype, device: torch.device):
        from diffusers import UNetMotionModel

        if source.folder is not None:
            return self._load_folder(source, dtype, device)
        if source.motion_module is None:
            raise MotionDirectorError(
                f"{source.checkpoint} is a single-file checkpoint: AnimateDiff also needs a motion module (e.g. "
                f"v3_sd15_mm.ckpt from models/animatediff_models); a ModelScope / ZeroScope model is a diffusers "
                f"folder."
            )
        with single_file.quiet_casts():
            unet2d, vae, text_encoder, tokenizer = single_file.load_sd15(source.checkpoint, source.vae, dtype)
            adapter = single_file.load_motion_adapter(source.motion_module, dtype)
            unet = UNetMotionModel.from_unet2d(unet2d, adapter).to(dtype)
        del unet2d, adapter
        scheduler = json.loads((single_file.SD15 / "scheduler" / "scheduler_config.json").read_text())
        name = f"{source.checkpoint.stem}+{source.motion_module.stem}"
        with single_file.quiet_casts():
            return self.assemble(source, name, source.checkpoint, unet, vae, text_encoder, tokenizer, scheduler,
                                 dtype, device)

    def _load_folder(self, source: ModelSource, dtype: torch.dtype, device: torch.device):
        """A diffusers AnimateDiff folder: the SD parts beside `motion_adapter/` (or a saved UNetMotionModel)."""
        from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

        def load_unet(path: Path):
            if json.loads((path / "unet" / "config.json").read_text()).get("_class_name") == "UNetMotionModel":
                return UNetMotionModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype)
            unet2d = UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype)
            adapter = MotionAdapter.from_pretrained(path / "motion_adapter", torch_dtype=dtype)
            return UNetMotionModel.from_unet2d(unet2d, adapter).to(dtype)

        with single_file.quiet_casts():
            return self.load_folder(source, dtype, device, load_unet,
                                    "an AnimateDiff diffusers folder holds unet/, vae/, text_encoder/, tokenizer/, "
                                    "scheduler/ and motion_adapter/")

    def max_frames(self, unet: torch.nn.Module) -> int | None:
        return int(unet.config.get("motion_max_seq_length") or 32)

    def fit_lora(self, weights, unet: torch.nn.Module):
        """A LoRA of a v2 motion module (with its mid-block module) on a v3 one: the mid-block layers are left out,
        as AnimateDiff-Evolved does."""
        if getattr(unet, "mid_block", None) is None or hasattr(unet.mid_block, "motion_modules"):
            return weights
        kept = {k: v for k, v in weights.state.items() if not k.startswith("mid_block.motion_modules.")}
        if len(kept) == len(weights.state):
            return weights
        log.warning("%s: its mid-block motion layers are left out: this motion module (v3) has no mid block",
                    weights.source or weights.kind)
        return dataclasses.replace(weights, state=kept, _fingerprint="")

    def kind_of(self, module_path: str) -> str | None:
        parts = module_path.split(".")
        if "motion_modules" in parts:
            return "temporal"
        if "attentions" in parts:
            return "spatial"
        return None

    def read_foreign(self, path: Path, loaded, unet_config, kind: str | None) -> list | None:
        return formats.read(path, loaded) if isinstance(loaded, dict) else None

    def write_export(self, export: Export, weights, path: Path) -> Path:
        if export is MOTION_LORA:
            return formats.write_motion_lora(path, weights)
        if export is COMFY_LORA:
            return formats.write_comfy_lora(path, weights)
        return super().write_export(export, weights, path)
