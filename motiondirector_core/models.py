"""Base text-to-video models behind one interface.

A `BaseModel` holds the components of a loaded diffusers folder and knows how to turn prompts into
embeddings, frames into latents and back. A `ModelFamily` knows how to recognise and load its folders
and where MotionDirector's LoRAs go in its UNet. The first family is ModelScope / ZeroScope
(UNet3DConditionModel); others register in FAMILIES.
"""

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import MotionDirectorError
from .kept_dtype import keep_dtype
from .single_frame import install_single_frame_bypass

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def default_dtype(device: torch.device) -> str:
    """bf16 base weights on a GPU that has it (no loss scaling needed), else fp16; fp32 on the CPU (where half
    precision is slow)."""
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise MotionDirectorError(f"dtype {dtype!r} is not supported: use one of {', '.join(DTYPES)}.")
    return DTYPES[dtype]


@dataclass
class BaseModel:
    family: "ModelFamily"
    name: str
    path: Path
    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler_config: dict
    dtype: torch.dtype
    device: torch.device
    vae_chunk: int = 8

    @property
    def dtype_name(self) -> str:
        """The dtype as a config name: fp32, fp16 or bf16."""
        return next(name for name, value in DTYPES.items() if value == self.dtype)

    @property
    def latent_scale(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.in_channels)

    @property
    def vae_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def max_prompt_tokens(self) -> int:
        return int(self.tokenizer.model_max_length)

    def check_size(self, width: int, height: int) -> None:
        f = self.vae_factor
        for label, value in (("width", width), ("height", height)):
            if value <= 0 or value % f:
                raise MotionDirectorError(
                    f"{label} {value} is not a positive multiple of {f}: pick e.g. {max(f, round(value / f) * f)}."
                )

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Text embeddings [B, tokens, dim] on the model's device; long prompts are cut with a warning."""
        limit = self.max_prompt_tokens
        tokens = self.tokenizer(prompts, padding="max_length", max_length=limit, truncation=True, return_tensors="pt")
        for prompt in prompts:
            n = len(self.tokenizer(prompt, truncation=False, verbose=False).input_ids)
            if n > limit:
                warnings.warn(f"Prompt is {n} tokens, the text encoder reads {limit}; cut to: {prompt[:60]!r}...")
        device = next(self.text_encoder.parameters()).device
        hidden = self.text_encoder(tokens.input_ids.to(device))[0]
        return hidden.to(self.device, self.dtype)

    @torch.no_grad()
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [F, H, W, 3] in 0..1 -> scaled latents [1, C, F, H/8, W/8] (the posterior mean)."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise MotionDirectorError(f"expected frames shaped [F, H, W, 3], got {list(frames.shape)}.")
        self.check_size(frames.shape[2], frames.shape[1])
        vae_device = next(self.vae.parameters()).device
        vae_dtype = next(self.vae.parameters()).dtype
        pixels = frames.permute(0, 3, 1, 2) * 2.0 - 1.0
        chunks = []
        for chunk in pixels.split(self.vae_chunk):
            posterior = self.vae.encode(chunk.to(vae_device, vae_dtype)).latent_dist
            chunks.append(posterior.mean.float())
        latents = torch.cat(chunks) * self.latent_scale
        return latents.permute(1, 0, 2, 3).unsqueeze(0).to(self.device)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents [1, C, F, h, w] -> frames [F, H, W, 3] float in 0..1 on the CPU."""
        vae_device = next(self.vae.parameters()).device
        vae_dtype = next(self.vae.parameters()).dtype
        flat = latents[0].permute(1, 0, 2, 3) / self.latent_scale
        frames = []
        for chunk in flat.split(self.vae_chunk):
            image = self.vae.decode(chunk.to(vae_device, vae_dtype)).sample.float()
            frames.append(((image + 1.0) / 2.0).clamp(0, 1).cpu())
        return torch.cat(frames).permute(0, 2, 3, 1).contiguous()

    def offload_encoders(self, device: str | torch.device = "cpu") -> None:
        """Move the VAE and text encoder off the training device once latents and embeddings are cached."""
        self.vae.to(device)
        self.text_encoder.to(device)

    def onload_encoders(self) -> None:
        self.vae.to(self.device)
        self.text_encoder.to(self.device)


class ModelFamily:
    """One architecture family: how to recognise, load, and where LoRAs go."""

    name: str = ""
    # Suffixes of the transformers' feed-forward Linears, left out of a motion LoRA with motion_layers=attention.
    feed_forward_linears: tuple[str, ...] = ()

    def recognises(self, model_index: dict, path: Path) -> bool:
        raise NotImplementedError

    def load(self, path: Path, dtype: torch.dtype, device: torch.device) -> BaseModel:
        raise NotImplementedError

    def lora_targets(self, unet: torch.nn.Module, kind: str) -> list[str]:
        raise NotImplementedError


class ModelScopeFamily(ModelFamily):
    """ModelScope text-to-video-ms-1.7b and ZeroScope: UNet3DConditionModel + SD VAE + CLIP text."""

    name = "modelscope"
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
    # zeroscope_v2_576w / text-to-video-ms-1.7b unet/config.json: benchmarks and tests build it on the meta device.
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
    spatial_linears = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "ff.net.0.proj", "ff.net.2")
    temporal_linears = spatial_linears + ("attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0")
    feed_forward_linears = ("ff.net.0.proj", "ff.net.2")

    def recognises(self, model_index: dict, path: Path) -> bool:
        unet_entry = model_index.get("unet") or [None, None]
        if unet_entry[-1] == "UNet3DConditionModel":
            return True
        unet_config = path / "unet" / "config.json"
        if unet_config.is_file():
            return json.loads(unet_config.read_text()).get("_class_name") == "UNet3DConditionModel"
        return False

    def load(self, path: Path, dtype: torch.dtype, device: torch.device) -> BaseModel:
        from diffusers import AutoencoderKL, UNet3DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
            if not (path / sub).is_dir():
                raise MotionDirectorError(
                    f"model folder {path} has no '{sub}/' subfolder: it must be a complete diffusers folder "
                    f"(model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)."
                )
        try:
            unet = UNet3DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype)
            vae = AutoencoderKL.from_pretrained(path, subfolder="vae", torch_dtype=dtype)
            text_encoder = CLIPTextModel.from_pretrained(path / "text_encoder", torch_dtype=dtype)
            tokenizer = CLIPTokenizer.from_pretrained(path / "tokenizer")
            scheduler_config = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
        except (OSError, ValueError, RuntimeError, KeyError) as exc:  # what damaged or incomplete files raise
            raise MotionDirectorError(f"model folder {path} could not be loaded ({exc}); re-copy the model.") from exc
        install_single_frame_bypass(unet)
        keep_dtype(unet)
        for module in (unet, vae, text_encoder):
            module.requires_grad_(False)
            module.eval()
            module.to(device)
        return BaseModel(self, path.name, path, unet, vae, text_encoder, tokenizer, scheduler_config, dtype, device)

    def lora_targets(self, unet: torch.nn.Module, kind: str) -> list[str]:
        """Full module paths of the Linear layers that the spatial or temporal LoRA adapts, in registration order."""
        from diffusers.models.transformers.transformer_2d import Transformer2DModel
        from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel
        from peft.tuners.lora import LoraLayer

        if kind == "spatial":
            parent_type, suffixes = Transformer2DModel, self.spatial_linears
        elif kind == "temporal":
            parent_type, suffixes = TransformerTemporalModel, self.temporal_linears
        elif kind == "coupled":
            return self.lora_targets(unet, "spatial") + self.lora_targets(unet, "temporal")
        else:
            raise MotionDirectorError(f"LoRA kind {kind!r} is unknown: use spatial, temporal or coupled.")
        targets = []
        for parent_name, parent in unet.named_modules():
            if not isinstance(parent, parent_type):
                continue
            for child_name, child in parent.named_modules():
                # A layer that already holds an adapter is a peft wrapper around the Linear: still a target.
                if isinstance(child, LoraLayer):
                    child = child.get_base_layer()
                if isinstance(child, torch.nn.Linear) and any(
                    child_name == s or child_name.endswith("." + s) for s in suffixes
                ):
                    targets.append(f"{parent_name}.{child_name}" if parent_name else child_name)
        return targets


FAMILIES: dict[str, ModelFamily] = {"modelscope": ModelScopeFamily()}


def read_model_index(path: Path) -> dict:
    index = path / "model_index.json"
    if not path.exists():
        raise MotionDirectorError(
            f"model folder {path} does not exist: put a diffusers text-to-video model there "
            f"(e.g. zeroscope_v2_576w under models/diffusers/)."
        )
    if not index.is_file():
        raise MotionDirectorError(
            f"{path} has no model_index.json, so it is not a diffusers model folder: point at the folder that holds it."
        )
    try:
        return json.loads(index.read_text())
    except json.JSONDecodeError as exc:
        raise MotionDirectorError(f"{index} is not valid JSON ({exc}): re-copy the model.") from exc


def find_family(path: str | Path) -> ModelFamily:
    path = Path(path)
    index = read_model_index(path)
    for family in FAMILIES.values():
        if family.recognises(index, path):
            return family
    raise MotionDirectorError(
        f"{path} is a {index.get('_class_name', 'unknown')} model; supported families: {', '.join(FAMILIES)} "
        f"(UNet3DConditionModel text-to-video, e.g. ZeroScope or ModelScope)."
    )


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(path: str | Path, dtype: str | torch.dtype = "fp32", device: str | torch.device | None = None) -> BaseModel:
    """Load a diffusers text-to-video folder with the family that recognises it."""
    path = Path(path).expanduser()
    family = find_family(path)
    model = family.load(path, resolve_dtype(dtype), torch.device(device) if device else default_device())
    log.info("loaded %s model %s (%s, %s)", family.name, model.name, model.dtype, model.device)
    return model
