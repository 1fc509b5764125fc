"""Our LoRA files: safetensors with PEFT-style keys and string metadata."""

from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .errors import MotionDirectorError
from .files import atomic_path
from .lora import KINDS, LoraWeights

FORMAT = "motiondirector-lora"
FORMAT_VERSION = "1"


def save_lora(path: str | Path, weights: LoraWeights, **metadata) -> Path:
    """Write `weights` atomically; metadata values are stored as strings (None values are dropped)."""
    path = Path(path)
    meta = {**weights.metadata, **{k: v for k, v in metadata.items() if v is not None}}
    meta.update(format=FORMAT, format_version=FORMAT_VERSION, kind=weights.kind, rank=str(weights.rank))
    meta.setdefault("alpha", str(weights.rank))
    meta = {k: str(v) for k, v in meta.items()}
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in weights.state.items()}, str(tmp), metadata=meta)
    return path


def read_lora(path: str | Path) -> LoraWeights:
    """Read one of our LoRA files (kind and rank from its metadata)."""
    path = Path(path)
    if not path.is_file():
        raise MotionDirectorError(f"LoRA file {path} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise MotionDirectorError(f"{path} is not a readable safetensors file ({exc}); re-save or re-download it.") from exc
    kind = metadata.get("kind")
    if kind not in KINDS:
        raise MotionDirectorError(
            f"{path} has no MotionDirector kind in its metadata (found {kind!r}): expected one of {', '.join(KINDS)}."
        )
    if not state:
        raise MotionDirectorError(f"{path} holds no LoRA weights.")
    return LoraWeights(kind=kind, state=state, metadata=metadata, source=str(path))
