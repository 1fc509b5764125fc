import pytest
import torch

from motiondirector_core.errors import MotionDirectorError
from motiondirector_core.lora import LoraWeights, adapter_names, adapter_state, add_adapter, remove_adapter
from motiondirector_core.pipeline import ADAPTER_PREFIX, ALL_APPEARANCES, LoraSet, Pipeline


def trained_like(model, kind, seed):
    """Adapter weights with a non-zero B, as after training."""
    add_adapter(model.unet, model.family, "tmp", kind, rank=4)
    state = adapter_state(model.unet, "tmp")
    remove_adapter(model.unet, "tmp")
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=g) * 0.05 for k, v in state.items()}
    return LoraWeights(kind, state, {"alpha": "4"})


def unet_out(model):
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 3, 4, 4, generator=g)
    text = torch.randn(1, 5, 32, generator=g)
    with torch.no_grad():
        return model.unet(sample, torch.tensor([500]), encoder_hidden_states=text).sample


@pytest.fixture()
def loras(tiny_model):
    return LoraSet((trained_like(tiny_model, "temporal", 1), trained_like(tiny_model, "spatial", 2)), "run")


def test_pipelines_share_the_base_and_never_disturb_each_other(tiny_model, loras):
    base = Pipeline(tiny_model)
    moved = base.with_loras(loras, motion_scale=1.0)
    both = base.with_loras(loras, motion_scale=1.0, appearance_scale=0.5)
    assert base.stack == () and len(moved.stack) == 2 and moved.model is base.model
    base.activate()
    reference = unet_out(tiny_model)
    assert moved.activate() == {ADAPTER_PREFIX + loras.loras[0].fingerprint(): 1.0}
    with_motion = unet_out(tiny_model)
    assert not torch.allclose(with_motion, reference)
    both.activate()
    assert not torch.allclose(unet_out(tiny_model), with_motion)
    base.activate()
    torch.testing.assert_close(unet_out(tiny_model), reference, rtol=0, atol=0)
    moved.activate()
    torch.testing.assert_close(unet_out(tiny_model), with_motion, rtol=0, atol=0)


def test_each_lora_is_loaded_once(tiny_model, loras):
    pipe = Pipeline(tiny_model).with_loras(loras, 1.0, 1.0)
    pipe.activate()
    names = adapter_names(tiny_model.unet)
    pipe.activate()
    Pipeline(tiny_model).with_loras(loras, 0.5, 0.2).activate()
    assert adapter_names(tiny_model.unet) == names and len(names) == 2


def test_equal_content_gives_the_same_fingerprint(tiny_model, loras):
    temporal = loras.loras[0]
    copy = LoraWeights(temporal.kind, {k: v.clone() for k, v in temporal.state.items()}, dict(temporal.metadata))
    assert copy.fingerprint() == temporal.fingerprint()
    copy.state[next(iter(copy.state))] += 1
    assert LoraWeights(copy.kind, copy.state).fingerprint() != temporal.fingerprint()


def test_per_clip_appearance_loras_apply_one_clip_by_default_and_all_as_their_mean(tiny_model):
    per_clip = LoraSet(tuple(trained_like(tiny_model, kind, seed) for kind, seed in
                             (("temporal", 1), ("spatial", 2), ("spatial", 3), ("spatial", 4))), "per-clip run")
    temporal, *spatial = (ADAPTER_PREFIX + w.fingerprint() for w in per_clip.loras)
    first = Pipeline(tiny_model).with_loras(per_clip, 1.0, 0.9)
    assert first.activate() == {temporal: 1.0, spatial[0]: 0.9}
    second = Pipeline(tiny_model).with_loras(per_clip, 1.0, 0.9, appearance_index=2)
    assert second.activate() == {temporal: 1.0, spatial[2]: 0.9}
    blended = Pipeline(tiny_model).with_loras(per_clip, 1.0, 0.9, appearance_index=ALL_APPEARANCES)
    assert blended.activate() == pytest.approx({temporal: 1.0, **{name: 0.3 for name in spatial}})


def test_appearance_index_out_of_range(tiny_model, loras):
    with pytest.raises(MotionDirectorError, match="1 spatial LoRA.*index 3"):
        Pipeline(tiny_model).with_loras(loras, 1.0, 1.0, appearance_index=3)


def test_an_empty_set_cannot_be_applied(tiny_model):
    with pytest.raises(MotionDirectorError, match="no LoRA to apply"):
        Pipeline(tiny_model).with_loras(LoraSet((), "empty"))


def test_latent_preview_is_an_image():
    from motiondirector_core.preview import latents_to_rgb

    image = latents_to_rgb(torch.randn(4, 5, 6))
    assert image.shape == (40, 48, 3) and 0 <= image.min() and image.max() <= 1
    assert latents_to_rgb(torch.randn(8, 2, 2), upscale=1).shape == (2, 2, 3)


def test_adapters_loaded_under_inference_mode_can_live_beside_training(tiny_model, loras):
    """ComfyUI samples under inference_mode; the adapters that leaves in the shared UNet must not be inference
    tensors, or the next training run on that UNet fails when peft toggles their requires_grad."""
    from motiondirector_core.lora import adapter_parameters, set_scales

    moved = Pipeline(tiny_model).with_loras(loras, motion_scale=1.0)
    with torch.inference_mode():
        (name,) = moved.activate()
    params = adapter_parameters(tiny_model.unet, name)
    assert params and not any(p.is_inference() for p in params)
    add_adapter(tiny_model.unet, tiny_model.family, "temporal", "temporal", rank=2)  # as a trainer does, adapter on
    set_scales(tiny_model.unet, {name: 1.0, "temporal": 1.0})
