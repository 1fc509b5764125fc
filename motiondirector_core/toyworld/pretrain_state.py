"""Pretraining bookkeeping: seeded per-step randomness, learning-rate schedule, EMA, checkpoints, log and progress.

Every random draw of step s of a stage comes from generators seeded by (run seed, stage, s), so a run resumed
from a checkpoint continues exactly as if it had never stopped, and the optimizer state is all a checkpoint needs.
"""

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import MotionDirectorError
from ..files import atomic_path

STAGE_IDS = {"vae": 1, "unet": 2}


def step_seed(seed: int, stage: str, step: int) -> int:
    return int(np.random.SeedSequence([seed, STAGE_IDS[stage], step]).generate_state(1, dtype=np.uint64)[0] >> 1)


def step_generator(seed: int, stage: str, step: int) -> torch.Generator:
    """A CPU generator for step `step` of `stage`; torch's global RNG (dropout) is seeded from it too."""
    value = step_seed(seed, stage, step)
    torch.manual_seed(value ^ 0x5EED)
    return torch.Generator().manual_seed(value)


def learning_rate(base: float, step: int, total: int, warmup: int, floor: float = 0.1) -> float:
    """Linear warm-up over `warmup` steps, then a cosine down to `floor` x base at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


class EMA:
    """Exponential moving average of parameters, with the usual warm-up (decay grows as (1+n)/(10+n))."""

    def __init__(self, parameters, decay: float):
        self.parameters = list(parameters)
        self.decay = decay
        self.shadow = [p.detach().clone().float() for p in self.parameters]

    @torch.no_grad()
    def update(self, step: int) -> None:
        decay = min(self.decay, (1.0 + step) / (10.0 + step))
        torch._foreach_lerp_(self.shadow, [p.detach().float() for p in self.parameters], 1.0 - decay)

    def state_dict(self) -> list[torch.Tensor]:
        return self.shadow

    def load_state_dict(self, shadow: list[torch.Tensor]) -> None:
        if len(shadow) != len(self.shadow) or any(a.shape != b.shape for a, b in zip(shadow, self.shadow)):
            raise MotionDirectorError("the checkpoint's EMA weights do not match the model: use a fresh work folder.")
        self.shadow = [s.to(p.device).float() for s, p in zip(shadow, self.parameters)]

    @torch.no_grad()
    def copy_to(self, parameters) -> None:
        for target, value in zip(parameters, self.shadow):
            target.copy_(value.to(target.dtype))


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise MotionDirectorError(f"checkpoint {path} cannot be read ({exc}): delete it to start that stage again.")


class Progress:
    """Appends one JSON line per event to the log and prints a progress line now and then."""

    def __init__(self, log_path: Path, printer=print, every_seconds: float = 10.0):
        self.log_path, self.printer, self.every = Path(log_path), printer, every_seconds
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.last_print = 0.0

    def log(self, record: dict) -> None:
        with self.log_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")

    def say(self, text: str) -> None:
        self.printer(text)

    def step(self, stage: str, step: int, total: int, losses: dict, lr: float, seconds: float, per_step: float) -> None:
        self.log({"stage": stage, "step": step, "total": total, **{k: round(v, 6) for k, v in losses.items()},
                  "lr": lr, "seconds": round(seconds, 4)})
        now = time.time()
        if now - self.last_print >= self.every or step in (1, total):
            self.last_print = now
            left = (total - step) * per_step / 60.0
            shown = " ".join(f"{k} {v:.4f}" for k, v in losses.items())
            self.printer(f"[{stage}] step {step}/{total} {shown} lr {lr:.2e} "
                         f"({per_step:.2f} s/step, {left:.1f} min left)")


class StepTimer:
    """Median-free running mean of step times, ignoring the first (warm-up) steps."""

    def __init__(self, skip: int = 2):
        self.skip, self.count, self.total, self.last = skip, 0, 0.0, 0.0

    def add(self, seconds: float) -> None:
        self.last = seconds
        self.count += 1
        if self.count > self.skip:
            self.total += seconds

    @property
    def mean(self) -> float:
        measured = self.count - self.skip
        return self.total / measured if measured > 0 else self.last
