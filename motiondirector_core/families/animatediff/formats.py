"""AnimateDiff LoRA files of other tools, written and read.

Written (our LoRAs exported beside our own safetensors):
- the motion LoRA as AnimateDiff-Evolved's "Load AnimateDiff LoRA" reads it (guoyww's released v2_lora_* layout):
  `<block>.motion_modules.<j>.temporal_transformer.transformer_blocks.0.attention_blocks.<a>.processor.
  <proj>_lora.down/up.weight`, and for the feed-forward `...ff.net.0.proj_lora` / `...ff.net.2_lora`. ADE maps a
  key by removing `processor.`, `_lora`, `down.`, `up.` (`to_out.` -> `to_out.0.`) and adds strength * up @ down;
  it reads no alpha (an alpha key would break its loader), so our scale is baked into `up`.
- the appearance LoRA as ComfyUI's core LoRA loader applies it to an SD 1.5 checkpoint: kohya names of the
  diffusers module paths, `lora_unet_<path with _>.lora_down.weight` / `.lora_up.weight` / `.alpha`.

Read (as LoRAs of this pack, each with the scale its tool applies): files in those two forms, guoyww's motion LoRAs
(pickled dicts), and the AnimateDiff-MotionDirector packs' temporal and spatial files (the same motion-LoRA form;
old diffusers attention-processor keys). A foreign file's layers outside the method's placement (cross-attention,
proj_in ...) are left out with a warning.
"""

import logging
import re
from pathlib import Path

import torch

from ...errors import MotionDirectorError
from ...files import write_safetensors
from ...lora import A_SUFFIX, B_SUFFIX, LoraWeights
from ..modelscope import ATTENTION_AND_FEED_FORWARD, BOTH_ATTENTIONS_AND_FEED_FORWARD

log = logging.getLogger(__name__)

MOTION_LORA_FORMAT = "animatediff-motion-lora"
COMFY_LORA_FORMAT = "kohya-lora"
_MOTION_PATH = re.compile(r"((?:down_blocks|up_blocks)\.\d+|mid_block)\.motion_modules\.(\d+)"
                          r"\.transformer_blocks\.(\d+)\.(attn1|attn2|ff)\.(.+)")
_ORIGINAL_MOTION = re.compile(r"((?:down_blocks|up_blocks)\.\d+|mid_block)\.motion_modules\.(\d+)\.temporal_transformer"
                              r"\.transformer_blocks\.(\d+)\.(attention_blocks\.[01]|ff)\.(.+)")
_KOHYA_SPATIAL = re.compile(r"lora_unet_((?:down_blocks|up_blocks)_\d+|mid_block)_attentions_(\d+)_transformer_blocks_"
                            r"(\d+)_(.+)")
_KOHYA_LEAVES = {leaf.replace(".", "_"): leaf for leaf in BOTH_ATTENTIONS_AND_FEED_FORWARD}


# ---- writing ------------------------------------------------------------------------------------------------


def _scaled_pairs(weights: LoraWeights):
    """(module path, down [r, in], up [out, r] with the LoRA's alpha / rank baked in)."""
    scale = weights.alpha / weights.rank
    for module in weights.modules:
        yield module, weights.state[module + A_SUFFIX].float(), weights.state[module + B_SUFFIX].float() * scale


def motion_lora_stem(module: str) -> str:
    """A motion-module Linear's diffusers path -> the ADE / guoyww motion-LoRA key stem (before `.down.weight`)."""
    match = _MOTION_PATH.fullmatch(module)
    if match is None:
        raise MotionDirectorError(f"{module} is not a layer of an AnimateDiff motion module: not a motion LoRA.")
    block, j, t, part, leaf = match.groups()
    base = f"{block}.motion_modules.{j}.temporal_transformer.transformer_blocks.{t}"
    if part == "ff":
        return f"{base}.ff.{leaf}_lora"  # net.0.proj -> ff.net.0.proj_lora, net.2 -> ff.net.2_lora
    projection = "to_out" if leaf == "to_out.0" else leaf
    return f"{base}.attention_blocks.{'01'[part == 'attn2']}.processor.{projection}_lora"


def write_motion_lora(path: Path, weights: LoraWeights) -> Path:
    if weights.kind != "temporal":
        raise MotionDirectorError(f"the motion-LoRA export takes a temporal LoRA, not a {weights.kind} one.")
    tensors = {}
    for module, down, up in _scaled_pairs(weights):
        stem = motion_lora_stem(module)
        tensors[f"{stem}.down.weight"], tensors[f"{stem}.up.weight"] = down.contiguous(), up.contiguous()
    return write_safetensors(path, tensors, _provenance(weights, MOTION_LORA_FORMAT))


def kohya_name(module: str) -> str:
    return "lora_unet_" + module.replace(".", "_")


def write_comfy_lora(path: Path, weights: LoraWeights) -> Path:
    if weights.kind != "spatial":
        raise MotionDirectorError(
            f"the ComfyUI LoRA export takes a spatial (appearance) LoRA, not a {weights.kind} one.")
    tensors = {}
    for module, down, up in _scaled_pairs(weights):
        name = kohya_name(module)
        tensors[f"{name}.lora_down.weight"], tensors[f"{name}.lora_up.weight"] = down.contiguous(), up.contiguous()
        tensors[f"{name}.alpha"] = torch.tensor(float(down.shape[0]))  # alpha = rank: ComfyUI's scale 1
    return write_safetensors(path, tensors, _provenance(weights, COMFY_LORA_FORMAT))


def _provenance(weights: LoraWeights, fmt: str) -> dict:
    keep = ("base_family", "base_model", "prompt", "steps", "frames", "width", "height", "frame_rate")
    return {"format": fmt, "exported_from": "motiondirector", **{k: weights.metadata[k] for k in keep
                                                                  if k in weights.metadata}}


# ---- reading ------------------------------------------------------------------------------------------------


def ade_target(key: str) -> str:
    """The motion-module weight an ADE motion-LoRA key patches (model_injection.load_motion_lora_as_patches)."""
    target = key.replace("processor.", "").replace("_lora", "").replace("down.", "").replace("up.", "")
    return target if "to_out.0." in target else target.replace("to_out.", "to_out.0.")


def _diffusers_motion_path(original: str) -> str | None:
    match = _ORIGINAL_MOTION.fullmatch(original)
    if match is None:
        return None
    block, j, t, part, leaf = match.groups()
    part = {"attention_blocks.0": "attn1", "attention_blocks.1": "attn2"}.get(part, part)
    return f"{block}.motion_modules.{j}.transformer_blocks.{t}.{part}.{leaf}"


def _spatial_path(key: str) -> str | None:
    """The diffusers module path of a spatial LoRA key's layer, for the kohya and processor forms."""
    stem = key.rsplit(".lora_down.", 1)[0].rsplit(".lora_up.", 1)[0]
    if stem != key:  # kohya
        match = _KOHYA_SPATIAL.fullmatch(stem)
        if match is None:
            return None
        block, attention, t, leaf = match.groups()
        block = block if block == "mid_block" else block.replace("_blocks_", "_blocks.")
        return f"{block}.attentions.{attention}.transformer_blocks.{t}.{_KOHYA_LEAVES.get(leaf, leaf)}"
    path = key.removeprefix("unet.").replace("processor.", "")
    for end in ("_lora.down.weight", "_lora.up.weight"):
        if path.endswith(end):
            path = path[: -len(end)]
            return path + ".0" if path.endswith("to_out") else path
    return None


def read(path: Path, state: dict) -> list[LoraWeights] | None:
    """The LoRA of a motion-LoRA or spatial file of the AnimateDiff tools, or None when `state` is in neither form."""
    if any(".motion_modules." in k and ("_lora." in k or "processor." in k) for k in state):
        return [_read_motion(path, state)]
    if any(k.startswith("lora_unet_") or ("attentions." in k and "_lora." in k) for k in state):
        return [_read_spatial(path, state)]
    return None


def _pairs(path: Path, state: dict, target_of, up_key_of) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{module path: (down, up)} for every down key whose layer `target_of` names; the rest is reported."""
    pairs, skipped = {}, []
    for key, down in state.items():
        if ".down." not in key.replace(".lora_down.", ".down."):
            continue
        module = target_of(key)
        up = state.get(up_key_of(key))
        if module is None or up is None:
            skipped.append(key)
            continue
        if down.ndim != 2 or up.ndim != 2:
            skipped.append(key)  # a convolution's LoRA (proj_in): not where this pack puts LoRAs
            continue
        pairs[module] = (down, up)
    if skipped:
        log.warning("%s: %d layer(s) not read (e.g. %s)", path, len(skipped), skipped[0])
    return pairs


def _read_motion(path: Path, state: dict) -> LoraWeights:
    def target(key):
        # ADE reads only keys naming a temporal layer, and maps them onto the motion module by this rule.
        return _diffusers_motion_path(ade_target(key).removesuffix(".weight")) if "temporal" in key else None

    pairs = _pairs(path, state, target, lambda key: key.replace(".down.", ".up."))
    return _weights(path, "temporal", pairs, BOTH_ATTENTIONS_AND_FEED_FORWARD, MOTION_LORA_FORMAT, alphas={})


def _read_spatial(path: Path, state: dict) -> LoraWeights:
    alphas = {_spatial_path(k.removesuffix(".alpha") + ".lora_down.weight"): float(v)
              for k, v in state.items() if k.endswith(".alpha")}
    pairs = _pairs(path, state, _spatial_path,
                   lambda key: key.replace(".lora_down.", ".lora_up.").replace("_lora.down.", "_lora.up."))
    return _weights(path, "spatial", pairs, ATTENTION_AND_FEED_FORWARD, COMFY_LORA_FORMAT, alphas)


def _weights(path: Path, kind: str, pairs: dict, placement: tuple[str, ...], fmt: str, alphas: dict) -> LoraWeights:
    kept = {m: p for m, p in pairs.items() if m.endswith(placement)}
    left_out = sorted(set(pairs) - set(kept))
    if left_out:
        log.warning("%s: %d of its %d layers are outside MotionDirector's %s placement and are left out (e.g. %s)",
                    path, len(left_out), len(pairs), kind, left_out[0])
    if not kept:
        raise MotionDirectorError(f"{path} holds no {kind} LoRA layers this pack places: it is not a {kind} LoRA "
                                  f"of AnimateDiff.")
    ranks = {down.shape[0] for down, _ in kept.values()}
    if len(ranks) != 1:
        raise MotionDirectorError(f"{path} mixes LoRA ranks {sorted(ranks)}: one LoRA has one rank.")
    rank = ranks.pop()
    state = {}
    for module, (down, up) in kept.items():
        scale = alphas.get(module, rank) / rank  # the tool's scale, baked in: our alpha is the rank
        state[module + A_SUFFIX] = down.float().contiguous().clone()
        state[module + B_SUFFIX] = (up.float() * scale).contiguous()
    metadata = {"source_format": fmt, "alpha": str(rank), "left_out_layers": str(len(left_out))}
    return LoraWeights(kind=kind, state=state, metadata=metadata, source=str(path))
