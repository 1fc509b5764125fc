"""What every base-model family provides to the trainer, sampler, inverter and LoRA files.

A family knows how to recognise and load its models, where MotionDirector's two LoRAs go in its UNet, which of
its layers are temporal (the identity on one frame), its default settings, and the file formats of other tools
that its LoRAs are read from and written to. Nothing outside `families/` knows a family's module names.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..base_model import BaseModel
from ..errors import MotionDirectorError
from ..kept_dtype import keep_dtype

KINDS = ("spatial", "temporal", "coupled")


@dataclass(frozen=True)
class ModelSource:
    """Where a base model comes from: a diffusers folder, or single files (an SD checkpoint and a motion module,
    with an optional separate VAE)."""

    folder: Path | None = None
    checkpoint: Path | None = None
    motion_module: Path | None = None
    vae: Path | None = None

    def config_fields(self) -> dict[str, str]:
        """As TrainConfig's model / checkpoint / motion_module / vae fields (empty where not used)."""
        return {"model": str(self.folder or ""), "checkpoint": str(self.checkpoint or ""),
                "motion_module": str(self.motion_module or ""), "vae": str(self.vae or "")}

    def describe(self) -> str:
        if self.folder is not None:
            return str(self.folder)
        parts = [str(p) for p in (self.checkpoint, self.motion_module, self.vae) if p is not None]
        return " + ".join(parts) or "no model"


@dataclass(frozen=True)
class FamilyDefaults:
    """Settings a family's own sources use; `sources` says where each one comes from (the README quotes it)."""

    width: int
    height: int
    frames: int
    fps: float
    train_steps: int
    lr_spatial: float
    lr_temporal: float
    rank: int
    sample_steps: int
    cfg: float
    sources: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Export:
    """A LoRA file in another tool's format, written beside our own: `kind` of LoRA it takes, the model folder of
    ComfyUI it belongs in (e.g. "loras"), the tool that reads it and a file-name suffix."""

    name: str
    kind: str
    comfy_folder: str
    reader: str
    suffix: str


class ModelFamily:
    name: str = ""
    label: str = ""  # for messages: "ModelScope / ZeroScope (UNet3DConditionModel)"
    defaults: FamilyDefaults
    # Inside each spatial / temporal transformer, the Linear layers its LoRA adapts (module-path suffixes).
    spatial_linears: tuple[str, ...] = ()
    temporal_linears: tuple[str, ...] = ()
    # Suffixes of the transformers' feed-forward Linears, left out of a motion LoRA with motion_layers=attention.
    feed_forward_linears: tuple[str, ...] = ()
    exports: tuple[Export, ...] = ()

    # ---- models ---------------------------------------------------------------------------------------------

    def recognises(self, source: ModelSource) -> bool:
        raise NotImplementedError

    def load(self, source: ModelSource, dtype: torch.dtype, device: torch.device):
        """A BaseModel with the single-frame bypass installed and every weight frozen."""
        raise NotImplementedError

    def transformer_types(self) -> dict[str, type]:
        """The module class holding each kind's LoRA layers: {"spatial": ..., "temporal": ...}."""
        raise NotImplementedError

    def install_bypass(self, unet: torch.nn.Module) -> int:
        """Make every temporal layer of `unet` the identity on one frame (single_frame.py); returns how many."""
        raise NotImplementedError

    def prepare_unet(self, unet: torch.nn.Module) -> None:
        """Everything a UNet of this family needs to be called as every family's is, `unet(latents [B, C, F, h, w],
        t, encoder_hidden_states=[B, tokens, dim])`, and to run one frame through its spatial layers alone."""
        self.install_bypass(unet)

    def load_folder(self, source: ModelSource, dtype: torch.dtype, device: torch.device, load_unet, layout: str):
        """A diffusers folder: the SD parts (VAE, CLIP text encoder, tokenizer, scheduler) read the same for every
        family, the UNet by `load_unet(path)`; `layout` says what the folder must hold, for the message."""
        import json

        from diffusers import AutoencoderKL
        from transformers import CLIPTextModel, CLIPTokenizer

        path = source.folder
        for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
            if not (path / sub).is_dir():
                raise MotionDirectorError(f"model folder {path} has no '{sub}/' subfolder: {layout}.")
        try:
            unet = load_unet(path)
            vae = AutoencoderKL.from_pretrained(path, subfolder="vae", torch_dtype=dtype)
            text_encoder = CLIPTextModel.from_pretrained(path / "text_encoder", torch_dtype=dtype)
            tokenizer = CLIPTokenizer.from_pretrained(path / "tokenizer")
            scheduler_config = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
        except (OSError, ValueError, RuntimeError, KeyError) as exc:  # what damaged or incomplete files raise
            raise MotionDirectorError(f"model folder {path} could not be loaded ({exc}); re-copy the model.") from exc
        return self.assemble(source, path.name, path, unet, vae, text_encoder, tokenizer, scheduler_config, dtype,
                             device)

    def assemble(self, source, name, path, unet, vae, text_encoder, tokenizer, scheduler_config, dtype, device):
        """The loaded parts as a BaseModel: single-frame bypass, kept dtype, frozen, in eval mode, on the device."""
        self.prepare_unet(unet)
        keep_dtype(unet)
        for module in (unet, vae, text_encoder):
            module.requires_grad_(False)
            module.eval()
            module.to(device)
        return BaseModel(family=self, name=name, path=path, source=source, unet=unet, vae=vae,
                         text_encoder=text_encoder, tokenizer=tokenizer, scheduler_config=scheduler_config,
                         dtype=dtype, device=device)

    # ---- LoRA placement -------------------------------------------------------------------------------------

    def lora_targets(self, unet: torch.nn.Module, kind: str) -> list[str]:
        """Full module paths of the Linear layers that the spatial or temporal LoRA adapts, in registration order."""
        from peft.tuners.lora import LoraLayer

        if kind == "coupled":
            return self.lora_targets(unet, "spatial") + self.lora_targets(unet, "temporal")
        if kind not in ("spatial", "temporal"):
            raise MotionDirectorError(f"LoRA kind {kind!r} is unknown: use spatial, temporal or coupled.")
        parent_type = self.transformer_types()[kind]
        suffixes = self.spatial_linears if kind == "spatial" else self.temporal_linears
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

    def max_frames(self, unet: torch.nn.Module) -> int | None:
        """The most frames its temporal layers take in one pass (None: no limit)."""
        return None

    def fit_lora(self, weights, unet: torch.nn.Module):
        """`weights` as they load onto `unet`: a family may leave out layers another version of its UNet lacks, as
        the tools its users have do (the LoraWeights unchanged by default)."""
        return weights

    def kind_of(self, module_path: str) -> str | None:
        """spatial / temporal for a UNet module path of this family's LoRA layers, None for a path it does not know."""
        raise NotImplementedError

    # ---- other tools' files ---------------------------------------------------------------------------------

    def read_foreign(self, path: Path, loaded, unet_config, kind: str | None) -> list | None:
        """The LoraWeights of a file in a format of this family's tools (`loaded`: its tensors, a list or a dict,
        read weights-only), or None when the format is none of theirs. `kind`: the kind the caller asks for."""
        return None

    def write_export(self, export: Export, weights, path: Path) -> Path:
        raise MotionDirectorError(f"the {self.name} family writes no {export.name} files.")
