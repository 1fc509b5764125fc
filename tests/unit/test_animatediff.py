"""The AnimateDiff family: users' single files loaded through diffusers' converters, placement on the full
architecture, the single-frame bypass, one text embedding per clip, and its limits and errors."""

import argparse
import logging

import pytest
import torch
from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel, UNetMotionModel
from safetensors.torch import save_file
from transformers import CLIPTextModel

from motiondirector_core import lora
from motiondirector_core.errors import MotionDirectorError
from motiondirector_core.families.animatediff import single_file
from motiondirector_core.models import FAMILIES, find_family, load_model
from motiondirector_core.sample import SampleSettings, generate

FAMILY = FAMILIES["animatediff"]


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def reference_motion_unet(files, version: str) -> UNetMotionModel:
    unet = UNet2DConditionModel.from_pretrained(files / "diffusers" / "unet")
    adapter = MotionAdapter.from_pretrained(files / "diffusers" / f"motion_adapter_{version}")
    return UNetMotionModel.from_unet2d(unet, adapter)


@pytest.mark.parametrize("motion_file, version", [("mm_v2.ckpt", "v2"), ("mm_v3.safetensors", "v3"),
                                                  ("mm_v3.ckpt", "v3")])
def test_single_files_load_exactly_through_the_converters(animatediff_files, motion_file, version):
    model = load_model(checkpoint=animatediff_files / "sd15.safetensors", motion_module=animatediff_files / motion_file,
                       device="cpu")
    assert model.family is FAMILY and model.name == f"sd15+{motion_file.rsplit('.', 1)[0]}"
    assert same_state(model.unet, reference_motion_unet(animatediff_files, version))
    assert same_state(model.vae, AutoencoderKL.from_pretrained(animatediff_files / "diffusers" / "vae"))
    text_encoder = CLIPTextModel.from_pretrained(animatediff_files / "diffusers" / "text_encoder")
    assert same_state(model.text_encoder, text_encoder)
    assert (model.unet.mid_block.motion_modules is not None) if version == "v2" else not hasattr(
        model.unet.mid_block, "motion_modules")
    assert FAMILY.max_frames(model.unet) == 32 and model.latent_scale == pytest.approx(0.18215)
    assert model.scheduler_config["timestep_spacing"] == "linspace" and model.scheduler_config["steps_offset"] == 1
    assert model.tokenizer.model_max_length == 77 and len(model.tokenizer) == 49408  # CLIP's own vocabulary


def test_a_separate_vae_file_replaces_the_checkpoints(animatediff_files):
    model = load_model(checkpoint=animatediff_files / "sd15.safetensors",
                       motion_module=animatediff_files / "mm_v2.ckpt", vae=animatediff_files / "vae.safetensors",
                       device="cpu")
    assert same_state(model.vae, AutoencoderKL.from_pretrained(animatediff_files / "diffusers" / "vae"))


def test_a_diffusers_animatediff_folder_loads_too(animatediff_files, tmp_path):
    import json
    import shutil

    folder = tmp_path / "animatediff-folder"
    for part in ("unet", "vae", "text_encoder"):
        shutil.copytree(animatediff_files / "diffusers" / part, folder / part)
    shutil.copytree(animatediff_files / "diffusers" / "motion_adapter_v2", folder / "motion_adapter")
    shutil.copytree(single_file.SD15 / "tokenizer", folder / "tokenizer")
    shutil.copytree(single_file.SD15 / "scheduler", folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "AnimateDiffPipeline",
                                                         "motion_adapter": ["diffusers", "MotionAdapter"]}))
    assert find_family(folder) is FAMILY
    model = load_model(folder, device="cpu")
    assert same_state(model.unet, reference_motion_unet(animatediff_files, "v2"))


def full_motion_unet(version: str) -> UNetMotionModel:
    import json

    config = json.loads((single_file.SD15 / "unet" / "config.json").read_text())
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)
        adapter = MotionAdapter(use_motion_mid_block=version == "v2", motion_max_seq_length=32)
        return UNetMotionModel.from_unet2d(unet, adapter, load_weights=False)


@pytest.mark.parametrize("version, temporal", [("v2", 210), ("v3", 200)])
def test_placement_on_the_full_architecture(version, temporal):
    """SD 1.5's 16 spatial transformers x (attn1 q/k/v/out + 2 feed-forward) = 96; every motion module (21 in v2
    with its mid-block one, 20 in v3) x (2 attention blocks x 4 + 2 feed-forward) = 210 / 200. No cross-attention."""
    unet = full_motion_unet(version)
    spatial, motion = FAMILY.lora_targets(unet, "spatial"), FAMILY.lora_targets(unet, "temporal")
    assert (len(spatial), len(motion)) == (96, temporal)
    assert not any(".attn2." in path for path in spatial)
    assert all(".motion_modules." in path for path in motion) and not any(".motion_modules." in p for p in spatial)
    assert sum(".ff." in path for path in motion) == temporal // 5
    assert ("mid_block.motion_modules.0.transformer_blocks.0.attn1.to_q" in motion) == (version == "v2")
    assert FAMILY.install_bypass(unet) == temporal // 10


def test_one_frame_is_the_plain_sd15_unet_and_text_is_given_once_per_clip(tiny_animatediff, animatediff_files):
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 4, 3, 8, 8, generator=g)
    text = torch.randn(2, 77, 32, generator=g)
    t = torch.tensor([500])
    plain = UNet2DConditionModel.from_pretrained(animatediff_files / "diffusers" / "unet").eval()
    with torch.no_grad():
        one = tiny_animatediff.unet(sample[:, :, :1], t, encoder_hidden_states=text).sample
        torch.testing.assert_close(one[:, :, 0], plain(sample[:, :, 0], t, encoder_hidden_states=text).sample)
        stock = reference_motion_unet(animatediff_files, "v3").eval()
        assert not torch.allclose(stock(sample[:, :, :1], t, encoder_hidden_states=text).sample, one)  # stock runs them
        every = stock(sample, t, encoder_hidden_states=text.repeat_interleave(3, dim=0)).sample
        torch.testing.assert_close(tiny_animatediff.unet(sample, t, encoder_hidden_states=text).sample, every)


def test_a_v2_motion_lora_loads_onto_v3_without_its_mid_block(animatediff_files, caplog):
    v2 = load_model(checkpoint=animatediff_files / "sd15.safetensors", motion_module=animatediff_files / "mm_v2.ckpt",
                    device="cpu")
    v3 = load_model(checkpoint=animatediff_files / "sd15.safetensors",
                    motion_module=animatediff_files / "mm_v3.safetensors", device="cpu")
    lora.add_adapter(v2.unet, FAMILY, "t", "temporal", rank=4)
    weights = lora.LoraWeights("temporal", lora.adapter_state(v2.unet, "t"), source="v2 motion")
    assert any(k.startswith("mid_block.") for k in weights.state)
    with caplog.at_level(logging.WARNING):
        lora.load_adapter(v3.unet, FAMILY, weights, "from_v2")
    assert "mid-block motion layers are left out" in caplog.text
    assert len([p for p, m in lora.lora_layers(v3.unet) if "from_v2" in m.lora_A]) == 200


def test_frames_beyond_the_motion_modules_positions_are_refused(tiny_animatediff):
    settings = SampleSettings(prompt="a cat", frames=33, width=64, height=64, steps=1)
    with pytest.raises(MotionDirectorError, match="33 frames are more than this animatediff model's temporal layers "
                                                  "take \\(32\\)"):
        generate(tiny_animatediff, settings)


def test_bad_files_get_clear_errors(animatediff_files, tmp_path):
    sd15, mm = animatediff_files / "sd15.safetensors", animatediff_files / "mm_v3.safetensors"
    with pytest.raises(MotionDirectorError, match="also needs a motion module"):
        load_model(checkpoint=sd15, device="cpu")
    with pytest.raises(MotionDirectorError, match="is not an AnimateDiff motion module"):
        load_model(checkpoint=sd15, motion_module=sd15, device="cpu")
    with pytest.raises(MotionDirectorError, match="is not a Stable Diffusion checkpoint"):
        load_model(checkpoint=mm, motion_module=mm, device="cpu")
    sdxl = tmp_path / "sdxl.safetensors"
    save_file({"model.diffusion_model.label_emb.0.0.weight": torch.zeros(2, 2)}, str(sdxl))
    with pytest.raises(MotionDirectorError, match="SDXL"):
        load_model(checkpoint=sdxl, motion_module=mm, device="cpu")
    unsafe = tmp_path / "mm_unsafe.ckpt"
    torch.save({"down_blocks.0.x": torch.zeros(1), "config": argparse.Namespace(fps=8)}, unsafe)
    with pytest.raises(MotionDirectorError, match="refused to load .*could run code"):
        load_model(checkpoint=sd15, motion_module=unsafe, device="cpu")
    with pytest.raises(MotionDirectorError, match="motion module .*missing.ckpt does not exist"):
        load_model(checkpoint=sd15, motion_module=tmp_path / "missing.ckpt", device="cpu")


def test_a_motion_module_without_position_encoding_loads_with_none(animatediff_files, tmp_path):
    """AnimateLCM's motion module has no position encoding; diffusers would add sinusoidal ones."""
    from safetensors.torch import load_file

    state = {k: v for k, v in load_file(str(animatediff_files / "mm_v3.safetensors")).items()
             if not k.endswith("pos_encoder.pe")}
    save_file(state, str(tmp_path / "lcm_like.safetensors"))
    adapter = single_file.load_motion_adapter(tmp_path / "lcm_like.safetensors", torch.float32)
    encodings = [b for n, b in adapter.named_buffers() if n.endswith("pos_embed.pe")]
    assert encodings and all(float(b.abs().max()) == 0 for b in encodings)
    assert float(single_file.load_motion_adapter(animatediff_files / "mm_v3.safetensors", torch.float32)
                 .down_blocks[0].motion_modules[0].transformer_blocks[0].pos_embed.pe.abs().max()) > 0
