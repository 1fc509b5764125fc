"""Invert Reference, Sample and Sweep, and their frames in the core video nodes."""

import json

import av
import pytest
import torch

from tests.nodes.conftest import MODEL_NAME, SAMPLE, pack_module, run_node, sample, train, video_clips


@pytest.fixture(scope="module")
def moving(comfy):
    """A base pipeline, one with a motion LoRA on it, and the reference clip that LoRA was trained on."""
    (base,) = run_node(comfy, "MD_LoadBaseModel", model=MODEL_NAME, dtype="fp32", device="cpu")
    clips = video_clips(comfy, seed=5)
    motion, *_ = train(comfy, base, clips, "sample_motion", train="temporal")
    (with_motion,) = run_node(comfy, "MD_ApplyLora", pipeline=base, lora=motion, temporal_scale=1.0,
                              spatial_scale=0.0, spatial_index=-1)
    return base, with_motion, clips[0].frames


def errors(comfy):
    return pack_module(comfy, "motiondirector_core.errors")


def invert(comfy, pipeline, images, steps=2):
    (noise,) = run_node(comfy, "MD_InvertReference", pipeline=pipeline, images=images, steps=steps)
    return noise


def test_inverted_reference_frames_steer_the_sample(comfy, moving, progress):
    base, with_motion, reference = moving
    noise = invert(comfy, with_motion, reference)  # the LoRAs are off while it inverts
    assert noise.latents.shape == (1, 4, 4, 4, 4) and (noise.frames, noise.width, noise.height) == (4, 32, 32)
    assert torch.equal(invert(comfy, base, reference).latents, noise.latents)
    progress.events.clear()
    free, primed = sample(comfy, with_motion), sample(comfy, with_motion, noise=noise)
    assert free.shape == primed.shape == (4, 32, 32, 3) and not torch.equal(free, primed)
    assert torch.equal(sample(comfy, with_motion, noise=noise, noise_prior=0.0), free)
    assert progress.values == [1, 2] * 3 and len(progress.previews) == 6  # a latent preview every step
    assert torch.equal(sample(comfy, with_motion, noise=noise), primed)


def test_single_image_reference_animates_over_every_frame(comfy, moving):
    base, with_motion, reference = moving
    noise = invert(comfy, base, reference[:1])
    assert noise.latents.shape == (1, 4, 1, 4, 4)
    frames = sample(comfy, with_motion, noise=noise, frames=3, noise_prior=0.8)
    assert frames.shape == (3, 32, 32, 3)
    assert not torch.equal(frames, sample(comfy, with_motion, frames=3))  # the image steers the sample
    # ... as its one inverted frame, repeated over every frame, mixed in at sqrt(0.8): what the core does with it
    core_sample = pack_module(comfy, "motiondirector_core.sample")
    repeated = noise.latents.expand(-1, -1, 3, -1, -1)
    settings = core_sample.SampleSettings(prompt="a red circle", frames=3, noise_prior=0.8,
                                          **{k: v for k, v in SAMPLE.items() if k in ("width", "height", "steps",
                                                                                     "cfg", "scheduler")})
    with_motion.activate()
    start = core_sample.initial_noise(with_motion.model, settings, repeated)
    assert torch.equal(start, core_sample.initial_noise(with_motion.model, settings, noise))
    assert torch.equal(frames, core_sample.generate(with_motion.model, settings, repeated))


def test_sampled_frames_make_a_core_video(comfy, moving, tmp_path):
    _, with_motion, _ = moving
    frames = sample(comfy, with_motion, width=48)
    assert frames.shape == (4, 32, 48, 3)
    (video,) = run_node(comfy, "CreateVideo", images=frames, fps=8.0)
    assert video.get_dimensions() == (48, 32)
    video.save_to(str(tmp_path / "clip.mp4"))
    with av.open(str(tmp_path / "clip.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 4 and decoded[0].shape == (32, 48, 3)


def test_sweep_writes_its_folder_and_index(comfy, comfy_dirs, moving, progress):
    _, with_motion, reference = moving
    noise = invert(comfy, with_motion, reference)
    frames, index = run_node(comfy, "MD_Sweep", pipeline=with_motion, prompts="a fox runs\n\na bird flies\n",
                             temporal_scales="0, 1", spatial_scales="0", seeds="3", folder="sweeps/grid", fps=8.0,
                             noise=noise, **SAMPLE)
    folder = comfy_dirs["output"] / "motiondirector" / "sweeps" / "grid"
    assert index == str(folder / "index.json") and (folder / "index.csv").is_file()
    results = json.loads((folder / "index.json").read_text())["results"]
    assert [(r["prompt"], r["temporal_scale"], r["seed"]) for r in results] == [
        ("a fox runs", 0.0, 3), ("a fox runs", 1.0, 3), ("a bird flies", 0.0, 3), ("a bird flies", 1.0, 3)]
    for result in results:
        assert (folder / result["video"]).is_file() and (folder / result["settings"]).is_file()
        assert result["sample"]["noise_prior"] == 0.5 and result["noise_prior_reference"]["frames"] == 4
    assert frames.shape == (16, 32, 32, 3)
    sweep_events = [(value, total, preview is not None) for value, total, preview, *_ in progress.events if total == 4]
    assert sweep_events == [(1, 4, True), (2, 4, True), (3, 4, True), (4, 4, True)]  # a preview per video
    assert torch.equal(frames[4:8], sample(comfy, with_motion, prompt="a fox runs", seed=3, noise=noise))


def test_sweep_refuses_bad_lists_and_folders(comfy, moving):
    _, with_motion, _ = moving
    common = dict(pipeline=with_motion, prompts="a fox", spatial_scales="0", seeds="0", fps=8.0,
                  **{**SAMPLE, "noise_prior": 0.0})
    with pytest.raises(errors(comfy).MotionDirectorError, match="temporal_scales must be numbers"):
        run_node(comfy, "MD_Sweep", temporal_scales="0.5, strong", folder="sweeps/bad", **common)
    with pytest.raises(errors(comfy).MotionDirectorError, match="folder '../outside' must be a relative name inside"):
        run_node(comfy, "MD_Sweep", temporal_scales="1", folder="../outside", **common)


@pytest.mark.parametrize("node_id", ["MD_Sample", "MD_InvertReference"])
def test_size_not_a_multiple_of_8_is_refused(comfy, moving, node_id):
    base, *_ = moving
    message = "width 30 is not a positive multiple of 8: pick e.g. 32"
    with pytest.raises(errors(comfy).MotionDirectorError, match=message):
        if node_id == "MD_Sample":
            sample(comfy, base, width=30)
        else:
            invert(comfy, base, torch.rand(2, 32, 30, 3))


def test_unknown_model_names_the_folder_for_models(comfy, comfy_dirs):
    with pytest.raises(errors(comfy).MotionDirectorError) as caught:
        run_node(comfy, "MD_LoadBaseModel", model="zeroscope_v2_576w", dtype="auto", device="cpu")
    message = str(caught.value)
    assert "'zeroscope_v2_576w' was not found" in message and str(comfy_dirs["models"] / "diffusers") in message


def test_the_embedded_model_is_listed_and_loads(comfy):
    paths = pack_module(comfy, "nodes.paths")
    assert {"toyworld-t2v", MODEL_NAME} <= set(paths.model_names())
    assert paths.model_path("toyworld-t2v") == paths.EMBEDDED_MODELS / "toyworld-t2v"
    (pipeline,) = run_node(comfy, "MD_LoadBaseModel", model="toyworld-t2v", dtype="auto", device="cpu")
    assert pipeline.model.vae_factor == 8 and pipeline.model.dtype == torch.float32 and not pipeline.stack


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused(comfy):
    with pytest.raises(errors(comfy).MotionDirectorError, match="no CUDA GPU: choose auto or cpu"):
        run_node(comfy, "MD_LoadBaseModel", model=MODEL_NAME, dtype="auto", device="cuda")


def test_noise_prior_without_noise_samples_from_plain_noise(comfy, moving):
    base, *_ = moving
    assert torch.equal(sample(comfy, base, noise_prior=0.9), sample(comfy, base, noise_prior=0.0))
