"""Cancel (ComfyUI's interrupt) during training, sampling, inversion and sweeps: a prompt stop, ComfyUI's own
exception, the flag reset, and what was saved kept.

`progress` runs each test twice: with a hook that raises the interrupt like the server's (main.py), so the
cancel lands inside a progress update, and with a hook that only records, so the node's own check stops it.
"""

import pytest
import torch

from tests.nodes.conftest import SAMPLE, pack_module, run_node, sample, train, video_clips

BOTH_HOOKS = pytest.mark.parametrize("progress", [True, False], ids=["server-hook", "plain"], indirect=True)


def interrupt_exception():
    import comfy.model_management as mm

    return mm.InterruptProcessingException


def flag_is_down() -> bool:
    import comfy.model_management as mm

    return not mm.processing_interrupted()


@BOTH_HOOKS
def test_training_stops_within_a_step_and_keeps_a_loadable_checkpoint(comfy, comfy_dirs, base, progress):
    clips = video_clips(comfy)
    before = sample(comfy, base)
    name = f"cancelled_{progress.server_like}"
    progress.events.clear()
    progress.interrupt_at = 2  # the cancel arrives while step 2 runs
    with pytest.raises(interrupt_exception()):
        train(comfy, base, clips, name, steps=8, checkpoint_every=0)
    assert flag_is_down()
    assert progress.values == [1, 2][: 1 if progress.server_like else 2], "no step ran after the cancel"
    run = comfy_dirs["output"] / "motiondirector" / name
    assert not (run / "final").exists()
    files = pack_module(comfy, "motiondirector_core.lora_files")
    checkpoint = files.latest_checkpoint(run)
    assert checkpoint == run / "checkpoint-2"
    weights = files.read_lora_source(run)
    assert [w.kind for w in weights] == ["temporal", "spatial"] and weights[0].metadata["steps"] == "2"
    assert torch.equal(sample(comfy, base), before), "the model is left as it came"
    resumed, *_ = train(comfy, base, clips, name, steps=3, resume=True)  # and the run continues from it
    assert resumed.loras[0].metadata["steps"] == "3"


def test_cancel_during_the_last_step_keeps_the_final_loras(comfy, comfy_dirs, base, progress):
    progress.interrupt_at = 2
    with pytest.raises(interrupt_exception()):
        train(comfy, base, video_clips(comfy), "cancelled_last", steps=2)
    assert flag_is_down()
    final = comfy_dirs["output"] / "motiondirector" / "cancelled_last" / "final"
    assert (final / "temporal.safetensors").is_file() and (final / "spatial.safetensors").is_file()


def test_cancel_during_validation_keeps_the_step(comfy, comfy_dirs, base, progress, monkeypatch):
    import comfy.model_management as mm

    trainer = pack_module(comfy, "motiondirector_core.train")
    validate = trainer._Run._validate

    def cancel_then_validate(run):
        mm.interrupt_current_processing(True)
        return validate(run)

    monkeypatch.setattr(trainer._Run, "_validate", cancel_then_validate)
    with pytest.raises(interrupt_exception()):
        train(comfy, base, video_clips(comfy), "cancelled_validation", steps=4, validation_prompt="a cat",
              validation_every=1)
    assert flag_is_down()
    run = comfy_dirs["output"] / "motiondirector" / "cancelled_validation"
    assert (run / "checkpoint-1" / "temporal.safetensors").is_file() and not (run / "samples").exists()


@BOTH_HOOKS
def test_sampling_stops_within_a_step(comfy, base, progress):
    before = sample(comfy, base, steps=3)
    progress.events.clear()
    progress.interrupt_at = 1
    with pytest.raises(interrupt_exception()):
        sample(comfy, base, steps=3)
    assert flag_is_down() and progress.values in ([], [1])
    assert torch.equal(sample(comfy, base, steps=3), before)


@BOTH_HOOKS
def test_inversion_stops_within_a_step_and_caches_nothing(comfy, comfy_dirs, base, progress):
    frames = torch.rand(4, 32, 32, 3, generator=torch.Generator().manual_seed(int(progress.server_like) + 40))
    cache = comfy_dirs["temp"] / "motiondirector_inversions"
    cached_before = set(cache.glob("*")) if cache.is_dir() else set()
    progress.interrupt_at = 1
    with pytest.raises(interrupt_exception()):
        run_node(comfy, "MD_InvertReference", pipeline=base, images=frames, steps=3)
    assert flag_is_down() and max(progress.values, default=0) <= 1
    assert (set(cache.glob("*")) if cache.is_dir() else set()) == cached_before
    (noise,) = run_node(comfy, "MD_InvertReference", pipeline=base, images=frames, steps=3)
    assert noise.latents.shape == (1, 4, 4, 4, 4)


@BOTH_HOOKS
def test_sweep_stops_and_keeps_the_videos_so_far(comfy, comfy_dirs, base, progress):
    import json

    progress.interrupt_at = 1  # after the first of three videos
    with pytest.raises(interrupt_exception()):
        run_node(comfy, "MD_Sweep", pipeline=base, prompts="a fox", temporal_scales="1", spatial_scales="0",
                 seeds="0, 1, 2", folder=f"sweep_cancel_{progress.server_like}", fps=8.0,
                 **{**SAMPLE, "noise_prior": 0.0})
    assert flag_is_down()
    folder = comfy_dirs["output"] / "motiondirector" / f"sweep_cancel_{progress.server_like}"
    results = json.loads((folder / "index.json").read_text())["results"]
    assert [r["seed"] for r in results] == [0]
    assert (folder / results[0]["video"]).is_file()
