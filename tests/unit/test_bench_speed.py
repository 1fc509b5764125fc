"""bench/speed.py at toy size: every variant, path and task is measured in a worker process and reported; the model
FLOPs it counts on the meta device match the ZeroScope figures the issue quotes; the GPU run's report and its random
ZeroScope folder work before any GPU has run them."""

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from tests.fixtures.bench import BENCH, load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("speed")


def test_cpu_run_measures_each_variant_path_and_task(bench, tiny_model_dir, tmp_path):
    setup = dict(name="tiny 32x32x4", model=str(tiny_model_dir), width=32, height=32, frames=4)

    data = bench.measure("cpu", rounds=2, steps=2, warmup=1, threads=1, quick=True, printer=lambda line: None,
                         setups=[setup])

    rows = data["rows"]
    whole = [r["variant"] for r in rows if r["task"] == "train" and r["mode"] == "both"]
    assert whole == ["ours", "baseline", "ours", "baseline"]  # alternating rounds
    paths = {(r["variant"], r["mode"]) for r in rows if r["task"] == "train" and r["mode"] != "both"}
    assert paths == {(v, m) for v in ("ours", "baseline") for m in ("spatial", "temporal")}
    assert [(r["variant"], r["task"]) for r in rows if r["task"] != "train"] == [
        ("ours", "sample"), ("ours", "invert"), ("ours", "profile")]
    for r in rows:
        assert r["peak_memory_bytes"] > 50 * 2**20 and r["model_flops"] > 0
        assert r.get("seconds_per_step", r.get("seconds_per_video", r.get("seconds_per_inversion"))) > 0
    flops = {r["mode"]: r["model_flops"] for r in rows if r["task"] == "train"}
    assert flops["both"] == flops["spatial"] + flops["temporal"]

    path = bench.write_results(data, tmp_path, "python bench/speed.py --test", 0.1, None)
    text = path.read_text()
    assert path.name == "speed_cpu.md" and "python bench/speed.py --test" in text
    assert "Speed-up of ours over the baseline, both paths" in text and "CPU speed-up over the baseline" in text
    assert text.count("| ours |") == 5 and text.count("| baseline |") == 3  # 3 training rows + sample + invert
    profile = text[text.index("## Where a step's time goes: tiny 32x32x4, ours, both paths"):]
    assert "torch.profiler over 5 training steps" in profile and "aten::mm" in profile and "Self CPU" in profile
    assert json.loads((tmp_path / "speed_cpu.json").read_text())["rows"] == rows


def test_compile_flag_adds_a_compiled_training_variant(bench, tiny_model_dir, monkeypatch):
    setup = dict(name="tiny 32x32x4", model=str(tiny_model_dir), width=32, height=32, frames=4)
    cells = []

    def fake_worker(cell, workers, key):  # what each worker process would be asked to run
        cells.append(cell)
        return {"seconds_per_step": 1.0, "seconds_per_video": 1.0, "seconds_per_inversion": 1.0,
                "peak_memory_bytes": 1}

    monkeypatch.setattr(bench, "run_cell", fake_worker)
    data = bench.measure("cpu", rounds=1, steps=2, warmup=1, threads=1, quick=True, printer=lambda line: None,
                         setups=[setup], compiled=True)
    assert list(data["variants"]) == ["ours", "compiled", "baseline"]
    whole = [(r["variant"], c.get("compile", False)) for r, c in zip(data["rows"], cells)
             if r["task"] == "train" and r["mode"] == "both"]
    assert whole == [("ours", False), ("compiled", True), ("baseline", False)]
    assert not any(c.get("compile") for c in cells if c["task"] != "train"), "sampling is never compiled"


def test_flops_match_the_zeroscope_figures(bench, tmp_path):
    """11.26 TFLOPs per UNet forward at 384x384x16 and 21.4 at 576x320x24 (counted here on the meta device)."""
    from motiondirector_core.models import FAMILIES

    folder = tmp_path / "zeroscope-configs"  # the configs alone: the count needs no weights
    (folder / "unet").mkdir(parents=True)
    unet = {"_class_name": "UNet3DConditionModel", **FAMILIES["modelscope"].zeroscope_unet_config}
    (folder / "unet" / "config.json").write_text(json.dumps(unet))
    (folder / "vae").mkdir()
    (folder / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [128, 256, 512, 512]}))
    (folder / "tokenizer").mkdir()
    (folder / "tokenizer" / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77}))

    assert bench.unet_forward_flops(str(folder), 16, 384, 384) / 1e12 == pytest.approx(11.26, rel=0.01)
    assert bench.unet_forward_flops(str(folder), 24, 320, 576) / 1e12 == pytest.approx(21.4, rel=0.01)


def test_every_report_counts_the_full_architectures_animatediff_too(bench):
    rows = {r["architecture"]: r for r in bench.architecture_flops()}
    assert rows["ZeroScope 384x384x16"]["forward"] / 1e12 == pytest.approx(11.26, rel=0.01)
    v3, v2 = rows["AnimateDiff v3 512x512x16"], rows["AnimateDiff v2 512x512x16"]
    # SD 1.5 at 64x64 latents, 16 frames, plus the motion modules: measured 17.67 TFLOPs (v2's mid block adds 0.4%)
    assert v3["forward"] / 1e12 == pytest.approx(17.67, rel=0.01)
    assert v3["forward"] < v2["forward"] < 1.01 * v3["forward"]
    assert v3["sample"] == 25 * 2 * v3["forward"] and v3["both"] > 2 * v3["forward"]
    lines = "\n".join(bench.summarise({"rows": [], "variants": {}, "architecture_flops": list(rows.values())}, None))
    assert "| AnimateDiff v3 512x512x16 | 17.67 |" in lines


def test_random_animatediff_folder_loads_and_trains(tmp_path, monkeypatch):
    """bench/random_animatediff.py at toy sizes: the diffusers AnimateDiff folder it writes loads as AnimateDiff."""
    from motiondirector_core.models import load_model

    random_animatediff = load_bench("random_animatediff")
    small = {"unet": dict(block_out_channels=[32, 64, 64, 64], cross_attention_dim=32),
             "vae": dict(block_out_channels=[32, 32, 32, 32], layers_per_block=1),
             "text_encoder": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=1,
                                  projection_dim=32),
             "motion_adapter": dict(block_out_channels=[32, 64, 64, 64])}
    original = random_animatediff.config
    monkeypatch.setattr(random_animatediff, "config", lambda part: {**original(part), **small[part]})
    folder = random_animatediff.write_random_animatediff(tmp_path / "animatediff-random", dtype=torch.float32)
    model = load_model(folder, device="cpu")
    assert model.family.name == "animatediff" and len(model.family.lora_targets(model.unet, "temporal")) == 200


def test_gpu_report_checks_every_gpu_target(bench, tiny_model_dir, monkeypatch, tmp_path):
    """No GPU here: the GPU run's bookkeeping (variants, rounds, targets, report) with the workers' answers faked, so
    that the first real `--device cuda` run cannot fail at its end on a report bug."""
    setups = [dict(name="ZeroScope 384x384x16", model=str(tiny_model_dir), width=32, height=32, frames=4),
              dict(name="ZeroScope 576x320x24", model=str(tiny_model_dir), width=48, height=32, frames=6)]
    seconds = {"ours": 0.1, "low-memory": 0.13, "baseline": 0.9}
    order = []
    memory = {"ZeroScope 384x384x16": 7 * 2**30, "ZeroScope 576x320x24": 13 * 2**30}

    def fake_worker(cell, workers, key):
        setup = next(s["name"] for s in setups if (s["width"], s["frames"]) == (cell["width"], cell["frames"]))
        variant = next(v for v, settings in bench.VARIANTS["cuda"].items()
                       if all(cell[k] == settings[k] for k in settings))
        assert key == variant and workers.keep, "on a GPU each variant's worker is kept and reused"
        order.append((setup[10:13], variant, cell["task"], cell["mode"]))
        answer = {"train": {"seconds_per_step": seconds[variant]}, "sample": {"seconds_per_video": 4.0},
                  "invert": {"seconds_per_inversion": 2.0},
                  "profile": {"seconds_per_step": 0.11, "profiled_steps": 5, "profile_table": "aten::mm 40%"},
                  }[cell["task"]]
        return {**answer, "peak_memory_bytes": memory[setup], "gpu": "NVIDIA H100 80GB HBM3"}

    monkeypatch.setattr(bench, "run_cell", fake_worker)
    monkeypatch.setattr(bench, "machine", lambda device: {"python": "3", "torch": "2", "threads": 2, "cpu": "x",
                                                          "gpu": "NVIDIA H100 80GB HBM3"})
    data = bench.measure("cuda", rounds=2, steps=2, warmup=1, threads=1, quick=False, printer=lambda line: None,
                         setups=setups)
    assert list(data["variants"]) == ["ours", "low-memory", "baseline"]
    whole_steps = [(size, v, "train", "both") for size in ("384", "576") for _ in range(2)
                   for v in ("ours", "low-memory", "baseline")]
    assert order[:14] == whole_steps + [("384", "ours", "sample", "both"), ("576", "ours", "sample", "both")], \
        "what the targets need comes first, in case the deadline stops the run"
    assert order[-3:] == [("384", "ours", "invert", "both"), ("576", "ours", "invert", "both"),
                          ("384", "ours", "profile", "both")] and len(order) == 29

    path = bench.write_results(data, tmp_path, "python bench/speed.py --device cuda", 1.0,
                               bench.peak_tflops(data, None))
    text = path.read_text()
    assert path.name == "speed_gpu_nvidia_h100_80gb_hbm3.md" and "MFU against 989 TFLOP/s" in text
    assert "- 384x384x16 step, both paths: 0.1 s (at most 0.15): met" in text
    assert "- 384x384x16 peak memory, low-memory profile: 7 GB (at most 8): met" in text
    assert "- 576x320x24 peak memory, low-memory profile: 13 GB (at most 12): NOT met" in text
    assert "- 384x384x16 video, 30 steps with guidance: 4 s (at most 5): met" in text
    assert "Speed-up of ours over the baseline, both paths: **9.00x**" in text
    assert "| ours | DDIM inversion, 50 steps | 2.000 |" in text
    assert "| ours | both paths | 0.1000 |" in text, "the profiled run's slower step is not a training row"
    assert "## Where a step's time goes: ZeroScope 384x384x16, ours, both paths" in text and "aten::mm 40%" in text


def test_random_zeroscope_folder_loads_and_trains(tmp_path, monkeypatch):
    """bench/random_zeroscope.py at toy sizes (the real one is 1.4 B parameters): the folder it writes is one that
    load_model takes, trains on and samples from, as the GPU benchmark will."""
    from motiondirector_core.clips import Clip
    from motiondirector_core.models import FAMILIES, load_model
    from motiondirector_core.sample import SampleSettings, generate
    from motiondirector_core.train import train
    from motiondirector_core.train_config import TrainConfig
    from tests.fixtures.media import moving_square
    from tests.fixtures.tiny_model import UNET_CONFIG, VAE_CONFIG

    random_zeroscope = load_bench("random_zeroscope")
    monkeypatch.setattr(FAMILIES["modelscope"], "zeroscope_unet_config", UNET_CONFIG)
    monkeypatch.setattr(random_zeroscope, "VAE_CONFIG", VAE_CONFIG)
    monkeypatch.setattr(random_zeroscope, "TEXT_CONFIG", dict(random_zeroscope.TEXT_CONFIG, hidden_size=32,
                                                              intermediate_size=64, num_hidden_layers=2,
                                                              num_attention_heads=4, projection_dim=32))
    folder = random_zeroscope.write_random_zeroscope(tmp_path / "zeroscope-random")
    assert random_zeroscope.write_random_zeroscope(folder) == folder  # a complete folder is kept

    model = load_model(folder, dtype="bf16", device="cpu")
    assert model.max_prompt_tokens == 77 and model.unet.dtype == torch.bfloat16
    clip = Clip(torch.from_numpy(moving_square(4, 32, 32)).float() / 255, "a white square moving right")
    result = train(model, [clip],
                   TrainConfig(steps=2, rank=4, width=32, height=32, frames=4, precision="bf16", checkpoint_every=0,
                               output=str(tmp_path / "run")))
    assert set(result.files) == {"spatial", "temporal"}
    frames = generate(model, SampleSettings(prompt="a blue circle", frames=4, width=32, height=32, steps=2))
    assert frames.shape == (4, 32, 32, 3)


def sample_cell(model_dir) -> dict:
    return dict(model=str(model_dir), dtype="fp32", device="cpu", threads=1, task="sample", frames=4, width=32,
                height=32, sample_steps=2, cfg=7.0, repeats=1)


def test_a_kept_worker_serves_cells_answers_failures_and_is_restarted(bench, tiny_model_dir, tmp_path):
    """The GPU's way of running workers (one process per variant, kept between cells), on the CPU."""
    workers = bench.Workers(keep=True, log_dir=tmp_path)
    cell = sample_cell(tiny_model_dir)
    try:
        failed = workers.run("ours", {**cell, "model": str(tmp_path / "no-such-model")})
        assert "no-such-model" in failed["error"] and "Traceback" in failed["traceback"]
        pid = workers.processes["ours"].pid
        assert workers.run("ours", cell)["seconds_per_video"] > 0
        assert workers.processes["ours"].pid == pid, "a failed cell does not end the worker"
        assert "peak RSS cannot be reset" in workers.run("ours", cell)["error"]  # the CPU's one-cell rule

        workers.processes["ours"].kill()
        workers.processes["ours"].wait()
        assert workers.run("ours", cell)["seconds_per_video"] > 0  # a worker that died is started again
        assert workers.started == 2
    finally:
        workers.close()
    assert workers.processes == {}


def test_a_worker_that_dies_is_reported_with_its_last_words(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench.Workers, "command",
                        [sys.executable, "-c", "import sys; print('CUDA driver gone', file=sys.stderr); sys.exit(3)"])
    workers = bench.Workers(keep=False, log_dir=tmp_path)
    answer = workers.run("ours", {"task": "train"})
    assert answer["error"] == "the worker process ended (exit status 3)"
    assert "CUDA driver gone" in answer["traceback"] and workers.processes == {}


def test_failed_and_late_cells_are_reported_and_the_rest_kept(bench, tiny_model_dir, tmp_path, monkeypatch):
    """A short GPU lease: cells past the deadline are listed, a failed cell is listed with its error, and the file
    is rewritten after every cell (a run killed at its time limit leaves what it measured)."""
    setup = dict(name="tiny 32x32x4", model=str(tiny_model_dir), width=32, height=32, frames=4)
    deadline = time.time() + 5
    calls, partial = [], []

    def fake_worker(cell, workers, key):
        calls.append(key)
        if len(calls) == 2:
            return {"error": "OutOfMemoryError: CUDA out of memory", "traceback": "..."}
        if len(calls) == 3:
            time.sleep(max(0.0, deadline - time.time()) + 0.05)
        return {"seconds_per_step": 0.5, "peak_memory_bytes": 2**30}

    def on_row(data):
        partial.append(bench.write_results(data, tmp_path, "python bench/speed.py", 0.1, None, finished=False)
                       .read_text())

    monkeypatch.setattr(bench, "run_cell", fake_worker)
    data = bench.measure("cpu", rounds=2, steps=2, warmup=1, threads=1, quick=True, printer=lambda line: None,
                         setups=[setup], deadline=deadline, on_row=on_row)
    assert calls == ["ours", "baseline", "ours"] and len(data["rows"]) == 3
    assert [(r["variant"], r["round"]) for r in data["skipped"][:1]] == [("baseline", 1)]
    assert len(data["skipped"]) == 1 + 4 + 1 + 1 + 1  # round 1's baseline, paths, sampling, inversion, profile
    assert len(partial) == 3 and all("**Partial**" in text for text in partial)

    text = bench.write_results(data, tmp_path, "python bench/speed.py", 0.1, None).read_text()
    assert "**Partial**" not in text
    assert "- tiny 32x32x4 baseline train both round 0: OutOfMemoryError: CUDA out of memory" in text
    assert "## Cells not measured (past the deadline)" in text and "- tiny 32x32x4 ours sample both round 0" in text
    assert "Speed-up of ours" not in text  # no round has both variants measured
    assert "| ours | both paths | 0.5000 |" in text


def test_the_lease_script_checks_its_packages_and_hands_its_arguments_on(tmp_path):
    """bench/gpu_lease.sh as the lent machine runs it (`python3` the Python there, $OUT a folder), as far as
    bench/speed.py, whose --help ends the run before it looks for a GPU."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA H200'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    out = tmp_path / "out"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OUT": str(out), "TMPDIR": str(tmp_path)}
    done = subprocess.run(["bash", str(BENCH / "gpu_lease.sh"), "--help"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "gpu_lease: torch" in done.stdout and "diffusers" in done.stdout
    assert "--deadline MINUTES" in (out / "speed_gpu.log").read_text()
    assert (out / "nvidia-smi.txt").read_text() == "NVIDIA H200\n"
