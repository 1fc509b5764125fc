"""Loading a base text-to-video model: which family it is, and the dtype and device it runs with.

A model is a diffusers folder (`model`) or single files (`checkpoint` + `motion_module`, optionally `vae`); the
family that recognises it loads it into a BaseModel (base_model.py).
"""

import json
import logging
from pathlib import Path

import torch

from .base_model import DTYPES, BaseModel, resolve_dtype
from .errors import MotionDirectorError
from .families import FAMILIES, ModelFamily, ModelSource

log = logging.getLogger(__name__)

__all__ = ["DTYPES", "FAMILIES", "BaseModel", "ModelSource", "default_device", "default_dtype", "find_family",
           "load_model", "model_source", "resolve_dtype"]


def default_dtype(device: torch.device) -> str:
    """bf16 base weights on a GPU that has it (no loss scaling needed), else fp16; fp32 on the CPU (where half
    precision is slow)."""
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_source(model: str | Path | ModelSource | None = None, checkpoint=None, motion_module=None,
                 vae=None) -> ModelSource:
    """A ModelSource from a folder or from single files, each path checked to exist."""
    if isinstance(model, ModelSource):
        return model
    if model and (checkpoint or motion_module):
        raise MotionDirectorError(
            "give either a model folder or single files (a checkpoint and a motion module), not both.")
    if model:
        return ModelSource(folder=_existing(model, "model folder", folder=True))
    if not checkpoint:
        raise MotionDirectorError(
            "no model given: a diffusers model folder, or an SD 1.5 checkpoint with an AnimateDiff motion module.")
    return ModelSource(checkpoint=_existing(checkpoint, "checkpoint"),
                       motion_module=_existing(motion_module, "motion module") if motion_module else None,
                       vae=_existing(vae, "VAE") if vae else None)


def _existing(path, what: str, folder: bool = False) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        hint = (" put a diffusers text-to-video model there (e.g. zeroscope_v2_576w under models/diffusers/)."
                if folder else " check the path.")
        raise MotionDirectorError(f"{what} {path} does not exist:{hint}")
    if folder and not path.is_dir():
        raise MotionDirectorError(f"{what} {path} is a file, not a folder: point at the folder that holds "
                                  f"model_index.json, or pass a single-file checkpoint as a checkpoint.")
    return path


def read_model_index(path: Path) -> dict:
    index = path / "model_index.json"
    if not index.is_file():
        raise MotionDirectorError(
            f"{path} has no model_index.json, so it is not a diffusers model folder: point at the folder that holds it."
        )
    try:
        return json.loads(index.read_text())
    except json.JSONDecodeError as exc:
        raise MotionDirectorError(f"{index} is not valid JSON ({exc}): re-copy the model.") from exc


def find_family(model: str | Path | ModelSource | None = None, **files) -> ModelFamily:
    source = model_source(model, **files)
    index = read_model_index(source.folder) if source.folder is not None else {}
    for family in FAMILIES.values():
        if family.recognises(source):
            return family
    what = index.get("_class_name", "unknown") if source.folder is not None else "single-file"
    raise MotionDirectorError(
        f"{source.describe()} is a {what} model; supported families: "
        + "; ".join(family.label for family in FAMILIES.values()) + "."
    )


def load_model(model: str | Path | ModelSource | None = None, dtype: str | torch.dtype = "fp32",
               device: str | torch.device | None = None, **files) -> BaseModel:
    """Load a diffusers folder, or single files (checkpoint=, motion_module=, vae=), with the family that
    recognises it."""
    source = model_source(model, **files)
    family = find_family(source)
    loaded = family.load(source, resolve_dtype(dtype), torch.device(device) if device else default_device())
    log.info("loaded %s model %s (%s, %s)", family.name, loaded.name, loaded.dtype, loaded.device)
    return loaded
