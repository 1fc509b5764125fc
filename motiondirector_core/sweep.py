"""Grids of samples: every prompt x temporal scale x spatial scale x seed, each video beside its settings.

Layout: `<out_dir>/<NNN>-<prompt-slug>/t<ts>_s<ss>_seed<seed>.mp4` plus the same name `.json` (all that
is needed to reproduce it), and `<out_dir>/index.json` / `index.csv` listing every result so far.
"""

import csv
import dataclasses
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import lora
from .errors import MotionDirectorError
from .files import write_json, write_text
from .noise_prior import NoisePrior
from .sample import SampleSettings, check_settings, generate

CSV_COLUMNS = ("prompt_index", "prompt", "temporal_scale", "spatial_scale", "seed", "video", "settings")


@dataclass
class SweepSpec:
    prompts: list[str]
    temporal_scales: list[float] = field(default_factory=lambda: [1.0])
    spatial_scales: list[float] = field(default_factory=lambda: [0.0])
    seeds: list[int] = field(default_factory=lambda: [0])
    base: SampleSettings = field(default_factory=lambda: SampleSettings(prompt=""))  # its prompt and seed are replaced
    temporal_adapters: list[str] = field(default_factory=list)
    spatial_adapters: list[str] = field(default_factory=list)
    fps: float = 8.0


def slug(text: str, limit: int = 40) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:limit].rstrip("-") or "prompt"


def scale_label(value: float) -> str:
    return f"{value:g}"


def check_spec(model, spec: SweepSpec, has_reference: bool) -> None:
    if not spec.prompts or not all(isinstance(p, str) for p in spec.prompts):
        raise MotionDirectorError("a sweep needs at least one prompt, each one text.")
    for label, values in (("temporal_scales", spec.temporal_scales), ("spatial_scales", spec.spatial_scales)):
        if not values or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise MotionDirectorError(f"{label} must list at least one finite number, got {values!r}.")
    if not spec.seeds:
        raise MotionDirectorError("a sweep needs at least one seed.")
    for label, values in (
        ("temporal_scales", [scale_label(v) for v in spec.temporal_scales]),
        ("spatial_scales", [scale_label(v) for v in spec.spatial_scales]),
        ("seeds", [str(v) for v in spec.seeds]),
    ):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise MotionDirectorError(f"{label} lists {', '.join(repeated)} more than once: list each value once.")
    loaded = lora.adapter_names(model.unet)
    named = spec.temporal_adapters + spec.spatial_adapters
    missing = sorted(set(named) - set(loaded))
    if missing:
        raise MotionDirectorError(
            f"sweep adapters {missing} are not loaded (loaded: {loaded or 'none'}): load them first."
        )
    both = sorted(set(spec.temporal_adapters) & set(spec.spatial_adapters))
    if both:
        raise MotionDirectorError(f"adapters {both} are listed as both temporal and spatial: list each in one place.")
    if not isinstance(spec.fps, (int, float)) or not math.isfinite(spec.fps) or spec.fps <= 0:
        raise MotionDirectorError(f"fps must be a positive number, got {spec.fps!r}.")
    for seed in spec.seeds:
        check_settings(model, dataclasses.replace(spec.base, prompt=spec.prompts[0], seed=seed), has_reference)


def sweep_scales(spec: SweepSpec, temporal: float, spatial: float) -> dict[str, float]:
    """Every temporal adapter at `temporal`; the spatial ones share `spatial` equally (N of them: each at
    spatial / N, their mean, as Apply LoRA blends per-clip looks); a scale of 0 leaves them off."""
    scales = {name: float(temporal) for name in spec.temporal_adapters if temporal != 0}
    share = float(spatial) / max(1, len(spec.spatial_adapters))
    scales.update({name: share for name in spec.spatial_adapters if spatial != 0})
    return scales


def reference_record(reference) -> dict | None:
    if isinstance(reference, NoisePrior):
        return {"source": reference.source, "steps": reference.steps, "model": reference.model,
                "frames": reference.frames, "width": reference.width, "height": reference.height}
    return None if reference is None else {"source": "tensor", "shape": list(reference.shape)}


def run_sweep(
    model, spec: SweepSpec, out_dir, reference_latents=None, on_result=None, should_cancel=None
) -> list[dict]:
    """Generate and write every combination; on_result(result, frames) after each. The caller's scales are kept."""
    from .video_io import write_video

    check_spec(model, spec, has_reference=reference_latents is not None)
    out_dir = Path(out_dir)
    saved_scales = lora.active_scales(model.unet)
    results: list[dict] = []
    try:
        for index, prompt in enumerate(spec.prompts):
            folder = out_dir / f"{index:03d}-{slug(prompt)}"
            for temporal in spec.temporal_scales:
                for spatial in spec.spatial_scales:
                    scales = sweep_scales(spec, temporal, spatial)
                    lora.set_scales(model.unet, scales)
                    for seed in spec.seeds:
                        settings = dataclasses.replace(spec.base, prompt=prompt, seed=int(seed))
                        frames = generate(model, settings, reference_latents, should_cancel=should_cancel)
                        name = f"t{scale_label(temporal)}_s{scale_label(spatial)}_seed{seed}"
                        video = write_video(folder / f"{name}.mp4", frames, spec.fps)
                        result = {
                            "prompt_index": index,
                            "prompt": prompt,
                            "temporal_scale": float(temporal),
                            "spatial_scale": float(spatial),
                            "seed": int(seed),
                            "video": video.relative_to(out_dir).as_posix(),
                            "settings": f"{folder.name}/{name}.json",
                            "sample": settings.to_dict(),
                            "adapter_scales": scales,
                            "temporal_adapters": list(spec.temporal_adapters),
                            "spatial_adapters": list(spec.spatial_adapters),
                            "fps": spec.fps,
                            "model": model.name,
                            "model_path": str(model.path),
                            "dtype": str(model.dtype).removeprefix("torch."),
                            "noise_prior_reference": reference_record(reference_latents),
                        }
                        write_json(folder / f"{name}.json", result)
                        results.append(result)
                        write_index(out_dir, results)
                        if on_result is not None:
                            on_result(result, frames)
    finally:
        lora.set_scales(model.unet, saved_scales)
    return results


def write_index(out_dir: Path, results: list[dict]) -> None:
    write_json(out_dir / "index.json", {"results": results})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(results)
    write_text(out_dir / "index.csv", buffer.getvalue())
