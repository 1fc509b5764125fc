"""The pack inside a running ComfyUI: it imports cleanly, lists its nodes, its examples and their inputs."""

import re

from tests.integration.conftest import EXAMPLE_NAMES, EXAMPLES, PACK, REPO, load_json


def pack_node_ids() -> set[str]:
    """Every node id the pack's modules define (read from the source, so a new node is checked too)."""
    ids = set()
    for module in (REPO / "nodes").glob("*.py"):
        ids.update(re.findall(r'node_id="(MD_\w+)"', module.read_text(encoding="utf-8")))
    return ids


def test_the_pack_imports_without_failure(server):
    log = server.log_text()

    failed = [line for line in log.splitlines() if "IMPORT FAILED" in line]
    assert not [line for line in failed if PACK in line], failed
    assert re.search(rf"seconds: .*{re.escape(PACK)}\s*$", log, re.MULTILINE), "the pack is not in the import times"


def test_object_info_lists_every_node_of_the_pack(object_info):
    ids = pack_node_ids()

    assert len(ids) >= 10
    assert ids <= set(object_info), sorted(ids - set(object_info))
    for node_id in ids:
        info = object_info[node_id]
        assert info["category"].startswith("MotionDirector/"), node_id
        assert info["python_module"].startswith("custom_nodes."), node_id


def test_workflow_templates_lists_the_examples(server):
    templates = server.get("/workflow_templates")

    assert len(EXAMPLE_NAMES) == 7
    assert sorted(templates[PACK]) == EXAMPLE_NAMES
    for name in EXAMPLE_NAMES:
        served = server.get(f"/api/workflow_templates/{PACK}/{name}.json")
        if isinstance(served, bytes):
            import json

            served = json.loads(served)
        assert served == load_json(EXAMPLES / f"{name}.json")


def test_the_example_inputs_are_copied_into_the_input_folder(server):
    source = EXAMPLES / "inputs"
    target = server.input_dir / "motiondirector_examples"

    expected = sorted(p.relative_to(source) for p in source.rglob("*") if p.is_file())
    assert expected and sorted(p.relative_to(target) for p in target.rglob("*") if p.is_file()) == expected
    for name in expected:
        assert (target / name).read_bytes() == (source / name).read_bytes()
