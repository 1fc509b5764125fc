"""The authors' released LoRA checkpoints (showlab/MotionDirector), read without running pickled code.

Their trainer writes each LoRA as `<run>/checkpoint-<N>/{spatial,temporal}/lora/<N>_unet.pt` (the final
save goes to `<run>/{spatial,temporal}/lora/`, the released weights are under `checkpoint-default/`):
a pickled flat list [up_0, down_0, up_1, down_1, ...] with no keys. The order is the order in which
their code finds the adapted Linear layers: every spatial (Transformer2DModel) or temporal
(TransformerTemporalModel) transformer in module registration order, which is transformer_in,
down_blocks, up_blocks and only then mid_block (the UNet registers its `up_blocks` list before it
builds `mid_block`); inside one transformer, its Linear layers in registration order.
Several spatial LoRAs (one per clip) were injected one inside the other on the same layers, so a
multi-clip file holds, for each layer, clip 0's pair, clip 1's pair, ... before the next layer.

The layer table is built from the UNet config alone, so a file is checked and mapped before any
model is touched.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import MotionDirectorError
from ...files import load_weights_only
from ...lora import A_SUFFIX, B_SUFFIX, LoraWeights

LEGACY_KINDS = ("spatial", "temporal")
FORMAT = "showlab-motiondirector-pt"
# Within one transformer, in the authors' order (BasicTransformerBlock registers attn1, attn2, ff).
SPATIAL_LINEARS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "ff.net.0.proj", "ff.net.2")
TEMPORAL_LINEARS = (
    "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
    "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0",
    "ff.net.0.proj", "ff.net.2",
)  # fmt: skip
CROSS_ATTN_BLOCKS = {"CrossAttnDownBlock3D", "CrossAttnUpBlock3D"}
PLAIN_BLOCKS = {"DownBlock3D", "UpBlock3D"}
TEMPORAL_IN_HEADS = 8  # UNet3DConditionModel builds transformer_in with 8 heads of attention_head_dim
CHECKPOINT_DIR = re.compile(r"checkpoint-(\d+)")


@dataclass(frozen=True)
class LegacyLayer:
    path: str
    in_features: int
    out_features: int


def _linear_shapes(dim: int) -> dict[str, tuple[int, int]]:
    """(in, out) of each adapted Linear in a transformer block of width `dim` (GEGLU feed-forward, x4)."""
    projections = ("to_q", "to_k", "to_v", "to_out.0")
    shapes = {f"{attn}.{proj}": (dim, dim) for attn in ("attn1", "attn2") for proj in projections}
    shapes["ff.net.0.proj"] = (dim, 8 * dim)
    shapes["ff.net.2"] = (4 * dim, dim)
    return shapes


def _config_value(unet_config: Mapping, key: str):
    if key not in unet_config:
        raise MotionDirectorError(
            f"the UNet config has no {key!r}: pass the config of a ModelScope-family UNet (UNet3DConditionModel)."
        )
    return unet_config[key]


def transformer_widths(unet_config: Mapping) -> list[tuple[str, str, int]]:
    """(kind, module path, width) of every spatial and temporal transformer, in registration order."""
    down_types = list(_config_value(unet_config, "down_block_types"))
    up_types = list(_config_value(unet_config, "up_block_types"))
    channels = list(_config_value(unet_config, "block_out_channels"))
    layers = int(_config_value(unet_config, "layers_per_block"))
    head_dim = _config_value(unet_config, "attention_head_dim")
    unknown = sorted(set(down_types + up_types) - CROSS_ATTN_BLOCKS - PLAIN_BLOCKS)
    if unknown or not isinstance(head_dim, int) or len(channels) != len(down_types) or len(up_types) != len(down_types):
        raise MotionDirectorError(
            f"the UNet config (blocks {down_types} / {up_types}, channels {channels}, attention_head_dim {head_dim}) "
            f"is not the ModelScope / ZeroScope UNet3D layout that the authors' LoRA files are made for."
        )
    # UNet3DConditionModel passes attention_head_dim as the number of heads: each block is C // h heads of h.
    entries = [("temporal", "transformer_in", TEMPORAL_IN_HEADS * head_dim)]

    def block(prefix: str, width: int, count: int) -> None:
        for j in range(count):
            entries.append(("spatial", f"{prefix}.attentions.{j}", width))
            entries.append(("temporal", f"{prefix}.temp_attentions.{j}", width))

    for i, block_type in enumerate(down_types):
        if block_type in CROSS_ATTN_BLOCKS:
            block(f"down_blocks.{i}", channels[i] // head_dim * head_dim, layers)
    for i, block_type in enumerate(up_types):
        if block_type in CROSS_ATTN_BLOCKS:
            block(f"up_blocks.{i}", channels[-1 - i] // head_dim * head_dim, layers + 1)
    block("mid_block", channels[-1] // head_dim * head_dim, 1)
    return entries


def module_table(unet_config: Mapping, kind: str) -> list[LegacyLayer]:
    """The adapted Linear layers of a spatial or temporal LoRA, in the order of the authors' files."""
    if kind not in LEGACY_KINDS:
        raise MotionDirectorError(f"the authors' LoRA files are spatial or temporal, not {kind!r}.")
    linears = SPATIAL_LINEARS if kind == "spatial" else TEMPORAL_LINEARS
    table = []
    for entry_kind, path, width in transformer_widths(unet_config):
        if entry_kind != kind:
            continue
        shapes = _linear_shapes(width)
        for linear in linears:
            table.append(LegacyLayer(f"{path}.transformer_blocks.0.{linear}", *shapes[linear]))
    return table


def kind_from_path(path: str | Path) -> str | None:
    """spatial / temporal from the nearest enclosing folder of that name (`.../temporal/lora/300_unet.pt`)."""
    for part in reversed(Path(path).parts[:-1]):
        if part in LEGACY_KINDS:
            return part
    return None


def check_tensor_list(path: Path, loaded) -> list[torch.Tensor]:
    """What a weights-only load of `path` gave, checked to be the authors' flat list of float tensors."""
    if isinstance(loaded, Mapping):
        keys = list(loaded)[:3]
        raise MotionDirectorError(
            f"{path} holds a dict (keys {keys}...), not the authors' flat list [up_0, down_0, up_1, ...]: "
            f"it is some other LoRA format; convert it to a .safetensors file with PEFT keys."
        )
    if not isinstance(loaded, (list, tuple)):
        raise MotionDirectorError(
            f"{path} holds a {type(loaded).__name__}, not the authors' flat list of LoRA tensors [up_0, down_0, ...]."
        )
    for i, item in enumerate(loaded):
        if not isinstance(item, torch.Tensor) or not item.is_floating_point():
            what = f"a {item.dtype} tensor" if isinstance(item, torch.Tensor) else f"a {type(item).__name__}"
            raise MotionDirectorError(f"{path}: item {i} is {what}, the authors' LoRA files hold only float tensors.")
    if len(loaded) % 2:
        raise MotionDirectorError(
            f"{path} holds {len(loaded)} tensors, an odd number: the authors' files hold up/down pairs. It is damaged "
            f"or not a LoRA file."
        )
    return list(loaded)


def _count_fits(kind: str, pairs: int, tables: dict[str, list[LegacyLayer]]) -> bool:
    """A temporal file holds one LoRA; a spatial one may hold one per clip."""
    layers = len(tables[kind])
    return pairs > 0 and pairs % layers == 0 and (kind == "spatial" or pairs == layers)


def _resolve_kind(path: Path, pairs: int, tables: dict[str, list[LegacyLayer]]) -> str:
    fits = [k for k in LEGACY_KINDS if _count_fits(k, pairs, tables)]
    if len(fits) == 1:
        return fits[0]
    raise MotionDirectorError(
        f"cannot tell whether {path} is a spatial or a temporal LoRA ({pairs} up/down pairs): keep it in its "
        f"spatial/ or temporal/ folder as the authors' trainer saved it, or say which kind it is."
    )


def _count_problem(path: Path, kind: str, pairs: int, tables: dict[str, list[LegacyLayer]]) -> str | None:
    if _count_fits(kind, pairs, tables):
        return None
    layers = len(tables[kind])
    expected = f"{layers} per clip" if kind == "spatial" else str(layers)
    message = f"{path} holds {pairs} up/down pairs, but a {kind} LoRA for this UNet has {expected}"
    other = "temporal" if kind == "spatial" else "spatial"
    if _count_fits(other, pairs, tables):
        return message + f": the count fits a {other} LoRA; check that the file is in the right folder."
    return message + ": it was trained for another base model (or is damaged); use a LoRA made for this model."


def read_legacy_file(path: str | Path, kind: str | None, unet_config: Mapping) -> list[LoraWeights]:
    """One authors' `.pt` LoRA file as PEFT-keyed weights: one LoraWeights per clip (multi-clip spatial files).

    `kind` None: taken from the enclosing spatial/ or temporal/ folder, else from the pair count when
    only one kind fits. up becomes lora_B (out x r), down lora_A (r x in); alpha = rank, as they train.
    """
    path = Path(path)
    if not path.is_file():
        raise MotionDirectorError(f"LoRA file {path} does not exist.")
    if kind is not None and kind not in LEGACY_KINDS:
        raise MotionDirectorError(f"the authors' LoRA files are spatial or temporal, not {kind!r}.")
    return read_tensor_list(path, load_weights_only(path), kind, unet_config)


def read_tensor_list(path: Path, loaded, kind: str | None, unet_config: Mapping) -> list[LoraWeights]:
    """`read_legacy_file` for what a weights-only load of `path` gave."""
    if kind is not None and kind not in LEGACY_KINDS:
        raise MotionDirectorError(f"the authors' LoRA files are spatial or temporal, not {kind!r}.")
    tables = {k: module_table(unet_config, k) for k in LEGACY_KINDS}
    tensors = check_tensor_list(path, loaded)
    pairs = len(tensors) // 2
    kind = kind or kind_from_path(path) or _resolve_kind(path, pairs, tables)
    problem = _count_problem(path, kind, pairs, tables)
    if problem:
        raise MotionDirectorError(problem)
    table = tables[kind]
    clips = pairs // len(table)
    rank = tensors[1].shape[0] if tensors[1].ndim == 2 else None
    problems = []
    for index in range(pairs):
        layer, clip = table[index // clips], index % clips
        up, down = tensors[2 * index], tensors[2 * index + 1]
        want_up, want_down = (layer.out_features, rank), (rank, layer.in_features)
        if tuple(up.shape) != want_up or tuple(down.shape) != want_down:
            problems.append(
                f"pair {index} ({layer.path}{f', clip {clip}' if clips > 1 else ''}): up {tuple(up.shape)} "
                f"down {tuple(down.shape)}, the layer needs up {want_up} down {want_down}"
            )
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise MotionDirectorError(
            f"{path} does not fit this UNet as a {kind} LoRA: {shown}. Use a LoRA trained for this base model."
        )
    result = []
    for clip in range(clips):
        state = {}
        for position, layer in enumerate(table):
            index = position * clips + clip
            state[layer.path + A_SUFFIX] = tensors[2 * index + 1].detach().to(torch.float32).contiguous().clone()
            state[layer.path + B_SUFFIX] = tensors[2 * index].detach().to(torch.float32).contiguous().clone()
        metadata = {"source_format": FORMAT, "alpha": str(rank), "clip": str(clip), "clips": str(clips)}
        source = f"{path} (clip {clip})" if clips > 1 else str(path)
        result.append(LoraWeights(kind=kind, state=state, metadata=metadata, source=source))
    return result


def _unet_file(lora_dir: Path) -> Path | None:
    if not lora_dir.is_dir():
        return None
    found = sorted(p for p in lora_dir.glob("*unet*.pt") if p.is_file())
    if len(found) > 1:
        raise MotionDirectorError(
            f"{lora_dir} holds several UNet LoRA files ({', '.join(p.name for p in found)}): pass the one you want."
        )
    return found[0] if found else None


def _checkpoint_files(folder: Path) -> dict[str, Path]:
    """{kind: file} of one checkpoint folder that holds spatial/lora/ and/or temporal/lora/."""
    files = {}
    for kind in LEGACY_KINDS:
        found = _unet_file(folder / kind / "lora")
        if found:
            files[kind] = found
    return files


def find_legacy_files(folder: str | Path) -> dict[str, Path]:
    """{"spatial": file, "temporal": file} (either may be missing) of an authors' checkpoint or run folder.

    Accepts a checkpoint folder (`checkpoint-N/`, `checkpoint-default/`, or a run folder's top level,
    where their final save goes), one of its `spatial/` or `temporal/` folders or their `lora/`, or a
    run folder: its top-level save first, then `checkpoint-default/`, then the highest `checkpoint-N/`.
    An empty dict when the folder holds none of these.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    if folder.name == "lora" and folder.parent.name in LEGACY_KINDS:
        found = _unet_file(folder)
        return {folder.parent.name: found} if found else {}
    if folder.name in LEGACY_KINDS:
        found = _unet_file(folder / "lora")
        return {folder.name: found} if found else {}
    files = _checkpoint_files(folder)
    if files:
        return files
    default = _checkpoint_files(folder / "checkpoint-default")
    if default:
        return default
    numbered = sorted(
        (int(match.group(1)), child)
        for child in folder.iterdir()
        if child.is_dir() and (match := CHECKPOINT_DIR.fullmatch(child.name))
    )
    for _, child in reversed(numbered):
        files = _checkpoint_files(child)
        if files:
            return files
    return {}
