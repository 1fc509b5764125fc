"""The example files: UI format the frontend loads, only core nodes and ours, and API copies that match."""

import pytest

from tests.integration.conftest import EXAMPLE_NAMES, EXAMPLES, MODEL, api_example, load_json, nodes_of, shrink
from tests.integration.workflow_convert import NOTE_TYPES, ui_to_api

UI_KEYS = {"id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs", "properties", "widgets_values"}


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_the_api_copy_is_the_conversion_of_the_ui_file(object_info, name):
    assert ui_to_api(load_json(EXAMPLES / f"{name}.json"), object_info) == api_example(name)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_ui_files_use_core_nodes_and_ours_with_the_default_model(object_info, name):
    workflow = load_json(EXAMPLES / f"{name}.json")

    assert workflow["version"] == 0.4
    for node in workflow["nodes"]:
        assert UI_KEYS <= set(node), node["id"]
        if node["type"] in NOTE_TYPES:
            continue
        module = object_info[node["type"]]["python_module"]
        assert node["type"].startswith("MD_") or module in ("nodes",) or module.startswith("comfy_extras."), module
    link_ids = {link[0] for link in workflow["links"]}
    for origin, slot, target, target_slot, kind in (link[1:] for link in workflow["links"]):
        nodes = {node["id"]: node for node in workflow["nodes"]}
        assert nodes[target]["inputs"][target_slot]["type"] == kind
        assert nodes[origin]["outputs"][slot]["type"] == kind
    used = {link for node in workflow["nodes"] for out in node["outputs"] for link in out["links"] or []}
    assert used == link_ids
    models = [n["inputs"]["model"] for n in api_example(name).values() if n["class_type"] == "MD_LoadBaseModel"]
    animatediff = [(n["inputs"]["checkpoint"], n["inputs"]["motion_module"]) for n in api_example(name).values()
                   if n["class_type"] == "MD_LoadAnimateDiffModel"]
    # The embedded model; or, for AnimateDiff, the files most of its users have (the tests put tiny models there).
    assert (models, animatediff) in (([MODEL], []), ([], [("v1-5-pruned-emaonly.safetensors", "v3_sd15_mm.ckpt")]))


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_examples_fit_the_small_model_on_a_cpu_and_tests_shrink_only_numbers(name):
    prompt = api_example(name)
    animatediff = bool(nodes_of(prompt, "MD_LoadAnimateDiffModel"))  # a user's SD 1.5 at AnimateDiff's own size
    size, frames = ((512, 512), 16) if animatediff else ((32, 32), 8)  # else the embedded model's native clip
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] in ("MD_Sample", "MD_Sweep", "MD_LoadClips"):
            assert (inputs["width"], inputs["height"]) == size
        if node["class_type"] in ("MD_Sample", "MD_Sweep"):
            assert inputs["frames"] == frames and 20 <= inputs["steps"] <= 30 and inputs["cfg"] == 7.5
        if node["class_type"] == "MD_TrainMotion":
            assert 100 <= inputs["steps"] <= 900
    small = shrink(prompt)

    assert small.keys() == prompt.keys()
    for node_id, node in prompt.items():
        assert small[node_id]["class_type"] == node["class_type"]
        for key, value in node["inputs"].items():
            changed = small[node_id]["inputs"][key]
            assert changed == value or (type(changed) is type(value) is int and changed < value), (node_id, key)
