"""The inference commands (generate, invert, sweep): base model, LoRA sources, noise prior, written records."""

import dataclasses
import logging
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .cli_common import CancelOnInterrupt, model_files, model_flags, resolve_device
from .errors import MotionDirectorError
from .files import write_json

log = logging.getLogger(__name__)

WRITABLE_VIDEO = (".mp4", ".webm", ".mov", ".mkv", ".gif")
DEFAULT_NOISE_PRIOR = 0.5  # METHOD.md: 0.1-0.5 for a single reference video


@dataclass
class LoadedLora:
    adapter: str  # its name in the UNet
    kind: str
    source: str  # the path given, resolved
    file: str  # what was read (a file, or "<file> (clip i)" for a per-clip source)
    scale: float
    index: int  # which of the source's LoRAs (a per-clip spatial source holds several)


def default_inversion_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "motiondirector" / "inversions"


SAMPLING_DEFAULTS = {"frames": "frames", "width": "width", "height": "height", "steps": "sample_steps", "cfg": "cfg"}


def base_files(args) -> dict:
    files = model_files(args)
    if not files.get("model") and not files.get("checkpoint"):
        raise MotionDirectorError("no model given: pass --model DIR, or --checkpoint FILE with --motion-module FILE.")
    return files


def resolve_family_defaults(args) -> None:
    """Sizes, frames, steps and guidance left unset take the model family's defaults (before anything is read)."""
    from .models import find_family

    family = find_family(**base_files(args))
    for name, source in SAMPLING_DEFAULTS.items():
        if getattr(args, name, 0) is None:
            setattr(args, name, getattr(family.defaults, source))


def load_base(args):
    """The base model of --model (or --checkpoint + --motion-module) with --dtype / --device (bf16 or fp16 on CUDA,
    fp32 on CPU by default)."""
    from .models import default_dtype, load_model

    resolve_family_defaults(args)
    device = resolve_device(args.device)
    dtype = args.dtype or default_dtype(device)
    return load_model(**base_files(args), dtype=dtype, device=device)


def _read_source(model, path: str, want: str):
    from .lora_files import read_lora_source

    config = model.unet.config
    if want == "spatial":
        return read_lora_source(path, kind="spatial", unet_config=config)
    try:
        return read_lora_source(path, kind="temporal", unet_config=config)
    except MotionDirectorError as temporal_error:
        try:  # a coupled LoRA (all layers) carries the motion too
            return read_lora_source(path, kind="coupled", unet_config=config)
        except MotionDirectorError:
            raise temporal_error from None


def load_lora(model, path: str, want: str, adapter: str, scale: float, pick: int = 0) -> LoadedLora:
    """Load the `want` ("temporal" or "spatial") LoRA of `path` into model.unet as `adapter` (still off)."""
    from .lora import load_adapter

    weights = _read_source(model, path, want)
    if not 0 <= pick < len(weights):
        raise MotionDirectorError(
            f"{path} holds {len(weights)} {want} LoRA(s) (one per training clip), so --spatial-clip {pick} is out of "
            f"range: pick 0 to {len(weights) - 1}."
        )
    if len(weights) > 1:
        log.info("%s holds %d %s LoRAs; using number %d", path, len(weights), want, pick)
    chosen = weights[pick]
    load_adapter(model.unet, model.family, chosen, adapter)
    file = chosen.source or str(path)
    if Path(file).exists():
        file = str(Path(file).resolve())
    return LoadedLora(adapter, chosen.kind, str(Path(path).expanduser().resolve()), file, float(scale), pick)


LORA_SOURCE_FIX = "point at a LoRA file or a checkpoint/run folder."


def _check_exists(paths, flag: str, fix: str) -> None:
    """Before anything slow runs: each given path exists, else an error naming the flag and what to give it."""
    for path in paths:
        if path and not Path(path).expanduser().exists():
            raise MotionDirectorError(f"{flag} {path} does not exist: {fix}")


def noise_prior_strength(args) -> float:
    """--noise-prior, checked against --reference before anything slow runs."""
    if args.reference is None:
        if args.noise_prior is not None:
            raise MotionDirectorError(
                "--noise-prior needs --reference (the clip or noise file whose inverted latents start the sampling)."
            )
        return 0.0
    p = DEFAULT_NOISE_PRIOR if args.noise_prior is None else args.noise_prior
    if not 0.0 <= p <= 1.0:
        raise MotionDirectorError(f"--noise-prior must be from 0 to 1 (0.1-0.5 for one reference video), got {p}.")
    _check_exists([args.reference], "--reference", "give a video, image or noise file.")
    return p


def invert_reference(model, path, frames, width, height, steps, cache_dir=None, should_cancel=None, stride=1,
                     fps=None):
    """DDIM-invert a reference video or image, sampled at the output's frames and size (at `fps` frames per second
    of real time, as training reads videos, or every `stride`-th frame)."""
    from .clips import FrameSampling, read_clip
    from .invert import invert_frames

    sampling = FrameSampling(frames=frames, stride=stride, fps=fps, width=width, height=height, repeat_short=True)
    clip = read_clip(path, sampling, prompt="reference clip")
    print(f"inverting {path} ({clip.frames.shape[0]} frames, {steps} DDIM steps)...", flush=True)
    return invert_frames(model, clip.frames, steps=steps, source=str(Path(path).resolve()), cache_dir=cache_dir,
                         should_cancel=should_cancel)


def resolve_reference(model, args, p: float, should_cancel=None):
    """(NoisePrior or None, its record) for --reference; nothing is inverted when p is 0."""
    from .invert import load_noise

    if args.reference is None:
        return None, None
    source = str(Path(args.reference).expanduser().resolve())
    record = {"source": source, "noise_prior": p}
    if p == 0:
        return None, {**record, "note": "noise prior 0: the reference was not used"}
    if args.reference.lower().endswith(".safetensors"):
        prior = load_noise(args.reference)
        record.update(kind="noise file", inverted_from=prior.source)
    else:
        cache = Path(args.inversion_cache).expanduser() if args.inversion_cache else default_inversion_cache()
        prior = invert_reference(model, args.reference, args.frames, args.width, args.height, args.inversion_steps,
                                 cache_dir=cache, should_cancel=should_cancel, fps=args.reference_fps or None)
        record.update(kind="clip", inversion_cache=str(cache), reference_fps=args.reference_fps)
    if prior.model and prior.model != model.name:
        log.warning("the reference was inverted with model %r, sampling uses %r", prior.model, model.name)
    record.update(inversion_steps=prior.steps, inverted_model=prior.model, inverted_frames=prior.frames,
                  inverted_width=prior.width, inverted_height=prior.height)
    return prior, record


def sample_settings(args, prompt: str, seed: int, p: float):
    from .sample import SampleSettings

    return SampleSettings(prompt=prompt, negative_prompt=args.negative_prompt, frames=args.frames, width=args.width,
                          height=args.height, steps=args.steps, cfg=args.cfg, seed=seed, scheduler=args.scheduler,
                          noise_prior=p)


def _check_output_video(out: Path) -> None:
    if out.suffix.lower() not in WRITABLE_VIDEO:
        raise MotionDirectorError(f"--out {out} must end in one of {', '.join(WRITABLE_VIDEO)}.")


def reproduce_command(record: dict) -> str:
    """The generate command line that makes this video again."""
    parts = ["python", "-m", "motiondirector_core", "generate", *model_flags(record["model_files"]),
             "--prompt", record["prompt"], "--out", record["video"]]
    if record["negative_prompt"]:
        parts += ["--negative-prompt", record["negative_prompt"]]
    for lora in record["loras"]:
        flag = "temporal" if lora["kind"] != "spatial" else "spatial"
        parts += [f"--{flag}-lora", lora["source"], f"--{flag}-scale", f"{lora['scale']:g}"]
        if lora["kind"] == "spatial" and lora["index"]:
            parts += ["--spatial-clip", str(lora["index"])]
    if record["reference"] and record["noise_prior"] > 0:
        parts += ["--reference", record["reference"]["source"], "--noise-prior", f"{record['noise_prior']:g}",
                  "--inversion-steps", str(record["reference"]["inversion_steps"])]
        if "reference_fps" in record["reference"]:
            parts += ["--reference-fps", f"{record['reference']['reference_fps']:g}"]
    if record.get("side_by_side"):
        parts += ["--side-by-side", record["side_by_side"]["clip"],
                  "--side-by-side-stride", str(record["side_by_side"]["stride"])]
    for key in ("frames", "width", "height", "steps", "cfg", "seed", "scheduler", "fps", "dtype", "device"):
        value = record[key]
        parts += [f"--{key}", f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(parts)


def _progress(label: str):
    def on_step(step, total, _latents):
        if step == total or step % max(1, total // 5) == 0:
            print(f"{label} step {step}/{total}", flush=True)

    return on_step


def generate_command(args) -> None:
    out = Path(args.out).expanduser()
    _check_output_video(out)
    p = noise_prior_strength(args)
    _check_exists([args.temporal_lora, *args.spatial_lora], "LoRA source", LORA_SOURCE_FIX)
    _check_exists([args.side_by_side], "--side-by-side", "give a video or image.")
    scales = args.spatial_scale
    if len(scales) == 1:
        scales = scales * len(args.spatial_lora)
    if len(scales) != len(args.spatial_lora):
        raise MotionDirectorError(
            f"--spatial-scale lists {len(scales)} values for {len(args.spatial_lora)} --spatial-lora source(s): "
            f"give one value for all or one per source."
        )
    from .lora import set_scales
    from .sample import check_settings, generate
    from .video_io import write_video

    model = load_base(args)
    loras = []
    if args.temporal_lora:
        loras.append(load_lora(model, args.temporal_lora, "temporal", "temporal", args.temporal_scale))
    for i, (path, scale) in enumerate(zip(args.spatial_lora, scales)):
        name = "spatial" if i == 0 else f"spatial_{i}"
        loras.append(load_lora(model, path, "spatial", name, scale, args.spatial_clip))
    set_scales(model.unet, {lora.adapter: lora.scale for lora in loras if lora.scale != 0})
    settings = sample_settings(args, args.prompt, args.seed, p)
    check_settings(model, settings, has_reference=p > 0)
    compare_frames = comparison_frames(args) if args.side_by_side else None
    with CancelOnInterrupt("generation") as cancel:
        prior, reference = resolve_reference(model, args, p, cancel)
        frames = generate(model, settings, reference_latents=prior, on_step=_progress("sampling"), should_cancel=cancel)
    write_video(out, frames, args.fps)
    record = {
        "motiondirector_core_version": __version__,
        "video": str(out.resolve()),
        "model": str(Path(model.path).resolve()),
        "model_files": {name: str(Path(path).expanduser().resolve()) for name, path in base_files(args).items()},
        "model_name": model.name,
        "model_family": model.family.name,
        **settings.to_dict(),
        "fps": args.fps,
        "dtype": {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}[str(model.dtype)],
        "device": str(model.device),
        "loras": [dataclasses.asdict(lora) for lora in loras],
        "reference": reference,
        "side_by_side": None,
    }
    if compare_frames is not None:
        image = write_side_by_side(side_by_side_path(out), compare_frames, frames)
        record["side_by_side"] = {"image": str(image.resolve()), "clip": str(Path(args.side_by_side).resolve()),
                                  "stride": args.side_by_side_stride}
    record["command"] = reproduce_command(record)
    settings_path = write_json(out.with_suffix(".json"), record)
    written = f"{settings_path}" + (f" and {record['side_by_side']['image']}" if compare_frames is not None else "")
    print(f"wrote {out} ({frames.shape[0]} frames, {frames.shape[2]}x{frames.shape[1]}), {written}")


def side_by_side_path(video: Path) -> Path:
    return video.with_name(video.stem + "_side_by_side.png")


def comparison_frames(args):
    """The --side-by-side clip's frames, read at the output's frame count and size (before sampling, so that a bad
    clip fails before the slow part)."""
    from .clips import FrameSampling, read_clip

    path = Path(args.side_by_side).expanduser()
    sampling = FrameSampling(frames=args.frames, stride=args.side_by_side_stride, width=args.width,
                             height=args.height, repeat_short=True)
    return read_clip(path, sampling, prompt="comparison clip").frames


def write_side_by_side(path: Path, reference, generated, pixels: int = 96) -> Path:
    """Reference frames over generated frames, one frame per column, each frame at least `pixels` high (small
    frames are enlarged without smoothing, so that a 32-pixel clip stays readable)."""
    from .video_io import side_by_side, write_image

    grid = side_by_side(reference, generated, columns=max(reference.shape[0], generated.shape[0]))
    factor = max(1, -(-pixels // generated.shape[1]))
    if factor > 1:
        grid = grid.repeat_interleave(factor, dim=0).repeat_interleave(factor, dim=1)
    return write_image(path, grid)


def read_prompts(path: str) -> list[str]:
    """One prompt per line; blank lines and lines starting with # are skipped."""
    file = Path(path).expanduser()
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise MotionDirectorError(f"--prompts {path} does not exist: write one prompt per line in it.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MotionDirectorError(f"--prompts {path} could not be read as UTF-8 text ({exc}).") from exc
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise MotionDirectorError(f"--prompts {path} holds no prompts: write one per line.")
    return prompts


def sweep_command(args) -> None:
    prompts = read_prompts(args.prompts)
    p = noise_prior_strength(args)
    _check_exists([args.temporal_lora, args.spatial_lora], "LoRA source", LORA_SOURCE_FIX)
    temporal_scales = args.temporal_scales
    spatial_scales = args.spatial_scales or ([1.0] if args.spatial_lora else [0.0])
    if args.spatial_lora is None and spatial_scales != [0.0]:
        raise MotionDirectorError("--spatial-scales needs --spatial-lora (the appearance LoRA they scale).")
    if args.temporal_lora is None and temporal_scales != [1.0]:
        raise MotionDirectorError("--temporal-scales needs --temporal-lora (the motion LoRA they scale).")
    from .sweep import SweepSpec, run_sweep

    model = load_base(args)
    temporal = [load_lora(model, args.temporal_lora, "temporal", "temporal", 1.0)] if args.temporal_lora else []
    spatial = ([load_lora(model, args.spatial_lora, "spatial", "spatial", 1.0, args.spatial_clip)]
               if args.spatial_lora else [])
    spec = SweepSpec(prompts=prompts, temporal_scales=temporal_scales, spatial_scales=spatial_scales,
                     seeds=args.seeds, base=sample_settings(args, "", 0, p),
                     temporal_adapters=[lora.adapter for lora in temporal],
                     spatial_adapters=[lora.adapter for lora in spatial], fps=args.fps)
    total = len(prompts) * len(temporal_scales) * len(spatial_scales) * len(args.seeds)
    done = []

    def on_result(result, _frames):
        done.append(result)
        print(f"[{len(done)}/{total}] {result['video']}", flush=True)

    out = Path(args.out).expanduser()
    with CancelOnInterrupt("the sweep") as cancel:
        prior, reference = resolve_reference(model, args, p, cancel)
        # What the per-video records name only by adapter: where each LoRA came from.
        write_json(out / "sweep.json", {
            "motiondirector_core_version": __version__, "model": str(Path(model.path).resolve()),
            "loras": [dataclasses.asdict(lora) for lora in temporal + spatial], "reference": reference,
        })
        run_sweep(model, spec, out, reference_latents=prior, on_result=on_result, should_cancel=cancel)
    print(f"{len(done)} videos in {args.out} (index.json, index.csv)")
