"""In-process ComfyUI: the real host's nodes.py loads the pack from a custom_nodes link, as a user's install does."""

import asyncio
import os
from pathlib import Path

import pytest

from tests.host.launch_comfyui import comfyui_dir, setup_in_process

REPO = Path(__file__).resolve().parents[2]
PACK_NAME = "ComfyUI-MotionDirector"
MODEL_NAME = "tiny-t2v"


# The tiny AnimateDiff files under the names users' files have, in ComfyUI's and AnimateDiff-Evolved's folders.
ANIMATEDIFF_FILES = {"checkpoints": {"tiny_sd15.safetensors": "sd15.safetensors"},
                     "animatediff_models": {"tiny_mm_v2.ckpt": "mm_v2.ckpt",
                                            "tiny_mm_v3.safetensors": "mm_v3.safetensors"},
                     "vae": {"tiny_vae.safetensors": "vae.safetensors"}, "loras": {}, "animatediff_motion_lora": {}}


@pytest.fixture(scope="session")
def comfy_dirs(tmp_path_factory, tiny_model_dir, animatediff_files):
    if not Path(comfyui_dir(), "main.py").is_file():
        pytest.skip("the ComfyUI host is not installed: run scripts/install_host.sh")
    base = tmp_path_factory.mktemp("comfy")
    dirs = {name: base / name for name in ("custom_nodes", "models", "input", "output", "temp")}
    for folder in dirs.values():
        folder.mkdir()
    (dirs["custom_nodes"] / PACK_NAME).symlink_to(REPO, target_is_directory=True)
    (dirs["models"] / "diffusers").mkdir()
    (dirs["models"] / "diffusers" / MODEL_NAME).symlink_to(tiny_model_dir, target_is_directory=True)
    for folder, files in ANIMATEDIFF_FILES.items():
        (dirs["models"] / folder).mkdir()
        for name, source in files.items():
            (dirs["models"] / folder / name).symlink_to(animatediff_files / source)
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
    for folder in ("checkpoints", "vae", "loras"):
        folder_paths.add_model_folder_path(folder, str(comfy_dirs["models"] / folder), is_default=True)
    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    loaded = asyncio.run(nodes.load_custom_node(os.path.join(comfy_dirs["custom_nodes"], PACK_NAME)))
    assert loaded, "the pack failed to load (see the log above)"
    return nodes.NODE_CLASS_MAPPINGS


def execute_node(comfy, node_id: str, **inputs):
    """Execute one node as ComfyUI's executor does: a locked clone of the class, under inference_mode.
    Returns the NodeOutput (its `args` and `ui`)."""
    import torch
    from comfy_api.internal import make_locked_method_func

    node = comfy[node_id]
    node.VALIDATE_CLASS()
    execute = make_locked_method_func(node, "execute", node.PREPARE_CLASS_CLONE({}))
    with torch.inference_mode():
        return execute(**inputs)


def run_node(comfy, node_id: str, **inputs):
    """Execute one node as ComfyUI would (inference mode) and return its outputs as a tuple."""
    return tuple(execute_node(comfy, node_id, **inputs).args)


def pack_module(comfy, name: str):
    """A module of the pack as ComfyUI loaded it (e.g. "motiondirector_core.errors"): its classes are not those of
    the top-level `motiondirector_core` that the unit tests import."""
    import importlib

    root = comfy["MD_LoadBaseModel"].__module__.rsplit(".nodes.", 1)[0]
    return importlib.import_module(f"{root}.{name}")


@pytest.fixture(autouse=True)
def no_interrupt_left(comfy):
    """Every test starts and ends with ComfyUI's interrupt flag down, whatever it did."""
    import comfy.model_management as mm

    mm.interrupt_current_processing(False)
    yield
    mm.interrupt_current_processing(False)


class ProgressEvents:
    """What ComfyUI's progress hook saw; like the server's hook it raises the interrupt when the flag is set."""

    def __init__(self, server_like: bool = True):
        self.events: list[tuple] = []  # (value, total, preview, inference_mode, grad_enabled)
        self.server_like = server_like
        self.interrupt_at = None  # a cancel that arrives during the work that ends with this update

    def __call__(self, value, total, preview, prompt_id=None, node_id=None):
        import comfy.model_management as mm
        import torch

        if self.interrupt_at is not None and value >= self.interrupt_at:
            mm.interrupt_current_processing(True)  # as POST /interrupt sets it, from another thread
            self.interrupt_at = None
        if self.server_like:
            mm.throw_exception_if_processing_interrupted()
        self.events.append((value, total, preview, torch.is_inference_mode_enabled(), torch.is_grad_enabled()))

    @property
    def values(self) -> list[int]:
        return [event[0] for event in self.events]

    @property
    def previews(self) -> list:
        return [event[2] for event in self.events if event[2] is not None]


@pytest.fixture(params=[True], ids=["server-hook"])
def progress(comfy, request):
    """Installs a global progress hook for the test (ProgressBars made during it report to it): server-like
    (it raises the interrupt, as main.py's hook does), or, parametrized with False, one that only records."""
    import comfy.utils as comfy_utils

    events = ProgressEvents(server_like=request.param)
    previous = comfy_utils.PROGRESS_BAR_HOOK
    comfy_utils.set_progress_bar_global_hook(events)
    yield events
    comfy_utils.set_progress_bar_global_hook(previous)


@pytest.fixture()
def base(comfy):
    """A freshly loaded tiny base pipeline (tests may train on and apply LoRAs to it freely)."""
    (pipeline,) = run_node(comfy, "MD_LoadBaseModel", model=MODEL_NAME, dtype="fp32", device="cpu")
    return pipeline


@pytest.fixture()
def input_dir(comfy_dirs, request):
    """A folder of this test's own inside ComfyUI's input folder; returns (folder, name relative to input)."""
    folder = comfy_dirs["input"] / request.node.name.replace("[", "_").replace("]", "")
    folder.mkdir()
    return folder


SAMPLE = dict(negative_prompt="", frames=4, width=32, height=32, steps=2, cfg=7.0, scheduler="ddim", noise_prior=0.5)
TRAIN = dict(train="both", steps=2, lr_spatial=1e-3, lr_temporal=1e-3, rank=2, beta=1.0, motion_layers="all", seed=0,
             precision="fp32", gradient_checkpointing="off", compile=False, spatial_per_clip=False, checkpoint_every=0,
             validation_prompt="", validation_every=0, resume=False)
SAMPLING = dict(frames=4, stride=1, fps=0.0, start=0, random_start=False, width=32, height=32, resize="crop",
                repeat_short=False)


def sample(comfy, pipeline, prompt="a red circle", seed=0, **overrides):
    (frames,) = run_node(comfy, "MD_Sample", pipeline=pipeline, prompt=prompt, seed=seed, **{**SAMPLE, **overrides})
    return frames


def train(comfy, pipeline, clips, run_name, **overrides):
    """TrainMotion with tiny settings; returns (lora, loss, validation)."""
    return run_node(comfy, "MD_TrainMotion", pipeline=pipeline, clips=clips, run_name=run_name,
                    **{**TRAIN, **overrides})


def video_clips(comfy, seed: int = 0, count: int = 1, frames: int = 4, prompt="a square moves right"):
    """`count` chained clips of random frames (32x32) made with ClipsFromImages."""
    import torch

    clips = None
    for i in range(count):
        images = torch.rand(frames, 32, 32, 3, generator=torch.Generator().manual_seed(seed + i))
        extra = {} if clips is None else {"clips": clips}
        (clips,) = run_node(comfy, "MD_ClipsFromImages", images=images, prompt=f"{prompt} {i}", resample=False,
                            frame_rate=0.0, **SAMPLING, **extra)
    return clips
