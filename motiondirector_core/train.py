"""MotionDirector's dual-path trainer (METHOD.md, Training).

Each step draws one clip, one timestep and one noise tensor. The spatial path runs the UNet on one
random frame of those noisy latents with only the spatial LoRA on (temporal layers are identity on
one frame) and steps the spatial optimizer; the temporal path runs all frames with the temporal
LoRA trained and the spatial LoRA on but frozen (off on the skipped steps), on MSE plus the
appearance-debiased loss. Every random choice comes from one trainer-owned generator seeded from
the config (dropout from torch's RNG, seeded too and checkpointed), so a run resumed from a
checkpoint continues exactly as if it had never stopped.
"""

import contextlib
import copy
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from . import train_state
from .activation_checkpointing import disable_activation_checkpointing, enable_activation_checkpointing
from .clips import Clip
from .errors import Cancelled, MotionDirectorError
from .files import recover_interrupted_saves
from .losses import noise_mse, temporal_loss
from .lora import LoraWeights, active_scales, adapter_names, adapter_parameters, adapter_state, add_adapter
from .lora import remove_adapter, set_dropout, set_scales
from .models import BaseModel
from .sample import check_frames
from .train_config import TrainConfig, with_family_defaults
from .train_setup import PreparedClip, build_optimizer, effective_mode, plan_adapters, prepare_clips
from .train_setup import resolved_weight_decay

log = logging.getLogger(__name__)

LOG_FILE = "train_log.jsonl"
CONFIG_FILE = "config.yaml"
FINAL = "final"


@dataclass
class StepInfo:
    step: int
    total: int
    losses: dict[str, float]
    lrs: dict[str, float]
    seconds: float
    elapsed: float


@dataclass
class TrainCallbacks:
    on_step: Callable[[StepInfo], None] | None = None
    on_validation: Callable[[int, str, torch.Tensor], None] | None = None
    on_checkpoint: Callable[[int, Path], None] | None = None
    should_cancel: Callable[[], bool] | None = None


@dataclass
class TrainResult:
    output: Path
    final: Path
    files: dict[str, Path]
    steps: int
    log: Path


@dataclass
class _Draw:
    """One step's random choices, always drawn in the same order so that runs stay comparable."""

    clip: int
    flip: bool
    skip_spatial: bool
    timestep: int
    frame: int
    anchor: int
    noise: torch.Tensor = field(repr=False)


def train(model: BaseModel, clips: list[Clip], config: TrainConfig, callbacks: TrainCallbacks | None = None) -> TrainResult:
    """Train MotionDirector LoRAs on `clips` into config.output; see the module docstring and METHOD.md."""
    from .config import check_config

    config = with_family_defaults(check_config(config, "training config"), model.family.defaults)
    # ComfyUI runs nodes under inference_mode; training needs autograd. fork_rng keeps the caller's RNG as it was.
    devices = [model.device.index or 0] if model.device.type == "cuda" else []
    with torch.inference_mode(False), torch.enable_grad(), torch.random.fork_rng(devices=devices):
        return _Run(model, clips, config, callbacks or TrainCallbacks()).execute()


def _compiled(unet):
    """torch.compile of the UNet for the training passes. The wrapper shares the UNet's weights; validation and
    everything after training use the UNet itself. dynamic=False: the one-frame and whole-clip passes each get their
    own graph. fallback_random: dropout draws the same numbers as eager, so a run trains the same weights."""
    return torch.compile(unet, dynamic=False, options={"fallback_random": True})


class _Run:
    def __init__(self, model: BaseModel, clips: list[Clip], config: TrainConfig, callbacks: TrainCallbacks):
        from diffusers import DDPMScheduler

        self.model, self.unet, self.config, self.callbacks = model, model.unet, config, callbacks
        self.mode = effective_mode(config.train, clips)
        check_frames(model, max(clip.frames.shape[0] for clip in clips))
        self.output = Path(config.output).expanduser()
        self.log_path = self.output / LOG_FILE
        self.adapters = plan_adapters(self.mode, clips, config.spatial_per_clip)
        taken = sorted(set(self.adapters) & set(adapter_names(self.unet)))
        if taken:
            raise MotionDirectorError(
                f"the model already holds adapter(s) {taken} (from an earlier training run or a loaded LoRA): "
                f"reload the base model or remove those adapters before training."
            )
        for done in recover_interrupted_saves(self.output):  # a process killed while saving left these
            log.warning("%s: %s", self.output, done)
        self.resume = train_state.read_checkpoint(config.resume) if config.resume else None
        if self.resume is None:
            self._check_output_is_free()
        self.scheduler = DDPMScheduler.from_config({k: v for k, v in model.scheduler_config.items() if k[0] != "_"})
        self.train_timesteps = int(self.scheduler.config.num_train_timesteps)
        self.prediction = self.scheduler.config.prediction_type
        if self.prediction not in ("epsilon", "v_prediction"):
            raise MotionDirectorError(
                f"the model predicts {self.prediction!r}; training supports epsilon and v_prediction models."
            )
        self.weight_decay = resolved_weight_decay(config.weight_decay, clips)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.source_clips, self.flip = clips, config.hflip > 0 and self.mode != "temporal"
        self.clips = prepare_clips(model, clips, flip=self.flip)
        self.step, self.elapsed, self.saved_step, self.last_checkpoint = 0, 0.0, 0, None
        self.memory_checked = config.gradient_checkpointing is not None  # auto: the first step decides
        self.z_inv = None
        self.autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(config.precision)
        self.forward = _compiled(self.unet) if config.compile else self.unet

    # ---- set-up and tear-down -------------------------------------------------------------------

    def _check_output_is_free(self) -> None:
        used = [p.name for p in (self.output / FINAL, self.log_path) if p.exists()]
        used += [p.name for p in self.output.glob("checkpoint-*")] if self.output.is_dir() else []
        if used:
            raise MotionDirectorError(
                f"output folder {self.output} already holds a training run ({', '.join(sorted(used)[:3])}): "
                f"choose another output folder, or set resume to one of its checkpoints to continue it."
            )

    def _add_adapters(self) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)  # LoRA down-projections start random
        for name, kind in self.adapters.items():
            feed_forward = kind != "temporal" or cfg.motion_layers == "all"
            add_adapter(self.unet, self.model.family, name, kind, rank=cfg.rank, alpha=cfg.alpha, dropout=cfg.dropout,
                        feed_forward=feed_forward)
            set_dropout(self.unet, name, cfg.dropout, cfg.dropout_placement)
            for param in adapter_parameters(self.unet, name):
                param.data = param.data.float()  # trained in fp32 whatever the base dtype
        self.params = {name: adapter_parameters(self.unet, name) for name in self.adapters}
        self.optimizers = {name: build_optimizer(cfg.optimizer, self.params[name], self._lr(name), self.weight_decay)
                           for name in self.adapters}
        # fp16 anywhere in the graph (autocast, or the frozen base's weights) can underflow gradients to zero or
        # overflow them to inf: every optimizer then steps through a GradScaler, the spatial ones too.
        half = cfg.precision == "fp16" or self.model.dtype == torch.float16
        self.scalers = {name: torch.amp.GradScaler(self.model.device.type, enabled=half) for name in self.adapters}
        torch.manual_seed(cfg.seed)  # the dropout stream, the same whichever adapters were created
        if self.resume is not None:
            self._load_resume()

    def _load_resume(self) -> None:
        ckpt, cfg = self.resume, self.config
        saved = {name: weights.kind for name, weights in ckpt.adapters.items()}
        if saved != self.adapters:
            raise MotionDirectorError(
                f"checkpoint {ckpt.folder} holds adapters {saved}, this config trains {self.adapters}: resume with "
                f"the settings it was trained with (train mode, spatial_per_clip, clips) or start a new run."
            )
        for name, weights in ckpt.adapters.items():
            if weights.rank != cfg.rank or not math.isclose(weights.alpha, cfg.alpha or cfg.rank):
                raise MotionDirectorError(
                    f"checkpoint {ckpt.folder} has rank {weights.rank} / alpha {weights.alpha} for {name}, the config "
                    f"says rank {cfg.rank} / alpha {cfg.alpha or cfg.rank}: set them to the checkpoint's values."
                )
            train_state.copy_adapter_weights(self.unet, self.model.family, name, weights)
        if ckpt.step > cfg.steps:
            raise MotionDirectorError(
                f"checkpoint {ckpt.folder} is at step {ckpt.step}, beyond steps={cfg.steps}: set steps higher to continue."
            )
        try:
            train_state.restore_state(ckpt.state, self.optimizers, self.scalers, self.generator)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise MotionDirectorError(
                f"the optimizer state in {ckpt.folder} does not fit this run ({exc}): resume with its optimizer settings."
            ) from exc
        self.step = self.saved_step = ckpt.step
        self.elapsed = float(ckpt.state.get("elapsed", 0.0))
        self.last_checkpoint = ckpt.folder

    def _start_log(self) -> None:
        from .config import write_config

        resolved = replace(self.config, weight_decay=self.weight_decay, device=str(self.model.device), train=self.mode,
                           dtype=self.model.dtype_name)
        write_config(self.output / CONFIG_FILE, resolved)
        lines = []
        if self.resume is not None:
            source = self.log_path if self.log_path.is_file() else self.resume.folder.parent / LOG_FILE
            lines = train_state.read_log(source, self.step)
        train_state.start_log(self.log_path, lines)

    def execute(self) -> TrainResult:
        model, unet = self.model, self.unet
        was_training, scales_before = unet.training, active_scales(unet)
        # Latents and embeddings are cached: the encoders can leave the training device (if they are on it).
        offloaded = (self.config.cache_encodings and model.device.type != "cpu"
                     and next(model.vae.parameters()).device == model.device)
        if offloaded:
            model.offload_encoders()
        self.encoders_offloaded = offloaded
        if self.config.gradient_checkpointing:
            enable_activation_checkpointing(unet)
        succeeded = False
        try:
            self._add_adapters()
            self._start_log()
            unet.train()
            self._loop()
            final = self._save(self.output / FINAL)
            succeeded = True
        finally:
            disable_activation_checkpointing(unet)
            unet.train(was_training)
            if offloaded:
                model.onload_encoders()
            self._finish(succeeded, scales_before)
        files = {name: train_state.adapter_file(final, name) for name in self.adapters}
        return TrainResult(self.output, final, files, self.step, self.log_path)

    def _finish(self, succeeded: bool, scales_before: dict[str, float]) -> None:
        ours = [name for name in self.adapters if name in adapter_names(self.unet)]
        if not succeeded:  # the checkpoints on disk hold the results; the model goes back as it was
            for name in ours:
                remove_adapter(self.unet, name)
            set_scales(self.unet, {n: s for n, s in scales_before.items() if n in adapter_names(self.unet)})
            return
        for name in ours:
            set_dropout(self.unet, name, 0.0)
        motion_only = self.mode == "both"
        trained = {name: 1.0 for name, kind in self.adapters.items() if not (motion_only and kind == "spatial")}
        set_scales(self.unet, {**scales_before, **trained})

    # ---- the loop --------------------------------------------------------------------------------

    def _loop(self) -> None:
        cfg, callbacks = self.config, self.callbacks
        every, valid_every = cfg.checkpoint_every, cfg.validation.every
        while self.step < cfg.steps:
            if callbacks.should_cancel is not None and callbacks.should_cancel():
                self._cancel()
            started = time.perf_counter()
            losses = self._train_step() if self.memory_checked else self._first_step()
            seconds = time.perf_counter() - started
            self.elapsed += seconds
            info = StepInfo(self.step, cfg.steps, losses, {n: self._lr(n) for n in self.adapters}, seconds, self.elapsed)
            record = {k: getattr(info, k) for k in ("step", "losses", "lrs", "seconds", "elapsed")}
            train_state.append_log(self.log_path, record)
            if callbacks.on_step is not None:
                callbacks.on_step(info)
            if every and self.step % every == 0 and self.step < cfg.steps:
                self._save(self.output / f"checkpoint-{self.step}")
            if valid_every and cfg.validation.prompts and self.step % valid_every == 0:
                try:
                    self._validate()
                except Cancelled:
                    self._cancel()

    def _first_step(self) -> dict[str, float]:
        """The first step of an auto-checkpointing run: without checkpointing, or, out of GPU memory, again from
        the same state (weights, optimizers, random streams) with it on."""
        saved = self._snapshot()
        try:
            losses = self._train_step()
        except torch.cuda.OutOfMemoryError:
            self._restore(saved)
            for optimizer in self.optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            log.warning("out of GPU memory at step %d without gradient checkpointing: taking the step again with "
                        "it on, for the rest of the run (set gradient_checkpointing to choose)", self.step + 1)
            enable_activation_checkpointing(self.unet)
            losses = self._train_step()
        self.memory_checked = True
        return losses

    def _snapshot(self) -> tuple[dict, dict]:
        state = train_state.capture_state(self.step, self.elapsed, self.adapters, self.optimizers, self.scalers,
                                          self.generator)
        params = {name: [p.detach().clone() for p in params] for name, params in self.params.items()}
        return copy.deepcopy(state), params  # deep: the optimizers update their state tensors in place

    def _restore(self, saved: tuple[dict, dict]) -> None:
        state, params = saved
        train_state.restore_state(state, self.optimizers, self.scalers, self.generator)
        self.step = state["step"]
        with torch.no_grad():
            for name, values in params.items():
                for param, value in zip(self.params[name], values):
                    param.copy_(value)

    def _draw(self) -> _Draw:
        g = self.generator
        clip = int(torch.randint(len(self.clips), (1,), generator=g))
        flip, skip = (float(u) for u in torch.rand(2, generator=g))
        timestep = int(torch.randint(self.train_timesteps, (1,), generator=g))
        frames = self.clips[clip].latents.shape[2]
        frame, anchor = (int(i) for i in torch.randint(frames, (2,), generator=g))
        noise = torch.randn(self.clips[clip].latents.shape, generator=g)
        return _Draw(clip, flip < self.config.hflip, skip < self.config.spatial_skip_prob, timestep, frame, anchor, noise)

    def _train_step(self) -> dict[str, float]:
        if not self.config.cache_encodings:
            self.clips = prepare_clips(self.model, self.source_clips, flip=self.flip)
        d = self._draw()
        clip: PreparedClip = self.clips[d.clip]
        latents = clip.flipped if d.flip and clip.flipped is not None else clip.latents
        noise = d.noise.to(latents.device)
        t = torch.tensor([d.timestep], device=latents.device, dtype=torch.long)
        noisy = self.scheduler.add_noise(latents, noise, t)
        target = noise if self.prediction == "epsilon" else self.scheduler.get_velocity(latents, noise, t)
        spatial = next((n for n in self.adapters if n in (f"spatial_{d.clip}", "spatial")), None)
        temporal = next((n for n in self.adapters if n in ("temporal", "coupled")), None)
        run_temporal = temporal is not None and not clip.is_image
        run_spatial = spatial is not None and (not run_temporal or not d.skip_spatial)
        losses = {}
        self.step += 1

        def spatial_pass():
            f = slice(d.frame, d.frame + 1)
            # The temporal LoRA lives in temporal layers only, the identity on one frame: left on, it changes
            # nothing here and spares switching every temporal layer off and on again each step.
            active = {spatial: 1.0, **({temporal: 1.0} if temporal == "temporal" else {})}
            losses.update(self._pass(spatial, active, noisy[:, :, f], target[:, :, f], clip, t))

        def temporal_pass():
            active = {temporal: 1.0, **({spatial: 1.0} if run_spatial else {})}
            anchor = d.anchor if temporal == "temporal" and self.config.beta > 0 else None
            losses.update(self._pass(temporal, active, noisy, target, clip, t, anchor))

        passes = [spatial_pass] * run_spatial + [temporal_pass] * run_temporal
        if self.config.update_order == "reference":
            # The reference runs both forward passes, then steps both: its temporal pass sees the spatial LoRA as it
            # was before this step's update. Running the temporal pass first is the same, since the spatial pass
            # never sees the temporal LoRA (every temporal layer is the identity on one frame).
            passes.reverse()
        for run_pass in passes:
            run_pass()
        # The log and the progress lines name the spatial loss first, whichever pass ran first.
        return dict(sorted(losses.items(), key=lambda item: not item[0].startswith("spatial")))

    def _pass(self, name, active, noisy, target, clip, t, anchor=None) -> dict[str, float]:
        """Forward, backward and optimizer step of adapter `name` with the `active` adapters on; its losses."""
        set_scales(self.unet, active)  # freezes every adapter ...
        for param in self.params[name]:
            param.requires_grad_(True)  # ... so only the one this loss trains gets gradients
        autocast = (torch.autocast(noisy.device.type, dtype=self.autocast_dtype) if self.autocast_dtype
                    else contextlib.nullcontext())
        with autocast:
            pred = self.forward(noisy.to(self.model.dtype), t, encoder_hidden_states=clip.embedding,
                                return_dict=False)[0]
        key = "spatial" if name.startswith("spatial") else name
        if anchor is None:
            loss, losses = noise_mse(pred, target), {}
        else:
            loss, ad = temporal_loss(pred, target, self.config.beta, anchor)
            losses = {f"{key}_ad": float(ad.detach())}
        losses = {key: float(loss.detach()), **losses}
        if not math.isfinite(losses[key]):
            kept = "no checkpoint was saved yet"
            if self.last_checkpoint:
                kept = f"the last good checkpoint {self.last_checkpoint} is kept"
            raise MotionDirectorError(
                f"the {name} loss is {losses[key]} at step {self.step}: training stopped without saving these weights; "
                f"{kept}. Lower the learning rate, use fp32 or bf16 precision, or check the clips."
            )
        optimizer, scaler = self.optimizers[name], self.scalers[name]
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        for param in self.params[name]:
            param.requires_grad_(False)
        return losses

    def _lr(self, name: str) -> float:
        return self.config.lr_spatial if name.startswith("spatial") else self.config.lr_temporal

    # ---- saving, cancel, validation -------------------------------------------------------------

    def _save(self, folder: Path) -> Path:
        state = train_state.capture_state(
            self.step, self.elapsed, self.adapters, self.optimizers, self.scalers, self.generator
        )
        weights = {name: (LoraWeights(kind, adapter_state(self.unet, name)), self._metadata(name))
                   for name, kind in self.adapters.items()}
        train_state.write_checkpoint(folder, weights, state)
        self.saved_step, self.last_checkpoint = self.step, folder
        if self.callbacks.on_checkpoint is not None:
            self.callbacks.on_checkpoint(self.step, folder)
        return folder

    def _metadata(self, name: str) -> dict:
        clip_index = int(name.split("_")[1]) if name.startswith("spatial_") else None
        reference = self.clips[clip_index] if clip_index is not None else self.clips[0]
        videos = [c for c in self.clips if not c.is_image]
        frames, height, width = reference.frames, reference.height, reference.width
        if clip_index is None and videos:
            frames, height, width = videos[0].frames, videos[0].height, videos[0].width
        prompts = list(dict.fromkeys(c.prompt for c in self.clips))
        return dict(
            base_family=self.model.family.name, base_model=self.model.name, frames=frames, width=width, height=height,
            **self._sampling_record(clip_index), steps=self.step, seed=self.config.seed, train_mode=self.mode,
            alpha=self.config.alpha,
            prompt=reference.prompt if clip_index is not None else " | ".join(prompts),
            noise_prior=0.5 if len(videos) == 1 else 0.0, clip_index=clip_index,
            motion_layers=self.config.motion_layers if self.adapters[name] == "temporal" else None,
        )

    def _reference_video(self, clip_index: int | None) -> Clip | None:
        clips = [self.source_clips[clip_index]] if clip_index is not None else self.source_clips
        return next((c for c in clips if not c.is_image), None)

    def _sampling_record(self, clip_index: int | None) -> dict:
        """How the frames trained on were taken from the video (by fps or by stride, or an IMAGE batch as given) and
        their real-time rate where known: a video made with this LoRA shows the motion at its speed at that rate."""
        clip = self._reference_video(clip_index)
        if clip is None:
            return {}
        sampling = clip.sampling
        record = dict(frame_rate=f"{clip.frame_rate:.4g}" if clip.frame_rate else None)
        if sampling is None:
            return dict(sampling="as given", **record)
        if sampling.fps is None:
            return dict(sampling="stride", stride=sampling.stride, **record)
        return dict(sampling="fps", fps=f"{sampling.fps:g}", **record)

    def _cancel(self) -> None:
        if self.step > self.saved_step:
            self._save(self.output / f"checkpoint-{self.step}")
        where = "nothing was saved"
        if self.last_checkpoint:
            where = f"checkpoint {self.last_checkpoint} is kept (resume from it)"
        raise Cancelled(f"training cancelled at step {self.step}/{self.config.steps}; {where}.")

    def _validate(self) -> None:
        """Sample each validation prompt with the adapters so far; a failure is a warning, not the end of training."""
        from .sample import SampleSettings, generate
        from .video_io import write_video

        v, model, unet = self.config.validation, self.model, self.unet
        defaults = model.family.defaults
        reference = next((c for c in self.clips if not c.is_image), self.clips[0])
        # In spatial-only training the spatial LoRA is the one to look at, whatever spatial_scale says.
        spatial_scale = v.spatial_scale if self.mode != "spatial" or v.spatial_scale else 1.0
        scales = {name: (spatial_scale if kind == "spatial" else v.temporal_scale) for name, kind in self.adapters.items()
                  if kind != "spatial" or name in ("spatial", "spatial_0")}
        was_training, offloaded = unet.training, self.encoders_offloaded
        devices = [model.device.index or 0] if model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            try:
                unet.eval()
                set_scales(unet, {n: s for n, s in scales.items() if s})
                if offloaded:
                    model.onload_encoders()
                for i, prompt in enumerate(v.prompts):
                    settings = SampleSettings(
                        prompt=prompt, frames=v.frames or reference.frames, width=v.width or reference.width,
                        height=v.height or reference.height, steps=v.steps or defaults.sample_steps,
                        cfg=defaults.cfg if v.cfg is None else v.cfg, seed=v.seed,
                        noise_prior=v.noise_prior,
                    )
                    try:
                        prior = self._noise_prior(reference) if v.noise_prior > 0 else None
                        frames = generate(
                            model, settings, reference_latents=prior, should_cancel=self.callbacks.should_cancel
                        )
                        if self.callbacks.on_validation is not None:
                            self.callbacks.on_validation(self.step, prompt, frames)
                        video = self.output / "samples" / f"step-{self.step}-{i}.mp4"
                        write_video(video, frames, fps=self._video_fps())
                    except Cancelled:
                        raise
                    except Exception as exc:  # noqa: BLE001 -- a bad sample must not cost the training run
                        log.warning(
                            "validation sample %d (%r) at step %d failed, training goes on: %s", i, prompt, self.step, exc
                        )
            finally:
                unet.train(was_training)
                if offloaded:
                    model.offload_encoders()

    def _video_fps(self) -> float:
        clip = self._reference_video(None)
        return float(clip.frame_rate) if clip is not None and clip.frame_rate else 8.0

    def _noise_prior(self, reference: PreparedClip) -> torch.Tensor:
        """z_inv of the first video (DDIM inversion with the base model), computed once per run."""
        from .invert import ddim_invert

        if self.z_inv is None:
            self.z_inv = ddim_invert(self.model, reference.latents, steps=50).float().cpu()
        return self.z_inv
