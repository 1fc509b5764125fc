"""AnimateDiff in the node graph: Load AnimateDiff Model from ComfyUI's folders, training with the pack's nodes,
Save LoRA's exports into AnimateDiff-Evolved's and ComfyUI's LoRA folders, Load LoRA reading motion LoRAs."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.nodes.conftest import TRAIN, pack_module, run_node

SIZE = 64  # the tiny SD 1.5 layout downsamples three times: 8x8 latents at least


def load(comfy, motion_module="tiny_mm_v3.safetensors", vae="(the checkpoint's own)"):
    (pipeline,) = run_node(comfy, "MD_LoadAnimateDiffModel", checkpoint="tiny_sd15.safetensors",
                           motion_module=motion_module, vae=vae, dtype="fp32", device="cpu")
    return pipeline


def test_the_loader_lists_comfyuis_and_ades_folders_and_loads(comfy):
    schema = comfy["MD_LoadAnimateDiffModel"].GET_SCHEMA()
    options = {i.id: i.options for i in schema.inputs if hasattr(i, "options")}
    assert "tiny_sd15.safetensors" in options["checkpoint"]
    assert {"tiny_mm_v2.ckpt", "tiny_mm_v3.safetensors"} <= set(options["motion_module"])
    assert options["vae"][0] == "(the checkpoint's own)" and "tiny_vae.safetensors" in options["vae"]
    for motion_module, temporal in (("tiny_mm_v2.ckpt", 210), ("tiny_mm_v3.safetensors", 200)):
        pipeline = load(comfy, motion_module, vae="tiny_vae.safetensors")
        model = pipeline.model
        assert model.family.name == "animatediff" and not pipeline.stack
        assert len(model.family.lora_targets(model.unet, "temporal")) == temporal


def test_missing_files_are_named(comfy):
    errors = pack_module(comfy, "motiondirector_core.errors")
    with pytest.raises(errors.MotionDirectorError, match="motion module 'v3_sd15_mm.ckpt' was not found: put it in"):
        run_node(comfy, "MD_LoadAnimateDiffModel", checkpoint="tiny_sd15.safetensors", motion_module="v3_sd15_mm.ckpt",
                 vae="(the checkpoint's own)", dtype="fp32", device="cpu")


def test_train_save_with_exports_and_load_them_back(comfy, comfy_dirs):
    pipeline = load(comfy)
    frames = torch.rand(4, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(0))
    (clips,) = run_node(comfy, "MD_ClipsFromImages", images=frames, prompt="a man lifting weights", resample=False,
                        frames=4, stride=1, fps=0.0, start=0, random_start=False, width=SIZE, height=SIZE,
                        resize="crop", repeat_short=False, frame_rate=0.0)
    lora, _loss, _validation = run_node(comfy, "MD_TrainMotion", pipeline=pipeline, clips=clips, run_name="ad_walk",
                                        **TRAIN)
    import yaml

    config = yaml.safe_load((comfy_dirs["output"] / "motiondirector" / "ad_walk" / "config.yaml").read_text())
    assert (config["model"], Path(config["checkpoint"]).name, Path(config["motion_module"]).name) == (
        "", "tiny_sd15.safetensors", "tiny_mm_v3.safetensors")  # what the run was trained on, as files
    (text,) = run_node(comfy, "MD_SaveLora", lora=lora, filename_prefix="ad_walk", export_for_other_tools=True)
    written = text.splitlines()
    motion = comfy_dirs["models"] / "animatediff_motion_lora" / "ad_walk_motion_lora.safetensors"
    look = comfy_dirs["models"] / "loras" / "ad_walk_appearance_lora.safetensors"
    assert written[-2:] == [str(motion), str(look)]
    assert all("temporal_transformer" in key for key in load_file(str(motion)))
    assert all(key.startswith("lora_unet_") for key in load_file(str(look)))

    schema = comfy["MD_LoadLora"].GET_SCHEMA()  # ComfyUI's refresh: the motion LoRA is listed under ADE's folder
    names = next(i for i in schema.inputs if i.id == "lora_name").options
    assert "animatediff_motion_lora/ad_walk_motion_lora.safetensors" in names
    (loaded,) = run_node(comfy, "MD_LoadLora", lora_name="animatediff_motion_lora/ad_walk_motion_lora.safetensors")
    (trained,) = [w for w in lora.loras if w.kind == "temporal"]
    (back,) = loaded.loras
    assert back.kind == "temporal" and sorted(back.modules) == sorted(trained.modules)
    assert all(torch.allclose(back.state[k], trained.state[k]) for k in trained.state)
    (moving,) = run_node(comfy, "MD_ApplyLora", pipeline=pipeline, lora=loaded, temporal_scale=1.0, spatial_scale=0.0,
                         spatial_index=0)
    (video,) = run_node(comfy, "MD_Sample", pipeline=moving, prompt="a bear lifting weights", seed=0,
                        negative_prompt="", frames=4, width=SIZE, height=SIZE, steps=2, cfg=7.5, scheduler="ddim",
                        noise_prior=0.0)
    assert video.shape == (4, SIZE, SIZE, 3)
