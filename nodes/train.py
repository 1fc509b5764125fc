"""Train MotionDirector LoRAs inside ComfyUI, with progress, previews, cancel and checkpoints on disk."""

from pathlib import Path

import comfy.model_management
import comfy.utils
from comfy_api.latest import io

from ..motiondirector_core.errors import MotionDirectorError
from ..motiondirector_core.lora import adapter_names, remove_adapter
from ..motiondirector_core.lora_files import latest_checkpoint, read_lora_source
from ..motiondirector_core.pipeline import LoraSet
from ..motiondirector_core.train import TrainCallbacks
from ..motiondirector_core.train import train as train_lora  # `train` is also an input's name
from ..motiondirector_core.train_config import MOTION_LAYERS, TRAIN_MODES, TrainConfig, ValidationConfig
from . import paths
from .progress import cancel_requested, frame_preview, interruptible, update_keeping_checkpoints
from .types import CATEGORY, Clips, Lora, Pipeline


CHECKPOINTING = {"auto": None, "on": True, "off": False}  # the widget's choices -> TrainConfig.gradient_checkpointing


def run_folder(run_name: str, resume: bool) -> tuple[Path, Path | None]:
    """The run's folder and the checkpoint to resume from; a used name gets a counter unless resuming."""
    folder = paths.output_path(run_name, "", "run_name")
    if resume:
        return folder, latest_checkpoint(folder)
    candidate, n = folder, 1
    while candidate.exists() and any(candidate.iterdir()):
        candidate, n = folder.with_name(f"{folder.name}_{n:03d}"), n + 1
    return candidate, None


class TrainProgress:
    """Advances the bar every step, shows the latest validation frame, and keeps the loss curve."""

    def __init__(self, steps: int):
        self.bar = comfy.utils.ProgressBar(steps)
        self.total = steps
        self.losses: list[float] = []
        self.preview = None
        self.last_frames = None

    def on_step(self, info) -> None:
        main = next((info.losses[k] for k in ("temporal", "coupled", "spatial") if k in info.losses), None)
        if main is not None:
            self.losses.append(float(main))
        self.total = info.total
        update_keeping_checkpoints(self.bar, info.step, info.total, self.preview)

    def on_validation(self, step, prompt, frames) -> None:
        self.last_frames = frames
        self.preview = frame_preview(frames[frames.shape[0] // 2])
        update_keeping_checkpoints(self.bar, step, self.total, self.preview)  # validation follows its step's update


class TrainMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MD_TrainMotion",
            display_name="Train MotionDirector",
            category=f"{CATEGORY}/train",
            description=("Learns a motion (temporal LoRA) and the clips' appearance (spatial LoRA) with MotionDirector's "
                         "dual-path training. Checkpoints go to output/motiondirector/<run_name>/."),
            inputs=[
                Pipeline.Input("pipeline", tooltip="The base model; it is not changed (the LoRAs come out separately)."),
                Clips.Input("clips", tooltip="One clip, several clips of the same motion, or images (appearance)."),
                io.Combo.Input("train", options=list(TRAIN_MODES), default="both", tooltip=(
                    "both: motion + appearance (the method); spatial: appearance only; temporal: motion only; "
                    "coupled: one LoRA on all layers (the paper's baseline).")),
                io.Int.Input("steps", default=150, min=1, max=100000, tooltip=(
                    "Training steps: 50-150 for one video, 300-500 for several (ZeroScope); about 300 a video "
                    "(AnimateDiff).")),
                io.Float.Input("lr_spatial", default=5e-4, min=0.0, max=1.0, step=1e-5, round=False,
                               tooltip="Learning rate of the appearance LoRA: 5e-4 (ZeroScope), 1e-4 (AnimateDiff)."),
                io.Float.Input("lr_temporal", default=5e-4, min=0.0, max=1.0, step=1e-5, round=False,
                               tooltip="Learning rate of the motion LoRA: 5e-4 (both families)."),
                io.Int.Input("rank", default=32, min=1, max=1024, tooltip=(
                    "LoRA rank: 32 in the paper (ZeroScope); 64 for AnimateDiff at 384-512 px, 32 at 256 px.")),
                io.Float.Input("beta", default=1.0, min=0.0, max=10.0, step=0.1, tooltip=(
                    "Appearance-debiased loss: how much of one anchor frame is subtracted from every frame before "
                    "prediction and noise are compared, phi(e) = sqrt(beta^2+1)*e - beta*e[anchor] (1 in the "
                    "method). Not a weight: that loss is always added at weight 1. 0 turns it off.")),
                io.Combo.Input("motion_layers", options=list(MOTION_LAYERS), default="all", tooltip=(
                    "Layers of the motion LoRA. all: every temporal-transformer layer (the method); attention: "
                    "without the feed-forward layers, which carry most of the clips' look into new subjects.")),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=False,
                             tooltip="Same seed and inputs, same LoRAs."),
                io.Combo.Input("precision", options=["auto", "fp32", "bf16", "fp16"], default="auto", tooltip=(
                    "Autocast of the forward passes; auto: the base model's dtype (bf16 on a GPU that has it). "
                    "Whenever fp16 is involved (autocast or base weights) the losses are scaled against underflow.")),
                io.Combo.Input("gradient_checkpointing", options=list(CHECKPOINTING), default="auto", tooltip=(
                    "Recompute activations in the backward pass: less GPU memory, about 30% slower. auto: off, "
                    "and on for the rest of the run if the first step runs out of GPU memory.")),
                io.Boolean.Input("compile", default=False, tooltip=(
                    "torch.compile the UNet for training: the first steps take minutes to compile, later steps can "
                    "be faster on a GPU. Same results.")),
                io.Boolean.Input("spatial_per_clip", default=False,
                                 tooltip="Several clips: one appearance LoRA per clip instead of one shared."),
                io.Int.Input("checkpoint_every", default=50, min=0, max=100000,
                             tooltip="Save a resumable checkpoint every N steps (0: only at the end)."),
                io.String.Input("validation_prompt", default="", multiline=True,
                                tooltip="Sampled every validation_every steps to watch progress (empty: none)."),
                io.Int.Input("validation_every", default=0, min=0, max=100000, tooltip="0: no validation samples."),
                io.String.Input("run_name", default="my_motion",
                                tooltip="Folder under output/motiondirector; a used name gets a number."),
                io.Boolean.Input("resume", default=False,
                                 tooltip="Continue the latest checkpoint of run_name instead of starting anew."),
            ],
            outputs=[
                Lora.Output(display_name="lora"),
                io.Custom("LOSS_MAP").Output(display_name="loss"),
                io.Image.Output(display_name="validation"),
            ],
        )

    @classmethod
    def execute(cls, pipeline, clips, train, steps, lr_spatial, lr_temporal, rank, beta, motion_layers, seed,
                precision, gradient_checkpointing, compile, spatial_per_clip, checkpoint_every, validation_prompt,
                validation_every, run_name, resume) -> io.NodeOutput:
        model = pipeline.model
        if precision == "auto":
            precision = model.dtype_name  # the base's own: bf16 under bf16, fp16 under fp16 (loss-scaled)
        if not clips:
            raise MotionDirectorError("no training clips: connect Load Clips or Clips from Images.")
        output, checkpoint = run_folder(run_name, resume)
        first = clips[0].frames
        prompts = [line.strip() for line in validation_prompt.splitlines() if line.strip()]
        config = TrainConfig(
            **model.source.config_fields(), clips=[c.source for c in clips], output=str(output), train=train, steps=steps,
            rank=rank, lr_spatial=lr_spatial, lr_temporal=lr_temporal, beta=beta, motion_layers=motion_layers,
            seed=seed, precision=precision, gradient_checkpointing=CHECKPOINTING[gradient_checkpointing],
            compile=compile, spatial_per_clip=spatial_per_clip,
            checkpoint_every=checkpoint_every, width=first.shape[2], height=first.shape[1], frames=first.shape[0],
            dtype=model.dtype_name,
            resume=str(checkpoint) if checkpoint else None,
            validation=ValidationConfig(prompts=prompts, every=validation_every if prompts else 0, seed=seed),
        )
        comfy.model_management.unload_all_models()
        comfy.model_management.soft_empty_cache()
        progress = TrainProgress(steps)
        callbacks = TrainCallbacks(on_step=progress.on_step, on_validation=progress.on_validation,
                                   should_cancel=cancel_requested)
        with interruptible():
            result = train_lora(model, clips, config, callbacks)
        for name in result.files:  # the LoRAs leave as files and values; the shared model stays as it came
            if name in adapter_names(model.unet):
                remove_adapter(model.unet, name)
        pipeline.activate()
        # A cancel during the last step: the final LoRAs are on disk; stop now, as ComfyUI would before the next node.
        comfy.model_management.throw_exception_if_processing_interrupted()
        lora = LoraSet(tuple(read_lora_source(result.final)), str(result.final))
        frames = progress.last_frames if progress.last_frames is not None else first
        return io.NodeOutput(lora, {"loss": progress.losses}, frames)
