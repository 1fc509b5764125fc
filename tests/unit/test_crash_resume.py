"""A training process killed with SIGKILL (power cut, OOM killer) resumes from its last checkpoint and finishes."""

import json
import signal
import subprocess
import sys
import time

import torch

from motiondirector_core.lora_files import read_lora
from tests.fixtures.media import moving_square, write_pyav
from tests.unit.test_cli import REPO, TINY, assert_ok, cli_env, run_cli

STEPS = 40


def train_args(tiny_model_dir, clip, output) -> list:
    return ["train", "--model", tiny_model_dir, "--clips", clip, "--prompt", "a square moves", "--output", output,
            "--steps", STEPS, "--rank", 4, "--checkpoint-every", 2, *TINY]


def final_weights(run) -> dict[str, dict[str, torch.Tensor]]:
    return {p.stem: read_lora(p).state for p in sorted((run / "final").glob("*.safetensors"))}


def test_sigkill_mid_run_resumes_from_the_run_folder_and_matches_an_unbroken_run(tiny_model_dir, tmp_path):
    clip = write_pyav(tmp_path / "clip.mp4", moving_square(8, height=32, width=64), fps=8)
    killed = tmp_path / "killed"
    argv = [sys.executable, "-m", "motiondirector_core", *map(str, train_args(tiny_model_dir, clip, killed))]
    process = subprocess.Popen(argv, cwd=REPO, env=cli_env(tmp_path), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not (killed / "checkpoint-2").is_dir():
        assert process.poll() is None, f"training ended before its first checkpoint:\n{process.stderr.read()}"
        assert time.time() < deadline, "no checkpoint within 3 minutes"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "final").exists(), "the run finished before the kill: the test needs more steps"
    # What a kill inside a save leaves behind: a half-written folder, which resuming must ignore and clear.
    half = killed / ".checkpoint-98.k2x9_q7m.tmp"
    half.mkdir()
    (half / "temporal.safetensors").write_bytes(b"\x00" * 7)

    resumed = run_cli(tmp_path, *train_args(tiny_model_dir, clip, killed), "--resume", killed)

    assert_ok(resumed)
    assert not half.exists()
    steps = [json.loads(line)["step"] for line in (killed / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))
    unbroken = tmp_path / "unbroken"
    assert_ok(run_cli(tmp_path, *train_args(tiny_model_dir, clip, unbroken)))
    a, b = final_weights(killed), final_weights(unbroken)
    assert a.keys() == b.keys() and a
    for name in a:
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), (name, key)
