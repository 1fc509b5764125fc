"""A base model plus a stack of LoRAs with their scales, as an immutable value.

Node graphs (and any caller that keeps several variants around) must not mutate a loaded model:
applying LoRAs returns a new `Pipeline` that shares the base weights. `activate()` makes the shared
UNet match the stack just before it is used: each LoRA is loaded once as an adapter named by its
content, then exactly the stack's adapters are switched on at their scales.
"""

from dataclasses import dataclass, field

import torch

from .errors import MotionDirectorError
from .lora import LoraWeights, adapter_names, load_adapter, remove_adapter, set_dropout, set_scales
from .models import BaseModel

ADAPTER_PREFIX = "md-"
MAX_CACHED_ADAPTERS = 8  # loaded adapters kept for other pipelines that share this UNet
ALL_APPEARANCES = -1  # appearance_index: every per-clip spatial LoRA, averaged


@dataclass(frozen=True, eq=False)
class LoraSet:
    """The LoRAs one source provides: a training run, a checkpoint, a file, the authors' release."""

    loras: tuple[LoraWeights, ...]
    source: str = ""

    @property
    def motion(self) -> list[LoraWeights]:
        return [w for w in self.loras if w.kind in ("temporal", "coupled")]

    @property
    def appearance(self) -> list[LoraWeights]:
        return [w for w in self.loras if w.kind == "spatial"]

    def describe(self) -> str:
        kinds = [w.kind for w in self.loras]
        parts = [f"{kinds.count(k)} {k}" for k in ("temporal", "spatial", "coupled") if k in kinds]
        return f"{self.source or 'LoRA set'}: {', '.join(parts) or 'nothing'}"


@dataclass(frozen=True, eq=False)
class StackEntry:
    weights: LoraWeights
    scale: float


@dataclass(frozen=True, eq=False)
class Pipeline:
    model: BaseModel
    stack: tuple[StackEntry, ...] = field(default=())

    def with_loras(
        self, lora_set: LoraSet, motion_scale: float = 1.0, appearance_scale: float = 0.0, appearance_index: int = 0
    ) -> "Pipeline":
        """A new pipeline with `lora_set` added: its motion LoRA at `motion_scale`, its spatial LoRA at
        `appearance_scale`. A run with one spatial LoRA per training clip holds several: `appearance_index` picks
        one clip's look; ALL_APPEARANCES blends them, their mean (each at appearance_scale / N), not their sum."""
        appearance = lora_set.appearance
        share = 1.0
        if appearance_index == ALL_APPEARANCES:
            share = 1.0 / max(1, len(appearance))
        elif not 0 <= appearance_index < max(1, len(appearance)):
            raise MotionDirectorError(
                f"{lora_set.describe()} has {len(appearance)} spatial LoRA(s), so index {appearance_index} does "
                f"not exist: use 0 to {max(0, len(appearance) - 1)}, or {ALL_APPEARANCES} for their mean."
            )
        else:
            appearance = appearance[appearance_index : appearance_index + 1]
        added = [StackEntry(w, float(motion_scale)) for w in lora_set.motion]
        added += [StackEntry(w, float(appearance_scale) * share) for w in appearance]
        if not added:
            raise MotionDirectorError(f"{lora_set.describe()}: there is no LoRA to apply.")
        return Pipeline(self.model, self.stack + tuple(added))

    def adapter_name(self, entry: StackEntry) -> str:
        return ADAPTER_PREFIX + entry.weights.fingerprint()

    def adapters_of(self, *kinds: str) -> list[str]:
        """Names (as activate() loads them) of the stack's LoRAs of these kinds, in stack order, once each."""
        return list(dict.fromkeys(self.adapter_name(e) for e in self.stack if e.weights.kind in kinds))

    def activate(self) -> dict[str, float]:
        """Make the shared UNet match this stack; returns the active adapter names and scales."""
        unet, family = self.model.unet, self.model.family
        wanted: dict[str, float] = {}
        for entry in self.stack:
            name = self.adapter_name(entry)
            if name not in adapter_names(unet):
                # The adapter outlives this call: weights made under inference_mode (ComfyUI runs every node in
                # it) would make any later training on this UNet fail, so they are made outside it.
                with torch.inference_mode(False):
                    load_adapter(unet, family, entry.weights, name)
                    set_dropout(unet, name, 0.0)
            if entry.scale != 0:
                wanted[name] = wanted.get(name, 0.0) + entry.scale
        ours = [n for n in adapter_names(unet) if n.startswith(ADAPTER_PREFIX) and n not in wanted]
        for name in ours[: max(0, len(ours) + len(wanted) - MAX_CACHED_ADAPTERS)]:
            remove_adapter(unet, name)
        set_scales(unet, wanted)
        return wanted
