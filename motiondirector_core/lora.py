"""MotionDirector's LoRAs on a base model's UNet, through peft.

An adapter has a name (e.g. "temporal", "spatial", "spatial_1") and a kind (spatial, temporal or
coupled) that fixes where it goes: the family's `lora_targets`. Several adapters live in one UNet at
once; `set_scales` picks which are active and with what strength, with no reload of the base model.
A LoRA adds `scale * B(A(x))` with alpha = rank, so a scale of 1 is the trained update.
"""

import hashlib
import math
import warnings
import weakref
from dataclasses import dataclass, field

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer

from .errors import MotionDirectorError
from .train_config import DROPOUT_PLACEMENTS

KINDS = ("spatial", "temporal", "coupled")
A_SUFFIX, B_SUFFIX = ".lora_A.weight", ".lora_B.weight"


@dataclass
class LoraWeights:
    """One adapter's weights in PEFT key form (`<module path>.lora_A.weight` / `.lora_B.weight`)."""

    kind: str
    state: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = ""
    _fingerprint: str = field(default="", compare=False, repr=False)

    @property
    def rank(self) -> int:
        """From the first down-projection (A is [r, in]), else the first up-projection (B is [out, r])."""
        for suffix, dim in ((A_SUFFIX, 0), (B_SUFFIX, 1)):
            for key, tensor in self.state.items():
                if key.endswith(suffix) and tensor.ndim == 2:
                    return int(tensor.shape[dim])
        raise MotionDirectorError(
            f"LoRA {self.source or self.kind} holds no 2-D lora_A / lora_B weights, so it has no rank: the file is "
            f"damaged or not a LoRA; re-save or re-download it."
        )

    @property
    def alpha(self) -> float:
        value = self.metadata.get("alpha", self.rank)
        try:
            alpha = float(value)
        except (TypeError, ValueError):
            alpha = float("nan")
        if not math.isfinite(alpha) or alpha <= 0:
            raise MotionDirectorError(
                f"LoRA {self.source or self.kind} has alpha {value!r} in its metadata, not a positive number: "
                f"the file is damaged; re-save or re-download it."
            )
        return alpha

    @property
    def modules(self) -> list[str]:
        return [k[: -len(A_SUFFIX)] for k in self.state if k.endswith(A_SUFFIX)]

    def fingerprint(self) -> str:
        """A hash of kind, alpha and weights (computed once): equal content, equal fingerprint."""
        if not self._fingerprint:
            digest = hashlib.sha256(f"{self.kind}:{self.alpha}".encode())
            for key in sorted(self.state):
                digest.update(key.encode())
                digest.update(self.state[key].detach().float().cpu().contiguous().numpy().tobytes())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint


def lora_layers(unet: torch.nn.Module) -> list[tuple[str, LoraLayer]]:
    """(path, layer) of every LoRA-carrying layer. Walking the module tree takes a millisecond and a training step
    switches adapters twice, so the list is kept on the UNet while its set of adapters stays the same."""
    key = tuple(getattr(unet, "peft_config", {}) or {})
    cached = unet.__dict__.get("_motiondirector_lora_layers")
    if cached is None or cached[0] != key:
        cached = (key, [(name, m) for name, m in unet.named_modules() if isinstance(m, LoraLayer)])
        unet.__dict__["_motiondirector_lora_layers"] = cached
    return cached[1]


def adapter_names(unet: torch.nn.Module) -> list[str]:
    return sorted(getattr(unet, "peft_config", {}) or {})


def add_adapter(
    unet: torch.nn.Module,
    family,
    name: str,
    kind: str,
    rank: int = 32,
    alpha: float | None = None,
    dropout: float = 0.0,
    feed_forward: bool = True,
) -> list[str]:
    """Inject a fresh adapter (A ~ N(0, 1/r), B = 0) on the kind's target layers; returns those layer paths.

    feed_forward=False leaves out the transformers' feed-forward Linears (attention only). The new adapter starts
    off; the adapters that were active keep their scales.
    """
    if kind not in KINDS:
        raise MotionDirectorError(f"LoRA kind {kind!r} is unknown: use one of {', '.join(KINDS)}.")
    if rank < 1:
        raise MotionDirectorError(f"LoRA rank must be at least 1, got {rank}.")
    if name in adapter_names(unet):
        raise MotionDirectorError(f"an adapter named {name!r} is already loaded: remove it first or pick another name.")
    targets = family.lora_targets(unet, kind)
    if not feed_forward:
        targets = [t for t in targets if not t.endswith(family.feed_forward_linears)]
    active = active_scales(unet)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else rank,
        lora_dropout=dropout,
        target_modules=targets,
        init_lora_weights="gaussian",
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        inject_adapter_in_model(config, unet, adapter_name=name)
    unet.peft_config[name].motiondirector_kind = kind
    set_scales(unet, active)
    return targets


def adapter_kind(unet: torch.nn.Module, name: str) -> str:
    return unet.peft_config[name].motiondirector_kind


def remove_adapter(unet: torch.nn.Module, name: str) -> None:
    if name not in adapter_names(unet):
        raise MotionDirectorError(f"no adapter named {name!r} is loaded (loaded: {adapter_names(unet) or 'none'}).")
    active = {n: s for n, s in active_scales(unet).items() if n != name}
    set_scales(unet, active)  # switched off first: peft warns when it deletes an active adapter
    for _, layer in lora_layers(unet):
        if name in layer.lora_A:
            layer.delete_adapter(name)
    del unet.peft_config[name]
    set_scales(unet, active)


def set_scales(unet: torch.nn.Module, scales: dict[str, float]) -> None:
    """Activate exactly the adapters in `scales`, each with its scale; all others are off.

    Leaves every adapter frozen: a trainer turns on gradients for what it trains.
    """
    unknown = set(scales) - set(adapter_names(unet))
    if unknown:
        raise MotionDirectorError(f"no adapter named {sorted(unknown)} is loaded (loaded: {adapter_names(unet)}).")
    for _, layer in lora_layers(unet):
        present = [n for n in scales if n in layer.lora_A]
        wanted = {n: scales[n] for n in present}
        # peft's set_adapter walks the layer's modules: skipped where this layer's state would not change.
        if layer.active_adapters != present or layer.__dict__.get("_motiondirector_scales") != wanted:
            layer.set_adapter(present)
            for n in present:
                layer.set_scale(n, scales[n])
            layer.__dict__["_motiondirector_scales"] = wanted
        for sub in (*layer.lora_A.values(), *layer.lora_B.values()):
            sub.weight.requires_grad_(False)
    unet._motiondirector_scales = dict(scales)


def active_scales(unet: torch.nn.Module) -> dict[str, float]:
    return dict(getattr(unet, "_motiondirector_scales", {}))


class _OutputDropout:
    """A forward hook on an adapter's up-projection: drop(B(A(x))), the reference's LoRA layer, where peft drops
    the input, B(A(drop(x))). Active in training mode only."""

    def __init__(self, p: float):
        self.p = p

    def __call__(self, module, args, output):
        return torch.nn.functional.dropout(output, self.p, module.training)


_output_dropouts: "weakref.WeakKeyDictionary[torch.nn.Module, torch.utils.hooks.RemovableHandle]" = (
    weakref.WeakKeyDictionary())


def set_dropout(unet: torch.nn.Module, name: str, p: float, placement: str = "input") -> None:
    """Dropout of adapter `name` on its input (peft's) or on its output (the reference's). Dropout is for training
    only; sampling sets it to 0 so a LoRA acts the same wherever it came from."""
    if placement not in DROPOUT_PLACEMENTS:
        raise MotionDirectorError(f"dropout placement {placement!r} is unknown: use {' or '.join(DROPOUT_PLACEMENTS)}.")
    for _, layer in lora_layers(unet):
        if name not in layer.lora_dropout:
            continue
        on_input = p > 0 and placement == "input"
        layer.lora_dropout[name] = torch.nn.Dropout(p) if on_input else torch.nn.Identity()
        up = layer.lora_B[name]
        handle = _output_dropouts.pop(up, None)
        if handle is not None:
            handle.remove()
        if p > 0 and placement == "output":
            _output_dropouts[up] = up.register_forward_hook(_OutputDropout(p))


def adapter_parameters(unet: torch.nn.Module, name: str) -> list[torch.nn.Parameter]:
    params = []
    for _, layer in lora_layers(unet):
        if name in layer.lora_A:
            params += [layer.lora_A[name].weight, layer.lora_B[name].weight]
    return params


def adapter_state(unet: torch.nn.Module, name: str) -> dict[str, torch.Tensor]:
    """The adapter's weights as PEFT keys, fp32 on the CPU (a copy)."""
    state = {}
    for path, layer in lora_layers(unet):
        if name in layer.lora_A:
            state[path + A_SUFFIX] = layer.lora_A[name].weight.detach().float().cpu().clone().contiguous()
            state[path + B_SUFFIX] = layer.lora_B[name].weight.detach().float().cpu().clone().contiguous()
    return state


def check_values(weights: LoraWeights) -> None:
    """Float matrices with finite values, and a usable alpha."""
    source = weights.source or f"the {weights.kind} LoRA"
    for key, tensor in weights.state.items():
        if not tensor.is_floating_point() or tensor.ndim != 2:
            raise MotionDirectorError(
                f"{source}: {key} is a {tensor.ndim}-D {str(tensor.dtype).replace('torch.', '')} tensor, LoRA "
                f"weights are 2-D float matrices; the file is damaged or not a LoRA."
            )
        if not torch.isfinite(tensor).all():
            raise MotionDirectorError(
                f"{source}: {key} holds NaN or infinite values; the file is damaged or was saved from a diverged "
                f"run. Use an earlier checkpoint."
            )
    if weights.state:
        _ = weights.alpha  # raises if the metadata's alpha is unusable


def check_fits(unet: torch.nn.Module, family, weights: LoraWeights) -> None:
    """Every key names a target layer of the weights' kind, every A/B pair is whole and every shape fits;
    the values are finite floats (a damaged file or a diverged run would otherwise give black or noisy videos)."""
    check_values(weights)
    targets = set(family.lora_targets(unet, weights.kind))
    layers = dict(unet.named_modules())
    # One adapter has one rank (that of its first lora_A): a layer with another rank cannot be loaded into it.
    rank = next((t.shape[0] for k, t in weights.state.items() if k.endswith(A_SUFFIX) and t.ndim == 2), None)
    problems = []
    for key, tensor in weights.state.items():
        if key.endswith(A_SUFFIX):
            path, other = key[: -len(A_SUFFIX)], key[: -len(A_SUFFIX)] + B_SUFFIX
        elif key.endswith(B_SUFFIX):
            path, other = key[: -len(B_SUFFIX)], None
        else:
            problems.append(f"{key}: not a LoRA key (expected '<layer>.lora_A.weight' or '.lora_B.weight')")
            continue
        if path not in targets:
            problems.append(f"{key}: this model has no {weights.kind} LoRA layer '{path}'")
            continue
        layer = layers[path]
        base = layer.get_base_layer() if isinstance(layer, LoraLayer) else layer
        if other is not None:
            if other not in weights.state:
                problems.append(f"{path}: lora_A without its lora_B")
                continue
            want_a, want_b = (rank, base.in_features), (base.out_features, rank)
            got_b = tuple(weights.state[other].shape)
            if tuple(tensor.shape) != want_a or got_b != want_b:
                problems.append(
                    f"{path}: shapes A{tuple(tensor.shape)} B{got_b}, the layer needs A{want_a} B{want_b}"
                )
        elif path + A_SUFFIX not in weights.state:
            problems.append(f"{path}: lora_B without its lora_A")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise MotionDirectorError(
            f"LoRA {weights.source or weights.kind} does not fit this {family.name} model: {shown}. "
            f"Use a LoRA trained for this model family and size."
        )


def load_adapter(unet: torch.nn.Module, family, weights: LoraWeights, name: str) -> str:
    """Add an adapter holding `weights` (checked first); layers the file does not cover stay at zero."""
    weights = family.fit_lora(weights, unet)
    check_fits(unet, family, weights)
    add_adapter(unet, family, name, weights.kind, rank=weights.rank, alpha=weights.alpha)
    layers = dict(lora_layers(unet))
    with torch.no_grad():
        for module_path in weights.modules:
            layer = layers[module_path]
            for suffix, sub in ((A_SUFFIX, layer.lora_A[name]), (B_SUFFIX, layer.lora_B[name])):
                sub.weight.copy_(weights.state[module_path + suffix])
        covered = set(weights.modules)
        for path, layer in layers.items():
            if name in layer.lora_B and path not in covered:
                layer.lora_B[name].weight.zero_()
    return name
