"""In-process ComfyUI: the real host's nodes.py loads the pack from a custom_nodes link, as a user's install does."""

import asyncio
import os
from pathlib import Path

import pytest

from tests.host.launch_comfyui import comfyui_dir, setup_in_process

REPO = Path(__file__).resolve().parents[2]
PACK_NAME = "ComfyUI-MotionDirector"
MODEL_NAME = "tiny-t2v"


@pytest.fixture(scope="session")
def comfy_dirs(tmp_path_factory, tiny_model_dir):
    if not Path(comfyui_dir(), "main.py").is_file():
        pytest.skip("the ComfyUI host is not installed: run scripts/install_host.sh")
    base = tmp_path_factory.mktemp("comfy")
    dirs = {name: base / name for name in ("custom_nodes", "models", "input", "output", "temp")}
    for folder in dirs.values():
        folder.mkdir()
    (dirs["custom_nodes"] / PACK_NAME).symlink_to(REPO, target_is_directory=True)
    (dirs["models"] / "diffusers").mkdir()
    (dirs["models"] / "diffusers" / MODEL_NAME).symlink_to(tiny_model_dir, target_is_directory=True)
    return dirs


@pytest.fixture(scope="session")
def comfy(comfy_dirs):
    """ComfyUI's node registry with the core extras and the pack loaded; returns NODE_CLASS_MAPPINGS."""
    setup_in_process()
    import folder_paths

    folder_paths.set_output_directory(str(comfy_dirs["output"]))
    folder_paths.set_input_directory(str(comfy_dirs["input"]))
    folder_paths.set_temp_directory(str(comfy_dirs["temp"]))
    folder_paths.models_dir = str(comfy_dirs["models"])
    folder_paths.add_model_folder_path("diffusers", str(comfy_dirs["models"] / "diffusers"), is_default=True)
    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    loaded = asyncio.run(nodes.load_custom_node(os.path.join(comfy_dirs["custom_nodes"], PACK_NAME)))
    assert loaded, "the pack failed to load (see the log above)"
    return nodes.NODE_CLASS_MAPPINGS


def run_node(comfy, node_id: str, **inputs):
    """Execute one node as ComfyUI would (inference mode) and return its outputs as a tuple."""
    import torch

    node = comfy[node_id]
    with torch.inference_mode():
        output = node.execute(**inputs)
    return tuple(output.args)
