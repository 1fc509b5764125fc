import json

import pytest
import torch

from motiondirector_core.clips import Clip
from motiondirector_core.errors import MotionDirectorError
from motiondirector_core.lora_files import read_lora
from motiondirector_core.models import load_model
from motiondirector_core.train import TrainCallbacks, train
from motiondirector_core.train_config import TrainConfig
from motiondirector_core.train_state import STATE_FILE


def clips() -> list[Clip]:
    g = torch.Generator().manual_seed(0)
    return [Clip(torch.rand(4, 32, 32, 3, generator=g), f"a dog running {i}") for i in range(2)]


def config(tmp_path, name: str, **overrides) -> TrainConfig:
    # Dropout, the skip, per-clip spatial adapters and fp16 scaling all carry state that resume must restore.
    values = dict(
        output=str(tmp_path / name), steps=4, rank=4, width=32, height=32, frames=4, checkpoint_every=2,
        spatial_per_clip=True, spatial_skip_prob=0.5, precision="fp16",
    )
    return TrainConfig(**{**values, **overrides})


def final_weights(folder) -> dict[str, dict[str, torch.Tensor]]:
    return {p.stem: read_lora(p).state for p in sorted(folder.glob("*.safetensors"))}


def log_without_times(path) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: line[k] for k in ("step", "losses", "lrs")} for line in lines]


def assert_bit_exact(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].keys() == b[name].keys()
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), (name, key)


def test_four_steps_equal_two_plus_resume_plus_two(tiny_model_dir, tmp_path):
    straight = train(load_model(tiny_model_dir), clips(), config(tmp_path, "straight"))
    half = train(load_model(tiny_model_dir), clips(), config(tmp_path, "split", steps=2))
    assert half.steps == 2
    resumed = train(load_model(tiny_model_dir), clips(), config(tmp_path, "split", resume=str(half.final)))
    assert resumed.steps == 4
    assert_bit_exact(final_weights(straight.final), final_weights(resumed.final))
    assert log_without_times(straight.log) == log_without_times(resumed.log)
    a = torch.load(straight.final / STATE_FILE, weights_only=True)
    b = torch.load(resumed.final / STATE_FILE, weights_only=True)
    assert torch.equal(a["generator"], b["generator"]) and a["scalers"] == b["scalers"]
    assert b["elapsed"] >= torch.load(half.final / STATE_FILE, weights_only=True)["elapsed"]


def test_resume_drops_the_log_lines_after_the_checkpoint(tiny_model_dir, tmp_path):
    straight = train(load_model(tiny_model_dir), clips(), config(tmp_path, "run"))
    before = log_without_times(straight.log)
    resumed = train(
        load_model(tiny_model_dir), clips(), config(tmp_path, "run", resume=str(tmp_path / "run" / "checkpoint-2"))
    )
    assert log_without_times(resumed.log) == before  # lines 3-4 dropped, then written again identically
    # Into another folder: the log is continued from the checkpoint's run.
    elsewhere = train(
        load_model(tiny_model_dir), clips(), config(tmp_path, "copy", resume=str(tmp_path / "run" / "checkpoint-2"))
    )
    assert log_without_times(elsewhere.log) == before
    assert_bit_exact(final_weights(straight.final), final_weights(elsewhere.final))


def test_resume_with_other_adapters_is_a_clear_error(tiny_model_dir, tmp_path):
    run = train(load_model(tiny_model_dir), clips(), config(tmp_path, "run", steps=2))
    model = load_model(tiny_model_dir)
    with pytest.raises(MotionDirectorError, match="holds adapters"):
        train(model, clips(), config(tmp_path, "run", spatial_per_clip=False, resume=str(run.final)))
    with pytest.raises(MotionDirectorError, match="rank 4"):
        train(model, clips(), config(tmp_path, "run", rank=8, resume=str(run.final)))
    with pytest.raises(MotionDirectorError, match="beyond steps=1"):
        train(model, clips(), config(tmp_path, "run", steps=1, resume=str(run.final)))
    assert model.unet.peft_config == {} or not getattr(model.unet, "peft_config", None)


def test_resume_from_a_folder_that_is_not_a_checkpoint(tiny_model, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MotionDirectorError, match=STATE_FILE):
        train(tiny_model, clips(), config(tmp_path, "run", resume=str(tmp_path / "empty")))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / STATE_FILE).write_bytes(b"not a torch file")
    with pytest.raises(MotionDirectorError, match="could not be read"):
        train(tiny_model, clips(), config(tmp_path, "run", resume=str(tmp_path / "bad")))


def test_resume_at_the_last_step_only_writes_final(tiny_model_dir, tmp_path):
    run = train(load_model(tiny_model_dir), clips(), config(tmp_path, "run", steps=2))
    steps = []
    again = train(
        load_model(tiny_model_dir), clips(), config(tmp_path, "again", steps=2, resume=str(run.final)),
        TrainCallbacks(on_step=steps.append),
    )
    assert steps == [] and again.steps == 2
    assert_bit_exact(final_weights(run.final), final_weights(again.final))
