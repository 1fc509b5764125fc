"""Every setting of a training run, with the method's defaults (METHOD.md). Settings left None take the base
model family's own defaults (families/, `with_family_defaults`): size, frames, steps, learning rates and rank."""

import dataclasses
from dataclasses import dataclass, field

TRAIN_MODES = ("both", "spatial", "temporal", "coupled")
# spatial_first: the spatial LoRA steps before the temporal pass, which then sees it updated; reference: the temporal
# pass sees it as the step began (the reference trainer runs both forward passes, then steps both).
UPDATE_ORDERS = ("spatial_first", "reference")
DROPOUT_PLACEMENTS = ("input", "output")  # peft's B(A(drop(x))), or the reference's drop(B(A(x)))
PRECISIONS = ("fp32", "fp16", "bf16")
# all: the motion LoRA on every temporal-transformer Linear (the method); attention: without the feed-forward ones,
# which carry most of the reference look that leaks into new subjects (bench/motion_quality.py).
MOTION_LAYERS = ("all", "attention")


@dataclass
class ValidationConfig:
    prompts: list[str] = field(default_factory=list)
    every: int = 0  # steps between validation samples; 0 = none
    frames: int | None = None  # None: the training frames / size
    width: int | None = None
    height: int | None = None
    steps: int | None = None  # None: the family's (ModelScope 30, AnimateDiff 25)
    cfg: float | None = None  # None: the family's (ModelScope 12, AnimateDiff 7.5)
    spatial_scale: float = 0.0
    temporal_scale: float = 1.0
    noise_prior: float = 0.0
    seed: int = 0


@dataclass
class TrainConfig:
    model: str = ""  # a diffusers folder; or, for single files:
    checkpoint: str = ""  # an SD 1.5 checkpoint (AnimateDiff) ...
    motion_module: str = ""  # ... with its motion module
    vae: str = ""  # ... and optionally a separate VAE
    clips: list[str] = field(default_factory=list)
    prompt: str = ""  # shared prompt; a clip's sidecar <name>.txt wins over it
    output: str = "output/motiondirector/run"
    train: str = "both"  # both | spatial | temporal | coupled
    steps: int | None = None  # None: the family's (ModelScope 150, AnimateDiff 300)
    rank: int | None = None  # None: the family's (ModelScope 32, AnimateDiff 64)
    alpha: float | None = None  # None: = rank (no extra alpha/r factor)
    dropout: float = 0.1
    dropout_placement: str = "input"  # DROPOUT_PLACEMENTS
    lr_spatial: float | None = None  # None: the family's (ModelScope 5e-4, AnimateDiff 1e-4)
    lr_temporal: float | None = None  # None: the family's (5e-4)
    weight_decay: float | None = None  # None: 1e-2 for one video, 1e-4 for several videos or images
    # The appearance-debiased loss compares phi(e) = sqrt(beta^2 + 1) * e - beta * e[anchor frame] of prediction and
    # noise: beta is the share of the anchor frame subtracted (1 in the method); the term itself always has weight 1,
    # added to the plain MSE. 0 turns the debiased term off.
    beta: float = 1.0
    spatial_skip_prob: float = 0.2  # share of steps without the spatial path
    update_order: str = "spatial_first"  # UPDATE_ORDERS
    motion_layers: str = "all"  # all | attention (MOTION_LAYERS)
    spatial_per_clip: bool = False  # several clips: one spatial LoRA per clip instead of one shared
    hflip: float = 0.5  # images only: probability of a horizontal flip
    width: int | None = None  # None: the family's (ModelScope 384, AnimateDiff 512)
    height: int | None = None
    frames: int | None = None  # None: the family's (16)
    stride: int = 1
    # Videos are read at 8 fps of real time (the reference's configs), whatever their own rate; None: every
    # stride-th frame. A config or command line that sets stride but not fps means stride.
    fps: float | None = 8.0
    start: int = 0
    random_start: bool = False
    resize: str = "crop"  # crop | squash
    repeat_short: bool = False
    seed: int = 0
    dtype: str | None = None  # frozen base weights; None: paired with precision (base_dtype)
    precision: str = "fp32"  # autocast for the forward passes: fp32 | fp16 | bf16
    # None (auto): off, unless the first step runs out of GPU memory; then that step is taken again from the same
    # state with checkpointing on, which stays on. True / False force it.
    gradient_checkpointing: bool | None = None
    # False: encode every clip (VAE) and prompt (text encoder) again at each step, as the reference trainer does;
    # same results, slower. The speed benchmark's plain baseline.
    cache_encodings: bool = True
    # torch.compile the UNet's training forward: the first steps of each path compile (minutes), later ones may be
    # faster on a GPU (on these CPUs it gained nothing, README). Results equal eager within float rounding.
    compile: bool = False
    optimizer: str = "adamw"  # adamw | adamw8bit
    checkpoint_every: int = 50  # 0 = only the final weights
    device: str | None = None
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    resume: str | None = None


def base_dtype(config: TrainConfig) -> str:
    """The frozen base's dtype for a run: as set, else the autocast precision's own (a bf16 base under bf16
    autocast, fp16 under fp16; fp32 otherwise), so that no run mixes two half formats by default."""
    return config.dtype or config.precision


FAMILY_DEFAULTS = {"width": "width", "height": "height", "frames": "frames", "steps": "train_steps", "rank": "rank",
                   "lr_spatial": "lr_spatial", "lr_temporal": "lr_temporal"}


def with_family_defaults(config: TrainConfig, defaults) -> TrainConfig:
    """`config` with each setting left None set to the family's default (`defaults`: a FamilyDefaults)."""
    missing = {name: getattr(defaults, source) for name, source in FAMILY_DEFAULTS.items()
               if getattr(config, name) is None}
    return dataclasses.replace(config, **missing) if missing else config
