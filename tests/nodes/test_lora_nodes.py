"""Save / Load / Apply LoRA: files with metadata, the loader's list, the authors' .pt files, stacking, bad names."""

import pytest
import torch
from safetensors import safe_open

from tests.nodes.conftest import MODEL_NAME, execute_node, pack_module, run_node, sample, train, video_clips


@pytest.fixture(scope="module")
def trained(comfy):
    """One base pipeline and three runs on it: motion + look, and two looks (spatial only) of other clips."""
    (base,) = run_node(comfy, "MD_LoadBaseModel", model=MODEL_NAME, dtype="fp32", device="cpu")
    motion, *_ = train(comfy, base, video_clips(comfy), "lora_motion")
    look_a, *_ = train(comfy, base, video_clips(comfy, seed=10), "lora_look_a", train="spatial", lr_spatial=0.05)
    look_b, *_ = train(comfy, base, video_clips(comfy, seed=20), "lora_look_b", train="spatial", lr_spatial=0.05)
    return base, motion, look_a, look_b


def errors(comfy):
    return pack_module(comfy, "motiondirector_core.errors")


def lora_combo(comfy) -> list:
    s = comfy["MD_LoadLora"].GET_SCHEMA()  # define_schema again, as ComfyUI's refresh does
    return next(i for i in s.inputs if i.id == "lora_name").options


def same_weights(a, b) -> bool:
    return a.kind == b.kind and a.state.keys() == b.state.keys() and all(torch.equal(a.state[k], b.state[k])
                                                                         for k in a.state)


def apply(comfy, pipeline, lora, temporal=1.0, spatial=0.0, index=-1):
    (out,) = run_node(comfy, "MD_ApplyLora", pipeline=pipeline, lora=lora, temporal_scale=temporal,
                      spatial_scale=spatial, spatial_index=index)
    return out


def test_save_writes_one_file_per_lora_with_metadata(comfy, comfy_dirs, trained):
    _, motion, *_ = trained
    output = execute_node(comfy, "MD_SaveLora", lora=motion, filename_prefix="saved/walk")
    (text,) = output.args
    folder = comfy_dirs["output"] / "motiondirector" / "saved"
    expected = [folder / "walk_temporal.safetensors", folder / "walk_spatial.safetensors"]
    assert text.splitlines() == [str(p) for p in expected] and output.ui is not None
    for path, kind in zip(expected, ("temporal", "spatial")):
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata()
        assert meta["format"] == "motiondirector-lora" and meta["kind"] == kind and meta["rank"] == "2"
        assert meta["base_family"] == "modelscope" and meta["base_model"] == MODEL_NAME
        assert (meta["frames"], meta["width"], meta["height"], meta["steps"]) == ("4", "32", "32", "2")
        assert meta["prompt"] == "a square moves right 0"


def test_saved_file_shows_up_in_the_loader_without_a_restart_and_loads_back(comfy, trained):
    _, motion, *_ = trained
    assert "refresh/new_temporal.safetensors" not in lora_combo(comfy)
    run_node(comfy, "MD_SaveLora", lora=motion, filename_prefix="refresh/new")
    names = lora_combo(comfy)
    assert "refresh/new_temporal.safetensors" in names and "refresh/new_spatial.safetensors" in names
    assert "lora_motion/final/temporal.safetensors" in names  # training runs are listed too
    (loaded,) = run_node(comfy, "MD_LoadLora", lora_name="refresh/new_temporal.safetensors")
    assert len(loaded.loras) == 1 and same_weights(loaded.loras[0], motion.loras[0])


def test_authors_pt_file_in_the_models_folder_loads_onto_the_base_model(comfy, comfy_dirs, trained):
    base, motion, *_ = trained
    legacy = pack_module(comfy, "motiondirector_core.families.modelscope.released")
    lora = pack_module(comfy, "motiondirector_core.lora")
    temporal = motion.loras[0]
    # The authors' trainer: torch.save of [up, down, ...] as nn.Parameters, in their layer order, no keys.
    flat = []
    for layer in legacy.module_table(base.model.unet.config, "temporal"):
        for suffix in (lora.B_SUFFIX, lora.A_SUFFIX):
            flat.append(torch.nn.Parameter(temporal.state[layer.path + suffix].clone()))
    file = comfy_dirs["models"] / "motiondirector" / "released" / "temporal" / "lora" / "300_unet.pt"
    file.parent.mkdir(parents=True)
    torch.save(flat, file)
    name = "released/temporal/lora/300_unet.pt"
    assert name in lora_combo(comfy)
    (theirs,) = run_node(comfy, "MD_LoadLora", lora_name=name, pipeline=base)
    assert [w.kind for w in theirs.loras] == ["temporal"] and same_weights(theirs.loras[0], temporal)
    assert torch.equal(sample(comfy, apply(comfy, base, theirs)), sample(comfy, apply(comfy, base, motion)))
    with pytest.raises(errors(comfy).MotionDirectorError, match="trained for another base model"):
        run_node(comfy, "MD_LoadLora", lora_name=name)  # mapped onto ZeroScope's layout, which it does not fit


def test_missing_lora_name_says_where_loras_go(comfy, comfy_dirs):
    with pytest.raises(errors(comfy).MotionDirectorError, match="not found: put LoRA files in one of .*motiondirector"):
        run_node(comfy, "MD_LoadLora", lora_name="gone/nowhere.safetensors")


@pytest.mark.parametrize("prefix", ["../escape", "a/../../escape", "ABSOLUTE/escape", ""])
def test_save_refuses_a_prefix_outside_the_output_folder(comfy, comfy_dirs, trained, tmp_path, prefix):
    _, motion, *_ = trained
    prefix = prefix.replace("ABSOLUTE", str(tmp_path))
    with pytest.raises(errors(comfy).MotionDirectorError, match="relative name inside the output folder"):
        run_node(comfy, "MD_SaveLora", lora=motion, filename_prefix=prefix)
    assert not list(comfy_dirs["output"].parent.rglob("*escape*")) and not list(tmp_path.iterdir())


def test_stack_of_a_motion_and_two_looks(comfy, trained):
    base, motion, look_a, look_b = trained
    moving = apply(comfy, base, motion)  # its own spatial LoRA stays at 0
    stacked = apply(comfy, apply(comfy, moving, look_a, temporal=0.0, spatial=1.0), look_b, spatial=0.7)
    assert base.stack == () and len(moving.stack) == 2
    assert [(e.weights.kind, e.scale) for e in stacked.stack] == [
        ("temporal", 1.0), ("spatial", 0.0), ("spatial", 1.0), ("spatial", 0.7)]
    plain, motion_only, both = sample(comfy, base), sample(comfy, moving), sample(comfy, stacked)
    only_a = sample(comfy, apply(comfy, moving, look_a, spatial=1.0))
    assert not torch.equal(motion_only, plain) and not torch.equal(both, motion_only) and not torch.equal(both, only_a)
    # Pipelines share one UNet, yet each samples the same whatever ran before it.
    assert torch.equal(sample(comfy, moving), motion_only) and torch.equal(sample(comfy, stacked), both)
    assert torch.equal(sample(comfy, base), plain)


def test_one_look_per_clip_by_index(comfy, trained):
    base, *_ = trained
    per_clip, *_ = train(comfy, base, video_clips(comfy, count=2), "lora_per_clip", train="spatial",
                         spatial_per_clip=True, steps=1)
    assert [w.kind for w in per_clip.loras] == ["spatial", "spatial"]
    schema = comfy["MD_ApplyLora"].GET_SCHEMA()
    assert next(i for i in schema.inputs if i.id == "spatial_index").default == 0  # one clip's look, not a sum
    assert [(e.weights, e.scale) for e in apply(comfy, base, per_clip, spatial=1.0, index=0).stack] == [
        (per_clip.loras[0], 1.0)]
    blended = apply(comfy, base, per_clip, spatial=1.0, index=-1).stack  # all: their mean
    assert [(e.weights, e.scale) for e in blended] == [(per_clip.loras[0], 0.5), (per_clip.loras[1], 0.5)]
    assert apply(comfy, base, per_clip, spatial=1.0, index=1).stack[0].weights is per_clip.loras[1]
    with pytest.raises(errors(comfy).MotionDirectorError, match="index 2 does not exist: use 0 to 1, or -1"):
        apply(comfy, base, per_clip, spatial=1.0, index=2)
    run_node(comfy, "MD_SaveLora", lora=per_clip, filename_prefix="per_clip")
    assert {"per_clip_spatial_0.safetensors", "per_clip_spatial_1.safetensors"} <= set(lora_combo(comfy))
