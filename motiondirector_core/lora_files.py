"""LoRA files: ours (safetensors with PEFT-style keys and string metadata) and every source a user may point at.

`read_lora_source` takes one of our files, our checkpoint or run folder, a plain PEFT-keyed safetensors file, or
a file in another tool's format that a family reads (the MotionDirector authors' released `.pt` files and folders,
AnimateDiff motion LoRAs ...; families/).
"""

import re
from collections.abc import Mapping
from pathlib import Path

from .errors import MotionDirectorError
from .families import FAMILIES
from .families.modelscope import released
from .files import load_weights_only, read_safetensors, write_safetensors
from .lora import A_SUFFIX, B_SUFFIX, KINDS, LoraWeights

FORMAT = "motiondirector-lora"
FORMAT_VERSION = "1"
# Our checkpoint folder: temporal.safetensors, spatial.safetensors or spatial_<i>.safetensors, coupled.safetensors.
OUR_FILE = re.compile(r"(temporal|spatial|coupled)(?:_(\d+))?\.safetensors")
OUR_CHECKPOINT_DIR = re.compile(r"checkpoint-(\d+)")
FILE_ORDER = {"temporal": 0, "spatial": 1, "coupled": 2}  # the order sources list their LoRAs in
PICKLED_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
# Prefixes that other PEFT / diffusers writers put before the UNet module path.
KEY_PREFIXES = ("base_model.model.", "unet.")


def save_lora(path: str | Path, weights: LoraWeights, **metadata) -> Path:
    """Write `weights` atomically; metadata values are stored as strings (None values are dropped)."""
    path = Path(path)
    meta = {**weights.metadata, **{k: v for k, v in metadata.items() if v is not None}}
    meta.update(format=FORMAT, format_version=FORMAT_VERSION, kind=weights.kind, rank=str(weights.rank))
    meta.setdefault("alpha", str(weights.rank))
    return write_safetensors(path, weights.state, meta)


def infer_kind(module_paths, source: str = "the LoRA") -> str:
    """spatial / temporal / coupled from UNet module paths, as the family that knows each path places it."""
    kinds = set()
    for path in module_paths:
        kind = next((k for family in FAMILIES.values() if (k := family.kind_of(path)) is not None), None)
        if kind is None:
            raise MotionDirectorError(
                f"{source} adapts {path}, which is in neither a spatial nor a temporal transformer of the UNet: "
                f"it is not a MotionDirector LoRA."
            )
        kinds.add(kind)
    if not kinds:
        raise MotionDirectorError(f"{source} holds no LoRA weights.")
    return kinds.pop() if len(kinds) == 1 else "coupled"


def _strip_prefix(key: str) -> str:
    for prefix in KEY_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def read_lora(path: str | Path) -> LoraWeights:
    """Read one of our LoRA files, or a PEFT-keyed safetensors file (kind then inferred from its layers)."""
    path = Path(path)
    if not path.is_file():
        raise MotionDirectorError(f"LoRA file {path} does not exist.")
    state, metadata = read_safetensors(path, "re-save or re-download it.")
    if not state:
        raise MotionDirectorError(f"{path} holds no LoRA weights.")
    kind = metadata.get("kind")
    if kind is None:
        stripped = {_strip_prefix(k): v for k, v in state.items()}
        if all(k.endswith(A_SUFFIX) or k.endswith(B_SUFFIX) for k in stripped):
            modules = [k[: -len(A_SUFFIX)] for k in stripped if k.endswith(A_SUFFIX)]
            kind = infer_kind(modules or [k[: -len(B_SUFFIX)] for k in stripped], str(path))
            return LoraWeights(kind=kind, state=stripped, metadata=metadata, source=str(path))
        found = _read_foreign(path, state, None, None)
        if found is None:
            odd = next(k for k in stripped if not (k.endswith(A_SUFFIX) or k.endswith(B_SUFFIX)))
            raise MotionDirectorError(
                f"{path} is not a LoRA in PEFT form: key {odd!r} is not '<layer>.lora_A.weight' or "
                f"'<layer>.lora_B.weight', nor in a format this pack reads. Convert it, or use one of our LoRA files."
            )
        if len(found) != 1:
            raise MotionDirectorError(f"{path} holds {len(found)} LoRAs: read it with read_lora_source.")
        return found[0]
    if kind not in KINDS:
        raise MotionDirectorError(
            f"{path} has no MotionDirector kind in its metadata (found {kind!r}): expected one of {', '.join(KINDS)}."
        )
    return LoraWeights(kind=kind, state=state, metadata=metadata, source=str(path))


def _read_foreign(path: Path, loaded, unet_config: Mapping | None, kind: str | None) -> list[LoraWeights] | None:
    """The LoRAs of a file in another tool's format, read by the family whose format it is (None: no family's)."""
    for family in FAMILIES.values():
        found = family.read_foreign(path, loaded, unet_config, kind)
        if found is not None:
            return found
    return None


def _read_pickled(path: Path, kind: str | None, unet_config: Mapping | None) -> list[LoraWeights]:
    loaded = load_weights_only(path)
    found = _read_foreign(path, loaded, unet_config, kind)
    if found is not None:
        return found
    if isinstance(loaded, Mapping):
        keys = list(loaded)[:3]
        raise MotionDirectorError(
            f"{path} holds a dict (keys {keys}...) in no LoRA format this pack reads (the authors' flat list "
            f"[up_0, down_0, up_1, ...], AnimateDiff motion LoRAs): convert it to a .safetensors file with PEFT keys."
        )
    raise MotionDirectorError(f"{path} holds a {type(loaded).__name__}, not LoRA weights: it is not a LoRA file.")


def _our_files(folder: Path) -> list[Path]:
    """Our LoRA files in a checkpoint folder: temporal, spatial (shared, then per clip by index), coupled."""
    found = []
    for child in folder.iterdir():
        match = OUR_FILE.fullmatch(child.name)
        if match and child.is_file():
            base, index = match.groups()
            found.append((FILE_ORDER[base], -1 if index is None else int(index), child))
    return [path for *_, path in sorted(found)]


def latest_checkpoint(folder: Path) -> Path | None:
    """The folder of our run (or checkpoint) to read: itself, `final/`, else the highest `checkpoint-<N>/`."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    if _our_files(folder):
        return folder
    if (folder / "final").is_dir() and _our_files(folder / "final"):
        return folder / "final"
    numbered = sorted(
        (int(match.group(1)), child)
        for child in folder.iterdir()
        if child.is_dir() and (match := OUR_CHECKPOINT_DIR.fullmatch(child.name))
    )
    for _, child in reversed(numbered):
        if _our_files(child):
            return child
    return None


def _describe(weights: list[LoraWeights]) -> str:
    counts = {k: sum(w.kind == k for w in weights) for k in FILE_ORDER}
    parts = [f"{n} {k} LoRA{'s' if n > 1 else ''}" if n > 1 else f"a {k} LoRA" for k, n in counts.items() if n]
    return " and ".join(parts)


def _read_all(path: Path, kind: str | None, unet_config: Mapping | None) -> list[LoraWeights]:
    if path.is_file():
        if path.suffix == ".safetensors":
            return [read_lora(path)]
        if path.suffix in PICKLED_SUFFIXES:
            return _read_pickled(path, kind, unet_config)
        raise MotionDirectorError(
            f"{path} is neither a .safetensors LoRA nor a {'/'.join(PICKLED_SUFFIXES)} LoRA file of a format this "
            f"pack reads: point at one of those, or at a checkpoint or run folder."
        )
    ours = latest_checkpoint(path)
    if ours is not None:
        return [read_lora(file) for file in _our_files(ours)]
    theirs = released.find_legacy_files(path)
    if theirs:
        return [w for k in FILE_ORDER if k in theirs for w in _read_pickled(theirs[k], k, unet_config)]
    raise MotionDirectorError(
        f"{path} holds no LoRA: expected temporal.safetensors / spatial.safetensors (or spatial_<i>, coupled), a run "
        f"folder with final/ or checkpoint-<N>/, or the authors' checkpoint-<N>/{{spatial,temporal}}/lora/*unet*.pt."
    )


def read_lora_source(
    path: str | Path, kind: str | None = None, unet_config: Mapping | None = None
) -> list[LoraWeights]:
    """Every LoRA that `path` holds (file, checkpoint folder or run folder, ours or the authors'), of `kind` if given.

    `unet_config` maps the authors' unkeyed `.pt` files onto module paths; without it, the ModelScope / ZeroScope
    UNet that their released weights were trained on.
    """
    path = Path(path).expanduser()
    if kind is not None and kind not in KINDS:
        raise MotionDirectorError(f"LoRA kind {kind!r} is unknown: use one of {', '.join(KINDS)}.")
    if not path.exists():
        raise MotionDirectorError(
            f"LoRA source {path} does not exist: point at a LoRA file or a checkpoint or run folder."
        )
    weights = _read_all(path, kind, unet_config)
    if kind is None:
        return weights
    selected = [w for w in weights if w.kind == kind]
    if not selected:
        raise MotionDirectorError(
            f"{path} holds {_describe(weights)}, not a {kind} LoRA: point at a source that holds one "
            f"(e.g. a temporal LoRA for motion, a spatial LoRA for appearance)."
        )
    return selected
