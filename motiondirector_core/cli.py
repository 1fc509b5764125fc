"""The command line: `python -m motiondirector_core {train,generate,invert,sweep,evaluate,export} ...`.

Other tools script against it: a MotionDirectorError prints `error: <message>` on stderr and exits 2
(as argparse usage errors do), a cancel (Ctrl-C) exits 130, anything else is a bug with its traceback.
Heavy modules (torch, diffusers) are imported only once a command runs, so `--help` is instant.
"""

import argparse
import logging
import os
import shlex
import sys
import time
from pathlib import Path

from . import __version__
from .cli_common import (CancelOnInterrupt, format_duration, model_files, model_flags, reference_sampling,
                         resolve_device)
from .errors import Cancelled, MotionDirectorError
from .train_config import MOTION_LAYERS, PRECISIONS, TRAIN_MODES  # plain dataclasses: no torch

FAMILY_DEFAULT = " (default: the model family's; ModelScope {m}, AnimateDiff {a})"  # a test checks the numbers
# The names in sample.SCHEDULERS (a test keeps them equal), listed here so that --help needs no torch.
SCHEDULER_NAMES = ("ddim", "dpm++2m", "euler", "euler_a", "unipc")


# ---- train ---------------------------------------------------------------------------------------

TRAIN_OVERRIDES = (
    "model", "checkpoint", "motion_module", "vae", "clips", "prompt", "output", "train", "steps", "rank", "alpha",
    "dropout", "lr_spatial",
    "lr_temporal", "weight_decay", "beta", "motion_layers", "spatial_per_clip", "width", "height", "frames",
    "stride", "fps", "start", "resize", "seed", "dtype", "precision", "gradient_checkpointing", "cache_encodings",
    "compile", "optimizer", "checkpoint_every", "device", "resume", "validation_prompts", "validation_every",
)


def train_config_from_args(args):
    """The config file (if any) with every flag that was given laid over it."""
    from .config import apply_overrides, load_config
    from .train_config import TrainConfig

    config = load_config(args.config) if args.config else TrainConfig()
    overrides = {name: getattr(args, name) for name in TRAIN_OVERRIDES}
    if args.lr is not None:
        overrides["lr_spatial"] = overrides["lr_spatial"] if args.lr_spatial is not None else args.lr
        overrides["lr_temporal"] = overrides["lr_temporal"] if args.lr_temporal is not None else args.lr
    config = apply_overrides(config, "command line", **overrides)
    if not config.model and not config.checkpoint:
        raise MotionDirectorError(
            "no model given: pass --model DIR (a diffusers text-to-video folder), or --checkpoint FILE with "
            "--motion-module FILE (AnimateDiff), or set them in --config."
        )
    if not config.clips:
        raise MotionDirectorError(
            "no clips given: pass --clips PATH [PATH ...] (videos, images or folders) or set 'clips' in --config."
        )
    return config


def sampling_for(config):
    from .clips import FrameSampling

    return FrameSampling(
        frames=config.frames, stride=config.stride, fps=config.fps, start=config.start,
        random_start=config.random_start, width=config.width, height=config.height, resize=config.resize,
        repeat_short=config.repeat_short, seed=config.seed,
    )


class StepPrinter:
    """One line every `every` steps (and the first and last): step, losses, seconds per step, time left."""

    def __init__(self, every: int):
        self.every, self.window = max(1, every), []

    def __call__(self, info) -> None:
        self.window.append(info.seconds)
        if info.step % self.every and info.step not in (1, info.total):
            return
        per_step = sum(self.window) / len(self.window)
        self.window = []
        losses = "  ".join(f"{name} {value:.4f}" for name, value in info.losses.items())
        left = format_duration(per_step * (info.total - info.step))
        print(f"step {info.step}/{info.total}  {losses}  {per_step:.2f} s/step  left {left}", flush=True)


def run_train(args) -> None:
    from .clips import read_clips
    from .models import find_family, load_model
    from .train import TrainCallbacks, train
    from .train_config import base_dtype, with_family_defaults

    config = train_config_from_args(args)
    source = model_files(config)
    family = find_family(**source)  # a wrong model path fails before the clips are decoded
    config = with_family_defaults(config, family.defaults)  # size and frames decide how the clips are read
    clips = read_clips(config.clips, sampling_for(config), config.prompt or None)
    print(f"{len(clips)} clip(s): {', '.join(c.source for c in clips[:4])}{' ...' if len(clips) > 4 else ''}")
    model = load_model(**source, dtype=base_dtype(config), device=resolve_device(config.device))
    every = args.log_every or max(1, min(10, config.steps // 10))
    with CancelOnInterrupt("training") as cancel:
        callbacks = TrainCallbacks(
            on_step=StepPrinter(every),
            on_checkpoint=lambda step, folder: print(f"saved step {step}: {folder}", flush=True),
            should_cancel=cancel,
        )
        result = train(model, clips, config, callbacks)
    print(f"done: {result.steps} steps in {result.output}")
    for name, path in result.files.items():
        print(f"  {name}: {path}")
    flag = "--temporal-lora" if {"temporal", "coupled"} & set(result.files) else "--spatial-lora"
    if args.export:
        from .exports import export_run

        for path in export_run(model.family, result.final, Path(args.export).expanduser()):
            print(f"  exported: {path}")
    print("generate with: " + shlex.join(["python", "-m", "motiondirector_core", "generate", *model_flags(source),
                                          flag, str(result.final), "--prompt", "...", "--out", "video.mp4"]))


# ---- invert --------------------------------------------------------------------------------------


def run_invert(args) -> None:
    from .cli_inference import invert_reference, load_base
    from .invert import save_noise

    if not args.out.lower().endswith(".safetensors"):
        raise MotionDirectorError(f"--out {args.out} must end in .safetensors (inverted latents are safetensors).")
    model = load_base(args)
    with CancelOnInterrupt("the inversion") as cancel:
        prior = invert_reference(model, args.clip, args.frames, args.width, args.height, args.steps,
                                 cache_dir=None, should_cancel=cancel, **reference_sampling(args.stride, args.fps))
    save_noise(args.out, prior)
    size = f"{prior.frames} frames, {prior.width}x{prior.height}, {prior.steps} steps"
    print(f"inverted {args.clip} ({size}): {args.out}")


# ---- the parser ----------------------------------------------------------------------------------


def _add_verbose(parser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="log more (-v: progress details, -vv: debug)")


def _add_model(parser, required: bool) -> None:
    group = parser.add_argument_group("base model: a diffusers folder, or single files (AnimateDiff)")
    group.add_argument("--model", metavar="DIR", help="diffusers model folder: ZeroScope / ModelScope (e.g. "
                                                      "zeroscope_v2_576w), or AnimateDiff with motion_adapter/")
    group.add_argument("--checkpoint", metavar="FILE", help="a Stable Diffusion 1.5 checkpoint (.safetensors / "
                                                            ".ckpt, as in ComfyUI's models/checkpoints)")
    group.add_argument("--motion-module", metavar="FILE", help="its AnimateDiff motion module (mm_sd_v15_v2, "
                                                               "v3_sd15_mm ...: models/animatediff_models)")
    group.add_argument("--vae", metavar="FILE", help="a separate VAE for the checkpoint (optional: models/vae)")
    parser.set_defaults(model_required=required)


def _add_runtime(parser, dtype_help: str) -> None:
    parser.add_argument("--dtype", choices=PRECISIONS, help=dtype_help)
    parser.add_argument("--device", help="torch device, e.g. cuda, cuda:1, cpu (default: cuda when available)")


def _add_sampling(parser) -> None:
    group = parser.add_argument_group("sampling")
    add = group.add_argument
    add("--negative-prompt", metavar="TEXT", default="", help="negative prompt (default: empty, as the method)")
    add("--frames", type=int, metavar="N", help="frames to generate" + FAMILY_DEFAULT.format(m=16, a=16))
    add("--width", type=int, metavar="N", help="width in pixels, a multiple of 8" + FAMILY_DEFAULT.format(m=384, a=512))
    add("--height", type=int, metavar="N",
        help="height in pixels, a multiple of 8" + FAMILY_DEFAULT.format(m=384, a=512))
    add("--steps", type=int, metavar="N", help="denoising steps" + FAMILY_DEFAULT.format(m=30, a=25))
    add("--cfg", type=float, metavar="X", help="classifier-free guidance scale" + FAMILY_DEFAULT.format(m=12, a=7.5))
    add("--scheduler", metavar="NAME", default="ddim", help=f"one of {', '.join(SCHEDULER_NAMES)} (default ddim)")
    add("--fps", type=float, metavar="X", default=8.0, help="frame rate of the written video (default 8)")
    add("--reference", metavar="CLIP_OR_NOISE",
        help="noise prior source: a video/image (DDIM-inverted, cached) or a saved noise .safetensors")
    add("--noise-prior", type=float, metavar="P",
        help="noise prior strength 0..1 (needs --reference; default 0.5 with one)")
    add("--inversion-steps", type=int, metavar="N", default=50,
        help="DDIM inversion steps for --reference (default 50)")
    add("--reference-fps", type=float, metavar="X", default=8.0,
        help="read a --reference video at this many frames per second, as training does (default 8; 0: every frame)")
    add("--inversion-cache", metavar="DIR",
        help="where inverted references are cached (default ~/.cache/motiondirector/inversions)")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train MotionDirector LoRAs on reference clips",
                       description="Train spatial (appearance) and temporal (motion) LoRAs. Every flag overrides "
                                   "the --config file; without one, --model, --clips and --output are needed.")
    _add_verbose(p)
    p.add_argument("--config", metavar="FILE.yaml", help="YAML config: ours (TrainConfig keys) or the reference repo's")
    _add_model(p, required=False)
    p.add_argument("--clips", nargs="+", metavar="PATH", help="videos, images or folders of them")
    p.add_argument("--prompt", metavar="TEXT", help="prompt describing the clips (a <clip>.txt beside a clip wins)")
    p.add_argument("--steps", type=int, metavar="N", help="training steps" + FAMILY_DEFAULT.format(m=150, a=300))
    p.add_argument("--output", metavar="DIR", help="run folder for checkpoints and the final LoRAs")
    p.add_argument("--train", choices=TRAIN_MODES, help="what to train (default both)")
    p.add_argument("--rank", type=int, metavar="N", help="LoRA rank" + FAMILY_DEFAULT.format(m=32, a=64))
    p.add_argument("--alpha", type=float, metavar="X", help="LoRA alpha (default: = rank)")
    p.add_argument("--dropout", type=float, metavar="X", help="LoRA dropout while training (default 0.1)")
    p.add_argument("--width", type=int, metavar="N", help="training width" + FAMILY_DEFAULT.format(m=384, a=512))
    p.add_argument("--height", type=int, metavar="N", help="training height" + FAMILY_DEFAULT.format(m=384, a=512))
    p.add_argument("--frames", type=int, metavar="N", help="frames per clip" + FAMILY_DEFAULT.format(m=16, a=16))
    p.add_argument("--stride", type=int, metavar="N",
                   help="take every stride-th frame instead of sampling at --fps (given alone, it turns --fps off)")
    p.add_argument("--fps", type=float, metavar="X",
                   help="read videos at this many frames per second of real time (default 8, as the reference; "
                        "never faster than a clip's own rate); 0: every --stride-th frame")
    p.add_argument("--start", type=int, metavar="N", help="first frame to take (default 0)")
    p.add_argument("--resize", choices=("crop", "squash"), help="fit frames by center crop or by stretching")
    p.add_argument("--seed", type=int, metavar="N", help="random seed (default 0)")
    p.add_argument("--resume", metavar="DIR", help="continue a run: its folder (latest checkpoint) or one checkpoint")
    p.add_argument("--lr", type=float, metavar="X", help="learning rate of both LoRAs")
    p.add_argument("--lr-spatial", type=float, metavar="X",
                   help="learning rate of the spatial LoRA" + FAMILY_DEFAULT.format(m="5e-4", a="1e-4"))
    p.add_argument("--lr-temporal", type=float, metavar="X",
                   help="learning rate of the temporal LoRA" + FAMILY_DEFAULT.format(m="5e-4", a="5e-4"))
    p.add_argument("--weight-decay", type=float, metavar="X",
                   help="AdamW weight decay (default 1e-2 one video, 1e-4 several)")
    p.add_argument("--beta", type=float, metavar="X",
                   help="share of the anchor frame that the appearance-debiased loss subtracts inside "
                        "phi(e) = sqrt(beta^2 + 1) e - beta e[anchor] (default 1, as the method; 0 turns that loss "
                        "off). The debiased term always has weight 1")
    p.add_argument("--motion-layers", choices=MOTION_LAYERS,
                   help="layers of the motion (temporal) LoRA: all (default) or attention (no feed-forward: less of "
                        "the reference's look in new subjects)")
    p.add_argument("--spatial-per-clip", action=argparse.BooleanOptionalAction, default=None,
                   help="several clips: one spatial LoRA per clip instead of one shared")
    p.add_argument("--precision", choices=PRECISIONS, help="autocast precision of the forward passes (default fp32)")
    p.add_argument("--optimizer", choices=("adamw", "adamw8bit"), help="optimizer (default adamw)")
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                   help="force gradient checkpointing on or off (default auto: on only if a step runs out of GPU "
                        "memory without it)")
    p.add_argument("--cache-encodings", action=argparse.BooleanOptionalAction, default=None,
                   help="encode clips and prompts once (default); --no-cache-encodings re-encodes them every step, "
                        "as the reference trainer does")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the UNet for training: minutes of compiling first, then faster steps on some "
                        "GPUs (default off)")
    p.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="steps between checkpoints (default 50, 0 = final only)")
    p.add_argument("--validation-prompt", dest="validation_prompts", action="append", metavar="TEXT",
                   help="validation prompt (repeat the flag for several)")
    p.add_argument("--validation-every", type=int, metavar="N", help="steps between validation samples (0 = none)")
    p.add_argument("--log-every", type=int, metavar="N", help="print a progress line every N steps")
    p.add_argument("--export", metavar="MODELS_DIR",
                   help="also write the LoRAs in the formats other tools read, into MODELS_DIR's folders (ComfyUI's "
                        "models/: AnimateDiff's motion LoRA into animatediff_motion_lora/, its appearance LoRA into "
                        "loras/)")
    _add_runtime(p, "dtype of the frozen base weights (default: that of --precision, e.g. a bf16 base under bf16)")
    p.set_defaults(run=run_train)


def run_generate(args) -> None:
    from .cli_inference import generate_command

    generate_command(args)


def run_sweep(args) -> None:
    from .cli_inference import sweep_command

    sweep_command(args)


def run_evaluate(args) -> None:
    from .cli_evaluate import evaluate_command

    evaluate_command(args)


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="generate a video with motion (temporal) and appearance (spatial) LoRAs",
                       description="Generate one video; FILE.json beside it records every setting used.")
    _add_verbose(p)
    _add_model(p, required=True)
    p.add_argument("--prompt", metavar="TEXT", required=True, help="what to generate")
    p.add_argument("--out", required=True, metavar="FILE.mp4", help="video to write (.mp4, .webm, .mov, .mkv, .gif)")
    p.add_argument("--temporal-lora", metavar="PATH",
                   help="motion LoRA: our file, a checkpoint or run folder, or the authors' .pt file or folder")
    p.add_argument("--temporal-scale", type=float, metavar="X", default=1.0,
                   help="strength of the motion LoRA (default 1)")
    p.add_argument("--spatial-lora", nargs="+", default=[], metavar="PATH", help="appearance LoRA source(s)")
    p.add_argument("--spatial-scale", nargs="+", type=float, default=[1.0], metavar="Y",
                   help="strength of each spatial LoRA, or one for all (default 1)")
    p.add_argument("--spatial-clip", type=int, metavar="N", default=0,
                   help="for sources with one spatial LoRA per training clip: which clip's (default 0)")
    p.add_argument("--seed", type=int, metavar="N", default=0, help="random seed (default 0)")
    p.add_argument("--side-by-side", metavar="CLIP",
                   help="also write FILE_side_by_side.png: this clip's frames above the generated ones")
    p.add_argument("--side-by-side-stride", type=int, metavar="N", default=1,
                   help="take every N-th frame of the --side-by-side clip (default 1)")
    _add_sampling(p)
    _add_runtime(p, "model dtype (default bf16 on a CUDA GPU that has it, else fp16; fp32 on CPU)")
    p.set_defaults(run=run_generate)


def _add_invert(sub) -> None:
    p = sub.add_parser("invert", help="DDIM-invert a reference clip into a noise prior file",
                       description="DDIM-invert a clip with the base model (no LoRA, empty prompt, no guidance).")
    _add_verbose(p)
    _add_model(p, required=True)
    p.add_argument("--clip", metavar="PATH", required=True, help="reference video or image")
    p.add_argument("--out", required=True, metavar="NOISE.safetensors", help="noise file to write")
    p.add_argument("--steps", type=int, metavar="N", default=50, help="DDIM inversion steps (default 50)")
    p.add_argument("--frames", type=int, metavar="N",
                   help="frames to take from the clip" + FAMILY_DEFAULT.format(m=16, a=16))
    p.add_argument("--fps", type=float, metavar="X",
                   help="read the clip at this many frames per second, as training does (default 8; 0: --stride)")
    p.add_argument("--stride", type=int, metavar="N", help="take every stride-th frame instead of sampling by --fps")
    p.add_argument("--width", type=int, metavar="N", help="width in pixels" + FAMILY_DEFAULT.format(m=384, a=512))
    p.add_argument("--height", type=int, metavar="N",
                   help="height in pixels" + FAMILY_DEFAULT.format(m=384, a=512))
    _add_runtime(p, "model dtype (default bf16 on a CUDA GPU that has it, else fp16; fp32 on CPU)")
    p.set_defaults(run=run_invert)


def _add_sweep(sub) -> None:
    p = sub.add_parser("sweep", help="a grid of videos: prompts x LoRA scales x seeds",
                       description="Generate every prompt x temporal scale x spatial scale x seed into --out, "
                                   "each video with its settings JSON, plus index.json and index.csv.")
    _add_verbose(p)
    _add_model(p, required=True)
    p.add_argument("--prompts", required=True, metavar="FILE", help="text file, one prompt per line (# comments)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the videos and the index")
    p.add_argument("--temporal-lora", metavar="PATH", help="motion LoRA source")
    p.add_argument("--spatial-lora", metavar="PATH", help="appearance LoRA source")
    p.add_argument("--spatial-clip", type=int, metavar="N", default=0,
                   help="which clip's spatial LoRA, for per-clip sources")
    p.add_argument("--temporal-scales", nargs="+", type=float, default=[1.0], metavar="X", help="default: 1")
    p.add_argument("--spatial-scales", nargs="+", type=float, metavar="Y",
                   help="default: 1 with --spatial-lora, else 0")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="SEED", help="default: 0")
    _add_sampling(p)
    _add_runtime(p, "model dtype (default bf16 on a CUDA GPU that has it, else fp16; fp32 on CPU)")
    p.set_defaults(run=run_sweep)


def run_export(args) -> None:
    from .exports import export_run

    for path in export_run(None, Path(args.lora).expanduser(), Path(args.models_dir).expanduser(), args.name):
        print(f"wrote {path}")


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write LoRAs in the formats other tools read (AnimateDiff-Evolved, ComfyUI)",
                       description="Write a run's LoRAs in the formats of the tools users already run, into the "
                                   "folders of ComfyUI's models/: for AnimateDiff, the motion LoRA for "
                                   "AnimateDiff-Evolved's Load AnimateDiff LoRA (animatediff_motion_lora/) and the "
                                   "appearance LoRA for ComfyUI's Load LoRA (loras/).")
    _add_verbose(p)
    p.add_argument("--lora", required=True, metavar="PATH", help="a LoRA file, a checkpoint or a run folder")
    p.add_argument("--models-dir", required=True, metavar="DIR", help="ComfyUI's models folder")
    p.add_argument("--name", metavar="NAME", help="file name stem (default: the run's name)")
    p.set_defaults(run=run_export)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="score generated videos against reference clips (motion, appearance)",
                       description="Motion fidelity of generated videos against reference clips (point tracks, "
                                   "both ways) and, for the small world, the object's trajectory, text alignment "
                                   "and appearance leakage. A folder stands for every video in it.")
    _add_verbose(p)
    p.add_argument("--generated", nargs="+", required=True, metavar="PATH", help="generated videos or folders")
    p.add_argument("--reference", nargs="+", required=True, metavar="PATH", help="reference videos or folders")
    p.add_argument("--reference-stride", type=int, metavar="N", default=1,
                   help="take every N-th reference frame, as training did (default 1)")
    p.add_argument("--reference-frames", type=int, metavar="N", default=0,
                   help="take the first N of those (default 0: all)")
    p.add_argument("--prompt", metavar="TEXT", default="",
                   help="the generation's prompt: its colour and shape give text alignment and leakage")
    p.add_argument("--reference-prompt", metavar="TEXT", default="",
                   help="the references' caption (default: their look is read from the frames)")
    p.add_argument("--out", metavar="REPORT.json", help="write the whole report here")
    p.set_defaults(run=run_evaluate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m motiondirector_core",
        description="MotionDirector: customize the motion of text-to-video models with spatial and temporal LoRAs.",
    )
    parser.add_argument("--version", action="version", version=f"motiondirector_core {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v, -vv)")
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{train,generate,invert,sweep,evaluate,export}")
    _add_train(sub)
    _add_generate(sub)
    _add_invert(sub)
    _add_sweep(sub)
    _add_evaluate(sub)
    _add_export(sub)
    return parser


def configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    if verbose <= 0:  # the hub libraries' weight-loading bars; read when they are first imported
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("motiondirector_core").setLevel(level)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    started = time.perf_counter()
    try:
        args.run(args)
    except Cancelled as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return 130
    except MotionDirectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        return 130
    logging.getLogger(__name__).info("%s took %s", args.command, format_duration(time.perf_counter() - started))
    return 0
