"""A real ComfyUI server for the session: the pack linked into its custom_nodes folder (it brings the embedded
model toyworld-t2v, the one the examples use), an empty diffusers folder and a models/motiondirector folder."""

import copy
import json
import os
from pathlib import Path

import pytest

from tests.browser.frontend import PACK_NAME, host_folders
from tests.host.server import ComfyServer, comfyui_installed

REPO = Path(__file__).resolve().parents[2]
PACK = PACK_NAME
MODEL = "toyworld-t2v"
EXAMPLES = REPO / "example_workflows"
EXAMPLE_NAMES = sorted(path.stem for path in EXAMPLES.glob("*.json"))

# Test-size settings for each node type: the examples' graphs stay as they are, only their numbers shrink.
FRAMES, SIZE = 4, 32
AD_SIZE = 64  # the tiny AnimateDiff's SD 1.5 layout downsamples three times: 8x8 latents at least
# Example 7 names the files most AnimateDiff users have; the tests put the tiny models under those names.
AD_FILES = {"checkpoints": {"v1-5-pruned-emaonly.safetensors": "sd15.safetensors"},
            "animatediff_models": {"v3_sd15_mm.ckpt": "mm_v3.ckpt"}}
SMALL = {
    "MD_LoadClips": dict(width=SIZE, height=SIZE),
    "MD_TrainMotion": dict(steps=2, rank=4),
    "MD_InvertReference": dict(steps=2),
    "MD_Sample": dict(steps=2, frames=FRAMES, width=SIZE, height=SIZE),
    "MD_Sweep": dict(steps=2, frames=FRAMES, width=SIZE, height=SIZE),
}


@pytest.fixture(scope="session")
def server(tmp_path_factory, animatediff_files):
    if not comfyui_installed():
        pytest.skip("the ComfyUI host is not installed: run scripts/install_host.sh")
    base = tmp_path_factory.mktemp("server")
    custom_nodes, diffusers = host_folders(base)  # the pack installed as a user installs it
    loras = base / "models" / "md"
    loras.mkdir(parents=True)
    folders = {"motiondirector": loras}
    for folder, files in {**AD_FILES, "loras": {}, "animatediff_motion_lora": {}}.items():
        folders[folder] = base / "models" / folder
        folders[folder].mkdir()
        for name, source in files.items():
            (folders[folder] / name).symlink_to(animatediff_files / source)
    threads = os.environ.get("MD_TEST_THREADS", "1")
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    # Its own base directory: the models folder that exports go to is the session's, not the host's.
    (base / "home" / "custom_nodes").mkdir(parents=True)  # ComfyUI lists it at start
    home = ["--base-directory", str(base / "home")]
    with ComfyServer(None, base / "comfy", custom_nodes, diffusers, model_paths=folders, env=env,
                     extra_args=home) as srv:
        srv.lora_dir = loras
        yield srv


@pytest.fixture(scope="session")
def object_info(server) -> dict:
    return server.object_info()


def load_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def api_example(name: str) -> dict:
    return load_json(EXAMPLES / "api" / f"{name}.json")


def example_size(prompt: dict) -> int:
    return AD_SIZE if nodes_of(prompt, "MD_LoadAnimateDiffModel") else SIZE


def shrink(prompt: dict) -> dict:
    """The same graph with test-size numbers (see SMALL); frames of clips only where more than one is taken."""
    small = copy.deepcopy(prompt)
    size = example_size(prompt)
    for node in small.values():
        inputs = node["inputs"]
        for name, value in SMALL.get(node["class_type"], {}).items():
            if name in inputs:
                inputs[name] = size if name in ("width", "height") else value
        if node["class_type"] == "MD_LoadClips" and inputs["frames"] > 1:
            inputs["frames"] = FRAMES
        if node["class_type"] == "MD_TrainMotion" and inputs["checkpoint_every"]:
            inputs["checkpoint_every"] = 1
    return small


def nodes_of(prompt: dict, class_type: str) -> list[str]:
    return [node_id for node_id, node in prompt.items() if node["class_type"] == class_type]


def assert_success(server, entry: dict) -> None:
    status = entry.get("status", {})
    if status.get("status_str") != "success":
        errors = [m for m in server.status_messages(entry) if m[0] != "execution_cached"]
        raise AssertionError(f"prompt failed: {json.dumps(errors, indent=1)[:6000]}\n{server.log_tail(40)}")


def saved_files(server, entry: dict, node_id: str, key: str = "images") -> list[Path]:
    """The files a saving node reported in its UI output (SaveVideo reports videos under 'images')."""
    results = entry["outputs"][node_id][key]
    return [server.output_dir / item.get("subfolder", "") / item["filename"] for item in results]


@pytest.fixture(scope="session")
def run_example(server):
    """run_example(name) -> (the shrunk API prompt, its /history entry); each example runs once per session."""
    done = {}

    def run(name: str):
        if name not in done:
            prompt = shrink(api_example(name))
            done[name] = prompt, server.run(prompt, timeout=300)
        return done[name]

    return run


@pytest.fixture(scope="session")
def saved_motion_lora(server, run_example) -> Path:
    """The LoRA file examples 3 and 6 load: trained and saved by example 1, then placed in models/motiondirector."""
    name = "1_motion_from_one_video"
    prompt, entry = run_example(name)
    assert_success(server, entry)
    saved = server.output_dir / "motiondirector" / "orbit_temporal.safetensors"
    target = server.lora_dir / saved.name
    if not target.exists():
        target.write_bytes(saved.read_bytes())
    return target
