"""Training checkpoints on disk and the state that makes a resumed run continue bit for bit.

A checkpoint folder holds one `<adapter>.safetensors` per trained adapter (our LoRA format) and
`trainer_state.pt`: step, elapsed time, optimizer and GradScaler states, the trainer's generator
state and torch's RNG states (dropout). It is written with torch.save and read back with
`torch.load(weights_only=True)`: plain tensors, numbers, strings, lists and dicts only.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import MotionDirectorError
from .files import atomic_dir, write_text
from .lora import A_SUFFIX, B_SUFFIX, LoraWeights, check_fits, lora_layers
from .lora_files import read_lora, save_lora

STATE_FILE = "trainer_state.pt"
STATE_FORMAT = 1


def adapter_file(folder: Path, name: str) -> Path:
    return Path(folder) / f"{name}.safetensors"


def capture_state(step: int, elapsed: float, adapters: dict[str, str], optimizers: dict, scalers: dict, generator) -> dict:
    state = {
        "format": STATE_FORMAT,
        "step": int(step),
        "elapsed": float(elapsed),
        "adapters": dict(adapters),
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "scalers": {name: scaler.state_dict() for name, scaler in scalers.items()},
        "generator": generator.get_state(),
        "cpu_rng": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def restore_state(state: dict, optimizers: dict, scalers: dict, generator) -> None:
    """Load optimizer, scaler, generator and RNG states saved by `capture_state` (adapters are loaded apart)."""
    for name, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    for name, scaler in scalers.items():
        saved = state["scalers"].get(name) or {}
        if saved and scaler.is_enabled():
            scaler.load_state_dict(saved)
    generator.set_state(state["generator"])
    torch.set_rng_state(state["cpu_rng"])
    if "cuda_rng" in state and torch.cuda.is_available() and len(state["cuda_rng"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def write_checkpoint(folder: Path, weights: dict[str, tuple[LoraWeights, dict]], state: dict) -> Path:
    """Write the adapters (with their metadata) and the trainer state into `folder`, atomically as a whole."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        for name, (lora_weights, metadata) in weights.items():
            save_lora(adapter_file(tmp, name), lora_weights, **metadata)
        torch.save(state, tmp / STATE_FILE)
    return folder


@dataclass
class Checkpoint:
    folder: Path
    step: int
    adapters: dict[str, LoraWeights]
    state: dict


def resume_point(folder: str | Path) -> Path:
    """`folder` if it is a checkpoint, else the latest checkpoint of the run folder `folder` (final/ first)."""
    folder = Path(folder).expanduser()
    if (folder / STATE_FILE).is_file() or not folder.is_dir():
        return folder
    steps = []
    for child in folder.iterdir():
        if (child / STATE_FILE).is_file():
            if child.name == "final":
                return child
            if child.name.startswith("checkpoint-") and child.name[len("checkpoint-"):].isdigit():
                steps.append((int(child.name[len("checkpoint-"):]), child))
    return max(steps)[1] if steps else folder


def read_checkpoint(folder: str | Path) -> Checkpoint:
    """The checkpoint in `folder`, or the latest one of the run folder `folder`."""
    folder = resume_point(folder)
    state_path = folder / STATE_FILE
    if not state_path.is_file():
        raise MotionDirectorError(
            f"cannot resume from {folder}: it has no {STATE_FILE} and holds no checkpoint; point resume at a run "
            f"folder, or at a checkpoint-<step> or final folder, written by this trainer."
        )
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged or foreign pickles
        raise MotionDirectorError(f"{state_path} could not be read ({exc}); resume from an earlier checkpoint.") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise MotionDirectorError(f"{state_path} is not a trainer state of this version; resume from another checkpoint.")
    adapters = {name: read_lora(adapter_file(folder, name)) for name in state["adapters"]}
    for name, kind in state["adapters"].items():
        if adapters[name].kind != kind:
            raise MotionDirectorError(
                f"{adapter_file(folder, name)} holds a {adapters[name].kind} LoRA, the trainer state says {kind}: "
                f"the checkpoint is inconsistent; resume from another one."
            )
    return Checkpoint(folder, int(state["step"]), adapters, state)


def copy_adapter_weights(unet: torch.nn.Module, family, name: str, weights: LoraWeights) -> None:
    """Copy saved weights into the already added adapter `name`, which they must cover exactly."""
    check_fits(unet, family, weights)
    layers = {path: layer for path, layer in lora_layers(unet) if name in layer.lora_A}
    if set(weights.modules) != set(layers):
        raise MotionDirectorError(
            f"{weights.source} covers {len(weights.modules)} layers, the {name} adapter has {len(layers)}: "
            f"the checkpoint was trained with other settings (motion_layers?); resume with those or from a "
            f"matching checkpoint."
        )
    with torch.no_grad():
        for path, layer in layers.items():
            layer.lora_A[name].weight.copy_(weights.state[path + A_SUFFIX])
            layer.lora_B[name].weight.copy_(weights.state[path + B_SUFFIX])


def read_log(path: Path, up_to_step: int) -> list[str]:
    """The log lines of steps 1..up_to_step (later ones belong to a run that is being replaced)."""
    if not path.is_file():
        return []
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):
            continue
        if step <= up_to_step:
            kept.append(line)
    return kept


def start_log(path: Path, lines: list[str]) -> None:
    """(Re)write the log with `lines`, atomically; steps are appended afterwards."""
    write_text(path, "".join(line + "\n" for line in lines))


def append_log(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
