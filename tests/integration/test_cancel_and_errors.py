"""Cancel during training through POST /interrupt, and a server that survives failing prompts."""

import json
import os
import pickle
import time

import pytest

from tests.host.server import PromptError
from tests.integration.conftest import FRAMES, MODEL, SIZE, assert_success, saved_files


def train_graph(run_name: str, steps: int, path: str = "motiondirector_examples/orbit.mp4") -> dict:
    return {
        "1": {"class_type": "MD_LoadBaseModel", "inputs": {"model": MODEL, "dtype": "fp32", "device": "cpu"}},
        "2": {"class_type": "MD_LoadClips", "inputs": {
            "path": path, "prompt": "", "frames": FRAMES, "stride": 2, "fps": 0.0, "start": 0,
            "random_start": False, "width": SIZE, "height": SIZE, "resize": "crop", "repeat_short": False, "seed": 0}},
        "3": {"class_type": "MD_TrainMotion", "inputs": {
            "pipeline": ["1", 0], "clips": ["2", 0], "train": "both", "steps": steps, "lr_spatial": 1e-3,
            "lr_temporal": 1e-3, "rank": 4, "beta": 1.0, "motion_layers": "all", "seed": 0, "precision": "fp32",
            "gradient_checkpointing": "auto", "compile": False, "spatial_per_clip": False, "checkpoint_every": 0,
            "validation_prompt": "", "validation_every": 0, "run_name": run_name, "resume": False}},
        "4": {"class_type": "MD_SaveLora", "inputs": {"lora": ["3", 0], "filename_prefix": run_name}},
    }


def sample_graph(lora_name: str) -> dict:
    return {
        "1": {"class_type": "MD_LoadBaseModel", "inputs": {"model": MODEL, "dtype": "fp32", "device": "cpu"}},
        "2": {"class_type": "MD_LoadLora", "inputs": {"lora_name": lora_name}},
        "3": {"class_type": "MD_ApplyLora", "inputs": {"pipeline": ["1", 0], "lora": ["2", 0], "temporal_scale": 1.0,
                                                       "spatial_scale": 0.0, "spatial_index": -1}},
        "4": {"class_type": "MD_Sample", "inputs": {
            "pipeline": ["3", 0], "prompt": "a blue circle orbiting", "seed": 0, "negative_prompt": "",
            "frames": FRAMES, "width": SIZE, "height": SIZE, "steps": 2, "cfg": 7.0, "scheduler": "ddim",
            "noise_prior": 0.0}},
        "5": {"class_type": "CreateVideo", "inputs": {"images": ["4", 0], "fps": 8.0}},
        "6": {"class_type": "SaveVideo", "inputs": {"video": ["5", 0], "filename_prefix": "motiondirector/tests/after",
                                                    "format": "auto", "codec": "auto"}},
    }


def logged_steps(log_path) -> list[int]:
    if not log_path.is_file():
        return []
    steps = []
    for line in log_path.read_text(encoding="utf-8").splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (ValueError, KeyError):
            pass  # a line being written
    return steps


def test_interrupt_stops_training_within_a_few_steps_and_leaves_a_loadable_checkpoint(server):
    run = server.output_dir / "motiondirector" / "cancel_me"
    total = 2000
    prompt_id = server.queue(train_graph("cancel_me", total))
    deadline = time.monotonic() + 120
    while len(logged_steps(run / "train_log.jsonl")) < 3:
        assert time.monotonic() < deadline, f"training did not start\n{server.log_tail()}"
        assert server.history(prompt_id) is None, "the prompt ended before it was interrupted"
        time.sleep(0.02)
    seen = max(logged_steps(run / "train_log.jsonl"))
    server.interrupt()
    entry = server.wait(prompt_id, timeout=120)

    assert entry["status"]["status_str"] == "error"
    assert "execution_interrupted" in [m[0] for m in server.status_messages(entry)]
    last = max(logged_steps(run / "train_log.jsonl"))
    assert seen <= last <= seen + 3, (seen, last)
    checkpoints = sorted(run.glob("checkpoint-*"))
    assert [c.name for c in checkpoints] == [f"checkpoint-{last}"]
    assert not (run / "final").exists()
    assert not (server.output_dir / "motiondirector" / "cancel_me_temporal.safetensors").exists()  # no Save ran

    lora_name = f"cancel_me/checkpoint-{last}/temporal.safetensors"
    after = server.run(sample_graph(lora_name), timeout=120)
    assert_success(server, after)
    assert saved_files(server, after, "6")[0].is_file()


def execution_error(server, entry) -> dict:
    assert entry["status"]["status_str"] == "error"
    errors = [m[1] for m in server.status_messages(entry) if m[0] == "execution_error"]
    assert len(errors) == 1, server.status_messages(entry)
    assert "Traceback" not in errors[0]["exception_message"]
    return errors[0]


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_failing_prompts_leave_the_server_running(server, tmp_path):
    missing_clip = execution_error(server, server.run(
        train_graph("never", 2, path="motiondirector_examples/no_such_clip.mp4"), timeout=120))
    (server.input_dir / "md_tests").mkdir(exist_ok=True)
    (server.input_dir / "md_tests" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 broken" * 20)
    (server.input_dir / "md_tests" / "broken.txt").write_text("a clip that was cut off")
    broken_clip = execution_error(server, server.run(train_graph("never", 2, path="md_tests/broken.mp4"), timeout=120))
    marker = tmp_path / "the_pickle_ran"
    evil = server.lora_dir / "evil" / "temporal" / "lora" / "300_unet.pt"
    evil.parent.mkdir(parents=True)
    evil.write_bytes(pickle.dumps([_RunsCode(marker)], protocol=2))
    code_lora = execution_error(server, server.run(sample_graph("evil/temporal/lora/300_unet.pt"), timeout=120))
    escape = train_graph("never", 2)
    escape["3"]["inputs"]["run_name"] = "../../outside"
    escaping_name = execution_error(server, server.run(escape, timeout=120))
    bad_model = train_graph("never", 2)
    bad_model["1"]["inputs"]["model"] = "no-such-model"  # 0.3.75 checks no V3 combo value before running
    missing_model = execution_error(server, server.run(bad_model, timeout=120))
    no_steps = train_graph("never", 0)
    with pytest.raises(PromptError) as refused:  # refused before it runs: below the input's minimum
        server.queue(no_steps)

    assert missing_clip["node_type"] == "MD_LoadClips" and "no_such_clip.mp4" in missing_clip["exception_message"]
    assert missing_model["node_type"] == "MD_LoadBaseModel"
    assert "no-such-model" in missing_model["exception_message"]
    assert "diffusers" in missing_model["exception_message"]  # names the folder where models go
    assert "value_smaller_than_min" in json.dumps(refused.value.body)
    assert broken_clip["node_type"] == "MD_LoadClips" and "corrupt" in broken_clip["exception_message"]
    assert "refused to load" in code_lora["exception_message"] and not marker.exists()
    assert "inside the output folder" in escaping_name["exception_message"]
    assert not (server.output_dir.parent / "outside").exists()
    assert server.alive()
    good = server.run(train_graph("after_failure", 2), timeout=120)
    assert_success(server, good)
