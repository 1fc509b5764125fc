"""The appearance LoRA export in ComfyUI's own core loader: Load Checkpoint on an SD 1.5 checkpoint the tests write
(full architecture, random weights), Load LoRA (model only) on the export; every key is applied and the patched
weights are W0 + strength * up @ down."""

import json
import logging

import torch
from safetensors.torch import load_file

from tests.nodes.conftest import pack_module

STRENGTH = 0.7


def full_sd15_unet(comfy):
    """The full SD 1.5 UNetMotionModel on the meta device: what the appearance LoRA's layer paths and shapes are."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    single_file = pack_module(comfy, "motiondirector_core.families.animatediff.single_file")
    config = json.loads((single_file.SD15 / "unet" / "config.json").read_text())
    with torch.device("meta"):
        unet = UNet2DConditionModel(**{k: v for k, v in config.items() if not k.startswith("_")})
        return UNetMotionModel.from_unet2d(unet, MotionAdapter(use_motion_mid_block=False), load_weights=False)


def appearance_lora(comfy, rank: int = 4):
    lora = pack_module(comfy, "motiondirector_core.lora")
    family = pack_module(comfy, "motiondirector_core.families").FAMILIES["animatediff"]
    unet = full_sd15_unet(comfy)
    g = torch.Generator().manual_seed(0)
    state = {}
    for module in family.lora_targets(unet, "spatial"):
        layer = unet.get_submodule(module)
        state[module + lora.A_SUFFIX] = torch.randn(rank, layer.in_features, generator=g) * 0.05
        state[module + lora.B_SUFFIX] = torch.randn(layer.out_features, rank, generator=g) * 0.05
    return family, lora.LoraWeights("spatial", state, {"alpha": str(rank), "base_family": "animatediff"})


def test_comfyuis_load_lora_applies_every_key_of_the_appearance_export(comfy, comfy_dirs, animatediff_full_files,
                                                                       caplog):
    import comfy.utils as comfy_utils
    import folder_paths

    checkpoint = comfy_dirs["models"] / "checkpoints" / "full_sd15.safetensors"
    if not checkpoint.exists():
        checkpoint.symlink_to(animatediff_full_files / "sd15.safetensors")
    exports = pack_module(comfy, "motiondirector_core.exports")
    family, weights = appearance_lora(comfy)
    (path,) = exports.export_loras(family, [weights], lambda folder: comfy_dirs["models"] / folder, "full_look")
    assert path.name in folder_paths.get_filename_list("loras")

    model, _clip, _vae = comfy["CheckpointLoaderSimple"]().load_checkpoint("full_sd15.safetensors")
    assert type(model.model.model_config).__name__ == "SD15"
    with caplog.at_level(logging.WARNING):
        (patched,) = comfy["LoraLoaderModelOnly"]().load_lora_model_only(model, path.name, STRENGTH)
    assert "lora key not loaded" not in caplog.text and "NOT LOADED" not in caplog.text
    assert len(patched.patches) == len(weights.modules) == 96

    unet_config = model.model.model_config.unet_config
    ldm_name = comfy_utils.unet_to_diffusers(unet_config)  # diffusers module path -> the checkpoint's LDM key
    original = load_file(str(checkpoint))
    patched.patch_model()
    try:
        state = patched.model.diffusion_model.state_dict()
        for module in weights.modules:
            key = ldm_name[module + ".weight"]
            w0 = original["model.diffusion_model." + key].float()
            delta = weights.state[module + ".lora_B.weight"] @ weights.state[module + ".lora_A.weight"]
            expected = w0 + STRENGTH * delta.reshape(w0.shape)
            torch.testing.assert_close(state[key].float(), expected, rtol=0, atol=2e-3)  # fp16 weights
            assert not torch.allclose(state[key].float(), w0, atol=1e-4)
    finally:
        patched.unpatch_model()
