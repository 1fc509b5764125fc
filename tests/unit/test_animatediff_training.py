"""The method on AnimateDiff, through the same code paths as ModelScope: dual-path training with one prompt per
clip, images-only appearance training, the noise prior, sampling, the sweep and the evaluation; and once on the
full v2 and v3 architecture (random weights, small frames)."""

import pytest
import torch

from motiondirector_core import lora
from motiondirector_core.clips import Clip
from motiondirector_core.exports import export_run
from motiondirector_core.invert import invert_frames
from motiondirector_core.lora_files import read_lora, read_lora_source
from motiondirector_core.metrics.evaluate import evaluate
from motiondirector_core.models import load_model
from motiondirector_core.pipeline import LoraSet, Pipeline
from motiondirector_core.sample import SampleSettings, generate
from motiondirector_core.sweep import SweepSpec, run_sweep
from motiondirector_core.train import TrainCallbacks, train
from motiondirector_core.train_config import TrainConfig


def clip(seed: int, prompt: str, frames: int = 4, size: int = 64) -> Clip:
    pixels = torch.rand(frames, size, size, 3, generator=torch.Generator().manual_seed(seed))
    return Clip(pixels, prompt, f"v{seed}.mp4")


def config(tmp_path, name="run", **changes) -> TrainConfig:
    return TrainConfig(**{**dict(output=str(tmp_path / name), steps=2, rank=4, width=64, height=64, frames=4,
                                 checkpoint_every=0), **changes})


def test_dual_path_training_with_a_prompt_per_clip(tiny_animatediff, tmp_path):
    clips = [clip(0, "a man lifting weights"), clip(1, "a woman lifting weights")]
    embeddings = []
    original = tiny_animatediff.unet.forward

    def record(*args, **kwargs):
        embeddings.append(kwargs["encoder_hidden_states"].detach().clone())
        return original(*args, **kwargs)

    tiny_animatediff.unet.forward = record
    try:
        result = train(tiny_animatediff, clips, config(tmp_path, steps=4, spatial_per_clip=True))
    finally:
        tiny_animatediff.unet.forward = original
    assert sorted(result.files) == ["spatial_0", "spatial_1", "temporal"]
    temporal = read_lora(result.files["temporal"])
    assert temporal.metadata["base_family"] == "animatediff" and len(temporal.modules) == 200
    assert all(".motion_modules." in m for m in temporal.modules)
    assert read_lora(result.files["spatial_1"]).metadata["prompt"] == "a woman lifting weights"
    per_clip = {tuple(e[0, :3, :4].flatten().tolist()) for e in embeddings}
    assert len(per_clip) == 2  # each clip trained with its own prompt's embedding


def test_images_train_only_the_appearance_lora(tiny_animatediff, tmp_path):
    images = [clip(i, "a photo of a red car", frames=1) for i in range(2)]
    with pytest.warns(UserWarning, match="spatial"):
        result = train(tiny_animatediff, images, config(tmp_path, hflip=1.0))
    assert list(result.files) == ["spatial"]
    assert all(".attentions." in m for m in read_lora(result.files["spatial"]).modules)


def test_noise_prior_sampling_sweep_and_evaluation(tiny_animatediff, tmp_path):
    reference = clip(3, "a dolly zoom", frames=4)
    result = train(tiny_animatediff, [reference], config(tmp_path))
    for name in result.files:
        lora.remove_adapter(tiny_animatediff.unet, name)
    motion = LoraSet(tuple(read_lora_source(result.final)), "run")
    pipeline = Pipeline(tiny_animatediff).with_loras(motion, motion_scale=1.0)
    prior = invert_frames(tiny_animatediff, reference.frames, steps=3)
    assert prior.latents.shape == (1, 4, 4, 8, 8)
    pipeline.activate()
    settings = SampleSettings(prompt="a cat, dolly zoom", frames=4, width=64, height=64, steps=3, cfg=7.5,
                              noise_prior=0.3)
    primed = generate(tiny_animatediff, settings, reference_latents=prior)
    free = generate(tiny_animatediff, SampleSettings(**{**settings.to_dict(), "noise_prior": 0.0}))
    assert primed.shape == (4, 64, 64, 3) and not torch.equal(primed, free)
    names = pipeline.adapters_of("temporal")
    spec = SweepSpec(prompts=["a cat"], temporal_scales=[0.0, 1.0], seeds=[0],
                     base=SampleSettings(prompt="", frames=4, width=64, height=64, steps=2, cfg=7.5),
                     temporal_adapters=names)
    results = run_sweep(tiny_animatediff, spec, tmp_path / "sweep")
    assert [r["adapter_scales"] for r in results] == [{}, {names[0]: 1.0}]
    report = evaluate([primed, free], [reference.frames])
    assert report["samples"] == 2 and -1 <= report["motion_fidelity"] <= 1


def test_family_defaults_fill_what_a_config_leaves_open(tiny_animatediff, tmp_path):
    steps = []
    result = train(tiny_animatediff, [clip(0, "a wave", frames=2)],
                   TrainConfig(output=str(tmp_path / "defaults"), steps=1, width=64, height=64, checkpoint_every=0),
                   TrainCallbacks(on_step=steps.append))
    meta = read_lora(result.files["temporal"]).metadata
    assert meta["rank"] == "64" and steps[0].lrs == {"temporal": 5e-4, "spatial": 1e-4}  # AnimateDiff's own


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_training_sampling_inversion_and_exports_on_the_full_architecture(animatediff_full_files, tmp_path, version):
    """SD 1.5 and the real motion modules at full size (random weights), 64x64 and 4 frames, a few steps."""
    files = animatediff_full_files
    motion = files / ("mm_v2.ckpt" if version == "v2" else "mm_v3.safetensors")
    model = load_model(checkpoint=files / "sd15.safetensors", motion_module=motion, dtype="fp32", device="cpu")
    assert sum(p.numel() for p in model.unet.parameters()) > (1.3e9 if version == "v2" else 1.25e9)
    reference = clip(7, "a man lifting weights", frames=4)
    result = train(model, [reference], config(tmp_path, steps=2, rank=8))
    temporal = read_lora(result.files["temporal"])
    assert len(temporal.modules) == (210 if version == "v2" else 200)
    assert len(read_lora(result.files["spatial"]).modules) == 96
    prior = invert_frames(model, reference.frames, steps=2)
    frames = generate(model, SampleSettings(prompt="a bear lifting weights", frames=4, width=64, height=64, steps=2,
                                            cfg=7.5, noise_prior=0.2), reference_latents=prior)
    assert frames.shape == (4, 64, 64, 3) and torch.isfinite(frames).all()
    written = export_run(None, result.output, tmp_path / "models")
    assert sorted(p.parent.name for p in written) == ["animatediff_motion_lora", "loras"]
