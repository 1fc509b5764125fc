#!/usr/bin/env python
"""Pretrain the small world's text-to-video model from nothing into a diffusers folder.

    python scripts/pretrain_toyworld.py --out models/toyworld-t2v --minutes 57   # the shipped model: CPU, 2 threads
    python scripts/pretrain_toyworld.py --device cuda --steps 20000              # on a GPU: more steps, minutes
    python scripts/pretrain_toyworld.py --stages eval                            # re-run the caption evaluation
    python scripts/pretrain_toyworld.py --extend --steps 8000                    # train a finished model on

Stages (all by default, in this order): vae, latents, unet, save, eval. Work files (checkpoints, latents, the
JSONL log, caption_eval.json/png) go to --work (default output/pretrain/<name of --out>); running the same
command again resumes where it stopped. With --minutes the UNet stage takes as many steps as fit in the budget
for the whole run; without it, --steps (see motiondirector_core/toyworld/pretrain.py for what each stage does).
"""

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from motiondirector_core.errors import MotionDirectorError  # noqa: E402
from motiondirector_core.toyworld.architecture import LATENT_FACTORS  # noqa: E402
from motiondirector_core.toyworld.pretrain import STAGES, PretrainConfig  # noqa: E402

DEFAULTS = PretrainConfig()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="models/toyworld-t2v", help="model folder to write (replaced if present)")
    parser.add_argument("--work", default=None, help="work folder for checkpoints and logs (resumes from it)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    parser.add_argument("--steps", type=int, default=DEFAULTS.unet_steps, help="UNet + text encoder steps")
    parser.add_argument("--extend", action="store_true",
                        help="resuming a finished UNet stage: train on to --steps (a warm restart of the schedule)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="budget for the whole run: the UNet stage takes the steps that fit (overrides --steps)")
    parser.add_argument("--latent-factor", type=int, choices=sorted(LATENT_FACTORS), default=DEFAULTS.latent_factor,
                        help="the VAE's downsampling: 8 (4x4 latents, the shipped model) or 4 (8x8: a UNet step "
                             "costs about three times as much)")
    parser.add_argument("--latent-channels", type=int, default=DEFAULTS.latent_channels,
                        help="latent channels of the VAE (default 16; the factor-4 model had 4)")
    parser.add_argument("--vae-steps", type=int, default=DEFAULTS.vae_steps)
    parser.add_argument("--vae-lr", type=float, default=DEFAULTS.vae_lr)
    parser.add_argument("--vae-batch", type=int, default=DEFAULTS.vae_batch, help="frames per VAE step")
    parser.add_argument("--batch", type=int, default=DEFAULTS.batch, help="clips per UNet step")
    parser.add_argument("--lr", type=float, default=DEFAULTS.lr)
    parser.add_argument("--variants", type=int, default=DEFAULTS.variants,
                        help="seeded variants of every shape x colour x motion x background")
    parser.add_argument("--colour-dropout", type=float, default=DEFAULTS.colour_dropout,
                        help="share of captions that name the shape alone, leaving the colour to the pixels (0..1)")
    parser.add_argument("--vae-from", default=None,
                        help="reuse the VAE of this model folder (trained with the same VAE settings) instead of "
                             "training one, e.g. models/toyworld-t2v")
    parser.add_argument("--text-encoder-from", default=None,
                        help="take the tokenizer and text encoder of this model folder and keep them frozen, as a "
                             "real model's CLIP is (the UNet alone trains), e.g. output/candidates/toyworld-t2v-first")
    parser.add_argument("--checkpoint-minutes", type=float, default=DEFAULTS.checkpoint_minutes)
    parser.add_argument("--eval-prompts", type=int, default=DEFAULTS.eval_prompts)
    parser.add_argument("--eval-seeds", type=int, default=DEFAULTS.eval_seeds)
    parser.add_argument("--eval-cfg", type=float, default=DEFAULTS.eval_cfg)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from motiondirector_core.toyworld.pretrain import pretrain

    torch.set_num_threads(max(1, args.threads))
    command = "python scripts/pretrain_toyworld.py " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        config = PretrainConfig(
            out=args.out, work=args.work, device=args.device, seed=args.seed,
            stages=tuple(s.strip() for s in args.stages.split(",") if s.strip()), unet_steps=args.steps,
            minutes=args.minutes, extend=args.extend, latent_factor=args.latent_factor,
            latent_channels=args.latent_channels, vae_steps=args.vae_steps, vae_batch=args.vae_batch,
            vae_lr=args.vae_lr,
            batch=args.batch, lr=args.lr, variants=args.variants, colour_dropout=args.colour_dropout,
            vae_from=args.vae_from, text_encoder_from=args.text_encoder_from,
            checkpoint_minutes=args.checkpoint_minutes, eval_prompts=args.eval_prompts, eval_seeds=args.eval_seeds,
            eval_cfg=args.eval_cfg, extra_info={"command": command.strip()},
        )
        began = time.time()
        out = pretrain(config, printer=lambda line: print(line, flush=True))
    except MotionDirectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"done in {(time.time() - began) / 60:.1f} min: {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
