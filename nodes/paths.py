"""Where models and LoRAs live: ComfyUI's diffusers folder and the pack's registered `motiondirector` folder."""

import os
from pathlib import Path

import folder_paths

from ..motiondirector_core.errors import MotionDirectorError
from ..motiondirector_core.train_state import STATE_FILE  # optimizer state beside a checkpoint's LoRAs

FOLDER = "motiondirector"
EMBEDDED_MODELS = Path(__file__).resolve().parents[1] / "models"  # the pack's own small-world model
LORA_EXTENSIONS = {".safetensors", ".pt", ".pth", ".ckpt"}
# AnimateDiff-Evolved's folders (its motion modules, its motion LoRAs), registered here too when ADE is not installed.
MOTION_MODULES, MOTION_LORAS = "animatediff_models", "animatediff_motion_lora"
MOTION_LORA_PREFIX = MOTION_LORAS + "/"  # how Load LoRA lists the motion LoRAs of ADE's folder


def register() -> None:
    """models/motiondirector and output/motiondirector, so saved LoRAs appear in the loader's list; ADE's motion
    module and motion LoRA folders."""
    for name in (MOTION_MODULES, MOTION_LORAS):
        folder = Path(folder_paths.models_dir) / name
        if name not in folder_paths.folder_names_and_paths:
            folder_paths.folder_names_and_paths[name] = ([str(folder)], set(folder_paths.supported_pt_extensions))
        else:
            folder_paths.add_model_folder_path(name, str(folder))
        folder.mkdir(parents=True, exist_ok=True)
    models = Path(folder_paths.models_dir) / FOLDER
    output = output_root()
    if FOLDER not in folder_paths.folder_names_and_paths:
        folder_paths.folder_names_and_paths[FOLDER] = ([str(models), str(output)], set(LORA_EXTENSIONS))
    else:
        for folder in (models, output):
            folder_paths.add_model_folder_path(FOLDER, str(folder))
    for folder in (models, output):
        folder.mkdir(parents=True, exist_ok=True)


def output_root() -> Path:
    return Path(folder_paths.get_output_directory()) / FOLDER


def lora_names() -> list[str]:
    """LoRA files in the folder, without the trainer's resume state and hidden (half-written) files; then the motion
    LoRAs in AnimateDiff-Evolved's folder (guoyww's, exported ones), prefixed with its name."""
    def visible(names):
        return sorted(n for n in names if not any(part.startswith(".") for part in Path(n).parts)
                      and Path(n).name != STATE_FILE)

    ours = visible(folder_paths.get_filename_list(FOLDER))
    motion = visible(model_files(MOTION_LORAS))
    return ours + [MOTION_LORA_PREFIX + name for name in motion]


def lora_path(name: str) -> Path:
    if name.startswith(MOTION_LORA_PREFIX):
        path = folder_paths.get_full_path(MOTION_LORAS, name[len(MOTION_LORA_PREFIX):])
        if path is not None:
            return Path(path)
    path = folder_paths.get_full_path(FOLDER, name)
    if path is None:
        where = ", ".join(folder_paths.get_folder_paths(FOLDER))
        raise MotionDirectorError(f"LoRA {name!r} was not found: put LoRA files in one of {where} and refresh.")
    return Path(path)


def model_folders() -> list[Path]:
    """ComfyUI's diffusers folders, then the pack's embedded models (a user's model of the same name wins). The
    embedded folder is not added to ComfyUI's own list: other diffusers loaders could not load these models."""
    return [Path(p) for p in folder_paths.get_folder_paths("diffusers")] + [EMBEDDED_MODELS]


def model_names() -> list[str]:
    """Every folder (up to two levels deep) under models/diffusers that holds a model_index.json."""
    names = set()
    for root in model_folders():
        if not root.is_dir():
            continue
        for index in list(root.glob("*/model_index.json")) + list(root.glob("*/*/model_index.json")):
            names.add(index.parent.relative_to(root).as_posix())
    return sorted(names)


def model_path(name: str) -> Path:
    for root in model_folders():
        candidate = root / name
        if (candidate / "model_index.json").is_file():
            return candidate
    where = ", ".join(str(p) for p in model_folders())
    raise MotionDirectorError(
        f"base model {name!r} was not found: put a diffusers text-to-video folder (with model_index.json, e.g. "
        f"zeroscope_v2_576w) in {where} and refresh."
    )


def model_file(folder: str, name: str, what: str) -> Path:
    """A file of one of ComfyUI's model folders (checkpoints, vae, animatediff_models ...)."""
    path = folder_paths.get_full_path(folder, name) if name else None
    if path is None:
        known = folder in folder_paths.folder_names_and_paths
        where = ", ".join(folder_paths.get_folder_paths(folder)) if known else f"models/{folder}"
        raise MotionDirectorError(f"{what} {name!r} was not found: put it in {where} and refresh (R).")
    return Path(path)


def model_files(folder: str) -> list[str]:
    return sorted(folder_paths.get_filename_list(folder)) if folder in folder_paths.folder_names_and_paths else []


def export_folder(folder: str) -> Path:
    """Where exported files of a model folder go: models/<folder> where ComfyUI lists it, else its first path."""
    listed = [Path(p) for p in folder_paths.get_folder_paths(folder)]
    preferred = Path(folder_paths.models_dir) / folder
    return preferred if preferred in listed else listed[0]


def output_path(prefix: str, suffix: str, label: str = "filename_prefix") -> Path:
    """<output>/motiondirector/<prefix><suffix>; a prefix that climbs out of the output folder is refused.
    `label` names the input in the message."""
    if not prefix.strip() or os.path.isabs(prefix) or ".." in Path(prefix).parts:
        raise MotionDirectorError(
            f"{label} {prefix!r} must be a relative name inside the output folder (no '..', not absolute)."
        )
    root = output_root().resolve()
    path = (root / f"{prefix}{suffix}").resolve()
    if root not in path.parents:
        raise MotionDirectorError(f"{label} {prefix!r} leads outside {root}: use a plain relative name.")
    return path


def file_stamp(path) -> list:
    """What a loader's output depends on, for ComfyUI's fingerprint_inputs: (name, mtime, size) of a file and the
    files beside it with the same stem (a clip's prompt .txt), or of every file in a folder. A file saved again
    under the same name then gets read again instead of coming from ComfyUI's cache."""
    if path is None:
        return []
    path = Path(path)
    if path.is_dir():
        files = [child for child in path.iterdir() if child.is_file()]
    else:
        files = [path, path.with_suffix(".txt")]
    return sorted((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file())
