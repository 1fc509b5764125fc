"""AnimateDiff LoRA files of other tools: ours exported for AnimateDiff-Evolved and ComfyUI's core loader (checked
key for key against the loaders' rules, and by what the merged weights compute), and theirs read as our LoRAs."""

import logging

import pytest
import torch
from diffusers import UNet2DConditionModel, UNetMotionModel
from safetensors.torch import load_file, save_file

from motiondirector_core import lora
from motiondirector_core.errors import MotionDirectorError
from motiondirector_core.exports import export_loras, export_run
from motiondirector_core.families.animatediff import formats, single_file
from motiondirector_core.lora import A_SUFFIX, B_SUFFIX, LoraWeights
from motiondirector_core.lora_files import read_lora_source, save_lora
from motiondirector_core.models import FAMILIES, load_model

FAMILY = FAMILIES["animatediff"]


def trained_like(model, kind: str, seed: int, rank: int = 4, alpha: float | None = None) -> LoraWeights:
    lora.add_adapter(model.unet, FAMILY, "tmp", kind, rank=rank)
    state = lora.adapter_state(model.unet, "tmp")
    lora.remove_adapter(model.unet, "tmp")
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=g) * 0.1 for k, v in state.items()}
    metadata = {"alpha": str(alpha or rank), "base_family": "animatediff"}
    return LoraWeights(kind, state, metadata, source=f"{kind} {seed}")


def ade_merge(motion_module: dict, lora_file: dict, strength: float, model_has_mid: bool) -> dict:
    """AnimateDiff-Evolved's motion-LoRA loading (model_injection.load_motion_lora_as_patches), transcribed: keys
    without 'temporal' dropped, mid-block keys skipped on a model without one, each down key's target weight found
    by removing processor. / _lora / down. / up. (to_out. -> to_out.0.), W += strength * up @ down. Keys the model
    lacks would be dropped silently there: here they fail the test."""
    merged = dict(motion_module)
    state = {k: v for k, v in lora_file.items() if "temporal" in k}
    assert state, "ADE: contains no temporal keys; it is not a valid motion LoRA"
    for key in state:
        if not model_has_mid and "mid_block" in key:
            continue
        if "up." in key:
            continue
        up = state[key.replace(".down.", ".up.")]
        target = key.replace("processor.", "").replace("_lora", "").replace("down.", "").replace("up.", "")
        if "to_out.0." not in target:
            target = target.replace("to_out.", "to_out.0.")
        assert target in motion_module, f"{key} patches {target}, which the motion module does not have"
        assert motion_module[target].shape == (up.shape[0], state[key].shape[1])
        merged[target] = (motion_module[target].float() + strength * torch.mm(up.float(), state[key].float()))
    return merged


def merged_unet(files, version: str, merged: dict, tmp_path) -> UNetMotionModel:
    path = tmp_path / f"merged_{version}.safetensors"
    save_file({k: v.contiguous() for k, v in merged.items()}, str(path))
    unet2d = UNet2DConditionModel.from_pretrained(files / "diffusers" / "unet")
    return UNetMotionModel.from_unet2d(unet2d, single_file.load_motion_adapter(path, torch.float32)).eval()


def outputs(unet, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    sample, text = torch.randn(1, 4, 4, 8, 8, generator=g), torch.randn(1, 77, 32, generator=g)
    with torch.no_grad():
        return unet(sample, torch.tensor([400]), encoder_hidden_states=text.repeat_interleave(4, dim=0)).sample


def with_adapter(model, weights: LoraWeights, scale: float):
    lora.load_adapter(model.unet, FAMILY, weights, "applied")
    lora.set_scales(model.unet, {"applied": scale})
    model.unet.eval()
    g = torch.Generator().manual_seed(0)
    sample, text = torch.randn(1, 4, 4, 8, 8, generator=g), torch.randn(1, 77, 32, generator=g)
    with torch.no_grad():
        return model.unet(sample, torch.tensor([400]), encoder_hidden_states=text).sample


def load(files, version: str):
    motion = files / ("mm_v2.ckpt" if version == "v2" else "mm_v3.safetensors")
    return load_model(checkpoint=files / "sd15.safetensors", motion_module=motion, device="cpu")


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_the_motion_lora_export_is_what_animatediff_evolved_applies(animatediff_files, tmp_path, version):
    model = load(animatediff_files, version)
    weights = trained_like(model, "temporal", seed=1, alpha=2.0)  # alpha / rank = 0.5: baked into the export
    (path,) = export_loras(FAMILY, [weights], lambda folder: tmp_path / folder, "walk")
    assert path == tmp_path / "animatediff_motion_lora" / "walk_motion_lora.safetensors"
    exported = load_file(str(path))
    assert all("temporal_transformer" in k and (k.endswith(".down.weight") or k.endswith(".up.weight"))
               for k in exported), "ADE breaks on an alpha key and ignores keys without 'temporal'"
    assert len(exported) == 2 * len(weights.modules) == 2 * (210 if version == "v2" else 200)
    original = torch.load(animatediff_files / "mm_v2.ckpt", weights_only=True) if version == "v2" else \
        load_file(str(animatediff_files / "mm_v3.safetensors"))
    merged = ade_merge(original, exported, strength=0.8, model_has_mid=version == "v2")
    expected = outputs(merged_unet(animatediff_files, version, merged, tmp_path))
    torch.testing.assert_close(with_adapter(model, weights, 0.8), expected, rtol=1e-4, atol=1e-5)


def test_the_appearance_lora_export_uses_kohya_names_with_alpha(animatediff_files, tmp_path):
    model = load(animatediff_files, "v3")
    weights = trained_like(model, "spatial", seed=2, alpha=8.0)
    (path,) = export_loras(FAMILY, [weights], lambda folder: tmp_path / folder, "look")
    assert path == tmp_path / "loras" / "look_appearance_lora.safetensors"
    exported = load_file(str(path))
    module = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0"
    name = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_out_0"
    assert {f"{name}.lora_down.weight", f"{name}.lora_up.weight", f"{name}.alpha"} <= set(exported)
    assert len(weights.modules) == 96 and len(exported) == 3 * 96
    torch.testing.assert_close(exported[f"{name}.lora_up.weight"] @ exported[f"{name}.lora_down.weight"]
                               * exported[f"{name}.alpha"] / 4,
                               weights.state[module + B_SUFFIX] @ weights.state[module + A_SUFFIX] * 8.0 / 4)
    back = read_lora_source(path)[0]  # and our reader takes it back, with its scale
    assert back.kind == "spatial" and sorted(back.modules) == sorted(weights.modules)
    lora.load_adapter(model.unet, FAMILY, back, "back")
    lora.load_adapter(model.unet, FAMILY, weights, "orig")
    model.unet.eval()
    torch.testing.assert_close(with_scales(model, {"back": 1.0}), with_scales(model, {"orig": 1.0}), rtol=1e-4,
                               atol=1e-5)
    assert not torch.allclose(with_scales(model, {"orig": 1.0}), with_scales(model, {}))


def with_scales(model, scales):
    lora.set_scales(model.unet, scales)
    g = torch.Generator().manual_seed(0)
    sample, text = torch.randn(1, 4, 1, 8, 8, generator=g), torch.randn(1, 77, 32, generator=g)
    with torch.no_grad():
        return model.unet(sample, torch.tensor([400]), encoder_hidden_states=text).sample


def guoyww_motion_lora(model, rank: int = 4, seed: int = 3) -> dict:
    """A motion LoRA in guoyww's released layout (v2_lora_*.ckpt): the attention projections of every motion
    module, mid block included, `processor.<proj>_lora.down/up.weight`, no alpha."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for module in FAMILY.lora_targets(model.unet, "temporal"):
        if ".ff." in module:
            continue
        layer = model.unet.get_submodule(module)
        stem = formats.motion_lora_stem(module)
        state[f"{stem}.down.weight"] = torch.randn(rank, layer.in_features, generator=g) * 0.1
        state[f"{stem}.up.weight"] = torch.randn(layer.out_features, rank, generator=g) * 0.1
    return state


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_guoyww_motion_loras_load_with_adés_scale(animatediff_files, tmp_path, version):
    v2 = load(animatediff_files, "v2")
    released = tmp_path / "v2_lora_ZoomIn.ckpt"
    torch.save(guoyww_motion_lora(v2), released)  # a pickled dict of tensors, as released
    (weights,) = read_lora_source(released)
    assert weights.kind == "temporal" and weights.rank == 4 and len(weights.modules) == 21 * 8
    model = v2 if version == "v2" else load(animatediff_files, "v3")
    original = torch.load(animatediff_files / "mm_v2.ckpt", weights_only=True) if version == "v2" else \
        load_file(str(animatediff_files / "mm_v3.safetensors"))
    merged = ade_merge(original, torch.load(released, weights_only=True), 0.6, model_has_mid=version == "v2")
    expected = outputs(merged_unet(animatediff_files, version, merged, tmp_path))
    torch.testing.assert_close(with_adapter(model, weights, 0.6), expected, rtol=1e-4, atol=1e-5)


def test_the_motiondirector_packs_temporal_files_load_as_ade_reads_them(animatediff_files, tmp_path):
    """ExponentialML's / kijai's AnimateDiff-MotionDirector save the temporal LoRA with `to_out.processor.0_lora`
    and feed-forward keys such as `ff.net.processor.2_lora`."""
    model = load(animatediff_files, "v3")
    ours = trained_like(model, "temporal", seed=4)
    peer = {}
    blocks = {"attn1": "attention_blocks.0", "attn2": "attention_blocks.1"}
    for module in ours.modules:
        original = formats.motion_lora_stem(module).split(".transformer_blocks.")[0]
        head, rest = module.split(".transformer_blocks.0.")[1].split(".", 1)
        if head == "ff":  # ff.net.0.proj -> ff.net.0.processor.proj_lora, ff.net.2 -> ff.net.processor.2_lora
            inner = {"net.0.proj": "ff.net.0.processor.proj_lora", "net.2": "ff.net.processor.2_lora"}[rest]
        elif rest == "to_out.0":
            inner = f"{blocks[head]}.to_out.processor.0_lora"
        else:
            inner = f"{blocks[head]}.processor.{rest}_lora"
        stem = f"{original}.transformer_blocks.0.{inner}"
        peer[f"{stem}.down.weight"] = ours.state[module + A_SUFFIX]
        peer[f"{stem}.up.weight"] = ours.state[module + B_SUFFIX]
    path = tmp_path / "300_walk_r4_temporal_unet.safetensors"
    save_file(peer, str(path), metadata={"model_type": "motion_director", "rank": "4"})
    (weights,) = read_lora_source(path)
    assert weights.kind == "temporal" and sorted(weights.modules) == sorted(ours.modules)
    assert all(torch.equal(weights.state[k], ours.state[k]) for k in ours.state)


def test_the_motiondirector_packs_spatial_files_keep_the_methods_layers(animatediff_files, tmp_path, caplog):
    model = load(animatediff_files, "v3")
    ours = trained_like(model, "spatial", seed=5)
    peer = {}
    for module in ours.modules:
        attention, leaf = module.rsplit(".attn1.", 1) if ".attn1." in module else (None, None)
        if attention is not None:
            name = "to_out" if leaf == "to_out.0" else leaf
            stem = f"{attention}.attn1.processor.{name}_lora"
        else:
            stem = module + "_lora"  # ff.net.0.proj_lora, ff.net.2_lora
        peer[f"{stem}.down.weight"] = ours.state[module + A_SUFFIX]
        peer[f"{stem}.up.weight"] = ours.state[module + B_SUFFIX]
    block = "down_blocks.0.attentions.0"
    peer[f"{block}.transformer_blocks.0.attn2.processor.to_k_lora.down.weight"] = torch.zeros(4, 32)
    peer[f"{block}.transformer_blocks.0.attn2.processor.to_k_lora.up.weight"] = torch.zeros(32, 4)
    peer[f"{block}.proj_in_lora.down.weight"] = torch.zeros(4, 32, 1, 1)  # a 1x1 convolution in SD 1.5
    peer[f"{block}.proj_in_lora.up.weight"] = torch.zeros(32, 4, 1, 1)
    path = tmp_path / "300_walk_r4_spatial_unet.safetensors"
    save_file(peer, str(path), metadata={"model_type": "motion_director", "rank": "4"})
    with caplog.at_level(logging.WARNING):
        (weights,) = read_lora_source(path)
    assert weights.kind == "spatial" and sorted(weights.modules) == sorted(ours.modules)
    assert all(torch.equal(weights.state[k], ours.state[k]) for k in ours.state)
    assert "outside MotionDirector's spatial placement" in caplog.text and "layer(s) not read" in caplog.text
    lora.load_adapter(model.unet, FAMILY, weights, "peer")


def test_a_training_run_exports_every_lora_and_modelscope_loras_have_none(animatediff_files, tmp_path, tiny_model):
    model = load(animatediff_files, "v3")
    run = tmp_path / "walk" / "final"
    temporal, spatial_0, spatial_1 = (trained_like(model, kind, seed) for kind, seed in
                                      (("temporal", 1), ("spatial", 2), ("spatial", 3)))
    save_lora(run / "temporal.safetensors", temporal)
    save_lora(run / "spatial_0.safetensors", spatial_0)
    save_lora(run / "spatial_1.safetensors", spatial_1)
    written = export_run(None, tmp_path / "walk", tmp_path / "models")
    assert sorted(p.relative_to(tmp_path / "models").as_posix() for p in written) == [
        "animatediff_motion_lora/walk_motion_lora.safetensors", "loras/walk_appearance_lora_0.safetensors",
        "loras/walk_appearance_lora_1.safetensors"]
    lora.add_adapter(tiny_model.unet, tiny_model.family, "t", "temporal", rank=2)
    modelscope = LoraWeights("temporal", lora.adapter_state(tiny_model.unet, "t"), {"base_family": "modelscope"})
    with pytest.raises(MotionDirectorError, match="have no other tool's format"):
        export_loras(tiny_model.family, [modelscope], lambda folder: tmp_path / folder, "x")
