import csv
import json

import av
import pytest
import torch

from motiondirector_core import lora
from motiondirector_core.errors import Cancelled, MotionDirectorError
from motiondirector_core.sample import SampleSettings, generate
from motiondirector_core.sweep import SweepSpec, run_sweep, slug


def add_trained_adapter(model, name: str, kind: str) -> None:
    lora.add_adapter(model.unet, model.family, name, kind, rank=4)
    with torch.no_grad():
        for _, layer in lora.lora_layers(model.unet):
            if name in layer.lora_B:
                layer.lora_B[name].weight.normal_(0, 0.5)


@pytest.fixture()
def motion_model(tiny_model):
    add_trained_adapter(tiny_model, "temporal", "temporal")
    add_trained_adapter(tiny_model, "spatial", "spatial")
    lora.set_scales(tiny_model.unet, {"spatial": 0.3})
    return tiny_model


def spec(**changes) -> SweepSpec:
    values = dict(
        prompts=["a cat", "A dog, running!"],
        temporal_scales=[0.0, 1.0],
        spatial_scales=[0.5],
        seeds=[0, 1],
        base=SampleSettings(prompt="", frames=3, width=32, height=32, steps=2),
        temporal_adapters=["temporal"],
        spatial_adapters=["spatial"],
    )
    return SweepSpec(**{**values, **changes})


def test_sweep_writes_videos_settings_and_index(motion_model, tmp_path):
    seen = []
    results = run_sweep(
        motion_model,
        spec(),
        tmp_path,
        on_result=lambda result, frames: seen.append((dict(lora.active_scales(motion_model.unet)), result, frames)),
    )
    assert len(results) == 8
    videos = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.mp4"))
    assert videos == sorted(
        f"{folder}/t{t}_s0.5_seed{seed}.mp4"
        for folder in ("000-a-cat", "001-a-dog-running")
        for t in ("0", "1")
        for seed in (0, 1)
    )
    for video in videos:
        assert (tmp_path / video).with_suffix(".json").is_file()

    index = json.loads((tmp_path / "index.json").read_text())
    assert index["results"] == results
    with open(tmp_path / "index.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["video"] for row in rows] == [r["video"] for r in results]
    assert rows[0]["prompt"] == "a cat" and rows[-1]["prompt"] == "A dog, running!"

    # Scale 0 turns an adapter off; the caller's scales come back afterwards.
    for scales, result, _ in seen:
        expected = {"spatial": 0.5, **({"temporal": 1.0} if result["temporal_scale"] else {})}
        assert scales == expected == result["adapter_scales"]
    assert lora.active_scales(motion_model.unet) == {"spatial": 0.3}

    with av.open(str(tmp_path / videos[0])) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == 3 and decoded[0].shape == (32, 32, 3)


def test_a_result_json_holds_all_that_reproduces_it(motion_model, tmp_path):
    frames_of = {}
    run_sweep(motion_model, spec(prompts=["a cat"], seeds=[5]), tmp_path,
              on_result=lambda result, frames: frames_of.__setitem__(result["video"], frames))
    saved = json.loads((tmp_path / "000-a-cat" / "t1_s0.5_seed5.json").read_text())
    assert saved["video"] == "000-a-cat/t1_s0.5_seed5.mp4"
    assert (saved["temporal_adapters"], saved["spatial_adapters"]) == (["temporal"], ["spatial"])
    assert saved["model"] == motion_model.name and saved["fps"] == 8.0
    settings = SampleSettings.from_dict(saved["sample"])
    assert (settings.prompt, settings.seed, settings.frames, settings.steps) == ("a cat", 5, 3, 2)

    lora.set_scales(motion_model.unet, saved["adapter_scales"])
    assert torch.equal(generate(motion_model, settings), frames_of[saved["video"]])


def test_several_spatial_adapters_share_each_spatial_scale_as_their_mean(motion_model, tmp_path):
    add_trained_adapter(motion_model, "spatial_1", "spatial")
    results = run_sweep(motion_model, spec(prompts=["a cat"], temporal_scales=[1.0], spatial_scales=[0.0, 0.8],
                                           seeds=[0], spatial_adapters=["spatial", "spatial_1"]), tmp_path)
    assert [r["adapter_scales"] for r in results] == [
        {"temporal": 1.0}, {"temporal": 1.0, "spatial": pytest.approx(0.4), "spatial_1": pytest.approx(0.4)}]


def test_sweep_passes_the_noise_prior_on(motion_model, tmp_path):
    z_inv = torch.randn(1, 4, 1, 4, 4)
    base = SampleSettings(prompt="", frames=3, width=32, height=32, steps=2, noise_prior=0.5)
    with_prior = run_sweep(motion_model, spec(prompts=["a cat"], temporal_scales=[1.0], seeds=[0], base=base),
                           tmp_path / "prior", reference_latents=z_inv)
    assert with_prior[0]["sample"]["noise_prior"] == 0.5
    assert with_prior[0]["noise_prior_reference"] == {"source": "tensor", "shape": [1, 4, 1, 4, 4]}
    with pytest.raises(MotionDirectorError, match="no inverted reference"):
        run_sweep(motion_model, spec(base=base), tmp_path / "none")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"prompts": []}, "at least one prompt"),
        ({"seeds": [1, 1]}, "seeds lists 1 more than once"),
        ({"temporal_scales": [1.0, float("nan")]}, "temporal_scales"),
        ({"temporal_adapters": ["motion"]}, "not loaded"),
        ({"spatial_adapters": ["temporal"]}, "both temporal and spatial"),
        ({"base": SampleSettings(prompt="", width=30, height=32, frames=2, steps=2)}, "width 30"),
        ({"fps": 0}, "fps"),
    ],
)
def test_a_bad_spec_raises_before_anything_is_written(motion_model, tmp_path, changes, message):
    with pytest.raises(MotionDirectorError, match=message):
        run_sweep(motion_model, spec(**changes), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cancel_keeps_finished_results_and_restores_scales(motion_model, tmp_path):
    finished = []
    with pytest.raises(Cancelled):
        run_sweep(motion_model, spec(), tmp_path, on_result=lambda result, frames: finished.append(result),
                  should_cancel=lambda: len(finished) >= 1)
    assert len(json.loads((tmp_path / "index.json").read_text())["results"]) == 1
    assert lora.active_scales(motion_model.unet) == {"spatial": 0.3}


def test_slug_makes_safe_folder_names():
    assert slug("A panda, riding a bicycle!") == "a-panda-riding-a-bicycle"
    assert slug("...") == "prompt"
    assert len(slug("x" * 200)) == 40
