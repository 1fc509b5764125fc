#!/usr/bin/env python
"""One speed measurement in a fresh process (so that the CPU's peak RSS is this measurement's alone).

    python bench/speed_worker.py '{"model": "models/toyworld-t2v", "task": "train", "mode": "both", ...}'

Prints one JSON line: the medians and peak memory of the task. bench/speed.py drives it; see there for the fields.
"""

import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from motiondirector_core.clips import Clip  # noqa: E402
from motiondirector_core.models import load_model  # noqa: E402
from motiondirector_core.sample import SampleSettings, generate  # noqa: E402
from motiondirector_core.train import TrainCallbacks, train  # noqa: E402
from motiondirector_core.train_config import TrainConfig  # noqa: E402


def peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def clip(cell: dict) -> Clip:
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(cell["frames"], cell["height"], cell["width"], 3, generator=g)
    return Clip(frames, "a red square moving in a zigzag", source="random frames")


def measure_training(model, cell: dict) -> dict:
    times = []
    config = TrainConfig(
        train=cell["mode"], steps=cell["warmup"] + cell["steps"], rank=cell["rank"], width=cell["width"],
        height=cell["height"], frames=cell["frames"], checkpoint_every=0, precision=cell["precision"],
        gradient_checkpointing=cell["gradient_checkpointing"], cache_encodings=cell["cache_encodings"],
        compile=cell.get("compile", False),
        spatial_skip_prob=0.0,  # "both": the two paths on every measured step
    )
    with tempfile.TemporaryDirectory(prefix="md-speed-") as out:
        config.output = out
        train(model, [clip(cell)], config, TrainCallbacks(on_step=lambda info: times.append(info.seconds)))
    measured = times[cell["warmup"]:]
    return {"seconds_per_step": statistics.median(measured), "steps_measured": len(measured),
            "seconds_min": min(measured), "seconds_max": max(measured)}


def median_seconds(run, repeats: int) -> float:
    """Median wall time of `repeats` calls of run(i), after the caller's warm-up."""
    times = []
    for i in range(repeats):
        began = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def measure_sampling(model, cell: dict) -> dict:
    settings = SampleSettings(prompt="a blue circle moving in a zigzag", frames=cell["frames"], width=cell["width"],
                              height=cell["height"], steps=cell["sample_steps"], cfg=cell["cfg"])
    generate(model, SampleSettings(**{**settings.to_dict(), "steps": 2}))  # kernels, caches, allocator
    seconds = median_seconds(lambda seed: generate(model, SampleSettings(**{**settings.to_dict(), "seed": seed})),
                             cell["repeats"])
    return {"seconds_per_video": seconds, "videos_measured": cell["repeats"]}


def measure_inversion(model, cell: dict) -> dict:
    from motiondirector_core.invert import invert_frames

    frames = clip(cell).frames
    invert_frames(model, frames, steps=2)
    seconds = median_seconds(lambda _: invert_frames(model, frames, steps=cell["invert_steps"]), cell["repeats"])
    return {"seconds_per_inversion": seconds, "inversions_measured": cell["repeats"]}


def main(argv=None) -> int:
    cell = json.loads((argv or sys.argv[1:])[0])
    torch.set_num_threads(cell["threads"])
    device = torch.device(cell["device"])
    model = load_model(cell["model"], dtype=cell["dtype"], device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    task = {"train": measure_training, "sample": measure_sampling, "invert": measure_inversion}[cell["task"]]
    result = task(model, cell)
    result["peak_memory_bytes"] = peak_memory_bytes(device)
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
