"""Pretrain the small world's text-to-video model from nothing and save it as a diffusers folder.

Stages, each resumable from the work folder (a stage whose output is there is skipped; the UNet stage resumes from
its latest checkpoint):
1. vae: train the AutoencoderKL (or, with vae_from, take the one of a model trained with the same VAE settings) on toy frames (MSE weighted towards the shape, posterior sampled, small KL), then set
   its scaling factor to 1 / std of the toy world's latents; reports how well caption_eval reads reconstructions.
2. latents: encode every pretraining clip with the frozen VAE (posterior mean x scaling factor), once.
3. unet: train the UNet and the text encoder jointly on the v-prediction loss (AdamW, warm-up + cosine, EMA of the
   weights, 10% empty captions for classifier-free guidance; colour_dropout of the others name the shape alone).
   With text_encoder_from, the text encoder (and tokenizer) of that model is taken and kept frozen, as a real
   text-to-video model's CLIP is, and the UNet alone learns to read it.
4. save: the EMA weights (fp16), VAE, tokenizer, scheduler and model_index.json into `out`, loadable by load_model.
5. eval: caption_eval on a few prompts x seeds; the accuracies go into out/toyworld.json.

    pretrain(PretrainConfig(out="models/toyworld-t2v", device="cpu"))
"""

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import MotionDirectorError
from ..files import atomic_dir, write_json
from ..schedulers import scheduler_from_config
from . import architecture
from .clips import caption
from .dataset import ToyDataset, to_float, to_uint8
from .pretrain_state import EMA, Progress, StepTimer, learning_rate, load_checkpoint, save_checkpoint, step_generator
from .vocab import load_tokenizer, write_tokenizer

STAGES = ("vae", "latents", "unet", "save", "eval")
LOG_FILE = "pretrain_log.jsonl"
CALIBRATION_STEPS = 20  # with a time budget, the UNet steps are set from the mean time of this many steps
# ... and set again every this many steps from the wall time per step so far (logging and checkpoints included):
# the first steps alone ran 15% fast and a 57-minute budget became 64 minutes.
RECALIBRATE_EVERY = 250
BUDGET_RESERVE_S = 120.0  # kept for saving and the caption evaluation
INFO_FILE = "toyworld.json"
# Settings that change what a stage computes: a work folder only resumes a run that had the same ones.
# Work folders written before an option existed hold its value of then, not today's default.
FORMER_DEFAULTS = {"latent_factor": 4, "latent_channels": 4}
SIGNATURE = ("seed", "size", "frames", "variants", "latent_factor", "latent_channels", "vae_steps", "vae_batch",
             "vae_lr", "kl_weight", "shape_weight", "batch", "lr", "warmup", "weight_decay", "ema_decay",
             "caption_dropout", "colour_dropout", "grad_clip", "text_encoder_from")
# The settings a VAE depends on: a VAE taken from another model (vae_from) must have been trained with these.
VAE_SIGNATURE = ("seed", "size", "frames", "variants", "latent_factor", "latent_channels", "vae_steps", "vae_batch",
                 "vae_lr", "kl_weight", "shape_weight")


@dataclass
class PretrainConfig:
    out: str | Path = "models/toyworld-t2v"
    work: str | Path | None = None  # default: output/pretrain/<out's name>
    device: str = "cpu"
    seed: int = 0
    stages: tuple[str, ...] = STAGES
    size: int = architecture.SIZE
    frames: int = architecture.FRAMES
    variants: int = 16
    latent_factor: int = architecture.LATENT_FACTOR  # the VAE's downsampling: 8 (4x4 latents of 32x32 frames) or 4
    latent_channels: int = architecture.LATENT_CHANNELS
    vae_steps: int = 6000  # a factor-8 VAE needs them to draw a square's corners (2,000: 64% of shapes read right)
    vae_batch: int = 16
    vae_lr: float = 2e-3
    kl_weight: float = 1e-6
    shape_weight: float = 5.0  # extra MSE weight on the shape and a pixel around it (~5% of a frame)
    unet_steps: int = 2000
    minutes: float | None = None  # if set, the UNet stage takes as many steps as fit in this budget for the run
    extend: bool = False  # resuming a finished or budgeted UNet stage: raise its step total to unet_steps
    batch: int = 16
    lr: float = 5e-4
    warmup: int = 100
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    caption_dropout: float = 0.1
    # Share of the UNet's captions that name the shape alone ("a square moving left"): then the colour is a look
    # the text does not carry, as a real caption names a class and not this one's appearance.
    colour_dropout: float = 0.0
    grad_clip: float = 1.0
    checkpoint_minutes: float = 5.0
    eval_prompts: int = 15
    eval_seeds: int = 2
    eval_steps: int = 25
    eval_cfg: float = 7.5
    vae_from: str | Path | None = None  # a model folder whose VAE (trained with the same VAE settings) is reused
    # A model folder whose tokenizer and text encoder are taken and kept frozen. Trained jointly from nothing, the
    # shipped model's encoder came to give "left" and "right" the same hidden state (cosine 1.00 at that token).
    text_encoder_from: str | Path | None = None
    extra_info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.out = Path(self.out).expanduser()
        self.work = Path(self.work).expanduser() if self.work else Path("output") / "pretrain" / self.out.name
        self.stages = tuple(self.stages)
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown or not self.stages:
            raise MotionDirectorError(f"stages must be some of {', '.join(STAGES)}; got {list(self.stages)!r}.")
        for name in ("variants", "latent_channels", "vae_steps", "vae_batch", "unet_steps", "batch", "eval_prompts",
                     "eval_seeds", "eval_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MotionDirectorError(f"{name} must be a whole number of at least 1, got {value!r}.")
        for name in ("caption_dropout", "colour_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise MotionDirectorError(f"{name} must be a share between 0 and 1, got {value!r}.")
        if self.minutes is not None and not self.minutes > 0:
            raise MotionDirectorError(f"minutes must be positive, got {self.minutes!r}.")
        if self.latent_factor not in architecture.LATENT_FACTORS:
            factors = " or ".join(map(str, architecture.LATENT_FACTORS))
            raise MotionDirectorError(f"latent_factor must be {factors}, got {self.latent_factor!r}.")
        if self.size % self.latent_factor:
            raise MotionDirectorError(
                f"size must be a multiple of {self.latent_factor} (the VAE's factor), got {self.size}.")

    def signature(self) -> dict:
        values = {key: getattr(self, key) for key in SIGNATURE}
        return {key: str(value) if isinstance(value, Path) else value for key, value in values.items()}


def step_captions(named: torch.Tensor, shape_only: torch.Tensor, empty: int, cfg: PretrainConfig,
                  generator: torch.Generator) -> torch.Tensor:
    """One step's caption ids: caption_dropout of them empty, colour_dropout of the rest naming the shape alone."""
    dropped = torch.rand(len(named), generator=generator) < cfg.caption_dropout
    unnamed = torch.rand(len(named), generator=generator) < cfg.colour_dropout
    return torch.where(dropped, empty, torch.where(unnamed, shape_only, named))


def pretrain(config: PretrainConfig, printer=print) -> Path:
    """Run the configured stages; returns the model folder."""
    return _Run(config, printer).execute()


class _Run:
    def __init__(self, config: PretrainConfig, printer):
        self.cfg, self.work, self.device = config, Path(config.work), torch.device(config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise MotionDirectorError("device cuda was asked for but torch sees no CUDA GPU: use --device cpu.")
        self.started = time.time()
        self.deadline = self.started + config.minutes * 60 if config.minutes else None
        self.work.mkdir(parents=True, exist_ok=True)
        self.progress = Progress(self.work / LOG_FILE, printer)
        self.data = ToyDataset(config.size, config.frames, config.variants, config.seed)
        self._pixels = self._foreground = None
        self.frozen_text_encoder: Path | None = None  # text_encoder_from, once checked

    @property
    def frozen(self) -> bool:
        return self.cfg.text_encoder_from is not None

    def execute(self) -> Path:
        self._check_work_folder()
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        if self.frozen:
            self.frozen_text_encoder = self._text_encoder_source()
        tokenizer_dir = self.work / "tokenizer"
        if not (tokenizer_dir / "vocab.json").is_file():
            if self.frozen:
                shutil.copytree(self.frozen_text_encoder / "tokenizer", tokenizer_dir)
            else:
                write_tokenizer(tokenizer_dir, architecture.MAX_TOKENS)
        for stage in STAGES:
            if stage in self.cfg.stages:
                began = time.time()
                self.progress.say(f"== stage {stage}")
                getattr(self, f"_stage_{stage}")()
                self.progress.log({"stage": stage, "event": "done", "seconds": round(time.time() - began, 2)})
        return self.cfg.out

    def _check_work_folder(self) -> None:
        path = self.work / "config.json"
        wanted = self.cfg.signature()
        if path.is_file():
            held = json.loads(path.read_text())
            held = {**{k: FORMER_DEFAULTS.get(k, getattr(PretrainConfig, k)) for k in wanted}, **held}
            changed = {k: (held.get(k), v) for k, v in wanted.items() if held.get(k) != v}
            if changed:
                shown = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in changed.items())
                raise MotionDirectorError(
                    f"work folder {self.work} holds a run with other settings ({shown}): pass another --work "
                    f"or delete that folder to start again."
                )
        else:
            write_json(path, wanted)

    def _text_encoder_source(self) -> Path:
        """The text_encoder_from folder, checked: a CLIP text encoder and a tokenizer that reads every caption word
        as one token, as this world's own does."""
        from .vocab import caption_words

        model = Path(self.cfg.text_encoder_from).expanduser()
        if not (model / "text_encoder" / "config.json").is_file() or not (model / "tokenizer" / "vocab.json").is_file():
            raise MotionDirectorError(
                f"text_encoder_from {model} has no text_encoder/ and tokenizer/: pass a model folder made by "
                f"scripts/pretrain_toyworld.py, such as models/toyworld-t2v.")
        tokenizer = load_tokenizer(model / "tokenizer")
        split = [w for w in caption_words() if len(tokenizer(w, add_special_tokens=False).input_ids) != 1]
        if split:
            raise MotionDirectorError(
                f"the tokenizer of {model} does not read {', '.join(split[:5])} as one token each, as this world's "
                f"captions need: take the text encoder of a small-world model of today's captions.")
        return model

    def _text_encoder(self, tokenizer):
        """The fresh text encoder to train, or the frozen one of text_encoder_from."""
        if not self.frozen:
            return architecture.build_text_encoder(tokenizer)
        from transformers import CLIPTextModel

        encoder = CLIPTextModel.from_pretrained(self.frozen_text_encoder / "text_encoder", torch_dtype=torch.float32)
        return encoder.requires_grad_(False).eval()

    def _trained_parameters(self, unet, text_encoder) -> list:
        """What the optimizer and the EMA hold: the UNet's parameters, and the text encoder's unless it is frozen."""
        return list(unet.parameters()) + ([] if self.frozen else list(text_encoder.parameters()))

    # ---- data -----------------------------------------------------------------------------------------

    def pixels(self) -> torch.Tensor:
        if self._pixels is None:
            began = time.time()
            self._pixels = self.data.render()
            self._foreground = to_uint8(self.data.foreground(self._pixels))
            self.progress.say(f"rendered {len(self.data)} clips of {self.cfg.frames} frames at {self.cfg.size} px "
                              f"in {time.time() - began:.1f} s")
        return self._pixels

    def _require(self, path: Path, stage: str) -> Path:
        if not path.exists():
            raise MotionDirectorError(f"{path} is missing: run the '{stage}' stage first (or all stages).")
        return path

    # ---- stage 1: VAE ---------------------------------------------------------------------------------

    def _stage_vae(self) -> None:
        cfg, done = self.cfg, self.work / "vae"
        if (done / "config.json").is_file():
            self.progress.say(f"VAE already trained in {done}: reusing it")
            return
        if cfg.vae_from is not None:
            self._copy_vae(Path(cfg.vae_from).expanduser(), done)
            return
        torch.manual_seed(cfg.seed)
        vae = architecture.build_vae(cfg.latent_factor, cfg.latent_channels).to(self.device)
        optimizer = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
        checkpoint_path, start = self.work / "vae_checkpoint.pt", 0
        state = load_checkpoint(checkpoint_path)
        if state is not None:
            vae.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start = int(state["step"])
            self.progress.say(f"resuming the VAE at step {start}")
        pixels = self.pixels().flatten(0, 1)
        foreground = self._foreground.flatten(0, 1)
        vae.train()
        timer, last_save = StepTimer(), time.time()
        for step in range(start, cfg.vae_steps):
            began = time.time()
            g = step_generator(cfg.seed, "vae", step)
            index = torch.randint(len(pixels), (cfg.vae_batch,), generator=g)
            x = (to_float(pixels[index]).permute(0, 3, 1, 2) * 2.0 - 1.0).to(self.device)
            near_shape = F.max_pool2d(to_float(foreground[index])[:, None], 3, stride=1, padding=1)[:, 0]
            weight = (1.0 + cfg.shape_weight * near_shape).to(self.device)
            posterior = vae.encode(x).latent_dist
            z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=g).to(self.device)
            recon = vae.decode(z).sample
            mse = (((recon - x) ** 2).mean(1) * weight).mean()
            kl = posterior.kl().mean()
            loss = mse + cfg.kl_weight * kl
            lr = learning_rate(cfg.vae_lr, step, cfg.vae_steps, warmup=min(20, cfg.vae_steps))
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            timer.add(time.time() - began)
            losses = {"loss": loss.item(), "mse": mse.item(), "kl": kl.item()}
            self.progress.step("vae", step + 1, cfg.vae_steps, losses, lr, timer.last, timer.mean)
            if time.time() - last_save > cfg.checkpoint_minutes * 60 and step + 1 < cfg.vae_steps:
                save_checkpoint(checkpoint_path, {"model": vae.state_dict(), "optimizer": optimizer.state_dict(),
                                                  "step": step + 1})
                last_save = time.time()
        vae.eval()
        scale = self._latent_scale(vae)
        vae.register_to_config(scaling_factor=scale)
        readable = self._reconstruction_check(vae)
        shown = ", ".join(f"{k[6:]} {v:.0%}" for k, v in readable.items())
        self.progress.say(f"VAE scaling factor {scale:.4f}; caption_eval reads its reconstructions right: {shown}")
        self.progress.log({"stage": "vae", "event": "check", "scaling_factor": scale, **readable})
        with atomic_dir(done) as tmp:
            vae.save_pretrained(tmp)
        checkpoint_path.unlink(missing_ok=True)

    def _copy_vae(self, model: Path, done: Path) -> None:
        from diffusers import AutoencoderKL

        info_path = model / INFO_FILE
        if not (model / "vae" / "config.json").is_file() or not info_path.is_file():
            raise MotionDirectorError(
                f"vae_from {model} is not a small-world model folder (it needs vae/ and {INFO_FILE}): pass a folder "
                f"made by scripts/pretrain_toyworld.py, such as models/toyworld-t2v.")
        held = json.loads(info_path.read_text()).get("pretrain", {})
        held = {k: held.get(k, FORMER_DEFAULTS.get(k, getattr(PretrainConfig, k))) for k in VAE_SIGNATURE}
        changed = {k: (held[k], getattr(self.cfg, k)) for k in VAE_SIGNATURE if held[k] != getattr(self.cfg, k)}
        if changed:
            shown = ", ".join(f"{k}: {a} there, {b} here" for k, (a, b) in changed.items())
            raise MotionDirectorError(
                f"the VAE in {model} was trained with other settings ({shown}): leave out vae_from to train one, "
                f"or pass those settings.")
        vae = AutoencoderKL.from_pretrained(model / "vae", torch_dtype=torch.float32)
        with atomic_dir(done) as tmp:
            vae.save_pretrained(tmp)
        self.progress.say(f"VAE taken from {model} (scaling factor {vae.config.scaling_factor:.4f})")
        self.progress.log({"stage": "vae", "event": "copied", "from": str(model)})

    @torch.no_grad()
    def _latent_scale(self, vae) -> float:
        pixels = self.pixels()
        index = torch.randperm(len(pixels), generator=torch.Generator().manual_seed(self.cfg.seed))[:64]
        means = [self._encode(vae, pixels[chunk]) for chunk in index.split(32)]
        return float(1.0 / torch.cat(means).std())

    def _encode(self, vae, clips_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 [N, F, H, W, 3] -> unscaled posterior means [N, C, F, h, w]."""
        n, f = clips_uint8.shape[:2]
        x = to_float(clips_uint8.flatten(0, 1)).permute(0, 3, 1, 2).to(self.device) * 2.0 - 1.0
        mean = vae.encode(x).latent_dist.mean.float().cpu()
        return mean.view(n, f, *mean.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()

    @torch.no_grad()
    def _reconstruction_check(self, vae, count: int = 42) -> dict:
        """caption_eval's reading of VAE reconstructions of `count` clips: the ceiling for the whole model."""
        from .caption_eval import read_clip, score

        step = max(1, len(self.data) // count)
        hits = {"colour": 0, "shape": 0, "direction": 0, "all": 0}
        indices = list(range(0, len(self.data), step))[:count]
        for index in indices:
            x = to_float(self.pixels()[index]).permute(0, 3, 1, 2).to(self.device) * 2.0 - 1.0
            recon = vae.decode(vae.encode(x).latent_dist.mean).sample
            frames = ((recon.float().cpu() + 1.0) / 2.0).clamp(0, 1).permute(0, 2, 3, 1)
            for key, hit in score(self.data.specs[index].caption, read_clip(frames)).items():
                hits[key] += int(hit)
        return {f"recon_{k}": v / len(indices) for k, v in hits.items()}

    # ---- stage 2: latents -----------------------------------------------------------------------------

    @torch.no_grad()
    def _stage_latents(self) -> None:
        from diffusers import AutoencoderKL

        path = self.work / "latents.pt"
        if path.is_file():
            self.progress.say(f"latents already encoded in {path}: reusing them")
            return
        vae = AutoencoderKL.from_pretrained(self._require(self.work / "vae", "vae")).to(self.device).eval()
        began, pixels = time.time(), self.pixels()
        latents = torch.cat([self._encode(vae, pixels[i : i + 64]) for i in range(0, len(pixels), 64)])
        latents *= float(vae.config.scaling_factor)
        captions = sorted(set(self.data.captions))
        caption_ids = torch.tensor([captions.index(c) for c in self.data.captions])
        save_checkpoint(path, {"latents": latents, "caption_ids": caption_ids, "captions": captions})
        self.progress.say(f"encoded {len(latents)} clips to latents {list(latents.shape[1:])} "
                          f"(std {latents.std():.3f}, mean {latents.mean():.3f}) in {time.time() - began:.1f} s")

    # ---- stage 3: UNet + text encoder -----------------------------------------------------------------

    def _stage_unet(self) -> None:
        from diffusers import DDPMScheduler

        cfg = self.cfg
        data = load_checkpoint(self._require(self.work / "latents.pt", "latents"))
        latents, caption_ids, captions = data["latents"], data["caption_ids"], list(data["captions"])
        tokenizer = load_tokenizer(self.work / "tokenizer")
        # Each clip's caption with its colour left out sits after the full ones; the empty caption comes last.
        shape_only = sorted({caption(spec.shape, None, spec.motion) for spec in self.data.specs})
        shape_only_ids = torch.tensor([len(captions) + shape_only.index(caption(spec.shape, None, spec.motion))
                                       for spec in self.data.specs])
        tokens = tokenizer(captions + shape_only + [""], padding="max_length", max_length=architecture.MAX_TOKENS,
                           truncation=True, return_tensors="pt").input_ids
        empty = len(captions) + len(shape_only)
        torch.manual_seed(cfg.seed)
        unet = architecture.build_unet(cfg.latent_factor, cfg.latent_channels).to(self.device)
        text_encoder = self._text_encoder(tokenizer).to(self.device)
        params = self._trained_parameters(unet, text_encoder)
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        ema = EMA(params, cfg.ema_decay)
        checkpoint_path = self.work / "unet_checkpoint.pt"
        state, start, total, extended_from = load_checkpoint(checkpoint_path), 0, cfg.unet_steps, []
        if state is not None:
            unet.load_state_dict(state["unet"])
            text_encoder.load_state_dict(state["text_encoder"])
            optimizer.load_state_dict(state["optimizer"])
            ema.load_state_dict(state["ema"])
            start, total = int(state["step"]), int(state["total"])
            extended_from = list(state.get("extended_from", []))
            if cfg.extend and cfg.unet_steps > total:
                # A warm restart: the cosine schedule is stretched to the new total, so the rate rises again.
                self.progress.say(f"extending the UNet from {total} to {cfg.unet_steps} steps")
                self.progress.log({"stage": "unet", "event": "extend", "from": total, "to": cfg.unet_steps})
                extended_from.append(total)
                total = cfg.unet_steps
            if start >= total:
                self.progress.say(f"UNet already trained ({total} steps) in {checkpoint_path}: reusing it")
                return
            self.progress.say(f"resuming the UNet at step {start} of {total}")
        calibrate = self.deadline is not None and state is None
        scheduler = scheduler_from_config(DDPMScheduler, architecture.SCHEDULER_CONFIG)
        unet.train()
        if self.frozen:
            with torch.no_grad():
                encoded = text_encoder(tokens.to(self.device))[0]  # every caption once: the encoder never changes
        else:
            text_encoder.train()
        timer, last_save, step, unet_began = StepTimer(), time.time(), start, time.time()

        def save(step_done: int) -> None:
            save_checkpoint(checkpoint_path, {
                "unet": unet.state_dict(), "text_encoder": text_encoder.state_dict(),
                "optimizer": optimizer.state_dict(), "ema": ema.state_dict(), "step": step_done, "total": total,
                "extended_from": extended_from})

        while step < total:
            began = time.time()
            g = step_generator(cfg.seed, "unet", step)
            index = self.data.batch(cfg.batch, step)
            x0 = latents[index].to(self.device)
            noise = torch.randn(x0.shape, generator=g).to(self.device)
            t = torch.randint(scheduler.config.num_train_timesteps, (cfg.batch,), generator=g)
            ids = step_captions(caption_ids[index], shape_only_ids[index], empty, cfg, g)
            hidden = encoded[ids.to(self.device)] if self.frozen else text_encoder(tokens[ids].to(self.device))[0]
            t = t.to(self.device)
            noisy, target = scheduler.add_noise(x0, noise, t), scheduler.get_velocity(x0, noise, t)
            pred = unet(noisy, t, encoder_hidden_states=hidden).sample
            loss = F.mse_loss(pred.float(), target.float())
            lr = learning_rate(cfg.lr, step, total, warmup=min(cfg.warmup, total))
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            ema.update(step)
            step += 1
            timer.add(time.time() - began)
            if calibrate and step - start == CALIBRATION_STEPS:
                total = self._steps_that_fit(step, timer.mean)
            elif calibrate and (step - start) % RECALIBRATE_EVERY == 0 and step < total:
                total = self._steps_that_fit(step, (time.time() - unet_began) / (step - start))
            self.progress.step("unet", step, total, {"loss": loss.item(), "grad_norm": float(grad_norm)}, lr,
                               timer.last, timer.mean)
            if time.time() - last_save > cfg.checkpoint_minutes * 60 and step < total:
                save(step)
                last_save = time.time()
        save(step)

    def _steps_that_fit(self, step: int, per_step: float) -> int:
        left = self.deadline - time.time() - BUDGET_RESERVE_S
        total = max(step + 1, step + int(left / per_step))
        self.progress.say(f"time budget at step {step}: {per_step:.2f} s/step, {total} UNet steps fit in --minutes "
                          f"{self.cfg.minutes}")
        self.progress.log({"stage": "unet", "event": "budget", "step": step, "per_step": per_step, "total": total})
        return total

    # ---- stage 4: save --------------------------------------------------------------------------------

    def _stage_save(self) -> None:
        from diffusers import AutoencoderKL

        state = load_checkpoint(self._require(self.work / "unet_checkpoint.pt", "unet"))
        if int(state["step"]) < int(state["total"]):
            raise MotionDirectorError(
                f"the UNet stage stopped at step {state['step']} of {state['total']}: "
                f"run the 'unet' stage to finish it."
            )
        tokenizer_dir = self.work / "tokenizer"
        tokenizer = load_tokenizer(tokenizer_dir)
        unet = architecture.build_unet(self.cfg.latent_factor, self.cfg.latent_channels)
        text_encoder = self._text_encoder(tokenizer)
        params = self._trained_parameters(unet, text_encoder)
        ema = EMA(params, self.cfg.ema_decay)
        ema.load_state_dict(state["ema"])
        ema.copy_to(params)
        vae = AutoencoderKL.from_pretrained(self._require(self.work / "vae", "vae"))
        with atomic_dir(self.cfg.out) as tmp:
            unet.half().save_pretrained(tmp / "unet")
            vae.half().save_pretrained(tmp / "vae")
            text_encoder.half().save_pretrained(tmp / "text_encoder")
            shutil.copytree(tokenizer_dir, tmp / "tokenizer")
            architecture.build_scheduler().save_pretrained(tmp / "scheduler")
            architecture.write_model_index(tmp)
            info = self._info(unet, vae, text_encoder, int(state["total"]), list(state.get("extended_from", [])))
            write_json(tmp / INFO_FILE, info)
        size = sum(p.stat().st_size for p in Path(self.cfg.out).rglob("*") if p.is_file())
        self.progress.say(f"saved {self.cfg.out} ({size / 2**20:.1f} MiB)")
        self.progress.log({"stage": "save", "event": "saved", "bytes": size, "out": str(self.cfg.out)})

    def _info(self, unet, vae, text_encoder, unet_steps: int, extended_from: list[int]) -> dict:
        cfg = self.cfg
        settings = cfg.signature()
        return {
            "about": "MotionDirector's small-world text-to-video model, made by scripts/pretrain_toyworld.py",
            "native": {"size": cfg.size, "frames": cfg.frames, "fps": architecture.FPS},
            "sample": {"steps": cfg.eval_steps, "cfg": cfg.eval_cfg, "scheduler": "ddim"},
            "parameters": {name: architecture.parameter_count(m)
                           for name, m in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder))},
            "pretrain": {**settings, "unet_steps": unet_steps, "extended_from": extended_from,
                         **({"vae_from": str(cfg.vae_from)} if cfg.vae_from is not None else {}),
                         "device": str(self.device), "threads": torch.get_num_threads(), **cfg.extra_info},
        }

    # ---- stage 5: caption evaluation ------------------------------------------------------------------

    def _stage_eval(self) -> None:
        from ..models import load_model
        from ..video_io import write_image
        from .caption_eval import default_prompts, evaluate

        cfg = self.cfg
        model = load_model(self._require(cfg.out / "model_index.json", "save").parent, dtype="fp32", device=self.device)
        rows = []

        def on_sample(sample, video):
            rows.append(torch.cat(list(video), dim=1))
            mark = "ok" if sample["all"] else "WRONG"
            r = sample["reading"]
            twin = {True: "; the opposite word moves the other way", False: "; the opposite word moves the same way",
                    None: ""}[sample.get("opposite_word")]
            self.progress.say(f"  {sample['prompt']!r} seed {sample['seed']}: read {r['colour']} {r['shape']} "
                              f"{r['direction']} -> {mark}{twin}")

        report = evaluate(model, default_prompts(cfg.eval_prompts), seeds=tuple(range(cfg.eval_seeds)),
                          steps=cfg.eval_steps, cfg=cfg.eval_cfg, frames=cfg.frames, size=cfg.size,
                          on_sample=on_sample)
        write_json(self.work / "caption_eval.json", report)
        write_image(self.work / "caption_eval.png", torch.cat(rows, dim=0))
        info_path = cfg.out / INFO_FILE
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        info["caption_eval"] = {**report["accuracy"], "samples": len(report["samples"]), **report["settings"]}
        write_json(info_path, info)
        shown = ", ".join(f"{k} {v:.0%}" for k, v in report["accuracy"].items() if v is not None)
        self.progress.say(f"caption eval over {len(report['samples'])} samples: {shown}")
        self.progress.log({"stage": "eval", "event": "accuracy", **report["accuracy"]})
