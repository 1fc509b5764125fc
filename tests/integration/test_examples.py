"""Every example workflow runs to success in the real server (test-size numbers), and what it writes is right."""

import json

import av
import pytest
from safetensors import safe_open

from tests.integration.conftest import (
    EXAMPLE_NAMES, FRAMES, api_example, assert_success, example_size, nodes_of, saved_files,
)

TRAIN_KINDS = {"both": {"temporal", "spatial"}, "spatial": {"spatial"}, "temporal": {"temporal"},
               "coupled": {"coupled"}}


def decode(path):
    """(frame count, width, height) of a video file, decoded with PyAV."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return len(frames), frames[0].width, frames[0].height


def frames_made(prompt: dict, node_id: str) -> int:
    inputs = prompt[node_id]["inputs"]
    if prompt[node_id]["class_type"] == "MD_Sweep":
        count = inputs["frames"]
        count *= len([line for line in inputs["prompts"].splitlines() if line.strip()])
        for key in ("temporal_scales", "spatial_scales", "seeds"):
            count *= len([part for part in inputs[key].split(",") if part.strip()])
        return count
    return inputs["frames"]


def lora_metadata(path) -> dict:
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata())


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_runs_and_writes_decodable_videos(server, run_example, request, name):
    if nodes_of(api_example(name), "MD_LoadLora"):
        request.getfixturevalue("saved_motion_lora")
    prompt, entry = run_example(name)

    assert_success(server, entry)
    videos = nodes_of(prompt, "SaveVideo")
    assert videos, "every example ends in a video"
    for node_id in videos:
        create = prompt[node_id]["inputs"]["video"][0]
        source = prompt[create]["inputs"]["images"][0]
        (path,) = saved_files(server, entry, node_id)
        assert path.is_file() and path.suffix == ".mp4"
        assert decode(path) == (frames_made(prompt, source), example_size(prompt), example_size(prompt))


@pytest.mark.parametrize("name", [n for n in EXAMPLE_NAMES if nodes_of(api_example(n), "MD_TrainMotion")])
def test_trained_loras_are_on_disk_with_their_metadata(server, run_example, name):
    prompt, entry = run_example(name)
    assert_success(server, entry)

    for node_id in nodes_of(prompt, "MD_TrainMotion"):
        inputs = prompt[node_id]["inputs"]
        final = server.output_dir / "motiondirector" / inputs["run_name"] / "final"
        kinds = {path.stem for path in final.glob("*.safetensors")}
        assert kinds == TRAIN_KINDS[inputs["train"]], final
        for path in final.glob("*.safetensors"):
            meta = lora_metadata(path)
            assert meta["format"] == "motiondirector-lora" and meta["kind"] == path.stem
            assert meta["rank"] == str(inputs["rank"]) and meta["steps"] == str(inputs["steps"])
            assert meta["base_model"] and meta["seed"] == str(inputs["seed"])
            assert (meta["width"], meta["height"]) == (str(example_size(prompt)),) * 2
        if inputs["checkpoint_every"]:
            assert (final.parent / f"checkpoint-{inputs['checkpoint_every']}").is_dir()
    for node_id in nodes_of(prompt, "MD_SaveLora"):
        (text,) = entry["outputs"][node_id]["text"]
        written = text.splitlines()
        prefix = prompt[node_id]["inputs"]["filename_prefix"]
        ours = [p for p in written if "/motiondirector/" in p]
        assert sorted(p.rsplit("/", 1)[-1] for p in ours) == [f"{prefix}_spatial.safetensors",
                                                               f"{prefix}_temporal.safetensors"]
        exports = sorted(set(written) - set(ours))
        if prompt[node_id]["inputs"].get("export_for_other_tools"):
            assert [p.rsplit("/", 2)[-2:] for p in exports] == [
                ["animatediff_motion_lora", f"{prefix}_motion_lora.safetensors"],
                ["loras", f"{prefix}_appearance_lora.safetensors"]]
        else:
            assert not exports
        for path in ours:
            meta = lora_metadata(path)
            assert meta["format"] == "motiondirector-lora" and path.endswith(f"_{meta['kind']}.safetensors")
            assert meta["frames"] == str(FRAMES)


def test_example_one_plots_its_loss(server, run_example):
    prompt, entry = run_example("1_motion_from_one_video")
    assert_success(server, entry)

    (node_id,) = nodes_of(prompt, "LossGraphNode")
    assert entry["outputs"][node_id]["images"], "the loss graph node showed no image"


def test_the_sweep_writes_every_result_and_its_index(server, run_example, saved_motion_lora):
    prompt, entry = run_example("6_sweep_prompts_scales_seeds")
    assert_success(server, entry)

    (node_id,) = nodes_of(prompt, "MD_Sweep")
    folder = server.output_dir / "motiondirector" / prompt[node_id]["inputs"]["folder"]
    index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    results = index["results"]
    assert len(results) == frames_made(prompt, node_id) // FRAMES
    assert len(list(folder.rglob("*.mp4"))) == len(results)


def test_a_saved_lora_appears_in_the_loader_without_a_restart(server, saved_motion_lora):
    options = server.object_info("MD_LoadLora")["MD_LoadLora"]["input"]["required"]["lora_name"]
    names = options[1]["options"] if options[0] == "COMBO" else options[0]

    assert saved_motion_lora.name in names
