"""The real ComfyUI frontend (headless Chromium) knows every node of the pack and loads every example workflow."""

import json

import pytest

from tests.browser.frontend import EXAMPLES, MODEL_NAME, PACK_NAME, ui_workflows

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))


def workflow_of(nodes: list[tuple[str, list]]) -> dict:
    """A UI-format workflow of unconnected nodes, (type, widget values) each, laid out in a row."""
    return {
        "last_node_id": len(nodes), "last_link_id": 0, "links": [], "groups": [], "config": {}, "extra": {},
        "version": 0.4,
        "nodes": [
            {"id": i + 1, "type": node_type, "pos": [40 + 360 * i, 40], "size": [320, 130], "flags": {},
             "order": i, "mode": 0, "inputs": [], "outputs": [], "properties": {}, "widgets_values": values}
            for i, (node_type, values) in enumerate(nodes)
        ],
    }


def pack_node_ids(server) -> list[str]:
    info = server.object_info()
    return sorted(name for name, spec in info.items() if PACK_NAME in str(spec.get("python_module", "")))


def test_every_pack_node_is_registered_in_the_page(comfy_server, frontend):
    ids = pack_node_ids(comfy_server)
    assert "MD_LoadBaseModel" in ids and "MD_TrainMotion" in ids, ids
    registered = frontend.registered(ids)
    assert all(registered.values()), [name for name, known in registered.items() if not known]


def test_an_unknown_node_type_is_reported(frontend):
    workflow = workflow_of([("MD_LoadBaseModel", [MODEL_NAME, "auto", "auto"]), ("MD_NoSuchNode", [])])
    report = frontend.load(workflow)
    assert report.missing == ["MD_NoSuchNode"], report.describe()
    assert not report.ok
    assert any("MD_NoSuchNode" in text for text in report.dialogs), report.dialogs  # the page's own warning
    frontend.close_dialogs()


def test_an_invalid_workflow_is_reported(frontend):
    workflow = workflow_of([("MD_LoadBaseModel", [MODEL_NAME, "auto", "auto"])])
    workflow["definitions"] = None  # the page's schema wants an object here
    report = frontend.load(workflow)
    assert not report.missing and not report.ok
    assert any("definitions" in alert for alert in report.alerts), report.describe()


def test_a_known_workflow_loads_cleanly(frontend):
    report = frontend.load(workflow_of([("MD_LoadBaseModel", [MODEL_NAME, "auto", "auto"])]))
    assert report.ok, report.describe()


def test_the_examples_are_ui_workflows():
    assert EXAMPLE_FILES, f"no example workflows in {EXAMPLES}"
    assert ui_workflows() == EXAMPLE_FILES


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.stem for p in EXAMPLE_FILES])
def test_example_loads_without_unknown_nodes(frontend, artifacts, path):
    report = frontend.load(json.loads(path.read_text(encoding="utf-8")))
    if not report.ok:
        frontend.screenshot(artifacts / f"{path.stem}_FAILED.png")
    assert not report.missing, f"{path.name}: the page does not know {report.missing}"
    assert report.ok, f"{path.name}: {report.describe()}"


def test_screenshot_of_a_loaded_example(frontend, artifacts):
    assert EXAMPLE_FILES, f"no example workflows in {EXAMPLES}"
    path = EXAMPLE_FILES[0]
    report = frontend.load(json.loads(path.read_text(encoding="utf-8")))
    assert report.ok, report.describe()
    frontend.fit_view()
    shot = frontend.screenshot(artifacts / f"{path.stem}.png")
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (frontend.viewport["width"], frontend.viewport["height"])
        colours = image.convert("RGB").resize((64, 40)).getcolors(64 * 40)
    assert colours is not None and len(colours) > 20, "the screenshot is (nearly) blank"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.stem for p in EXAMPLE_FILES])
def test_example_has_a_thumbnail(path):
    """ComfyUI's template browser shows example_workflows/<name>.jpg (scripts/make_thumbnails.py writes them)."""
    from PIL import Image

    thumbnail = path.with_suffix(".jpg")
    assert thumbnail.is_file(), f"{thumbnail.name} is missing: run scripts/make_thumbnails.py"
    with Image.open(thumbnail) as image:
        assert image.format == "JPEG" and image.width >= 320, (image.format, image.size)
