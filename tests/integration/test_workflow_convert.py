"""UI -> API conversion on small hand-made graphs (no server): widget order, UI-only values, links."""

import pytest

from tests.integration.workflow_convert import ConversionError, ui_to_api

OBJECT_INFO = {
    "Gen": {
        "input": {
            "required": {
                "model": ["MODEL", {}],
                "seed": ["INT", {"default": 0}],  # no option: the frontend adds a control anyway (name 'seed')
                "steps": ["INT", {"default": 20, "control_after_generate": True}],
                "fixed_seed": ["INT", {"control_after_generate": False}],
                "seed_two": ["INT", {}],
                "sampler": ["COMBO", {"options": ["a", "b"], "control_after_generate": True}],
                "scale": ["FLOAT", {"default": 1.0}],
                "text": ["STRING", {"multiline": True}],
                "forced": ["STRING", {"forceInput": True}],
            },
            "optional": {"extra": ["IMAGE", {}], "flag": ["BOOLEAN", {}]},
        },
        "input_order": {"required": ["model", "seed", "steps", "fixed_seed", "seed_two", "sampler", "scale", "text",
                                     "forced"], "optional": ["extra", "flag"]},
        "output": ["IMAGE"], "output_name": ["IMAGE"], "display_name": "Generate",
    },
    "Load": {
        "input": {"required": {"name": [["x.bin", "y.bin"], {"image_upload": True}]}},
        "input_order": {"required": ["name"]},
        "output": ["MODEL", "STRING"], "output_name": ["MODEL", "STRING"], "display_name": "Load",
    },
}
GEN_VALUES = [7, "fixed", 30, "increment", 5, 9, "b", "fixed", "", 2.5, "hello", True]


def node(node_id, kind, inputs=(), widgets=None, mode=0, **extra):
    return {"id": node_id, "type": kind, "mode": mode, "inputs": list(inputs), "outputs": [],
            "widgets_values": widgets, **extra}


def test_widget_values_skip_the_ui_only_controls_and_links_become_references():
    workflow = {
        "nodes": [
            node(1, "Load", widgets=["y.bin"]),
            node(2, "Gen", [{"name": "model", "type": "MODEL", "link": 1}, {"name": "forced", "type": "STRING",
                                                                             "link": 2},
                            {"name": "extra", "type": "IMAGE", "link": None}], GEN_VALUES, title="Mine"),
            node(3, "MarkdownNote", widgets=["# a note"]),
        ],
        "links": [[1, 1, 0, 2, 0, "MODEL"], [2, 1, 1, 2, 1, "STRING"]],
    }

    prompt = ui_to_api(workflow, OBJECT_INFO)

    assert prompt == {
        "1": {"inputs": {"name": "y.bin"}, "class_type": "Load", "_meta": {"title": "Load"}},
        "2": {"inputs": {"seed": 7, "steps": 30, "fixed_seed": 5, "seed_two": 9, "sampler": "b", "scale": 2.5,
                         "text": "hello", "flag": True, "model": ["1", 0], "forced": ["1", 1]},
              "class_type": "Gen", "_meta": {"title": "Mine"}},
    }


def test_reroutes_bypassed_and_muted_nodes_and_primitives():
    workflow = {
        "nodes": [
            node(1, "Load", widgets=["x.bin", "image"]),  # with the upload button's value, as the frontend saves it
            node(2, "Reroute", [{"name": "", "type": "*", "link": 1}]),
            node(3, "Gen", [{"name": "model", "type": "MODEL", "link": 2}], GEN_VALUES, mode=4),  # bypassed
            node(4, "Gen", [{"name": "model", "type": "MODEL", "link": 3},
                            {"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 4}], GEN_VALUES),
            node(5, "PrimitiveNode", widgets=[123, "fixed"]),
            node(6, "Gen", [{"name": "model", "type": "MODEL", "link": 5}], GEN_VALUES, mode=2),  # muted
        ],
        "links": [[1, 1, 0, 2, 0, "*"], [2, 2, 0, 3, 0, "MODEL"], [3, 3, 0, 4, 0, "MODEL"], [4, 5, 0, 4, 1, "INT"],
                  [5, 1, 0, 6, 0, "MODEL"]],
    }

    prompt = ui_to_api(workflow, OBJECT_INFO)

    assert sorted(prompt) == ["1", "4"] and prompt["1"]["inputs"] == {"name": "x.bin"}
    assert prompt["4"]["inputs"]["model"] == ["1", 0] and prompt["4"]["inputs"]["seed"] == 123


def test_dict_widget_values_are_read_by_name():
    workflow = {"nodes": [node(1, "Load", widgets={"name": "y.bin", "upload": "image"})], "links": []}

    assert ui_to_api(workflow, OBJECT_INFO)["1"]["inputs"] == {"name": "y.bin"}


@pytest.mark.parametrize("workflow, message", [
    ({"nodes": [node(1, "Missing", widgets=[])], "links": []}, "no node type 'Missing'"),
    ({"nodes": [node(1, "Gen", widgets=GEN_VALUES[:3])], "links": []}, "none left for 'fixed_seed'"),
    ({"nodes": [node(1, "Gen", [{"name": "model", "type": "MODEL", "link": 9}], GEN_VALUES)], "links": []},
     "link 9"),
])
def test_broken_workflows_are_named(workflow, message):
    with pytest.raises(ConversionError, match=message):
        ui_to_api(workflow, OBJECT_INFO)
