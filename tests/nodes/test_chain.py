"""The nodes chained as a workflow wires them: a clip file in ComfyUI's input folder to a core VIDEO, and the
loaders' fingerprints that make ComfyUI read a file again once it changed."""

import torch

from tests.fixtures.media import moving_square, write_pyav
from tests.nodes.conftest import MODEL_NAME, SAMPLE, SAMPLING, TRAIN, run_node


def fingerprint(comfy, node_id, **inputs):
    """What ComfyUI's executor compares to decide whether a node's cached output is still good."""
    from comfy_api.internal import make_locked_method_func

    node = comfy[node_id]
    return make_locked_method_func(node, "fingerprint_inputs", node.PREPARE_CLASS_CLONE({}))(**inputs)


def test_clip_file_to_motion_lora_to_video(comfy, comfy_dirs, input_dir, progress):
    write_pyav(input_dir / "slide.mp4", moving_square(8, height=32, width=32))
    (input_dir / "slide.txt").write_text("a white square slides to the right")
    clips, first = run_node(comfy, "MD_LoadClips", path=f"{input_dir.name}/slide.mp4", prompt="", seed=0, **SAMPLING)
    (pipeline,) = run_node(comfy, "MD_LoadBaseModel", model=MODEL_NAME, dtype="auto", device="auto")
    lora, loss, validation = run_node(comfy, "MD_TrainMotion", pipeline=pipeline, clips=clips,
                                      **{**TRAIN, "validation_prompt": "a red car", "validation_every": 2},
                                      run_name="chain")
    (files,) = run_node(comfy, "MD_SaveLora", lora=lora, filename_prefix="chain/slide")
    names = [f.rsplit("/", 1)[1] for f in files.splitlines()]
    assert names == ["slide_temporal.safetensors", "slide_spatial.safetensors"]
    (motion,) = run_node(comfy, "MD_LoadLora", lora_name="chain/slide_temporal.safetensors")
    (moving,) = run_node(comfy, "MD_ApplyLora", pipeline=pipeline, lora=motion, temporal_scale=1.0,
                         spatial_scale=0.0, spatial_index=-1)
    (noise,) = run_node(comfy, "MD_InvertReference", pipeline=moving, images=first, steps=2)
    (frames,) = run_node(comfy, "MD_Sample", pipeline=moving, prompt="a red car drives", seed=1,
                         **{**SAMPLE, "noise": noise, "noise_prior": 0.3})
    (video,) = run_node(comfy, "CreateVideo", images=frames, fps=8.0)
    components = video.get_components()
    assert torch.equal(components.images, frames) and float(components.frame_rate) == 8.0
    assert frames.shape == validation.shape == (4, 32, 32, 3)
    assert clips[0].prompt == "a white square slides to the right" and len(loss["loss"]) == 2
    assert progress.previews, "training and sampling showed previews"


def test_loaders_fingerprint_the_files_they_read(comfy, comfy_dirs, input_dir):
    clip = write_pyav(input_dir / "clip.mp4", moving_square(4, height=32, width=32))
    name = f"{input_dir.name}/clip.mp4"
    settings = dict(prompt="p", seed=0, **SAMPLING)
    first = fingerprint(comfy, "MD_LoadClips", path=name, **settings)
    assert fingerprint(comfy, "MD_LoadClips", path=name, **settings) == first
    (input_dir / "clip.txt").write_text("a new prompt")
    assert fingerprint(comfy, "MD_LoadClips", path=name, **settings) != first
    in_folder = fingerprint(comfy, "MD_LoadClips", path=input_dir.name, **settings)
    write_pyav(input_dir / "other.mp4", moving_square(4, height=32, width=32))
    assert fingerprint(comfy, "MD_LoadClips", path=input_dir.name, **settings) != in_folder
    assert fingerprint(comfy, "MD_LoadClips", path="", **settings) == ("", [])  # execute reports the error
    assert clip.is_file()

    lora_file = comfy_dirs["models"] / "motiondirector" / "stamp.safetensors"
    lora_file.write_bytes(b"one")
    before = fingerprint(comfy, "MD_LoadLora", lora_name="stamp.safetensors", pipeline=None)
    lora_file.write_bytes(b"other content")
    assert fingerprint(comfy, "MD_LoadLora", lora_name="stamp.safetensors", pipeline=None) != before
    lora_file.unlink()
    assert fingerprint(comfy, "MD_LoadLora", lora_name="stamp.safetensors", pipeline=None) == ("stamp.safetensors", [])
