import json
import shutil

import pytest
import torch
from diffusers import UNet3DConditionModel
from diffusers.models.resnet import TemporalConvLayer
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

from motiondirector_core.errors import MotionDirectorError
from motiondirector_core.models import FAMILIES, load_model


def unet_inputs(frames, seed=0):
    g = torch.Generator().manual_seed(seed)
    sample = torch.randn(1, 4, frames, 4, 4, generator=g)
    text = torch.randn(1, 5, 32, generator=g)
    return sample, torch.tensor([500]), text


def run(unet, sample, t, text):
    with torch.no_grad():
        return unet(sample, t, encoder_hidden_states=text).sample


def zero_temporal_outputs(unet):
    """A stock UNet whose temporal layers add nothing: the reference for 'temporal layers as identity'."""
    with torch.no_grad():
        for module in unet.modules():
            if isinstance(module, TransformerTemporalModel):
                module.proj_out.weight.zero_()
                module.proj_out.bias.zero_()
            elif isinstance(module, TemporalConvLayer):
                module.conv4[-1].weight.zero_()
                module.conv4[-1].bias.zero_()


def test_several_frames_match_the_stock_unet(tiny_model, tiny_model_dir):
    stock = UNet3DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet").eval()
    sample, t, text = unet_inputs(frames=3)
    torch.testing.assert_close(run(tiny_model.unet, sample, t, text), run(stock, sample, t, text), rtol=1e-5, atol=1e-6)


def test_one_frame_bypasses_every_temporal_layer(tiny_model, tiny_model_dir):
    stock = UNet3DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet").eval()
    sample, t, text = unet_inputs(frames=1)
    ours = run(tiny_model.unet, sample, t, text)
    assert not torch.allclose(ours, run(stock, sample, t, text)), "stock diffusers runs temporal layers on one frame"
    zero_temporal_outputs(stock)
    torch.testing.assert_close(ours, run(stock, sample, t, text), rtol=1e-5, atol=1e-6)


def test_bypass_keeps_state_dict_keys_and_is_idempotent(tiny_model_dir):
    stock = UNet3DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet")
    keys = list(stock.state_dict())
    family = FAMILIES["modelscope"]
    assert family.install_bypass(stock) == 5 + 8  # tiny UNet: 5 temporal transformers, 8 temporal convs
    assert family.install_bypass(stock) == 5 + 8  # again: the same layers, each with its one hook
    hooked = [m for m in stock.modules() if hasattr(m, "_diffusers_hook")]
    assert len(hooked) == 13 and all(len(m._diffusers_hook.hooks) == 1 for m in hooked)
    assert list(stock.state_dict()) == keys and type(hooked[0]).__module__.startswith("diffusers.")


def test_latent_scale_comes_from_the_vae_config(tiny_model_dir, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    config_path = copy / "vae" / "config.json"
    config = json.loads(config_path.read_text())
    config["scaling_factor"] = 0.13025
    config_path.write_text(json.dumps(config))
    model = load_model(copy, device="cpu")
    assert model.latent_scale == pytest.approx(0.13025)
    frames = torch.rand(2, 32, 32, 3)
    latents = model.encode_frames(frames)
    unscaled = model.vae.encode(frames.permute(0, 3, 1, 2) * 2 - 1).latent_dist.mean
    torch.testing.assert_close(latents[0].permute(1, 0, 2, 3), unscaled * 0.13025)


def test_encode_decode_shapes(tiny_model):
    frames = torch.rand(3, 32, 48, 3)
    latents = tiny_model.encode_frames(frames)
    assert latents.shape == (1, 4, 3, 4, 6)
    decoded = tiny_model.decode_latents(latents)
    assert decoded.shape == (3, 32, 48, 3) and decoded.min() >= 0 and decoded.max() <= 1
    assert tiny_model.encode_prompts(["a red circle", ""]).shape == (2, 77, 32)


def test_dtype_is_the_callers_choice(tiny_model_dir):
    model = load_model(tiny_model_dir, dtype="bf16", device="cpu")
    assert next(model.unet.parameters()).dtype == torch.bfloat16
    assert model.encode_prompts(["x"]).dtype == torch.bfloat16


def test_long_prompt_is_cut_with_a_warning(tiny_model):
    with pytest.warns(UserWarning, match="cut to"):
        tiny_model.encode_prompts(["a red circle moving left " * 10])


@pytest.mark.parametrize("width,height", [(30, 32), (32, 0), (-8, 32)])
def test_size_must_be_a_multiple_of_the_vae_factor(tiny_model, width, height):
    with pytest.raises(MotionDirectorError, match="multiple of 8"):
        tiny_model.check_size(width, height)


def test_missing_folder_says_where_models_go(tmp_path):
    with pytest.raises(MotionDirectorError, match="does not exist.*models/diffusers"):
        load_model(tmp_path / "nope")


def test_folder_without_model_index(tmp_path):
    with pytest.raises(MotionDirectorError, match="no model_index.json"):
        load_model(tmp_path)


def test_other_family_is_named(tmp_path):
    (tmp_path / "model_index.json").write_text(
        json.dumps({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]})
    )
    with pytest.raises(MotionDirectorError, match="StableDiffusionPipeline model; supported families: ModelScope / ZeroScope"):
        load_model(tmp_path)


def test_incomplete_folder_names_the_missing_part(tiny_model_dir, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    shutil.rmtree(copy / "vae")
    with pytest.raises(MotionDirectorError, match="no 'vae/' subfolder"):
        load_model(copy)


def test_broken_weights_are_a_clear_error(tiny_model_dir, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    weights = next((copy / "unet").glob("*.safetensors"))
    weights.write_bytes(b"not a safetensors file")
    with pytest.raises(MotionDirectorError, match="could not be loaded"):
        load_model(copy)


def test_unknown_dtype(tiny_model_dir):
    with pytest.raises(MotionDirectorError, match="fp32, fp16, bf16"):
        load_model(tiny_model_dir, dtype="fp8")


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_dtype_name_round_trips(tiny_model_dir, dtype):
    assert load_model(tiny_model_dir, dtype=dtype, device="cpu").dtype_name == dtype


def test_unet_dtype_is_read_once_until_the_unet_is_cast(tiny_model, monkeypatch, tmp_path):
    """The UNet reads its dtype on every forward; diffusers walks the whole module tree for it each time."""
    import diffusers.models.modeling_utils as modeling_utils

    walks = []
    walk = modeling_utils.get_parameter_dtype
    monkeypatch.setattr(modeling_utils, "get_parameter_dtype", lambda m: walks.append(m) or walk(m))
    unet = tiny_model.unet
    latents = torch.randn(1, unet.config.in_channels, 2, 4, 4)
    text = tiny_model.encode_prompts(["a red square"])

    with torch.no_grad():
        for _ in range(3):
            unet(latents, 10, encoder_hidden_states=text)
    assert unet.dtype == torch.float32 and len(walks) == 1

    unet.to(torch.bfloat16)  # a cast or a move forgets the kept answer
    assert unet.dtype == torch.bfloat16 and len(walks) == 2
    unet.float()
    assert unet.dtype == torch.float32

    unet.save_pretrained(tmp_path / "unet")  # the class keeps its name: the saved config is a stock one
    assert json.loads((tmp_path / "unet" / "config.json").read_text())["_class_name"] == "UNet3DConditionModel"
    assert type(UNet3DConditionModel.from_pretrained(tmp_path / "unet")) is UNet3DConditionModel


def test_chunked_vae_gives_the_whole_clip_answer(tiny_model):
    """Frames go through the VAE a few at a time (memory); the result is that of one batch of all frames."""
    frames = torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    tiny_model.vae_chunk = 2
    latents = tiny_model.encode_frames(frames)
    decoded = tiny_model.decode_latents(latents)
    tiny_model.vae_chunk = 5
    torch.testing.assert_close(tiny_model.encode_frames(frames), latents, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tiny_model.decode_latents(latents), decoded, rtol=1e-5, atol=1e-5)


def test_every_attention_layer_runs_through_pytorch_sdpa(tiny_model, monkeypatch):
    """Spatial, cross and temporal attention all call torch's fused scaled_dot_product_attention (flash or
    memory-efficient kernels on a GPU), never a hand-written softmax(QK^T)V that stores the attention matrix."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    processors = tiny_model.unet.attn_processors
    assert processors and all(type(p) is AttnProcessor2_0 for p in processors.values())
    calls = []
    fused = torch.nn.functional.scaled_dot_product_attention

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return fused(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counted)
    run(tiny_model.unet, *unet_inputs(frames=3))
    assert len(calls) == len(processors)  # one fused call per attention layer, each layer once a forward
