"""Train MotionDirector inside ComfyUI: modes, validation previews, loss map, memory, inputs left alone, resume."""

import json

import pytest
import torch

from tests.nodes.conftest import execute_node, pack_module, run_node, sample, train, video_clips


def output_dir(comfy_dirs, run_name):
    return comfy_dirs["output"] / "motiondirector" / run_name


@pytest.mark.parametrize(("mode", "kinds"), [
    ("both", ["temporal", "spatial"]), ("spatial", ["spatial"]), ("temporal", ["temporal"]), ("coupled", ["coupled"]),
])  # fmt: skip
def test_each_mode_trains_its_loras_into_the_run_folder(comfy, comfy_dirs, base, mode, kinds):
    lora, loss, validation = train(comfy, base, video_clips(comfy), f"mode_{mode}", train=mode)
    assert [w.kind for w in lora.loras] == kinds
    final = output_dir(comfy_dirs, f"mode_{mode}") / "final"
    assert lora.source == str(final)
    assert sorted(p.name for p in final.iterdir()) == sorted([f"{k}.safetensors" for k in kinds] + ["trainer_state.pt"])
    assert all(w.rank == 2 and w.metadata["steps"] == "2" and w.metadata["train_mode"] == mode for w in lora.loras)
    assert len(loss["loss"]) == 2 and all(isinstance(v, float) for v in loss["loss"])
    assert validation.shape == (4, 32, 32, 3)  # no validation asked: the first clip's frames


def test_validation_frames_preview_memory_and_inference_mode(comfy, comfy_dirs, base, progress, monkeypatch):
    import comfy.model_management as mm

    calls = []
    monkeypatch.setattr(mm, "unload_all_models", lambda: calls.append(len(progress.events)))
    clips = video_clips(comfy)
    lora, loss, validation = train(comfy, base, clips, "validated", steps=3, checkpoint_every=2,
                                   validation_prompt="a red ball\n", validation_every=2)
    assert calls == [0], "ComfyUI's models are unloaded once, before the first step"
    assert validation.shape == (4, 32, 32, 3) and not torch.equal(validation, clips[0].frames)
    assert 0 <= float(validation.min()) and float(validation.max()) <= 1
    assert progress.values[-1] == 3 and {e[1] for e in progress.events} == {3}
    fmt, image, size = progress.previews[0]
    assert fmt == "JPEG" and image.size == (32, 32) and size > 0
    assert not any(inference for *_, inference, _grad in progress.events), "training left inference_mode"
    assert progress.events[0][4], "and steps with autograd on"
    run = output_dir(comfy_dirs, "validated")
    assert (run / "samples" / "step-2-0.mp4").is_file() and (run / "checkpoint-2").is_dir()
    assert len((run / "train_log.jsonl").read_text().splitlines()) == 3
    shown = execute_node(comfy, "LossGraphNode", loss=loss, filename_prefix="md_loss").ui
    assert shown and shown.as_dict()["images"], "the core loss graph node plots our LOSS_MAP"


def test_training_leaves_its_inputs_as_they_were(comfy, base):
    clips = video_clips(comfy, count=2)
    kept_clips, kept_frames = list(clips), [c.frames.clone() for c in clips]
    before = sample(comfy, base)
    (motion, *_) = train(comfy, base, clips, "untouched_a", train="temporal")
    (styled,) = run_node(comfy, "MD_ApplyLora", pipeline=base, lora=motion, temporal_scale=1.0, spatial_scale=0.0,
                         spatial_index=-1)
    styled_before = sample(comfy, styled)
    stack = styled.stack
    # Training again on the same (cached) model after a LoRA was active: the model comes back as it was.
    (second, *_) = train(comfy, styled, clips, "untouched_b", spatial_per_clip=True)
    assert [w.kind for w in second.loras] == ["temporal", "spatial", "spatial"]
    assert base.stack == () and styled.stack is stack and len(stack) == 1
    assert clips == kept_clips and all(torch.equal(c.frames, f) for c, f in zip(clips, kept_frames))
    assert torch.equal(sample(comfy, base), before), "the base pipeline samples bit for bit as before"
    assert torch.equal(sample(comfy, styled), styled_before)
    assert not torch.equal(styled_before, before)
    lora = pack_module(comfy, "motiondirector_core.lora")
    assert not any(n in lora.adapter_names(base.model.unet) for n in ("temporal", "spatial", "spatial_0"))


def test_resume_continues_the_latest_checkpoint_and_a_used_name_is_numbered(comfy, comfy_dirs, base):
    clips = video_clips(comfy)
    train(comfy, base, clips, "resumable", steps=2, checkpoint_every=1)
    run = output_dir(comfy_dirs, "resumable")
    lora, loss, _ = train(comfy, base, clips, "resumable", steps=4, checkpoint_every=1, resume=True)
    assert lora.source == str(run / "final") and all(w.metadata["steps"] == "4" for w in lora.loras)
    assert len(loss["loss"]) == 2, "only the new steps ran"
    steps = [json.loads(line)["step"] for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    fresh, *_ = train(comfy, base, clips, "resumable", steps=1)
    assert fresh.source == str(output_dir(comfy_dirs, "resumable_001") / "final")
    assert all(w.metadata["steps"] == "1" for w in fresh.loras)
    assert (run / "final" / "temporal.safetensors").is_file(), "the earlier run is kept"


def test_resume_with_other_settings_is_refused_and_keeps_the_checkpoint(comfy, comfy_dirs, base):
    clips = video_clips(comfy)
    train(comfy, base, clips, "resume_other", steps=1, train="temporal")
    errors = pack_module(comfy, "motiondirector_core.errors")
    with pytest.raises(errors.MotionDirectorError, match="holds adapters .*resume with the settings"):
        train(comfy, base, clips, "resume_other", steps=2, train="both", resume=True)
    final = output_dir(comfy_dirs, "resume_other") / "final"
    assert (final / "temporal.safetensors").is_file() and (final / "trainer_state.pt").is_file()


def test_clips_of_a_size_that_is_not_a_multiple_of_8_are_refused(comfy, base):
    (clips,) = run_node(comfy, "MD_ClipsFromImages", images=torch.rand(4, 30, 32, 3), prompt="odd", resample=False,
                        frame_rate=0.0, frames=4, stride=1, fps=0.0, start=0, random_start=False, width=32,
                        height=32, resize="crop", repeat_short=False)
    errors = pack_module(comfy, "motiondirector_core.errors")
    with pytest.raises(errors.MotionDirectorError, match="height 30 is not a positive multiple of 8"):
        train(comfy, base, clips, "odd_size")


@pytest.mark.parametrize("run_name", ["../elsewhere", "/abs/run", " "])
def test_run_name_outside_the_output_folder_is_refused(comfy, base, run_name):
    errors = pack_module(comfy, "motiondirector_core.errors")
    with pytest.raises(errors.MotionDirectorError, match="run_name .* must be a relative name inside the output"):
        train(comfy, base, video_clips(comfy), run_name)


def test_compile_reaches_the_trainer(comfy, comfy_dirs, base, monkeypatch):
    compiled = []  # torch.compile itself is checked against eager training in tests/unit/test_train.py
    monkeypatch.setattr(torch, "compile", lambda module, **options: compiled.append(options) or module)
    train(comfy, base, video_clips(comfy), "compiled", compile=True)
    assert compiled == [{"dynamic": False, "options": {"fallback_random": True}}]
    assert "compile: true" in (output_dir(comfy_dirs, "compiled") / "config.yaml").read_text()
