"""Our LoRA files, and every source read_lora_source accepts: files, checkpoint and run folders, ours and theirs."""

import pytest
import torch
from safetensors.torch import save_file

from motiondirector_core.families.modelscope import released as legacy
from motiondirector_core.errors import MotionDirectorError
from motiondirector_core.lora import A_SUFFIX, B_SUFFIX, LoraWeights
from motiondirector_core.lora_files import FORMAT, read_lora, read_lora_source, save_lora
from motiondirector_core.models import FAMILIES
from tests.fixtures.tiny_model import UNET_CONFIG


def make_weights(kind, rank=2, seed=0, config=UNET_CONFIG):
    g = torch.Generator().manual_seed(seed)
    kinds = ("spatial", "temporal") if kind == "coupled" else (kind,)
    state = {}
    for part in kinds:
        for layer in legacy.module_table(config, part):
            state[layer.path + A_SUFFIX] = torch.randn(rank, layer.in_features, generator=g)
            state[layer.path + B_SUFFIX] = torch.randn(layer.out_features, rank, generator=g)
    return LoraWeights(kind, state)


def write_authors_file(path, kind, clips, config=UNET_CONFIG):
    """The authors' flat [up, down, ...] list, clips interleaved per layer."""
    flat = []
    for layer in legacy.module_table(config, kind):
        for weights in clips:
            flat += [weights.state[layer.path + B_SUFFIX], weights.state[layer.path + A_SUFFIX]]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(flat, path)
    return path


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_save_and_read_keep_weights_and_metadata(tmp_path):
    weights = make_weights("temporal", rank=3)
    path = save_lora(
        tmp_path / "out" / "temporal.safetensors", weights,
        base_family="modelscope", base_model="tiny-t2v", frames=4, width=32, height=32, steps=5,
        prompt="a panda rides a bike", seed=7, noise_prior=None,
    )  # fmt: skip
    assert sorted(p.name for p in path.parent.iterdir()) == ["temporal.safetensors"], "no temporary file left"
    read = read_lora(path)
    assert read.kind == "temporal" and read.rank == 3 and read.alpha == 3 and read.source == str(path)
    assert same_state(read.state, weights.state)
    assert read.metadata == {
        "format": FORMAT, "format_version": "1", "kind": "temporal", "rank": "3", "alpha": "3",
        "base_family": "modelscope", "base_model": "tiny-t2v", "frames": "4", "width": "32", "height": "32",
        "steps": "5", "prompt": "a panda rides a bike", "seed": "7",
    }  # fmt: skip
    weights.metadata["alpha"] = "6"
    assert read_lora(save_lora(tmp_path / "alpha.safetensors", weights)).alpha == 6.0


def test_read_lora_refuses_what_it_cannot_use(tmp_path):
    with pytest.raises(MotionDirectorError, match="does not exist"):
        read_lora(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(MotionDirectorError, match="junk.safetensors is not a readable safetensors file"):
        read_lora(tmp_path / "junk.safetensors")
    weights = make_weights("spatial")
    save_file(weights.state, str(tmp_path / "odd_kind.safetensors"), metadata={"kind": "motion"})
    with pytest.raises(MotionDirectorError, match="found 'motion'"):
        read_lora(tmp_path / "odd_kind.safetensors")


def test_peft_file_without_our_metadata_gets_its_kind_from_its_layers(tmp_path):
    for kind in ("spatial", "temporal", "coupled"):
        weights = make_weights(kind, seed=1)
        save_file(weights.state, str(tmp_path / f"{kind}.safetensors"))
        read = read_lora_source(tmp_path / f"{kind}.safetensors")
        assert [w.kind for w in read] == [kind] and same_state(read[0].state, weights.state)
    weights = make_weights("temporal")
    save_file({"unet." + k: v for k, v in weights.state.items()}, str(tmp_path / "prefixed.safetensors"))
    assert same_state(read_lora(tmp_path / "prefixed.safetensors").state, weights.state)

    outside = {"conv_in.lora_A.weight": torch.zeros(2, 4), "conv_in.lora_B.weight": torch.zeros(4, 2)}
    save_file(outside, str(tmp_path / "c.safetensors"))
    with pytest.raises(MotionDirectorError, match="adapts conv_in, which is in neither a spatial nor a temporal"):
        read_lora(tmp_path / "c.safetensors")
    save_file({"down_blocks.0.attentions.0.proj_in.weight": torch.zeros(2, 2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(MotionDirectorError, match="not a LoRA in PEFT form"):
        read_lora(tmp_path / "model.safetensors")


def test_our_checkpoint_folder(tmp_path):
    folder = tmp_path / "checkpoint-50"
    written = {
        "coupled": make_weights("coupled", seed=4),
        "spatial_1": make_weights("spatial", seed=3),
        "temporal": make_weights("temporal", seed=1),
        "spatial_0": make_weights("spatial", seed=2),
    }
    for name, weights in written.items():
        save_lora(folder / f"{name}.safetensors", weights)
    (folder / "notes.txt").write_text("not a LoRA")
    (folder / "optimizer.pt").write_bytes(b"")

    read = read_lora_source(folder)
    assert [w.source.rsplit("/", 1)[1] for w in read] == [
        "temporal.safetensors", "spatial_0.safetensors", "spatial_1.safetensors", "coupled.safetensors",
    ]  # fmt: skip
    assert [w.kind for w in read] == ["temporal", "spatial", "spatial", "coupled"]
    assert same_state(read[2].state, written["spatial_1"].state)
    spatial = read_lora_source(folder, kind="spatial")
    assert [w.source for w in spatial] == [str(folder / "spatial_0.safetensors"), str(folder / "spatial_1.safetensors")]
    assert same_state(read_lora_source(folder, kind="temporal")[0].state, written["temporal"].state)
    assert len(read_lora_source(folder / "spatial_1.safetensors", kind="spatial")) == 1


def test_our_run_folder_uses_final_else_the_highest_checkpoint(tmp_path):
    run = tmp_path / "run"
    for step in (300, 1000):
        save_lora(run / f"checkpoint-{step}" / "temporal.safetensors", make_weights("temporal", seed=step))
    (run / "checkpoint-2000").mkdir()  # started, nothing saved yet
    (run / "samples").mkdir()
    (read,) = read_lora_source(run)
    assert read.source == str(run / "checkpoint-1000" / "temporal.safetensors"), "numeric order, not text order"
    save_lora(run / "final" / "temporal.safetensors", make_weights("temporal", seed=5))
    save_lora(run / "final" / "spatial.safetensors", make_weights("spatial", seed=6))
    assert [w.source for w in read_lora_source(run)] == [
        str(run / "final" / "temporal.safetensors"), str(run / "final" / "spatial.safetensors"),
    ]  # fmt: skip


def test_asking_for_a_kind_the_source_lacks_says_what_it_holds(tmp_path):
    save_lora(tmp_path / "a" / "spatial_0.safetensors", make_weights("spatial"))
    save_lora(tmp_path / "a" / "spatial_1.safetensors", make_weights("spatial"))
    save_lora(tmp_path / "a" / "temporal.safetensors", make_weights("temporal"))
    with pytest.raises(MotionDirectorError, match="holds a temporal LoRA and 2 spatial LoRAs, not a coupled LoRA"):
        read_lora_source(tmp_path / "a", kind="coupled")
    path = save_lora(tmp_path / "b" / "spatial.safetensors", make_weights("spatial"))
    with pytest.raises(MotionDirectorError, match="spatial.safetensors holds a spatial LoRA, not a temporal LoRA"):
        read_lora_source(path, kind="temporal")


def test_authors_files_and_folders(tmp_path):
    run = tmp_path / "train_2023-12-01T10-00-00"
    temporal = make_weights("temporal", seed=1)
    clips = [make_weights("spatial", seed=2), make_weights("spatial", seed=3)]
    temporal_file = run / "checkpoint-default" / "temporal" / "lora" / "500_unet.pt"
    write_authors_file(temporal_file, "temporal", [temporal])
    write_authors_file(run / "checkpoint-default" / "spatial" / "lora" / "500_unet.pt", "spatial", clips)

    read = read_lora_source(run, unet_config=UNET_CONFIG)
    assert [w.kind for w in read] == ["temporal", "spatial", "spatial"]
    assert same_state(read[0].state, temporal.state)
    assert same_state(read[1].state, clips[0].state) and same_state(read[2].state, clips[1].state)
    (motion,) = read_lora_source(run, kind="temporal", unet_config=UNET_CONFIG)
    assert motion.source == str(temporal_file)
    assert len(read_lora_source(run / "checkpoint-default" / "spatial", unet_config=UNET_CONFIG)) == 2
    assert same_state(read_lora_source(temporal_file, unet_config=UNET_CONFIG)[0].state, temporal.state)

    loose = write_authors_file(tmp_path / "motion.pt", "temporal", [temporal])
    assert read_lora_source(loose, kind="temporal", unet_config=UNET_CONFIG)[0].kind == "temporal"
    wrong_kind = "holds 50 up/down pairs, but a spatial LoRA .* the count fits a temporal"
    with pytest.raises(MotionDirectorError, match=wrong_kind):
        read_lora_source(loose, kind="spatial", unet_config=UNET_CONFIG)


def test_authors_files_default_to_the_zeroscope_unet(tmp_path):
    config = FAMILIES["modelscope"].zeroscope_unet_config
    weights = make_weights("temporal", rank=1, config=config)
    file = tmp_path / "checkpoint-default" / "temporal" / "lora" / "1_unet.pt"
    write_authors_file(file, "temporal", [weights], config)
    (read,) = read_lora_source(tmp_path, kind="temporal")
    assert read.rank == 1 and len(read.modules) == 170 and same_state(read.state, weights.state)
    with pytest.raises(MotionDirectorError, match="holds 170 up/down pairs, but a temporal LoRA for this UNet has 50"):
        read_lora_source(file, unet_config=UNET_CONFIG)


def test_sources_that_hold_no_lora(tmp_path):
    with pytest.raises(MotionDirectorError, match="does not exist"):
        read_lora_source(tmp_path / "missing")
    with pytest.raises(MotionDirectorError, match="kind 'motion' is unknown"):
        read_lora_source(tmp_path, kind="motion")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MotionDirectorError, match="empty holds no LoRA: expected temporal.safetensors"):
        read_lora_source(tmp_path / "empty")
    (tmp_path / "weights.onnx").write_bytes(b"")
    with pytest.raises(MotionDirectorError, match="neither a .safetensors LoRA nor a .pt/.pth/.bin/.ckpt LoRA file"):
        read_lora_source(tmp_path / "weights.onnx")
    (tmp_path / "weights.ckpt").write_bytes(b"")
    with pytest.raises(MotionDirectorError, match="weights.ckpt is not a readable PyTorch file"):
        read_lora_source(tmp_path / "weights.ckpt")
    torch.save({"model.diffusion_model.x": torch.zeros(2)}, tmp_path / "model.ckpt")
    with pytest.raises(MotionDirectorError, match="holds a dict .* in no LoRA format this pack reads"):
        read_lora_source(tmp_path / "model.ckpt")
