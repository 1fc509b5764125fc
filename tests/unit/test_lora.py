"""lora.py on peft, and where ModelScopeFamily puts the spatial and temporal LoRAs."""

import pytest
import torch
from diffusers import UNet3DConditionModel

from motiondirector_core import lora
from motiondirector_core.errors import MotionDirectorError
from motiondirector_core.lora import LoraWeights
from motiondirector_core.lora_files import read_lora, save_lora
from motiondirector_core.models import FAMILIES

FAMILY = FAMILIES["modelscope"]


def unet_inputs(frames, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 4, frames, 4, 4, generator=g), torch.tensor([500]), torch.randn(1, 5, 32, generator=g)


def run(unet, frames=2):
    sample, t, text = unet_inputs(frames)
    with torch.no_grad():
        return unet(sample, t, encoder_hidden_states=text).sample


def randomize_b(unet, name, std=0.05, seed=1):
    """A trained-looking adapter: B is 0 at init, which would make every output test vacuous."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in lora.lora_layers(unet):
            if name in layer.lora_B:
                weight = layer.lora_B[name].weight
                weight.copy_(torch.randn(weight.shape, generator=g) * std)


def layer_of(unet, name):
    return next(layer for _, layer in lora.lora_layers(unet) if name in layer.lora_A)


def layer_output(layer, x):
    with torch.no_grad():
        return layer(x)


@pytest.fixture(scope="module")
def zeroscope_unet():
    with torch.device("meta"):
        return UNet3DConditionModel(**FAMILY.zeroscope_unet_config)


def test_zeroscope_placement_and_sizes(zeroscope_unet):
    spatial = FAMILY.lora_targets(zeroscope_unet, "spatial")
    temporal = FAMILY.lora_targets(zeroscope_unet, "temporal")
    assert len(spatial) == 96 and len(temporal) == 170
    assert not any(".attn2." in p for p in spatial), "cross-attention holds the text alignment"
    assert not any("proj_in" in p or "proj_out" in p for p in spatial + temporal)
    assert {p.split(".transformer_blocks.0.")[1] for p in spatial} == set(FAMILY.spatial_linears)
    assert {p.split(".transformer_blocks.0.")[1] for p in temporal} == set(FAMILY.temporal_linears)
    assert len({p.split(".transformer_blocks.")[0] for p in spatial}) == 16
    assert len({p.split(".transformer_blocks.")[0] for p in temporal}) == 17
    assert all(".attentions." in p for p in spatial)
    assert all(".temp_attentions." in p or p.startswith("transformer_in.") for p in temporal)

    modules = dict(zeroscope_unet.named_modules())
    for kind, targets, params in (("spatial", spatial, 8_785_920), ("temporal", temporal, 12_472_320)):
        assert sum(32 * (modules[p].in_features + modules[p].out_features) for p in targets) == params
        lora.add_adapter(zeroscope_unet, FAMILY, kind, kind, rank=32)
        assert sum(p.numel() for p in lora.adapter_parameters(zeroscope_unet, kind)) == params
        assert len(lora.adapter_parameters(zeroscope_unet, kind)) == 2 * len(targets)
    assert FAMILY.lora_targets(zeroscope_unet, "coupled") == spatial + temporal


def test_targets_survive_injection(tiny_model):
    """A layer already wrapped by peft is still a target: a second adapter of one kind goes on the same layers."""
    unet = tiny_model.unet
    before = FAMILY.lora_targets(unet, "spatial")
    lora.add_adapter(unet, FAMILY, "a", "spatial", rank=4)
    assert FAMILY.lora_targets(unet, "spatial") == before
    assert lora.add_adapter(unet, FAMILY, "b", "spatial", rank=4) == before
    assert sorted(lora.adapter_state(unet, "b")) == sorted(lora.adapter_state(unet, "a"))
    assert len(lora.adapter_state(unet, "a")) == 2 * len(before) == 48


def test_scale_zero_or_no_adapter_is_the_base_unet(tiny_model):
    unet = tiny_model.unet
    base = run(unet)
    lora.add_adapter(unet, FAMILY, "s", "spatial", rank=4)
    lora.add_adapter(unet, FAMILY, "t", "temporal", rank=4)
    assert torch.equal(run(unet), base), "a fresh adapter starts off"
    randomize_b(unet, "s")
    randomize_b(unet, "t", seed=2)
    lora.set_scales(unet, {"s": 1.0, "t": 1.0})
    assert not torch.allclose(run(unet), base)
    lora.set_scales(unet, {"s": 0.0, "t": 0.0})
    assert torch.equal(run(unet), base)
    lora.set_scales(unet, {})
    assert torch.equal(run(unet), base)
    assert lora.active_scales(unet) == {}


def test_temporal_adapter_does_nothing_on_one_frame(tiny_model):
    """The trainer leaves the temporal LoRA on in the one-frame spatial pass: it must change nothing there."""
    unet = tiny_model.unet
    lora.add_adapter(unet, FAMILY, "s", "spatial", rank=4)
    lora.add_adapter(unet, FAMILY, "t", "temporal", rank=4)
    randomize_b(unet, "s")
    randomize_b(unet, "t", seed=2)
    lora.set_scales(unet, {"s": 1.0})
    spatial_only = run(unet, frames=1)
    lora.set_scales(unet, {"s": 1.0, "t": 1.0})
    assert torch.equal(run(unet, frames=1), spatial_only)
    both_on_two_frames = run(unet, frames=2)
    lora.set_scales(unet, {"s": 1.0})
    assert not torch.allclose(run(unet, frames=2), both_on_two_frames), "on two frames it does act"


def test_output_is_linear_in_the_scale(tiny_model):
    unet = tiny_model.unet
    lora.add_adapter(unet, FAMILY, "t", "temporal", rank=4)
    randomize_b(unet, "t")
    # Each adapted layer: exactly W0 x + s * B A x.
    layer = layer_of(unet, "t")
    x = torch.randn(3, layer.get_base_layer().in_features, generator=torch.Generator().manual_seed(3))
    out = {}
    for scale in (0.0, 1.0, 2.0):
        lora.set_scales(unet, {"t": scale})
        out[scale] = layer_output(layer, x)
    delta = x @ layer.lora_A["t"].weight.T @ layer.lora_B["t"].weight.T
    torch.testing.assert_close(out[1.0] - out[0.0], delta, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[2.0] - out[0.0], 2 * (out[1.0] - out[0.0]), rtol=1e-5, atol=1e-6)
    # The whole UNet is non-linear in its weights: only first-order linear, so a small update is nearly exact.
    randomize_b(unet, "t", std=1e-4)
    unet_out = {}
    for scale in (0.0, 1.0, 2.0):
        lora.set_scales(unet, {"t": scale})
        unet_out[scale] = run(unet)
    first = unet_out[1.0] - unet_out[0.0]
    assert first.abs().max() > 1e-5
    assert (unet_out[2.0] - unet_out[0.0] - 2 * first).abs().max() < 0.01 * first.abs().max()


def test_two_active_spatial_adapters_add_up(tiny_model):
    unet = tiny_model.unet
    for seed, name in enumerate(("a", "b")):
        lora.add_adapter(unet, FAMILY, name, "spatial", rank=4)
        randomize_b(unet, name, seed=seed + 5)
    layer = layer_of(unet, "a")
    x = torch.randn(3, layer.get_base_layer().in_features, generator=torch.Generator().manual_seed(4))
    outputs = {}
    for key, scales in {"0": {}, "a": {"a": 1.0}, "b": {"b": 0.5}, "ab": {"a": 1.0, "b": 0.5}}.items():
        lora.set_scales(unet, scales)
        outputs[key] = layer_output(layer, x)
    expected = outputs["a"] + outputs["b"] - outputs["0"]
    torch.testing.assert_close(outputs["ab"], expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(outputs["ab"], outputs["a"])
    lora.set_scales(unet, {"a": 1.0, "b": 0.5})
    assert lora.active_scales(unet) == {"a": 1.0, "b": 0.5}
    both = run(unet, frames=1)
    lora.set_scales(unet, {"a": 1.0})
    assert not torch.allclose(both, run(unet, frames=1))


def test_remove_adapter_restores_the_base_and_keeps_other_scales(tiny_model):
    unet = tiny_model.unet
    base = run(unet)
    for seed, (name, kind) in enumerate((("a", "spatial"), ("t", "temporal"))):
        lora.add_adapter(unet, FAMILY, name, kind, rank=4)
        randomize_b(unet, name, seed=seed)
    lora.set_scales(unet, {"a": 1.0})
    only_a = run(unet)
    lora.set_scales(unet, {"a": 1.0, "t": 0.7})
    lora.remove_adapter(unet, "t")
    assert lora.active_scales(unet) == {"a": 1.0}
    assert lora.adapter_names(unet) == ["a"]
    assert torch.equal(run(unet), only_a)
    lora.remove_adapter(unet, "a")
    assert lora.adapter_names(unet) == [] and lora.active_scales(unet) == {}
    assert torch.equal(run(unet), base)
    assert lora.adapter_state(unet, "a") == {}
    with pytest.raises(MotionDirectorError, match="no adapter named 'a'"):
        lora.remove_adapter(unet, "a")


def test_add_adapter_keeps_the_active_scales(tiny_model):
    unet = tiny_model.unet
    lora.add_adapter(unet, FAMILY, "t", "temporal", rank=4)
    randomize_b(unet, "t")
    lora.set_scales(unet, {"t": 0.8})
    with_t = run(unet)
    lora.add_adapter(unet, FAMILY, "s", "spatial", rank=4)
    assert lora.active_scales(unet) == {"t": 0.8}
    assert torch.equal(run(unet), with_t)


def test_switching_back_and_forth_and_re_adding_never_serves_a_stale_state(tiny_model):
    """set_scales skips layers whose state would not change and lora_layers keeps its list on the UNet: neither may
    hide a change (a scale, the active set, an adapter removed and another of the same name added elsewhere)."""
    unet = tiny_model.unet
    for seed, (name, kind) in enumerate((("s", "spatial"), ("t", "temporal"))):
        lora.add_adapter(unet, FAMILY, name, kind, rank=4)
        randomize_b(unet, name, seed=seed)
    outputs = {}
    for scales in ({"s": 1.0}, {"s": 1.0, "t": 1.0}, {"s": 1.0, "t": 0.5}, {"t": 0.5}, {}):
        lora.set_scales(unet, scales)
        outputs[tuple(scales.items())] = run(unet)
    for _ in range(2):  # again, in another order: every layer is already in some state
        for key in reversed(list(outputs)):
            lora.set_scales(unet, dict(key))
            assert torch.equal(run(unet), outputs[key]), key
    temporal_layers = {path for path, layer in lora.lora_layers(unet) if "t" in layer.lora_A}
    lora.remove_adapter(unet, "t")
    lora.add_adapter(unet, FAMILY, "t", "spatial", rank=4)  # the same name, now on the spatial layers
    assert {path for path, layer in lora.lora_layers(unet) if "t" in layer.lora_A}.isdisjoint(temporal_layers)
    randomize_b(unet, "t", seed=5)
    lora.set_scales(unet, {"s": 1.0})
    assert torch.equal(run(unet), outputs[(("s", 1.0),)])
    lora.set_scales(unet, {"s": 1.0, "t": 1.0})
    assert not torch.equal(run(unet), outputs[(("s", 1.0),)])


def test_set_scales_leaves_everything_frozen(tiny_model):
    unet = tiny_model.unet
    lora.add_adapter(unet, FAMILY, "t", "temporal", rank=4)
    lora.add_adapter(unet, FAMILY, "s", "spatial", rank=4)
    lora.set_scales(unet, {"t": 1.0, "s": 1.0})
    assert not any(p.requires_grad for p in unet.parameters())
    with pytest.raises(MotionDirectorError, match="no adapter named"):
        lora.set_scales(unet, {"missing": 1.0})
    with pytest.raises(MotionDirectorError, match="already loaded"):
        lora.add_adapter(unet, FAMILY, "t", "temporal", rank=4)
    with pytest.raises(MotionDirectorError, match="unknown"):
        lora.add_adapter(unet, FAMILY, "x", "everything", rank=4)


def test_check_fits_reports_every_problem_at_once(tiny_model):
    unet = tiny_model.unet
    lora.add_adapter(unet, FAMILY, "s", "spatial", rank=4)
    state = lora.adapter_state(unet, "s")
    paths = FAMILY.lora_targets(unet, "spatial")
    del state[paths[0] + lora.B_SUFFIX]
    state[paths[1] + lora.A_SUFFIX] = torch.zeros(4, 7)
    state["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q.lora_A.weight"] = torch.zeros(4, 32)
    state["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q.lora_B.weight"] = torch.zeros(32, 4)
    with pytest.raises(MotionDirectorError) as caught:
        lora.check_fits(unet, FAMILY, LoraWeights("spatial", state, source="test.safetensors"))
    message = str(caught.value)
    assert "test.safetensors" in message
    assert f"{paths[0]}: lora_A without its lora_B" in message
    assert f"{paths[1]}: shapes A(4, 7)" in message and "needs A(4, 32)" in message
    assert "no spatial LoRA layer 'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q'" in message
    lora.check_fits(unet, FAMILY, LoraWeights("spatial", lora.adapter_state(unet, "s")))


def test_a_file_without_down_projections_is_a_clear_error(tiny_model, tmp_path):
    unet = tiny_model.unet
    lora.add_adapter(unet, FAMILY, "s", "spatial", rank=4)
    only_up = {k: v for k, v in lora.adapter_state(unet, "s").items() if k.endswith(lora.B_SUFFIX)}
    save_lora(tmp_path / "up_only.safetensors", LoraWeights("spatial", only_up))
    weights = read_lora(tmp_path / "up_only.safetensors")
    assert weights.rank == 4  # from the up-projections
    with pytest.raises(MotionDirectorError, match="does not fit this modelscope model: .*lora_B without its lora_A"):
        lora.load_adapter(unet, FAMILY, weights, "up_only")
    with pytest.raises(MotionDirectorError, match="holds no 2-D lora_A / lora_B weights"):
        _ = LoraWeights("spatial", {}, {"alpha": "4"}).rank


def test_check_fits_refuses_mixed_ranks(tiny_model):
    unet = tiny_model.unet
    lora.add_adapter(unet, FAMILY, "s", "spatial", rank=4)
    state = lora.adapter_state(unet, "s")
    path = FAMILY.lora_targets(unet, "spatial")[3]
    state[path + lora.A_SUFFIX] = state[path + lora.A_SUFFIX][:2].clone()
    state[path + lora.B_SUFFIX] = state[path + lora.B_SUFFIX][:, :2].clone()
    with pytest.raises(MotionDirectorError, match=path.replace(".", r"\.") + r": shapes A\(2, "):
        lora.load_adapter(unet, FAMILY, LoraWeights("spatial", state), "mixed")
    assert lora.adapter_names(unet) == ["s"]


def test_load_adapter_round_trip_gives_identical_outputs(tiny_model, tiny_model_dir):
    from motiondirector_core.models import load_model

    unet = tiny_model.unet
    for seed, kind in enumerate(("spatial", "temporal")):
        lora.add_adapter(unet, FAMILY, kind, kind, rank=4)
        randomize_b(unet, kind, seed=seed + 10)
    scales = {"spatial": 0.6, "temporal": 1.0}
    lora.set_scales(unet, scales)
    expected = {frames: run(unet, frames) for frames in (1, 3)}

    other = load_model(tiny_model_dir, dtype="fp32", device="cpu").unet
    for kind in ("spatial", "temporal"):
        weights = LoraWeights(kind, lora.adapter_state(unet, kind))
        assert lora.load_adapter(other, FAMILY, weights, kind) == kind
        assert lora.adapter_kind(other, kind) == kind
        for key, tensor in lora.adapter_state(other, kind).items():
            assert torch.equal(tensor, weights.state[key])
    lora.set_scales(other, scales)
    for frames, out in expected.items():
        assert torch.equal(run(other, frames), out)


def test_fresh_adapter_init(tiny_model):
    """A ~ N(0, std 1/r) as in the authors' code (peft's 'gaussian' init), B = 0."""
    unet = tiny_model.unet
    rank = 64
    lora.add_adapter(unet, FAMILY, "t", "temporal", rank=rank)
    state = lora.adapter_state(unet, "t")
    assert all(t.abs().max() == 0 for k, t in state.items() if k.endswith(lora.B_SUFFIX))
    big = max((t for k, t in state.items() if k.endswith(lora.A_SUFFIX)), key=torch.Tensor.numel)
    assert big.numel() >= 16384
    assert abs(big.std().item() * rank - 1) < 0.05
    assert abs(big.mean().item()) < 0.05 / rank


@pytest.mark.parametrize("placement", ["input", "output"])
def test_dropout_on_the_input_or_on_the_output_of_the_adapter(tiny_model, placement):
    """peft drops the adapter's input, B(A(drop(x))); the reference drops its output, drop(B(A(x)))."""
    unet = tiny_model.unet
    lora.add_adapter(unet, FAMILY, "t", "temporal", rank=4)
    lora.set_dropout(unet, "t", 0.5, placement)
    name, layer = next((n, m) for n, m in lora.lora_layers(unet) if "t" in m.lora_A)
    with torch.no_grad():
        layer.lora_B["t"].weight.normal_()
    lora.set_scales(unet, {"t": 1.0})
    x = torch.randn(64, layer.get_base_layer().in_features)
    base = layer.get_base_layer()(x)
    layer.train()
    torch.manual_seed(0)
    delta = layer(x) - base
    zeros = (delta == 0).float().mean()
    if placement == "output":
        assert 0.35 < zeros < 0.65  # whole output elements dropped (and the kept ones scaled by 2)
    else:
        assert zeros == 0  # a dropped input element moves every output a little
    layer.eval()
    torch.testing.assert_close(layer(x) - base, layer.lora_B["t"](layer.lora_A["t"](x)))
    lora.set_dropout(unet, "t", 0.0, "input")  # sampling: no dropout anywhere, the output hook gone too
    layer.train()
    torch.testing.assert_close(layer(x) - base, layer.lora_B["t"](layer.lora_A["t"](x)))
