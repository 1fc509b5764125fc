import json
import logging
import os

import pytest
import torch

from motiondirector_core import lora
from motiondirector_core.activation_checkpointing import (
    activation_checkpointing_enabled,
    disable_activation_checkpointing,
    enable_activation_checkpointing,
)
from motiondirector_core.clips import Clip
from motiondirector_core.config import load_config
from motiondirector_core.errors import Cancelled, MotionDirectorError
from motiondirector_core.lora_files import read_lora
from motiondirector_core.models import load_model
from motiondirector_core.train import TrainCallbacks, train
from motiondirector_core.train_config import TrainConfig, ValidationConfig
from motiondirector_core.train_setup import build_optimizer


def frames(seed: int, count: int = 4) -> torch.Tensor:
    return torch.rand(count, 32, 32, 3, generator=torch.Generator().manual_seed(seed))


def videos(n: int = 1) -> list[Clip]:
    return [Clip(frames(i), f"a dog running {i}", source=f"v{i}.mp4") for i in range(n)]


def config(tmp_path, name: str = "run", **overrides) -> TrainConfig:
    values = dict(output=str(tmp_path / name), steps=2, rank=4, width=32, height=32, frames=4, checkpoint_every=0)
    return TrainConfig(**{**values, **overrides})


def weights(path) -> dict[str, torch.Tensor]:
    return read_lora(path).state


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_both_mode_writes_checkpoints_final_log_and_config(tiny_model, tmp_path):
    steps_seen = []
    cfg = config(tmp_path, steps=3, checkpoint_every=2)
    result = train(tiny_model, videos(1), cfg, TrainCallbacks(on_step=steps_seen.append))
    out = tmp_path / "run"
    assert result.output == out and result.final == out / "final" and result.steps == 3
    for folder in (out / "checkpoint-2", out / "final"):
        names = sorted(p.name for p in folder.iterdir())
        assert names == ["spatial.safetensors", "temporal.safetensors", "trainer_state.pt"]
    assert not (out / "checkpoint-3").exists()  # the last step is `final/`
    assert result.files == {name: out / "final" / f"{name}.safetensors" for name in ("temporal", "spatial")}
    temporal = read_lora(result.files["temporal"])
    assert temporal.kind == "temporal" and temporal.rank == 4
    meta = temporal.metadata
    assert (meta["base_family"], meta["frames"], meta["width"], meta["height"]) == ("modelscope", "4", "32", "32")
    assert (meta["steps"], meta["seed"], meta["noise_prior"], meta["prompt"]) == ("3", "0", "0.5", "a dog running 0")
    assert read_lora(out / "checkpoint-2" / "spatial.safetensors").metadata["steps"] == "2"
    lines = [json.loads(line) for line in result.log.read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3] == [info.step for info in steps_seen]
    assert set(lines[0]) == {"step", "losses", "lrs", "seconds", "elapsed"}
    assert lines[0]["lrs"] == {"temporal": 5e-4, "spatial": 5e-4}
    assert {"temporal", "temporal_ad"} <= set(lines[0]["losses"])
    assert lines[2]["elapsed"] >= lines[1]["elapsed"] >= lines[0]["elapsed"] > 0
    saved = load_config(out / "config.yaml")
    assert saved.steps == 3 and saved.weight_decay == 1e-2 and saved.device == "cpu"
    # The model comes back as it was, plus the adapters: motion on, appearance off, eval mode.
    assert lora.active_scales(tiny_model.unet) == {"temporal": 1.0}
    assert not tiny_model.unet.training
    assert all(not p.requires_grad for p in tiny_model.unet.parameters())


def test_lora_metadata_records_how_the_frames_were_sampled(tiny_model, tmp_path):
    from motiondirector_core.clips import FrameSampling, read_clip
    from tests.fixtures.media import moving_square, write_pyav

    video = write_pyav(tmp_path / "walk.mp4", moving_square(24, height=32, width=128), fps=24)
    at_8 = read_clip(video, FrameSampling(frames=4, fps=8, width=32, height=32), "a dog running")
    result = train(tiny_model, [at_8], config(tmp_path, steps=1))
    meta = read_lora(result.files["temporal"]).metadata
    assert (meta["sampling"], meta["fps"], meta["frame_rate"]) == ("fps", "8", "8") and "stride" not in meta
    assert at_8.indices == [0, 3, 6, 9]

    other = load_model(tiny_model.path)
    by_stride = read_clip(video, FrameSampling(frames=4, stride=2, width=32, height=32), "a dog running")
    meta = read_lora(train(other, [by_stride], config(tmp_path, "b", steps=1)).files["temporal"]).metadata
    assert (meta["sampling"], meta["stride"], meta["frame_rate"]) == ("stride", "2", "12") and "fps" not in meta
    assert read_lora(result.files["spatial"]).metadata["frame_rate"] == "8"


@pytest.mark.parametrize("frozen", ["spatial", "temporal"])
def test_each_adapter_learns_only_from_its_own_loss(tiny_model, tmp_path, frozen, monkeypatch):
    import motiondirector_core.config

    monkeypatch.setattr(motiondirector_core.config, "check_config", lambda config, source="": config)  # allows lr 0
    cfg = config(tmp_path, steps=3, spatial_skip_prob=0.0, **{f"lr_{frozen}": 0.0})
    unet, snapshots, stray_grads = tiny_model.unet, {}, []

    def on_step(info):
        assert "spatial" in info.losses and "temporal" in info.losses
        for name in ("spatial", "temporal"):
            stray_grads.extend(p.grad for p in lora.adapter_parameters(unet, name) if p.grad is not None)
            snapshots.setdefault(info.step, {})[name] = lora.adapter_state(unet, name)

    train(tiny_model, videos(1), cfg, TrainCallbacks(on_step=on_step))
    # Gradients are cleared right after each optimizer step, so any left over came from the other path's loss.
    assert stray_grads == []
    trained = "temporal" if frozen == "spatial" else "spatial"
    assert_same_weights(snapshots[1][frozen], snapshots[3][frozen])
    assert any(not torch.equal(snapshots[1][trained][k], snapshots[3][trained][k]) for k in snapshots[1][trained])


def test_temporal_pass_sees_the_spatial_adapter(tiny_model, tmp_path):
    # With the spatial path always on, the temporal weights differ from a run that never turns it on
    # (no dropout, so that the only difference between the runs is the spatial adapter in the temporal pass).
    train(tiny_model, videos(1), config(tmp_path, "a", steps=2, spatial_skip_prob=0.0, dropout=0.0))
    other = load_model(tiny_model.path)
    train(other, videos(1), config(tmp_path, "b", steps=2, train="temporal", dropout=0.0))
    a, b = weights(tmp_path / "a/final/temporal.safetensors"), weights(tmp_path / "b/final/temporal.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_temporal_pass_gives_the_spatial_adapter_no_gradient(tiny_model, tmp_path):
    """The temporal pass runs with the spatial LoRA switched on, but only the spatial loss may train it: in every
    whole-clip forward its weights take no gradient (and hold none left over), in every one-frame forward they do."""
    passes = []  # (frames, spatial weights that take gradients, spatial weights holding one)

    def record(module, args, kwargs):
        params = lora.adapter_parameters(module, "spatial")
        passes.append((args[0].shape[2], sum(p.requires_grad for p in params), sum(p.grad is not None for p in params),
                       len(params)))

    handle = tiny_model.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        train(tiny_model, videos(1), config(tmp_path, steps=3, spatial_skip_prob=0.0))
    finally:
        handle.remove()
    count = passes[0][3]
    assert count > 0 and [p[0] for p in passes] == [1, 4] * 3
    assert all(p[1:3] == (count, 0) for p in passes if p[0] == 1)
    assert all(p[1:3] == (0, 0) for p in passes if p[0] == 4)


@pytest.mark.parametrize("order", ["spatial_first", "reference"])
def test_update_order_decides_which_spatial_weights_the_temporal_pass_sees(tiny_model, tmp_path, order):
    seen = []  # (frames in the pass, the spatial LoRA's up-projection as that pass used it)

    def record(module, args, kwargs):
        layer = next(m for _, m in lora.lora_layers(module) if "spatial" in m.lora_B)
        seen.append((args[0].shape[2], layer.lora_B["spatial"].weight.detach().clone()))

    handle = tiny_model.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        train(tiny_model, videos(1), config(tmp_path, steps=3, spatial_skip_prob=0.0, dropout=0.0,
                                            update_order=order))
    finally:
        handle.remove()
    spatial = [w for frames, w in seen if frames == 1]
    temporal = [w for frames, w in seen if frames > 1]
    assert len(spatial) == len(temporal) == 3
    if order == "reference":  # both passes of a step see the weights the step began with
        assert all(torch.equal(s, t) for s, t in zip(spatial, temporal))
        assert not torch.equal(spatial[1], spatial[2])
    else:  # the temporal pass sees this step's update
        assert all(torch.equal(t, s) for t, s in zip(temporal, spatial[1:]))
        assert not any(torch.equal(s, t) for s, t in zip(spatial[1:], temporal[1:]))


def test_skipped_steps_turn_the_spatial_adapter_off(tiny_model, tmp_path):
    train(tiny_model, videos(1), config(tmp_path, "both", steps=3, spatial_skip_prob=1.0))
    other = load_model(tiny_model.path)
    train(other, videos(1), config(tmp_path, "temporal", steps=3, train="temporal"))
    assert not (tmp_path / "temporal/final/spatial.safetensors").exists()
    assert_same_weights(
        weights(tmp_path / "both/final/temporal.safetensors"), weights(tmp_path / "temporal/final/temporal.safetensors")
    )
    spatial = weights(tmp_path / "both/final/spatial.safetensors")
    assert all(t.abs().sum() == 0 for k, t in spatial.items() if "lora_B" in k)  # never trained


def test_images_train_the_spatial_adapter_only(tiny_model, tmp_path):
    images = [Clip(frames(i, count=1), "a red car") for i in range(2)]
    with pytest.warns(UserWarning, match="spatial"):
        result = train(tiny_model, images, config(tmp_path, steps=2, hflip=1.0))
    assert set(result.files) == {"spatial"}
    assert lora.adapter_names(tiny_model.unet) == ["spatial"]
    assert lora.active_scales(tiny_model.unet) == {"spatial": 1.0}
    assert read_lora(result.files["spatial"]).metadata["frames"] == "1"
    assert load_config(tmp_path / "run" / "config.yaml").weight_decay == 1e-4
    # The flip uses the cached latents of the mirrored image: always flipping == training on mirrored images.
    mirrored = [Clip(c.frames.flip(2), c.prompt) for c in images]
    with pytest.warns(UserWarning, match="spatial"):
        train(load_model(tiny_model.path), mirrored, config(tmp_path, "mirrored", hflip=0.0))
    assert_same_weights(weights(result.files["spatial"]), weights(tmp_path / "mirrored/final/spatial.safetensors"))
    for mode in ("temporal", "coupled"):
        with pytest.raises(MotionDirectorError, match="still images"):
            train(load_model(tiny_model.path), images, config(tmp_path, mode, train=mode))


def test_images_beside_videos_train_only_the_spatial_path(tiny_model, tmp_path):
    losses = []
    mixed = videos(1) + [Clip(frames(7, count=1), "a red car")]
    cfg = config(tmp_path, steps=5, spatial_skip_prob=0.0)
    result = train(tiny_model, mixed, cfg, TrainCallbacks(on_step=losses.append))
    assert set(result.files) == {"temporal", "spatial"}
    assert any(set(info.losses) == {"spatial"} for info in losses)  # an image step: no temporal pass


def test_coupled_mode_trains_one_adapter_on_all_layers(tiny_model, tmp_path):
    losses = []
    result = train(tiny_model, videos(1), config(tmp_path, train="coupled"), TrainCallbacks(on_step=losses.append))
    assert set(result.files) == {"coupled"}
    coupled = read_lora(result.files["coupled"])
    assert coupled.kind == "coupled"
    assert set(coupled.modules) == set(tiny_model.family.lora_targets(tiny_model.unet, "coupled"))
    assert all(set(info.losses) == {"coupled"} for info in losses)  # plain MSE, no debiasing
    assert lora.active_scales(tiny_model.unet) == {"coupled": 1.0}


def test_attention_only_motion_layers_leave_the_temporal_feed_forward_alone(tiny_model, tmp_path):
    family, unet = tiny_model.family, tiny_model.unet
    result = train(tiny_model, videos(1), config(tmp_path, motion_layers="attention"))
    temporal, spatial = read_lora(result.files["temporal"]), read_lora(result.files["spatial"])
    everywhere = family.lora_targets(unet, "temporal")
    feed_forward = {path for path in everywhere if path.endswith(family.feed_forward_linears)}
    assert feed_forward and set(temporal.modules) == set(everywhere) - feed_forward
    assert set(spatial.modules) == set(family.lora_targets(unet, "spatial"))  # the appearance LoRA keeps its ff
    assert temporal.metadata["motion_layers"] == "attention"
    assert "motion_layers" not in spatial.metadata
    default = train(load_model(tiny_model.path), videos(1), config(tmp_path, "all"))
    assert read_lora(default.files["temporal"]).metadata["motion_layers"] == "all"
    with pytest.raises(MotionDirectorError, match="motion_layers"):  # resuming it with the other setting
        train(load_model(tiny_model.path), videos(1), config(tmp_path, "other", steps=3, resume=str(result.final)))


def test_one_spatial_adapter_per_clip(tiny_model, tmp_path):
    result = train(tiny_model, videos(2), config(tmp_path, steps=4, spatial_per_clip=True, spatial_skip_prob=0.0))
    assert set(result.files) == {"temporal", "spatial_0", "spatial_1"}
    for i in (0, 1):
        meta = read_lora(result.files[f"spatial_{i}"]).metadata
        assert (meta["clip_index"], meta["prompt"]) == (str(i), f"a dog running {i}")
    assert read_lora(result.files["temporal"]).metadata["noise_prior"] == "0.0"
    assert lora.active_scales(tiny_model.unet) == {"temporal": 1.0}


def test_same_seed_same_weights_other_seed_other_weights(tiny_model, tmp_path):
    train(tiny_model, videos(2), config(tmp_path, "a", steps=3))
    train(load_model(tiny_model.path), videos(2), config(tmp_path, "b", steps=3))
    train(load_model(tiny_model.path), videos(2), config(tmp_path, "c", steps=3, seed=1))
    for name in ("temporal", "spatial"):
        a, b, c = (weights(tmp_path / run / "final" / f"{name}.safetensors") for run in "abc")
        assert_same_weights(a, b)
        assert any(not torch.equal(a[k], c[k]) for k in a)


def test_training_leaves_the_callers_random_state_alone(tiny_model, tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(tiny_model, videos(1), config(tmp_path))
    assert torch.equal(torch.rand(3), expected)


def test_cancel_saves_a_loadable_checkpoint_and_raises(tiny_model, tmp_path):
    done = []
    callbacks = TrainCallbacks(on_step=done.append, should_cancel=lambda: len(done) == 3)
    with pytest.raises(Cancelled, match="checkpoint-3"):
        train(tiny_model, videos(1), config(tmp_path, steps=6, checkpoint_every=2), callbacks)
    out = tmp_path / "run"
    assert (out / "checkpoint-2").is_dir() and not (out / "final").exists()
    assert read_lora(out / "checkpoint-3" / "temporal.safetensors").metadata["steps"] == "3"
    assert lora.adapter_names(tiny_model.unet) == []  # the results are on disk; the model is as it was


def test_cancel_right_after_a_checkpoint_names_that_checkpoint(tiny_model, tmp_path):
    done = []
    callbacks = TrainCallbacks(on_step=done.append, should_cancel=lambda: len(done) == 2)
    with pytest.raises(Cancelled, match="checkpoint-2"):
        train(tiny_model, videos(1), config(tmp_path, steps=6, checkpoint_every=2), callbacks)
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-2"]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_model, tmp_path):
    def poison(info):
        if info.step == 2:
            with torch.no_grad():
                tiny_model.unet.conv_in.weight.fill_(float("nan"))

    with pytest.raises(MotionDirectorError, match=r"step 3.*checkpoint-2 is kept"):
        train(tiny_model, videos(1), config(tmp_path, steps=4, checkpoint_every=2), TrainCallbacks(on_step=poison))
    out = tmp_path / "run"
    assert not (out / "checkpoint-3").exists() and not (out / "final").exists()
    assert all(torch.isfinite(t).all() for t in weights(out / "checkpoint-2" / "temporal.safetensors").values())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs_on_cpu(tiny_model, tmp_path, precision):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    try:
        with torch.autocast("cpu", dtype=dtype):
            torch.ones(2, 2) @ torch.ones(2, 2)
    except RuntimeError:
        pytest.skip(f"CPU autocast has no {precision}")
    losses = []
    cfg = config(tmp_path, steps=3, precision=precision)
    result = train(tiny_model, videos(1), cfg, TrainCallbacks(on_step=losses.append))
    assert all(torch.isfinite(torch.tensor(list(info.losses.values()))).all() for info in losses)
    state = torch.load(result.final / "trainer_state.pt", weights_only=True)
    if precision == "fp16":  # both optimizers go through a GradScaler (the reference forgot the spatial one)
        assert set(state["scalers"]) == {"temporal", "spatial"} and all(s["scale"] > 0 for s in state["scalers"].values())


def test_an_fp16_base_is_loss_scaled_even_without_fp16_autocast(tiny_model_dir, tmp_path):
    model = load_model(tiny_model_dir, dtype="fp16", device="cpu")
    result = train(model, videos(1), config(tmp_path, steps=2, precision="fp32"))
    state = torch.load(result.final / "trainer_state.pt", weights_only=True)
    assert set(state["scalers"]) == {"temporal", "spatial"}
    assert all(s.get("scale", 0) > 0 for s in state["scalers"].values())  # an unused scaler saves {}
    plain = train(load_model(tiny_model_dir, device="cpu"), videos(1), config(tmp_path, "fp32", steps=1))
    assert torch.load(plain.final / "trainer_state.pt", weights_only=True)["scalers"]["temporal"] == {}


def test_the_base_dtype_pairs_with_the_autocast_precision(monkeypatch):
    from motiondirector_core import models
    from motiondirector_core.train_config import base_dtype

    assert [base_dtype(TrainConfig(precision=p)) for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]
    assert base_dtype(TrainConfig(precision="bf16", dtype="fp32")) == "fp32"
    assert models.default_dtype(torch.device("cpu")) == "fp32"
    for has_bf16, expected in ((True, "bf16"), (False, "fp16")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: has_bf16)
        assert models.default_dtype(torch.device("cuda")) == expected


def test_half_precision_base_trains_fp32_adapters(tiny_model_dir, tmp_path):
    model = load_model(tiny_model_dir, dtype="bf16", device="cpu")
    losses = []
    train(model, videos(1), config(tmp_path, precision="bf16"), TrainCallbacks(on_step=losses.append))
    assert all(p.dtype == torch.float32 for p in lora.adapter_parameters(model.unet, "temporal"))
    assert next(model.unet.conv_in.parameters()).dtype == torch.bfloat16
    assert all(torch.isfinite(torch.tensor(list(info.losses.values()))).all() for info in losses)


def test_half_precision_base_gives_fp32_gradients_within_rounding(tiny_model_dir):
    """The GPU profile (bf16 base weights, bf16 autocast, fp32 LoRA) against fp32 throughout: the LoRA gradients
    are the same up to bf16 rounding."""
    full = temporal_grads(load_model(tiny_model_dir, dtype="fp32", device="cpu"), checkpointing=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = temporal_grads(load_model(tiny_model_dir, dtype="bf16", device="cpu"), checkpointing=False)
    full, half = torch.cat([g.flatten() for g in full]), torch.cat([g.flatten() for g in half])
    assert half.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(full, half, dim=0) > 0.99
    assert (half.norm() / full.norm() - 1).abs() < 0.05


def test_fused_adamw_steps_like_the_plain_one():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(32, 8)) for _ in range(3)]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    fused = build_optimizer("adamw", params, lr=1e-3, weight_decay=0.01)
    plain = torch.optim.AdamW(twins, lr=1e-3, weight_decay=0.01, foreach=False, fused=False)
    assert fused.defaults["fused"], "this torch has the CPU kernel: the trainer uses it"
    for step in range(5):
        g = torch.Generator().manual_seed(step)
        for p, q in zip(params, twins):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        fused.step()
        plain.step()
    for p, q in zip(params, twins):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def temporal_grads(model, checkpointing: bool) -> list[torch.Tensor]:
    unet = model.unet
    if "temporal" not in lora.adapter_names(unet):
        torch.manual_seed(0)
        lora.add_adapter(unet, model.family, "temporal", "temporal", rank=4, dropout=0.1)
        with torch.no_grad():
            for p in lora.adapter_parameters(unet, "temporal"):
                p.data = p.data.float()  # fp32 LoRA whatever the base dtype, as the trainer has it
                p.normal_(0, 0.1)
    lora.set_scales(unet, {"temporal": 1.0})
    params = lora.adapter_parameters(unet, "temporal")
    for p in params:
        p.requires_grad_(True)
        p.grad = None
    (enable_activation_checkpointing if checkpointing else disable_activation_checkpointing)(unet)
    unet.train()
    torch.manual_seed(1)  # the same dropout masks; checkpointing must replay them in its recomputation
    sample = torch.randn(1, 4, 3, 4, 4).to(model.dtype)
    text = torch.randn(1, 77, 32).to(model.dtype)
    unet(sample, torch.tensor([10]), encoder_hidden_states=text).sample.square().mean().backward()
    return [p.grad.clone() for p in params]


def test_activation_checkpointing_gives_the_same_gradients(tiny_model):
    plain = temporal_grads(tiny_model, checkpointing=False)
    checkpointed = temporal_grads(tiny_model, checkpointing=True)
    assert activation_checkpointing_enabled(tiny_model.unet)
    assert any(g.abs().sum() > 0 for g in plain)
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    disable_activation_checkpointing(tiny_model.unet)
    assert not activation_checkpointing_enabled(tiny_model.unet)
    assert "forward" not in vars(tiny_model.unet.down_blocks[0])


def test_gradient_checkpointing_setting_trains_the_same_weights(tiny_model, tmp_path):
    train(tiny_model, videos(1), config(tmp_path, "plain"))
    other = load_model(tiny_model.path)
    train(other, videos(1), config(tmp_path, "ckpt", gradient_checkpointing=True))
    assert not activation_checkpointing_enabled(other.unet)
    for name in ("temporal", "spatial"):
        a = weights(tmp_path / "plain" / "final" / f"{name}.safetensors")
        b = weights(tmp_path / "ckpt" / "final" / f"{name}.safetensors")
        for k in a:
            torch.testing.assert_close(a[k], b[k])


@pytest.mark.parametrize("backend", [
    "aot_eager",  # dynamo's capture and guards (adapter switches, the two paths) and AOT autograd, in seconds
    pytest.param("inductor", marks=pytest.mark.skipif(not os.environ.get("MD_TEST_INDUCTOR"), reason=(
        "inductor's code generation takes 5 minutes on 2 CPU cores: set MD_TEST_INDUCTOR=1 to run it"))),
])  # fmt: skip
def test_compiled_training_matches_eager_training(tiny_model, tmp_path, monkeypatch, backend):
    from torch._dynamo.utils import counters

    compile_ = torch.compile

    def compile_with(module, options, **settings):  # aot_eager takes no inductor options
        return compile_(module, backend=backend, options=options if backend == "inductor" else None, **settings)

    monkeypatch.setattr(torch, "compile", compile_with)
    settings = dict(steps=3, spatial_skip_prob=0.0)  # every step runs both paths, each switching the adapters
    train(tiny_model, videos(1), config(tmp_path, "eager", **settings))
    other = load_model(tiny_model.path)
    counters.clear()
    train(other, videos(1), config(tmp_path, "compiled", compile=True, **settings))
    assert counters["stats"]["unique_graphs"] >= 2  # the one-frame and whole-clip passes really ran compiled
    losses = [[json.loads(line)["losses"] for line in (tmp_path / run / "train_log.jsonl").read_text().splitlines()]
              for run in ("eager", "compiled")]
    for a, b in zip(*losses):
        assert a.keys() == b.keys()
        for key in a:
            assert abs(a[key] - b[key]) <= 1e-3 * max(1.0, abs(a[key])), (key, a[key], b[key])  # inductor: 1e-4
    # Adam turns a rounding-sized gradient difference on a near-zero gradient into a whole step of the learning rate,
    # so single elements may differ; the adapter as a whole may not (inductor here: 3e-4 to 4e-3; aot_eager: 4e-8).
    for name in ("temporal", "spatial"):
        a = weights(tmp_path / "eager" / "final" / f"{name}.safetensors")
        b = weights(tmp_path / "compiled" / "final" / f"{name}.safetensors")
        assert a.keys() == b.keys()
        error = sum(float((a[k] - b[k]).square().sum()) for k in a) / sum(float(a[k].square().sum()) for k in a)
        assert error ** 0.5 <= 1e-2, (name, error ** 0.5)


def test_auto_checkpointing_retakes_a_step_that_ran_out_of_memory(tiny_model, tmp_path, monkeypatch, caplog):
    import motiondirector_core.train as train_module

    real_pass, failures = train_module._Run._pass, []

    def pass_short_of_memory(run, name, *args, **kwargs):
        # The temporal pass (after the spatial one has stepped its optimizer) needs more than the "GPU" has.
        if name == "temporal" and not activation_checkpointing_enabled(run.unet):
            failures.append(run.step)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_pass(run, name, *args, **kwargs)

    monkeypatch.setattr(train_module._Run, "_pass", pass_short_of_memory)
    with caplog.at_level(logging.WARNING, logger="motiondirector_core"):
        train(tiny_model, videos(1), config(tmp_path, "auto", steps=3, spatial_skip_prob=0.0))
    monkeypatch.setattr(train_module._Run, "_pass", real_pass)
    other = load_model(tiny_model.path)
    train(other, videos(1), config(tmp_path, "always", steps=3, spatial_skip_prob=0.0, gradient_checkpointing=True))

    assert failures == [1] and "out of GPU memory at step 1" in caplog.text
    assert not activation_checkpointing_enabled(tiny_model.unet)  # switched off again at the end
    steps = [json.loads(line)["step"] for line in (tmp_path / "auto" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    for name in ("temporal", "spatial"):  # the retaken step started from exactly the state before it
        a = weights(tmp_path / "auto" / "final" / f"{name}.safetensors")
        b = weights(tmp_path / "always" / "final" / f"{name}.safetensors")
        for k in a:
            torch.testing.assert_close(a[k], b[k])


def test_encoding_every_step_like_the_reference_trains_the_same_weights(tiny_model, tmp_path, monkeypatch):
    calls = []
    encode = tiny_model.encode_frames
    monkeypatch.setattr(tiny_model, "encode_frames", lambda frames: calls.append(1) or encode(frames))
    train(tiny_model, videos(2), config(tmp_path, "cached", steps=3))
    cached_calls = len(calls)
    other = load_model(tiny_model.path)
    monkeypatch.setattr(other, "encode_frames", lambda frames: calls.append(1) or encode.__func__(other, frames))
    train(other, videos(2), config(tmp_path, "every_step", steps=3, cache_encodings=False))
    assert cached_calls == 2 and len(calls) - cached_calls == 2 + 3 * 2  # once per clip, then again every step
    for name in ("temporal", "spatial"):
        a = weights(tmp_path / "cached" / "final" / f"{name}.safetensors")
        b = weights(tmp_path / "every_step" / "final" / f"{name}.safetensors")
        for k in a:
            torch.testing.assert_close(a[k], b[k])


def test_validation_samples_are_saved_and_dropout_comes_back(tiny_model, tmp_path):
    seen, modes = [], []
    validation = ValidationConfig(prompts=["a cat"], every=2, steps=2, cfg=2.0)
    callbacks = TrainCallbacks(
        on_validation=lambda step, prompt, f: seen.append((step, prompt, tuple(f.shape))),
        on_step=lambda info: modes.append(tiny_model.unet.training),
    )
    train(tiny_model, videos(1), config(tmp_path, steps=3, validation=validation), callbacks)
    assert seen == [(2, "a cat", (4, 32, 32, 3))]
    assert (tmp_path / "run" / "samples" / "step-2-0.mp4").stat().st_size > 0
    assert modes == [True, True, True]  # train mode (dropout on) again after validation


def test_a_failing_validation_is_a_warning(tiny_model, tmp_path, monkeypatch, caplog):
    from motiondirector_core import sample

    def broken(*args, **kwargs):
        raise RuntimeError("sampler exploded")

    monkeypatch.setattr(sample, "generate", broken)
    validation = ValidationConfig(prompts=["a cat"], every=1, steps=2)
    with caplog.at_level(logging.WARNING):
        result = train(tiny_model, videos(1), config(tmp_path, validation=validation))
    assert result.steps == 2 and "sampler exploded" in caplog.text


def test_bad_inputs_are_clear_errors(tiny_model, tmp_path):
    with pytest.raises(MotionDirectorError, match="no training clips"):
        train(tiny_model, [], config(tmp_path))
    with pytest.raises(MotionDirectorError, match="frames must be a tensor"):
        train(tiny_model, [Clip(torch.rand(4, 32, 32), "x")], config(tmp_path))
    with pytest.raises(MotionDirectorError, match="multiple of 8"):
        train(tiny_model, [Clip(torch.rand(4, 30, 32, 3), "x")], config(tmp_path))
    with pytest.raises(MotionDirectorError, match="train"):
        train(tiny_model, videos(1), config(tmp_path, train="motion"))
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        with pytest.raises(MotionDirectorError, match="bitsandbytes"):
            train(tiny_model, videos(1), config(tmp_path, optimizer="adamw8bit"))
    assert lora.adapter_names(tiny_model.unet) == []
    train(tiny_model, videos(1), config(tmp_path))
    with pytest.raises(MotionDirectorError, match="already holds a training run"):
        train(load_model(tiny_model.path), videos(1), config(tmp_path))
    with pytest.raises(MotionDirectorError, match="already holds adapter"):
        train(tiny_model, videos(1), config(tmp_path, "other"))
