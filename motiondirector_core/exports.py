"""Our LoRAs in the formats of the tools users already run, written beside our own files (families/ say which).

For AnimateDiff: the motion LoRA for AnimateDiff-Evolved's loader (ComfyUI's models/animatediff_motion_lora/) and
the appearance LoRA for ComfyUI's core LoRA loader (models/loras/). Our safetensors stays the native format.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import MotionDirectorError
from .families import FAMILIES, ModelFamily
from .lora import LoraWeights
from .lora_files import read_lora_source


def family_of(loras: Sequence[LoraWeights], source: str) -> ModelFamily:
    """The family a LoRA was trained on: its metadata's base_family, else the one that places all its layers."""
    named = {w.metadata.get("base_family") for w in loras} - {None}
    if len(named) == 1 and (name := named.pop()) in FAMILIES:
        return FAMILIES[name]
    for family in FAMILIES.values():
        if all(family.kind_of(module) is not None for w in loras for module in w.modules) and family.exports:
            return family
    raise MotionDirectorError(f"{source}: cannot tell which base model family these LoRAs are for.")


def export_loras(family: ModelFamily, loras: Sequence[LoraWeights], folder_for: Callable[[str], Path],
                 name: str) -> list[Path]:
    """Each export the family offers, for each LoRA of its kind: `folder_for(comfy_folder)/<name><suffix>`
    (`_<i>` before the extension where a run holds several, e.g. one appearance LoRA per clip)."""
    if not family.exports:
        raise MotionDirectorError(
            f"{family.label} LoRAs have no other tool's format to be written in: they load in this pack's nodes."
        )
    written = []
    for export in family.exports:
        matching = [w for w in loras if w.kind == export.kind]
        for i, weights in enumerate(matching):
            suffix = export.suffix if len(matching) == 1 else export.suffix.replace(".", f"_{i}.", 1)
            written.append(family.write_export(export, weights, folder_for(export.comfy_folder) / f"{name}{suffix}"))
    if not written:
        kinds = ", ".join(sorted({e.kind for e in family.exports}))
        raise MotionDirectorError(f"none of these LoRAs is of a kind with an export ({kinds}).")
    return written


def export_run(family: ModelFamily | None, source: str | Path, models_dir: Path, name: str | None = None) -> list[Path]:
    """The exports of every LoRA in `source` (a file, checkpoint or run folder) into ComfyUI's `models_dir`."""
    source = Path(source)
    loras = read_lora_source(source)
    family = family or family_of(loras, str(source))
    if name is None:
        run = source.parent if source.name in ("final",) or source.name.startswith("checkpoint-") else source
        name = run.stem if run.is_file() else run.name
    return export_loras(family, loras, lambda folder: models_dir / folder, name)
