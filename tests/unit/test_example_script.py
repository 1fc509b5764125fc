"""scripts/example.sh, the README's main job, run as a user runs it (shortened to 4 training steps): the embedded
model trains on the bundled clips and the video, its settings and the side-by-side picture come out; then
bench/main_job_look.py reads that folder and reruns its recorded command per seed."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image

from motiondirector_core.video_io import read_video, write_video
from tests.fixtures.bench import load_bench

REPO = Path(__file__).resolve().parents[2]
VIDEO = "a_purple_circle_moving_in_a_zigzag.mp4"


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("example")
    threads = os.environ.get("MD_TEST_THREADS", "1")
    env = {**os.environ, "MD_EXAMPLE_STEPS": "4", "OMP_NUM_THREADS": threads, "XDG_CACHE_HOME": str(tmp_path)}
    out = tmp_path / "example"
    result = subprocess.run(["bash", str(REPO / "scripts" / "example.sh"), str(out)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result.stdout


def test_the_main_job_writes_a_video_its_settings_and_a_side_by_side_picture(example):
    out, stdout = example
    assert stdout.count("+ .venv/bin/python -m motiondirector_core") == 2  # the commands are shown

    video = out / VIDEO
    frames, _ = read_video(video)
    assert tuple(frames.shape) == (8, 32, 32, 3)
    record = json.loads(video.with_suffix(".json").read_text())
    assert record["model_name"] == "toyworld-t2v" and record["prompt"] == "a purple circle moving in a zigzag"
    assert [(lora["kind"], lora["scale"]) for lora in record["loras"]] == [("temporal", 0.75)]
    (run,) = out.glob("run-*")
    assert (run / "final" / "temporal.safetensors").is_file()
    picture = Image.open(out / "a_purple_circle_moving_in_a_zigzag_side_by_side.png")
    assert picture.size == (8 * 96, 2 * 96)  # 8 reference frames over 8 generated ones, enlarged 3x


def test_the_look_check_reruns_the_main_jobs_command_per_seed_and_reads_every_frame(example, tmp_path):
    out, _ = example
    look = load_bench("main_job_look")
    assert look.main(["--example", str(out), "--seeds", "2", "--out", str(tmp_path)]) == 0

    data = json.loads((tmp_path / "main_job_look.json").read_text())
    assert data["seeds"] == 2 and [row["seed"] for row in data["rows"]] == [0, 1]
    assert data["temporal_scale"] == 0.75  # the strength the main job samples at
    # seed 0 is the example's own video (the script checks the frames, to within float noise); seed 1 another one
    example_video, same = read_video(out / VIDEO)[0], look.SAME_VIDEO_MEAN_LEVELS
    assert look.mean_difference(read_video(out / "seeds" / "seed_0.mp4")[0], example_video) <= same
    assert look.mean_difference(read_video(out / "seeds" / "seed_1.mp4")[0], example_video) > same
    for row in data["rows"]:
        assert len(row["per_frame"]) == row["frames"] == 8 and 0 <= row["frames_kept"] <= 8
        kept = sum(frame == "purple circle" for frame in row["per_frame"])
        assert row["frames_kept"] == kept
    assert data["kept_every_frame"] == sum(row["frames_kept"] == 8 for row in data["rows"])
    table = (tmp_path / "main_job_look.md").read_text()
    assert f"in every frame: {data['kept_every_frame']} of 2 seeds" in table and table.count("| 0 |") == 1
    assert Image.open(tmp_path / "main_job_look.png").size == (8 * 32 * 3, 3 * 32 * 3)  # a reference + 2 seeds


def test_the_look_check_refuses_a_folder_the_main_job_did_not_write(tmp_path):
    look = load_bench("main_job_look")
    with pytest.raises(look.MotionDirectorError, match="one settings JSON scripts/example.sh writes"):
        look.main(["--example", str(tmp_path), "--out", str(tmp_path / "out")])


def test_the_look_check_refuses_an_example_video_its_recorded_command_did_not_make(example, tmp_path):
    out, _ = example
    look = load_bench("main_job_look")
    tampered = tmp_path / "example"
    shutil.copytree(out, tampered, ignore=shutil.ignore_patterns("seeds"))
    record = json.loads((tampered / VIDEO).with_suffix(".json").read_text())
    record["video"] = str(tampered / VIDEO)
    (tampered / VIDEO).with_suffix(".json").write_text(json.dumps(record))
    frames, fps = read_video(out / VIDEO)
    write_video(tampered / VIDEO, frames.flip(2), fps)  # the example's video mirrored: a zigzag the command never made
    with pytest.raises(look.MotionDirectorError, match="seed 0 did not reproduce .* levels of 255"):
        look.main(["--example", str(tampered), "--seeds", "1", "--out", str(tmp_path / "out")])
    assert (tampered / VIDEO).is_file()  # nothing of the user's folder is lost


def test_clips_of_another_size_are_never_the_same_video():
    look = load_bench("main_job_look")
    clip = torch.zeros(8, 32, 32, 3, dtype=torch.uint8)
    assert look.mean_difference(clip, clip) == 0.0
    assert look.mean_difference(clip, clip[:, :16]) == float("inf")


def test_the_look_check_reruns_the_seeds_at_another_motion_strength(example, tmp_path):
    out, _ = example
    look = load_bench("main_job_look")
    assert look.main(["--example", str(out), "--seeds", "1", "--temporal-scale", "0.5", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "main_job_look.json").read_text())
    assert data["temporal_scale"] == 0.5 and data["seeds"] == 1
    assert "the motion LoRA at strength 0.5" in (tmp_path / "main_job_look.md").read_text()
    # a weaker motion LoRA is another video, so seed 0 is not held to the example's
    assert look.mean_difference(read_video(out / "seeds" / "seed_0.mp4")[0], read_video(out / VIDEO)[0]) > 0
