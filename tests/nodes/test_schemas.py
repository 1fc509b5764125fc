"""The pack's node schemas as ComfyUI sees them: ids, categories, tooltips, combos that follow the disk."""

from pathlib import Path

import pytest

from tests.nodes.conftest import MODEL_NAME, pack_module

EXPECTED = {
    "MD_LoadBaseModel", "MD_LoadClips", "MD_ClipsFromImages", "MD_TrainMotion", "MD_SaveLora", "MD_LoadLora",
    "MD_ApplyLora", "MD_InvertReference", "MD_Sample", "MD_Sweep", "MD_EvaluateMotion",
}  # fmt: skip


def pack_nodes(comfy) -> dict:
    root = comfy["MD_LoadBaseModel"].__module__.rsplit(".nodes.", 1)[0]
    return {node_id: cls for node_id, cls in comfy.items() if cls.__module__.startswith(root + ".")}


def schema(comfy, node_id: str):
    return comfy[node_id].GET_SCHEMA()  # what ComfyUI itself calls: define_schema, finalize and validate


def combo(comfy, node_id: str, name: str) -> list:
    return next(i for i in schema(comfy, node_id).inputs if i.id == name).options


def test_every_node_of_the_pack_is_registered_under_an_md_id(comfy):
    registered = pack_nodes(comfy)
    assert EXPECTED <= set(registered)
    assert all(node_id.startswith("MD_") and cls.GET_SCHEMA().node_id == node_id for node_id, cls in registered.items())
    assert set(registered) == {cls.GET_SCHEMA().node_id for cls in pack_module(comfy, "nodes").NODES}


@pytest.mark.parametrize("node_id", sorted(EXPECTED))
def test_schema_has_category_display_name_and_tooltips(comfy, node_id):
    s = schema(comfy, node_id)
    assert s.category.startswith("MotionDirector/")
    assert s.display_name and "MotionDirector" in s.display_name
    assert s.description
    assert s.outputs or s.is_output_node
    for item in s.inputs:
        assert item.tooltip and item.tooltip.strip(), f"{node_id}.{item.id} has no tooltip"
    for item in s.inputs:  # widget defaults a user starts from must pass ComfyUI's own validation
        default = getattr(item, "default", None)
        if getattr(item, "options", None) and default is not None:
            assert default in item.options, f"{node_id}.{item.id}"
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            low, high = getattr(item, "min", None), getattr(item, "max", None)
            assert (low is None or default >= low) and (high is None or default <= high), f"{node_id}.{item.id}"


def test_object_info_entries(comfy):
    """What /object_info serves (the V1 view of each V3 schema): category, names, and every input's tooltip."""
    for node_id in pack_nodes(comfy):  # nodes added later are held to the same rules
        info = comfy[node_id].GET_NODE_INFO_V1()
        assert info["name"] == node_id and info["category"].startswith("MotionDirector/") and info["display_name"]
        for group in ("required", "optional"):
            for name, (_type, options) in info["input"].get(group, {}).items():
                assert options.get("tooltip"), f"{node_id}.{name}"


def test_model_combo_lists_the_linked_model(comfy):
    assert MODEL_NAME in combo(comfy, "MD_LoadBaseModel", "model")


def test_model_combo_follows_the_disk(comfy, comfy_dirs, tiny_model_dir):
    extra = comfy_dirs["models"] / "diffusers" / "family" / "second-t2v"
    extra.parent.mkdir(exist_ok=True)
    extra.symlink_to(tiny_model_dir, target_is_directory=True)
    try:
        assert "family/second-t2v" in combo(comfy, "MD_LoadBaseModel", "model")  # two levels deep, no restart
    finally:
        extra.unlink()
    assert "family/second-t2v" not in combo(comfy, "MD_LoadBaseModel", "model")


def test_register_adds_the_models_and_output_folders(comfy, comfy_dirs):
    import folder_paths

    paths = pack_module(comfy, "nodes.paths")
    expected = [str(comfy_dirs["models"] / "motiondirector"), str(comfy_dirs["output"] / "motiondirector")]
    registered = folder_paths.get_folder_paths("motiondirector")
    assert all(folder in registered for folder in expected)
    assert all(Path(folder).is_dir() for folder in expected)
    paths.register()  # twice (a reload) adds nothing new
    assert folder_paths.get_folder_paths("motiondirector") == registered
    assert {".safetensors", ".pt"} <= set(folder_paths.folder_names_and_paths["motiondirector"][1])


def test_lora_combo_hides_trainer_state_and_half_written_files(comfy, comfy_dirs):
    run = comfy_dirs["output"] / "motiondirector" / "combo_run" / "checkpoint-1"
    run.mkdir(parents=True)
    for name in ("temporal.safetensors", "trainer_state.pt", ".temporal.safetensors.x.tmp"):
        (run / name).write_bytes(b"")
    names = combo(comfy, "MD_LoadLora", "lora_name")
    assert "combo_run/checkpoint-1/temporal.safetensors" in names
    assert not any("trainer_state" in n or "/." in n for n in names)
