"""scripts/example.sh, the README's main job, run as a user runs it (shortened to 4 training steps): the embedded
model trains on the bundled clips and the video, its settings and the side-by-side picture come out."""

import json
import os
import subprocess
from pathlib import Path

from PIL import Image

from motiondirector_core.video_io import read_video

REPO = Path(__file__).resolve().parents[2]


def test_the_main_job_writes_a_video_its_settings_and_a_side_by_side_picture(tmp_path):
    threads = os.environ.get("MD_TEST_THREADS", "1")
    env = {**os.environ, "MD_EXAMPLE_STEPS": "4", "OMP_NUM_THREADS": threads, "XDG_CACHE_HOME": str(tmp_path)}
    out = tmp_path / "example"
    result = subprocess.run(["bash", str(REPO / "scripts" / "example.sh"), str(out)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("+ .venv/bin/python -m motiondirector_core") == 2  # the commands are shown

    video = out / "a_purple_circle_moving_in_a_zigzag.mp4"
    frames, _ = read_video(video)
    assert tuple(frames.shape) == (8, 32, 32, 3)
    record = json.loads(video.with_suffix(".json").read_text())
    assert record["model_name"] == "toyworld-t2v" and record["prompt"] == "a purple circle moving in a zigzag"
    assert [lora["kind"] for lora in record["loras"]] == ["temporal"]
    (run,) = out.glob("run-*")
    assert (run / "final" / "temporal.safetensors").is_file()
    picture = Image.open(out / "a_purple_circle_moving_in_a_zigzag_side_by_side.png")
    assert picture.size == (8 * 96, 2 * 96)  # 8 reference frames over 8 generated ones, enlarged 3x
