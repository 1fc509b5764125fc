#!/usr/bin/env python
"""Training and sampling speed and memory: this pack's settings against a plain baseline with the reference's.

    python bench/speed.py                  # CPU: the embedded model, 32x32, 8 frames -> bench/results/speed_cpu.md
    python bench/speed.py --device cuda    # GPU: ZeroScope's architecture with random weights at 384x384x16 and
                                           #      576x320x24 -> bench/results/speed_<gpu>.md
    python bench/speed.py --quick          # a smoke run into output/bench
    python bench/speed.py --compile        # adds a row: ours with the UNet torch.compiled for training

Variants, all at rank 32 (the reference's), one clip, batch 1:

    ours        encodings cached (the VAE and text encoder leave the GPU), no gradient checkpointing; the frozen
                base in bf16 with fp32 LoRA weights and bf16 autocast on a GPU (fp32 on the CPU, where bf16 is no
                faster on these machines)
    low-memory  (GPU) ours with gradient checkpointing
    compiled    (--compile) ours with torch.compile; its compilation falls in the warm-up steps
    baseline    the reference's settings: fp32 base under autocast (fp16 on a GPU, bf16 on the CPU), every clip and
                prompt encoded again at each step, gradient checkpointing on

Measurements run in worker processes (bench/speed_worker.py): on the CPU a fresh one each, so a row's peak RSS is its
own; on a GPU one per variant, loaded once and kept (a row's peak is its own by torch's peak-memory reset). The
variants' whole-step runs alternate (ours, baseline, ours, baseline, ...) and the speed-up is the median of the
per-round ratios. A failed cell is reported and the run goes on; --deadline stops starting cells after so many
minutes, and the report is rewritten after every cell, so a run cut short still leaves what it measured.
Last, ours' training step of the first setup runs under torch.profiler, and the report lists the operators its time
goes to. On a GPU lent for a short time, bench/gpu_lease.sh runs all of this in one command.

Model FLOPs are counted on the meta device (torch FlopCounterMode): a training step is 2x the UNet forward of the
clip (input gradients through the frozen base) plus 2x the one-frame forward of the spatial path; recomputation by
checkpointing is not counted (model FLOPs, not hardware FLOPs).
"""

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
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

from motiondirector_core.files import write_json, write_text  # noqa: E402

RESULTS = REPO / "bench" / "results"
EMBEDDED = REPO / "models" / "toyworld-t2v"
RANDOM_ZEROSCOPE = REPO / "output" / "bench" / "zeroscope-random"
RANDOM_ANIMATEDIFF = REPO / "output" / "bench" / "animatediff-random"
SETUPS = {
    "cpu": [dict(name="embedded 32x32x8", model=str(EMBEDDED), width=32, height=32, frames=8)],
    "cuda": [dict(name="ZeroScope 384x384x16", model=str(RANDOM_ZEROSCOPE), width=384, height=384, frames=16),
             dict(name="ZeroScope 576x320x24", model=str(RANDOM_ZEROSCOPE), width=576, height=320, frames=24),
             dict(name="AnimateDiff v3 512x512x16", model=str(RANDOM_ANIMATEDIFF), width=512, height=512, frames=16)],
}
# The full architectures whose model FLOPs every report lists (counted on the meta device: no weights, any machine).
ARCHITECTURES = [("ZeroScope", "modelscope", 384, 384, 16), ("ZeroScope", "modelscope", 576, 320, 24),
                 ("AnimateDiff v3", "v3", 512, 512, 16), ("AnimateDiff v2", "v2", 512, 512, 16),
                 ("AnimateDiff v3", "v3", 256, 256, 16)]
VARIANTS = {
    "cpu": {"ours": dict(dtype="fp32", precision="fp32", gradient_checkpointing=False, cache_encodings=True),
            "baseline": dict(dtype="fp32", precision="bf16", gradient_checkpointing=True, cache_encodings=False)},
    "cuda": {"ours": dict(dtype="bf16", precision="bf16", gradient_checkpointing=False, cache_encodings=True),
             "low-memory": dict(dtype="bf16", precision="bf16", gradient_checkpointing=True, cache_encodings=True),
             "baseline": dict(dtype="fp32", precision="fp16", gradient_checkpointing=True, cache_encodings=False)},
}
# Dense bf16 peaks (TFLOP/s) for the MFU column, by the start of torch.cuda.get_device_name().
GPU_PEAK_TFLOPS = {"NVIDIA H100 80GB HBM3": 989.0, "NVIDIA H100 PCIe": 756.0, "NVIDIA H100": 989.0,
                   "NVIDIA H200": 989.0, "NVIDIA A100": 312.0, "NVIDIA RTX A5000": 111.0}
TARGETS_TEXT = ("GPU (H100 class), 384x384x16: at most 0.15 s per step with both paths, at most 8 GB peak in the "
                "low-memory profile, at most 12 GB at 576x320x24, sampling (30 steps, guidance) at most 5 s. "
                "CPU: at least 2x the baseline's steps per second.")


class Workers:
    """bench/speed_worker.py processes serving cells. On the CPU each cell gets a fresh process, so that its peak RSS
    is its own. On a GPU each variant keeps one process for all its cells: ZeroScope is loaded once per variant
    rather than once per cell (a lent GPU's time is short), and torch's peak-memory reset keeps each cell's peak its
    own. The variants' processes stay alive side by side, so whole-step runs still alternate between them."""

    command = [sys.executable, str(REPO / "bench" / "speed_worker.py")]

    def __init__(self, keep: bool, log_dir: Path):
        self.keep, self.log_dir, self.processes, self.started = keep, Path(log_dir), {}, 0

    def run(self, key: str, cell: dict) -> dict:
        """The worker's answer, or {"error": ..., "traceback": ...} when the cell failed or the process ended."""
        process = self.processes.get(key)
        if process is None or process.poll() is not None:
            process = self.processes[key] = self._start()
        try:
            return self._ask(process, cell)
        finally:
            if not self.keep:
                self.close(key)

    def _start(self) -> subprocess.Popen:
        self.started += 1
        log = open(self.log_dir / f"worker-{self.started}.log", "w")  # noqa: SIM115 - closed in close()
        process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                   cwd=REPO)
        process.log = log
        return process

    @staticmethod
    def _ask(process: subprocess.Popen, cell: dict) -> dict:
        try:
            process.stdin.write(json.dumps(cell) + "\n")
            process.stdin.flush()
            for line in process.stdout:
                kind, _, body = line.partition(" ")
                if kind in ("RESULT", "FAILED"):
                    return json.loads(body)
        except BrokenPipeError:
            pass
        process.wait()
        process.log.flush()
        return {"error": f"the worker process ended (exit status {process.returncode})",
                "traceback": Path(process.log.name).read_text(errors="replace")[-3000:]}

    def close(self, key: str | None = None) -> None:
        for name in [key] if key else list(self.processes):
            process = self.processes.pop(name)
            if process.poll() is None:
                process.stdin.close()
                process.wait()
            process.log.close()


def run_cell(cell: dict, workers: Workers, key: str) -> dict:
    """One cell measured by a worker; its answer, or {"error": ...} when it failed."""
    began = time.time()
    return {**workers.run(key, cell), "wall_seconds": round(time.time() - began, 1)}


def architecture_unet(kind: str):
    """The full UNet of ZeroScope ("modelscope") or AnimateDiff ("v2", "v3") on the meta device, as its family
    prepares it, with its text width."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNet3DConditionModel, UNetMotionModel

    from motiondirector_core.families.animatediff.single_file import SD15
    from motiondirector_core.models import FAMILIES

    with torch.device("meta"):
        if kind == "modelscope":
            family, unet = FAMILIES["modelscope"], UNet3DConditionModel(**FAMILIES["modelscope"].zeroscope_unet_config)
        else:
            config = json.loads((SD15 / "unet" / "config.json").read_text())
            unet2d = UNet2DConditionModel(**{k: v for k, v in config.items() if not k.startswith("_")})
            adapter = MotionAdapter(use_motion_mid_block=kind == "v2", motion_max_seq_length=32)
            family, unet = FAMILIES["animatediff"], UNetMotionModel.from_unet2d(unet2d, adapter, load_weights=False)
    family.prepare_unet(unet)
    return unet


def counted_flops(unet, frames: int, height: int, width: int, batch: int = 1, tokens: int = 77,
                  factor: int = 8) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        sample = torch.empty(batch, unet.config.in_channels, frames, height // factor, width // factor)
        text = torch.empty(batch, tokens, unet.config.cross_attention_dim)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            unet(sample, torch.tensor([500] * batch), encoder_hidden_states=text)
    return int(counter.get_total_flops())


@functools.lru_cache(maxsize=1)
def _architecture_flops() -> tuple:
    return tuple(architecture_flops_rows())


def architecture_flops() -> list[dict]:
    """architecture_flops_rows(), counted once per process (ten seconds of meta-device tracing)."""
    return [dict(row) for row in _architecture_flops()]


def architecture_flops_rows() -> list[dict]:
    """Model FLOPs of the full architectures (ARCHITECTURES): a UNet forward, a training step with both paths, a
    video sampled with guidance (the family's steps: ZeroScope 30, AnimateDiff 25)."""
    rows = []
    for label, kind, width, height, frames in ARCHITECTURES:
        unet = architecture_unet(kind)
        clip, frame = counted_flops(unet, frames, height, width), counted_flops(unet, 1, height, width)
        steps = 30 if kind == "modelscope" else 25
        guided = counted_flops(unet, frames, height, width, batch=2)
        rows.append({"architecture": f"{label} {width}x{height}x{frames}", "forward": clip,
                     "both": 2 * clip + 2 * frame, "sample": steps * guided, "sample_steps": steps})
    return rows


def meta_unet(model_dir: str):
    """The UNet of a diffusers model folder on the meta device, prepared as its family loads it (the single-frame
    bypass, so that a one-frame forward is the spatial path as the trainer runs it)."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNet3DConditionModel, UNetMotionModel

    from motiondirector_core.models import FAMILIES

    folder = Path(model_dir)
    animatediff = (folder / "motion_adapter").is_dir()
    family = FAMILIES["animatediff" if animatediff else "modelscope"]
    with torch.device("meta"):
        if animatediff:
            unet = UNetMotionModel.from_unet2d(
                UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet")),
                MotionAdapter.from_config(MotionAdapter.load_config(folder / "motion_adapter")), load_weights=False)
        else:
            unet = UNet3DConditionModel.from_config(UNet3DConditionModel.load_config(folder / "unet"))
    family.prepare_unet(unet)
    return unet


def unet_forward_flops(model_dir: str, frames: int, height: int, width: int, batch: int = 1) -> int:
    """FLOPs of one UNet forward at this size, counted on the meta device (no memory, no weights)."""
    from torch.utils.flop_counter import FlopCounterMode

    unet = meta_unet(model_dir)
    vae = json.loads((Path(model_dir) / "vae" / "config.json").read_text())
    tokens = json.loads((Path(model_dir) / "tokenizer" / "tokenizer_config.json").read_text())["model_max_length"]
    factor = 2 ** (len(vae["block_out_channels"]) - 1)
    with torch.device("meta"):
        sample = torch.empty(batch, unet.config.in_channels, frames, height // factor, width // factor)
        text = torch.empty(batch, min(int(tokens), 77), unet.config.cross_attention_dim)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            unet(sample, torch.tensor([500] * batch), encoder_hidden_states=text)
    return int(counter.get_total_flops())


def step_flops(setup: dict) -> dict[str, float]:
    """Model FLOPs per training step of each path, per video sampled and per inversion."""
    clip = unet_forward_flops(setup["model"], setup["frames"], setup["height"], setup["width"])
    frame = unet_forward_flops(setup["model"], 1, setup["height"], setup["width"])
    guided = unet_forward_flops(setup["model"], setup["frames"], setup["height"], setup["width"], batch=2)
    return {"forward": clip, "spatial": 2 * frame, "temporal": 2 * clip, "both": 2 * clip + 2 * frame,
            "sample": 30 * guided, "invert": 50 * clip}


def machine(device: str) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        info["cpu"] = f"{names[0]} x {len(names)} (logical)" if names else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def measure(device: str, rounds: int, steps: int, warmup: int, threads: int, quick: bool, printer=print,
            setups: list[dict] | None = None, compiled: bool = False, deadline: float | None = None,
            on_row=None) -> dict:
    """Every cell of every setup, in order; cells due after `deadline` (a time.time()) are listed as skipped.
    on_row(data) sees the results so far after each cell."""
    setups = setups or (SETUPS[device][:1] if quick else SETUPS[device])
    variants = dict(VARIANTS[device])
    if compiled:
        variants = {"ours": variants["ours"], "compiled": {**variants["ours"], "compile": True}, **variants}
    common = dict(device=device, threads=threads, rank=32, steps=steps, warmup=warmup, sample_steps=30, cfg=12.0,
                  invert_steps=50, repeats=1 if quick else 3)
    if device == "cuda" and any(s["model"] in (str(RANDOM_ZEROSCOPE), str(RANDOM_ANIMATEDIFF)) for s in setups):
        sys.path.insert(0, str(REPO / "bench"))
        from random_animatediff import write_random_animatediff
        from random_zeroscope import write_random_zeroscope

        if any(s["model"] == str(RANDOM_ZEROSCOPE) for s in setups):
            write_random_zeroscope(RANDOM_ZEROSCOPE, device="cuda")
        if any(s["model"] == str(RANDOM_ANIMATEDIFF) for s in setups):
            write_random_animatediff(RANDOM_ANIMATEDIFF, device="cuda")
        torch.cuda.empty_cache()  # the workers measure on the same GPU: this process keeps none of it
    data = {"device": device, "machine": machine(device), "rounds": rounds, "steps": steps, "warmup": warmup,
            "variants": variants, "rows": [], "skipped": [], "architecture_flops": architecture_flops()}
    flops = {setup["name"]: step_flops(setup) for setup in setups}

    def record(workers: Workers, setup: dict, variant: str, task: str, mode: str = "both", round_: int = 0) -> None:
        row = {"setup": setup["name"], "variant": variant, "task": task, "mode": mode, "round": round_}
        if deadline is not None and time.time() > deadline:
            data["skipped"].append(row)
            printer(f"{setup['name']} {variant} {task} {mode} round {round_}: skipped, past the deadline")
            return
        cell = {**common, **{k: setup[k] for k in ("model", "width", "height", "frames")}, **variants[variant],
                "task": task, "mode": mode}
        counted = flops[setup["name"]]["sample" if task == "sample" else "invert" if task == "invert" else mode]
        out = {**row, **run_cell(cell, workers, variant), "model_flops": counted}
        data["rows"].append(out)
        shown = {k: v for k, v in out.items() if k.startswith("seconds") or k in ("peak_memory_bytes", "error")}
        printer(f"{setup['name']} {variant} {task} {mode} round {round_}: {shown}")
        if on_row is not None:
            on_row(data)

    # The cells the targets need come first (whole steps of every setup, then sampling), so that a run stopped by
    # its deadline has measured them.
    with tempfile.TemporaryDirectory(prefix="md-speed-logs-") as logs:
        workers = Workers(keep=device == "cuda", log_dir=Path(logs))
        try:
            for setup in setups:
                for round_ in range(rounds):  # whole steps, alternating: ours, (low-memory), baseline, ours, ...
                    for variant in variants:
                        record(workers, setup, variant, "train", "both", round_)
            for setup in setups:
                # No baseline row: the reference samples with an fp16 base and guidance batched (diffusers'
                # pipeline), which costs what ours does.
                record(workers, setup, "ours", "sample")
            for setup in setups:
                for variant in variants:
                    for mode in ("spatial", "temporal"):
                        record(workers, setup, variant, "train", mode)
            for setup in setups:
                record(workers, setup, "ours", "invert")
            record(workers, setups[0], "ours", "profile")  # for the next round of speed work
        finally:
            workers.close()
    return data


def peak_tflops(data: dict, override: float | None) -> float | None:
    if override:
        return override
    gpu = data["machine"].get("gpu", "")
    return next((v for k, v in sorted(GPU_PEAK_TFLOPS.items(), key=lambda kv: -len(kv[0])) if gpu.startswith(k)), None)


def _gb(value: int) -> str:
    return f"{value / 2**30:.2f} GB"


def measured(rows: list[dict]) -> list[dict]:
    """The rows whose cell did not fail."""
    return [r for r in rows if "error" not in r]


def failed(rows: list[dict]) -> list[dict]:
    return [r for r in rows if "error" in r]


def speedups(data: dict, setup: str) -> list[float]:
    """baseline / ours seconds per whole step, one ratio per alternating round."""
    ratios = []
    for round_ in range(data["rounds"]):
        pair = {r["variant"]: r["seconds_per_step"] for r in measured(data["rows"]) if r["setup"] == setup
                and r["task"] == "train" and r["mode"] == "both" and r["round"] == round_}
        if "ours" in pair and "baseline" in pair:
            ratios.append(pair["baseline"] / pair["ours"])
    return ratios


def summarise(data: dict, peak: float | None) -> list[str]:
    rows, lines = measured(data["rows"]), []
    setups = list(dict.fromkeys(r["setup"] for r in rows))
    for setup in setups:
        mine = [r for r in rows if r["setup"] == setup]
        lines += [f"## {setup}", "", "### Training (rank 32, batch 1)", "",
                  "| variant | path | s/step (median) | steps/s | peak memory | model TFLOPs/step | TFLOP/s | MFU |",
                  "|---|---|---|---|---|---|---|---|"]
        for variant in data["variants"]:
            for mode in ("both", "spatial", "temporal"):
                cells = [r for r in mine if r["task"] == "train" and r["variant"] == variant and r["mode"] == mode]
                if not cells:
                    continue
                seconds = statistics.median(r["seconds_per_step"] for r in cells)
                memory = max(r["peak_memory_bytes"] for r in cells)
                achieved = cells[0]["model_flops"] / seconds / 1e12
                mfu = f"{achieved / peak:.1%}" if peak else "-"
                path = {"both": "both paths", "spatial": "spatial only", "temporal": "temporal only"}[mode]
                lines.append(f"| {variant} | {path} | {seconds:.4f} | {1 / seconds:.2f} | {_gb(memory)} | "
                             f"{cells[0]['model_flops'] / 1e12:.4g} | {achieved:.3g} | {mfu} |")
        ratios = speedups(data, setup)
        if ratios:
            lines += ["", f"Speed-up of ours over the baseline, both paths: **{statistics.median(ratios):.2f}x** "
                          f"(median of {len(ratios)} alternating rounds: "
                          f"{', '.join(f'{x:.2f}' for x in ratios)})."]
        lines += ["", "### Sampling and inversion", "", "| variant | task | seconds (median) | peak memory | TFLOP/s |",
                  "|---|---|---|---|---|"]
        for r in mine:
            if r["task"] in ("sample", "invert"):
                seconds = r.get("seconds_per_video", r.get("seconds_per_inversion"))
                task = "video, 30 steps, guidance 12" if r["task"] == "sample" else "DDIM inversion, 50 steps"
                lines.append(f"| {r['variant']} | {task} | {seconds:.3f} | {_gb(r['peak_memory_bytes'])} | "
                             f"{r['model_flops'] / seconds / 1e12:.3g} |")
        lines.append("")
    if data.get("architecture_flops"):
        lines += ["## Model FLOPs of the full architectures", "",
                  "Counted on the meta device (torch FlopCounterMode), whatever this run measured.", "",
                  "| architecture | UNet forward (TFLOPs) | training step, both paths | video with guidance |",
                  "|---|---|---|---|"]
        for r in data["architecture_flops"]:
            lines.append(f"| {r['architecture']} | {r['forward'] / 1e12:.4g} | {r['both'] / 1e12:.4g} | "
                         f"{r['sample'] / 1e12:.4g} ({r['sample_steps']} steps) |")
        lines.append("")
    for r in rows:
        if r["task"] == "profile":
            lines += [f"## Where a step's time goes: {r['setup']}, ours, both paths", "",
                      f"torch.profiler over {r['profiled_steps']} training steps after {data['warmup']} warm-up "
                      f"step(s) ({r['seconds_per_step']:.4f} s a step with the profiler on), by self time:", "",
                      "```", r["profile_table"].rstrip(), "```", ""]
    if failed(data["rows"]):
        lines += ["## Cells that failed", "", *(f"- {r['setup']} {r['variant']} {r['task']} {r['mode']} "
                                                 f"round {r['round']}: {r['error']}" for r in failed(data["rows"])), ""]
    if data.get("skipped"):
        lines += ["## Cells not measured (past the deadline)", "",
                  *(f"- {r['setup']} {r['variant']} {r['task']} {r['mode']} round {r['round']}"
                    for r in data["skipped"]), ""]
    return lines


def target_checks(data: dict) -> list[str]:
    """Each target this run can check, met or not."""
    rows, checks = measured(data["rows"]), []

    def median(setup_prefix, variant, key, task="train", mode="both"):
        values = [r[key] for r in rows if r["setup"].startswith(setup_prefix) and r["variant"] == variant
                  and r["task"] == task and (task != "train" or r["mode"] == mode)]
        return statistics.median(values) if values else None

    def check(label, value, limit, unit, at_most=True):
        if value is not None:
            met = value <= limit if at_most else value >= limit
            checks.append(f"- {label}: {value:.3g} {unit} ({'at most' if at_most else 'at least'} {limit:g}): "
                          f"{'met' if met else 'NOT met'}")

    if data["device"] == "cpu":
        for setup in dict.fromkeys(r["setup"] for r in rows):
            ratios = speedups(data, setup)
            if ratios:
                check(f"CPU speed-up over the baseline, {setup} (median of the rounds' ratios)",
                      statistics.median(ratios), 2.0, "x", at_most=False)
    else:
        check("384x384x16 step, both paths", median("ZeroScope 384", "ours", "seconds_per_step"), 0.15, "s")
        for size, limit in (("384x384x16", 8), ("576x320x24", 12)):
            peak = median(f"ZeroScope {size}", "low-memory", "peak_memory_bytes")
            check(f"{size} peak memory, low-memory profile", peak and peak / 2**30, limit, "GB")
        check("384x384x16 video, 30 steps with guidance",
              median("ZeroScope 384", "ours", "seconds_per_video", task="sample"), 5.0, "s")
    return checks or ["- none of the targets applies to this run"]


def write_results(data: dict, out: Path, command: str, minutes: float, peak: float | None,
                  finished: bool = True) -> Path:
    slug = "cpu" if data["device"] == "cpu" else "gpu_" + "".join(
        c if c.isalnum() else "_" for c in data["machine"]["gpu"].lower()).strip("_")
    data = {**data, "command": command, "minutes": round(minutes, 1), "peak_tflops": peak, "finished": finished}
    write_json(out / f"speed_{slug}.json", data)
    m = data["machine"]
    lines = [f"# Speed and memory: {m.get('gpu') or m['cpu']}", "",
             f"Made by `{command}` in {minutes:.0f} min; torch {m['torch']}, {m['threads']} CPU threads, "
             f"{m['cpu']}. {data['steps']} measured steps after {data['warmup']} warm-up steps per run; "
             f"MFU against {f'{peak:g} TFLOP/s' if peak else 'no known peak (pass --peak-tflops)'}.", "",
             *([] if finished else ["**Partial**: written after each cell of a run that had not finished.", ""]),
             f"Targets: {TARGETS_TEXT}", "", *target_checks(data), "", *summarise(data, peak)]
    path = out / f"speed_{slug}.md"
    write_text(path, "\n".join(lines))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of whole-step runs (default 3)")
    parser.add_argument("--steps", type=int, default=None, help="measured steps per run (default 20 CPU, 30 GPU)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every worker (default 2)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for the MFU column")
    parser.add_argument("--quick", action="store_true", help="one setup, 1 round, 4 steps: a smoke run")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    parser.add_argument("--compile", action="store_true", help="also measure ours with torch.compile (training)")
    parser.add_argument("--deadline", type=float, default=None, metavar="MINUTES",
                        help="start no cell after this many minutes; the rest are listed as not measured "
                             "(for a GPU lent for a short time)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda, but torch sees no CUDA GPU here", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    steps = 4 if args.quick else args.steps or (20 if args.device == "cpu" else 30)
    rounds = 1 if args.quick else args.rounds
    out = args.out or (REPO / "output" / "bench" if args.quick else RESULTS)
    command = ("python bench/speed.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    began = time.time()

    def write(data: dict, finished: bool) -> Path:
        return write_results(data, out, command, (time.time() - began) / 60, peak_tflops(data, args.peak_tflops),
                             finished)

    data = measure(args.device, rounds, steps, 1 if args.quick else args.warmup, args.threads, args.quick,
                   compiled=args.compile, deadline=began + 60 * args.deadline if args.deadline else None,
                   on_row=lambda partial: write(partial, finished=False))
    path = write(data, finished=True)
    print(f"wrote {path}")
    for r in failed(data["rows"]):
        print(f"failed: {r['setup']} {r['variant']} {r['task']} {r['mode']}:\n{r['traceback']}", file=sys.stderr)
    return 1 if failed(data["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
