"""bench/speed.py at toy size: every variant, path and task is measured in its own process and reported; the model
FLOPs it counts on the meta device match the ZeroScope figures the issue quotes."""

import json

import pytest

from tests.fixtures.bench import load_bench


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
    assert [(r["variant"], r["task"]) for r in rows if r["task"] != "train"] == [("ours", "sample"), ("ours", "invert")]
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
    assert json.loads((tmp_path / "speed_cpu.json").read_text())["rows"] == rows


def test_compile_flag_adds_a_compiled_training_variant(bench, tiny_model_dir, monkeypatch):
    setup = dict(name="tiny 32x32x4", model=str(tiny_model_dir), width=32, height=32, frames=4)
    cells = []

    def fake_worker(cell):  # what each worker process would be asked to run
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
