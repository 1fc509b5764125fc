"""ModelScope text-to-video-ms-1.7b and ZeroScope: UNet3DConditionModel + SD VAE + CLIP text, as diffusers folders.

Placement (METHOD.md): the spatial LoRA in every Transformer2DModel (attn1 and the feed-forward), the temporal LoRA
in every TransformerTemporalModel, transformer_in included (attn1, attn2 and the feed-forward). The authors'
released `.pt` LoRAs (released.py) are this family's.
"""

import json
from pathlib import Path

import torch

from ...base_model import BaseModel
from ...single_frame import install_single_frame_bypass, plain_identity
from ..family import FamilyDefaults, ModelFamily, ModelSource
from . import released

ATTENTION_AND_FEED_FORWARD = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "ff.net.0.proj", "ff.net.2")
BOTH_ATTENTIONS_AND_FEED_FORWARD = ATTENTION_AND_FEED_FORWARD + ("attn2.to_q", "attn2.to_k", "attn2.to_v",
                                                                 "attn2.to_out.0")


def _transformer_identity(hidden_states, args, kwargs):
    from diffusers.models.transformers.transformer_temporal import TransformerTemporalModelOutput

    return_dict = kwargs.get("return_dict", args[6] if len(args) > 6 else True)
    return TransformerTemporalModelOutput(sample=hidden_states) if return_dict else (hidden_states,)


class ModelScopeFamily(ModelFamily):
    name = "modelscope"
    label = "ModelScope / ZeroScope (UNet3DConditionModel text-to-video)"
    defaults = FamilyDefaults(
        width=384, height=384, frames=16, fps=8.0, train_steps=150, lr_spatial=5e-4, lr_temporal=5e-4, rank=32,
        sample_steps=30, cfg=12.0,
        sources={
            "size, frames, fps": "MotionDirector's configs (config_single_video.yaml, config_multi_videos.yaml)",
            "train_steps": "MotionDirector: 50-150 steps for one video, 300-500 for several (paper, README)",
            "lr_spatial, lr_temporal": "MotionDirector's configs: learning_rate 5e-4",
            "rank": "MotionDirector: rank 32",
            "sample_steps, cfg": "MotionDirector's inference: 30 DDIM steps, guidance 12",
        },
    )
    spatial_linears = ATTENTION_AND_FEED_FORWARD
    temporal_linears = BOTH_ATTENTIONS_AND_FEED_FORWARD
    feed_forward_linears = ("ff.net.0.proj", "ff.net.2")
    # model_index.json of a folder of this family (what ZeroScope ships; our own models write the same).
    model_index = {
        "_class_name": "TextToVideoSDPipeline",
        "_diffusers_version": "0.42.1",
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet3DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    # zeroscope_v2_576w / text-to-video-ms-1.7b unet/config.json: benchmarks and tests build it on the meta device,
    # and the authors' released LoRAs (keyless) are mapped onto it when no model is given.
    zeroscope_unet_config = dict(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",),
        up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        norm_num_groups=32,
        cross_attention_dim=1024,
        attention_head_dim=64,
    )

    def recognises(self, source: ModelSource) -> bool:
        if source.folder is None:
            return False
        index = json.loads((source.folder / "model_index.json").read_text())
        unet_entry = index.get("unet") or [None, None]
        if unet_entry[-1] == "UNet3DConditionModel":
            return True
        unet_config = source.folder / "unet" / "config.json"
        if unet_config.is_file():
            return json.loads(unet_config.read_text()).get("_class_name") == "UNet3DConditionModel"
        return False

    def transformer_types(self) -> dict[str, type]:
        from diffusers.models.transformers.transformer_2d import Transformer2DModel
        from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

        return {"spatial": Transformer2DModel, "temporal": TransformerTemporalModel}

    def install_bypass(self, unet: torch.nn.Module) -> int:
        from diffusers.models.resnet import TemporalConvLayer
        from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

        # transformer_in, every temporal convolution and every temporal transformer
        return install_single_frame_bypass(unet, {TemporalConvLayer: plain_identity,
                                                  TransformerTemporalModel: _transformer_identity})

    def load(self, source: ModelSource, dtype: torch.dtype, device: torch.device) -> BaseModel:
        from diffusers import UNet3DConditionModel

        return self.load_folder(
            source, dtype, device, lambda path: UNet3DConditionModel.from_pretrained(path, subfolder="unet",
                                                                                    torch_dtype=dtype),
            "it must be a complete diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, "
            "scheduler/)")

    def kind_of(self, module_path: str) -> str | None:
        parts = module_path.split(".")
        if parts[0] == "transformer_in" or "temp_attentions" in parts:
            return "temporal"
        if "attentions" in parts and "motion_modules" not in parts:
            return "spatial"
        return None

    def read_foreign(self, path: Path, loaded, unet_config, kind: str | None) -> list | None:
        """The MotionDirector authors' released `.pt` files: a flat list of tensors, mapped onto a UNet3D config
        (ZeroScope's, which their releases were trained on, when none is given)."""
        if not isinstance(loaded, (list, tuple)):
            return None
        # The file's own spatial/ or temporal/ folder says its kind; the kind asked for only where it has none.
        hint = kind if kind in released.LEGACY_KINDS and released.kind_from_path(path) is None else None
        return released.read_tensor_list(path, loaded, hint, unet_config or self.zeroscope_unet_config)

