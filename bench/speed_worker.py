#!/usr/bin/env python
"""Speed measurements ("cells") in a process of their own; bench/speed.py drives it, see there for the fields.

    echo '{"model": "models/toyworld-t2v", "task": "train", "mode": "both", ...}' | python bench/speed_worker.py

Reads cells as JSON lines on stdin and answers each on stdout with `RESULT {...}` (the medians and peak memory of the
task) or, when the cell failed, `FAILED {"error": ...}`, and carries on. The model stays loaded between cells (it is
loaded again only when a cell asks for another model or dtype). A GPU cell's peak memory is its own (torch's peak is
reset before it); a CPU process's peak RSS cannot be reset, so a CPU worker takes one cell only.
"""

import gc
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import traceback
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


def measure_training(model, cell: dict, on_step=None) -> dict:
    times = []

    def step(info) -> None:
        times.append(info.seconds)
        if on_step is not None:
            on_step(info)

    config = TrainConfig(
        train=cell["mode"], steps=cell["warmup"] + cell["steps"], rank=cell["rank"], width=cell["width"],
        height=cell["height"], frames=cell["frames"], checkpoint_every=0, precision=cell["precision"],
        gradient_checkpointing=cell["gradient_checkpointing"], cache_encodings=cell["cache_encodings"],
        compile=cell.get("compile", False),
        spatial_skip_prob=0.0,  # "both": the two paths on every measured step
    )
    with tempfile.TemporaryDirectory(prefix="md-speed-") as out:
        config.output = out
        train(model, [clip(cell)], config, TrainCallbacks(on_step=step))
    measured = times[cell["warmup"]:]
    return {"seconds_per_step": statistics.median(measured), "steps_measured": len(measured),
            "seconds_min": min(measured), "seconds_max": max(measured)}


PROFILED_STEPS = 5


def measure_profile(model, cell: dict) -> dict:
    """A training run (both paths) under torch.profiler: the operators a step's time goes to, after the warm-up."""
    from torch.profiler import ProfilerActivity, profile, schedule

    cuda = torch.device(cell["device"]).type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    cell = {**cell, "mode": "both", "steps": PROFILED_STEPS}
    with profile(activities=activities,
                 schedule=schedule(wait=0, warmup=cell["warmup"], active=PROFILED_STEPS, repeat=1)) as profiler:
        result = measure_training(model, cell, on_step=lambda info: profiler.step())
    table = profiler.key_averages().table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total",
                                          row_limit=25)
    return {**result, "profiled_steps": PROFILED_STEPS, "profile_table": table}


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


def load(cell: dict):
    torch.set_num_threads(cell["threads"])
    return load_model(cell["model"], dtype=cell["dtype"], device=torch.device(cell["device"]))


def run_cell(model, cell: dict) -> dict:
    """One cell on a loaded model: its measurements, peak memory and the memory already held when it began."""
    device = torch.device(cell["device"])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        resident = torch.cuda.memory_allocated(device)
    task = {"train": measure_training, "sample": measure_sampling, "invert": measure_inversion,
            "profile": measure_profile}[cell["task"]]
    try:
        result = task(model, cell)
    finally:
        if device.type == "cuda":  # the other variants' workers measure on the same GPU meanwhile
            gc.collect()
            torch.cuda.empty_cache()
    result["peak_memory_bytes"] = peak_memory_bytes(device)
    if device.type == "cuda":
        result["resident_bytes_at_start"] = int(resident)
        result["gpu"] = torch.cuda.get_device_name(device)
    return result


def serve(lines) -> None:
    model, loaded, measured_on_cpu = None, None, False
    for line in lines:
        if not line.strip():
            continue
        try:
            cell = json.loads(line)
            if cell["device"] == "cpu" and measured_on_cpu:
                raise ValueError("a CPU worker measures one cell: its peak RSS cannot be reset for a second")
            key = (cell["model"], cell["dtype"], cell["device"])
            if key != loaded:
                model = loaded = None
                gc.collect()
                model, loaded = load(cell), key
            result = run_cell(model, cell)
            measured_on_cpu = measured_on_cpu or cell["device"] == "cpu"
            print("RESULT " + json.dumps(result), flush=True)
        except Exception as exc:  # noqa: BLE001 - reported to the driver, which records the cell as failed
            detail = "".join(traceback.format_exception(exc))[-3000:]
            print("FAILED " + json.dumps({"error": f"{type(exc).__name__}: {exc}", "traceback": detail}), flush=True)


def main() -> int:
    serve(sys.stdin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
