"""Every message quoted in the README's troubleshooting table is triggered here, and reads as quoted.

The table is parsed from README.md: a quoted message without a trigger below fails, and so does a trigger whose
message left the table. Triggers make each failure the way a user meets it (a real broken file, a real LoRA made for
another model); the two the OS decides (a read-only folder, a full disk) are simulated at the system call, since the
tests run as root in CI, where permissions do not apply, and filling a real disk is not an option.
"""

import errno
import os
import pickle
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from motiondirector_core import lora
from motiondirector_core.families.modelscope import released as legacy
from motiondirector_core.clips import FrameSampling, read_clip, read_clips
from motiondirector_core.lora_files import read_lora, read_lora_source, save_lora
from motiondirector_core.models import FAMILIES, load_model
from motiondirector_core.toyworld import architecture
from motiondirector_core.train import TrainCallbacks, train
from motiondirector_core.train_config import TrainConfig
from tests.fixtures.media import moving_square, write_audio_only, write_pyav, write_zero_frames
from tests.fixtures.tiny_model import UNET_CONFIG as TINY_UNET
from tests.nodes.conftest import pack_module, run_node

README = Path(__file__).resolve().parents[2] / "README.md"
FAMILY = FAMILIES["modelscope"]
SAMPLING = FrameSampling(frames=2, width=16, height=16)
# Quoted in the table but not ours to raise: what prints them, and why no trigger.
EXTERNAL = {
    "IMPORT FAILED": "ComfyUI's log line for a pack that failed to import",
    "operator torchvision::nms does not exist": "raised by a mismatched torchvision at import",
    "bash scripts/test.sh": "a command, not a message",
}
PLACEHOLDER = re.compile(r"'\.\.\.'|\.\.\.|<[^>]+>|\bN\b")


def quoted_messages() -> list[str]:
    section = README.read_text(encoding="utf-8").split("## Troubleshooting", 1)[1]
    messages = []
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| Symptom"):
            symptom = line[2:].split(" | ")[0]
            messages += re.findall(r"`([^`]+)`", symptom)
    return messages


def error_of(call, *args, **kwargs) -> str:
    """The message of the MotionDirectorError (the pack's or the core's class) that `call` raises."""
    try:
        call(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the class is checked by name: nodes load the pack under its own name
        names = {cls.__name__ for cls in type(exc).__mro__}
        assert "MotionDirectorError" in names, f"{type(exc).__name__} instead of a clear error: {exc}"
        return str(exc)
    raise AssertionError(f"{getattr(call, '__name__', call)} raised nothing")


def copy_model(ctx) -> Path:
    return Path(shutil.copytree(ctx.model_dir, ctx.tmp / "model_copy"))


def tiny_lora(ctx, kind: str = "temporal") -> lora.LoraWeights:
    lora.add_adapter(ctx.model.unet, FAMILY, "probe", kind, rank=2)
    state = {k: v.clone() for k, v in lora.adapter_state(ctx.model.unet, "probe").items()}
    lora.remove_adapter(ctx.model.unet, "probe")
    return lora.LoraWeights(kind, state)


def load_into_tiny(ctx, path: Path) -> None:
    for index, weights in enumerate(read_lora_source(path, unet_config=TINY_UNET)):
        lora.load_adapter(ctx.model.unet, FAMILY, weights, f"user_{index}")


def video(ctx, name: str, count: int = 8) -> Path:
    return write_pyav(ctx.tmp / name, moving_square(count, height=16, width=32), fps=8)


def small_training(ctx, name: str, **overrides) -> TrainConfig:
    values = dict(output=str(ctx.tmp / name), steps=2, rank=2, width=32, height=32, frames=2, checkpoint_every=1)
    return TrainConfig(**{**values, **overrides})


def clips_for_training(ctx):
    return read_clips([video(ctx, "train.mp4")], FrameSampling(frames=2, width=32, height=32), "a square moves")


# ---- models ----------------------------------------------------------------------------------------------


def base_model_not_found(ctx):
    return error_of(pack_module(ctx.comfy, "nodes.paths").model_path, "no-such-model")


def model_folder_missing(ctx):
    return error_of(load_model, ctx.tmp / "absent")


def no_model_index(ctx):
    (ctx.tmp / "not_a_model").mkdir()
    return error_of(load_model, ctx.tmp / "not_a_model")


def no_unet_folder(ctx):
    copy = copy_model(ctx)
    shutil.rmtree(copy / "unet")
    return error_of(load_model, copy)


def other_family(ctx):
    folder = ctx.tmp / "sd15"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline", '
                                             '"unet": ["diffusers", "UNet2DConditionModel"]}')
    return error_of(load_model, folder)


def damaged_weights(ctx):
    copy = copy_model(ctx)
    weights = next((copy / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])  # an interrupted copy
    return error_of(load_model, copy)


# ---- LoRAs -----------------------------------------------------------------------------------------------


def lora_not_found(ctx):
    return error_of(pack_module(ctx.comfy, "nodes.paths").lora_path, "no-such-lora.safetensors")


def lora_of_another_model(ctx):
    toy_unet = architecture.build_unet()  # the embedded model's UNet: same family, other widths
    lora.add_adapter(toy_unet, FAMILY, "temporal", "temporal", rank=2)
    path = save_lora(ctx.tmp / "toyworld_motion.safetensors",
                     lora.LoraWeights("temporal", lora.adapter_state(toy_unet, "temporal")), alpha=2)
    return error_of(load_into_tiny, ctx, path)


def authors_file_of_another_model(ctx):
    flat = []
    for layer in legacy.module_table(architecture.UNET_CONFIG, "temporal"):  # same block layout, other widths
        flat += [torch.randn(layer.out_features, 2), torch.randn(2, layer.in_features)]
    path = ctx.tmp / "temporal" / "lora" / "300_unet.pt"
    path.parent.mkdir(parents=True)
    torch.save(flat, path)
    return error_of(load_into_tiny, ctx, path)


def lora_with_nan(ctx):
    weights = tiny_lora(ctx)
    next(iter(weights.state.values()))[0, 0] = float("nan")
    path = save_lora(ctx.tmp / "diverged.safetensors", weights, alpha=2)
    return error_of(load_into_tiny, ctx, path)


def damaged_safetensors(ctx):
    path = save_lora(ctx.tmp / "partial.safetensors", tiny_lora(ctx), alpha=2)
    path.write_bytes(path.read_bytes()[:40])  # a partial download
    return error_of(load_into_tiny, ctx, path)


def damaged_pt(ctx):
    path = ctx.tmp / "temporal" / "lora" / "300_unet.pt"
    path.parent.mkdir(parents=True)
    torch.save([torch.randn(4, 2), torch.randn(2, 4)], path)
    path.write_bytes(path.read_bytes()[:200])
    return error_of(load_into_tiny, ctx, path)


class _RunsCode:
    def __reduce__(self):
        return (print, ("this would have run",))


def pickle_that_runs_code(ctx):
    path = ctx.tmp / "temporal" / "lora" / "300_unet.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps([_RunsCode()], protocol=2))
    return error_of(load_into_tiny, ctx, path)


def authors_file_of_unknown_kind(ctx):
    path = ctx.tmp / "downloads" / "motion_unet.pt"  # out of its spatial/ or temporal/ folder
    path.parent.mkdir()
    torch.save([torch.randn(4, 2), torch.randn(2, 4)], path)
    return error_of(load_into_tiny, ctx, path)


# ---- clips -----------------------------------------------------------------------------------------------


def clip_path_missing(ctx):
    return error_of(read_clips, [ctx.tmp / "absent.mp4"], SAMPLING, "p")


def folder_without_clips(ctx):
    (ctx.tmp / "empty").mkdir()
    (ctx.tmp / "empty" / "notes.txt").write_text("no clips here")
    return error_of(read_clips, [ctx.tmp / "empty"], SAMPLING, "p")


def unsupported_image(ctx):
    Image.new("RGB", (16, 16), "red").save(ctx.tmp / "frame.tiff")
    return error_of(read_clip, ctx.tmp / "frame.tiff", SAMPLING, "p")


def cut_video(ctx):
    whole = video(ctx, "whole.mp4").read_bytes()
    (ctx.tmp / "cut.mp4").write_bytes(whole[: len(whole) // 2])  # the index is at the end: cut off
    return error_of(read_clip, ctx.tmp / "cut.mp4", SAMPLING, "p")


def junk_video(ctx):
    (ctx.tmp / "junk.webm").write_bytes(b"\x1aE\xdf\xa3 not really a webm" * 10)
    return error_of(read_clip, ctx.tmp / "junk.webm", SAMPLING, "p")


def zero_frame_video(ctx):
    return error_of(read_clip, write_zero_frames(ctx.tmp / "stopped.mp4"), SAMPLING, "p")


def corrupt_image(ctx):
    Image.new("RGB", (16, 16), "red").save(ctx.tmp / "whole.png")
    (ctx.tmp / "cut.png").write_bytes((ctx.tmp / "whole.png").read_bytes()[:30])
    return error_of(read_clip, ctx.tmp / "cut.png", SAMPLING, "p")


def audio_only(ctx):
    return error_of(read_clip, write_audio_only(ctx.tmp / "voice.mp4"), SAMPLING, "p")


def too_short(ctx):
    return error_of(read_clip, video(ctx, "short.mp4", count=3), FrameSampling(frames=8, width=16, height=16), "p")


def fewer_frames_decode(ctx):
    # The container lists 8 frames; the decoder gives up after 2 (as on a file damaged in the middle).
    import motiondirector_core.clips as clips_module

    real = clips_module.iter_frames
    ctx.monkeypatch.setattr(clips_module, "iter_frames", lambda path: (f for _, f in zip(range(2), real(path))))
    return error_of(read_clip, video(ctx, "damaged.mp4"), FrameSampling(frames=4, width=16, height=16), "p")


def no_prompt(ctx):
    return error_of(read_clip, video(ctx, "unnamed.mp4"), SAMPLING, None)


def width_not_multiple_of_8(ctx):
    return error_of(read_clip, video(ctx, "clip.mp4"), FrameSampling(frames=2, width=30, height=16), "p")


def size_not_multiple_of_8(ctx):
    return error_of(ctx.model.check_size, 30, 32)


def zero_frames_asked(ctx):
    return error_of(read_clip, video(ctx, "clip.mp4"), FrameSampling(frames=0, width=16, height=16), "p")


def prompt_too_long(ctx):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ctx.model.encode_prompts(["a red fox jumping over a lazy dog " * 20])
    ours = [str(w.message) for w in caught if str(w.message).startswith("Prompt is")]
    assert len(ours) == 1, [str(w.message) for w in caught]
    return ours[0]


# ---- saving, training, crashes ---------------------------------------------------------------------------


def folder_not_writable(ctx):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    ctx.monkeypatch.setattr(tempfile, "mkstemp", refuse)
    return error_of(save_lora, ctx.tmp / "read_only" / "motion.safetensors", tiny_lora(ctx), alpha=2)


def disk_full(ctx):
    import safetensors.torch

    path = save_lora(ctx.tmp / "motion.safetensors", tiny_lora(ctx), alpha=2)
    before = read_lora(path).state
    real_save = safetensors.torch.save_file

    def fill_the_disk(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        Path(filename).write_bytes(Path(filename).read_bytes()[:100])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    ctx.monkeypatch.setattr(safetensors.torch, "save_file", fill_the_disk)
    replacement = tiny_lora(ctx)
    for tensor in replacement.state.values():
        tensor.add_(1.0)
    message = error_of(save_lora, path, replacement, alpha=2)
    after = read_lora(path).state
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert [p.name for p in ctx.tmp.iterdir() if p.name.endswith(".tmp")] == []
    return message


def prefix_outside_output(ctx):
    return error_of(pack_module(ctx.comfy, "nodes.paths").output_path, "../../etc/motion", ".safetensors")


def output_already_used(ctx):
    clips = clips_for_training(ctx)
    train(ctx.model, clips, small_training(ctx, "run"))
    for name in lora.adapter_names(ctx.model.unet):
        lora.remove_adapter(ctx.model.unet, name)
    return error_of(train, ctx.model, clips, small_training(ctx, "run"))


def loss_turns_nan(ctx):
    def poison(info):
        with torch.no_grad():
            ctx.model.unet.conv_in.weight.fill_(float("nan"))

    return error_of(train, ctx.model, clips_for_training(ctx), small_training(ctx, "nan", steps=3),
                    TrainCallbacks(on_step=poison))


def cancelled(ctx):
    steps = []
    callbacks = TrainCallbacks(on_step=steps.append, should_cancel=lambda: len(steps) >= 1)
    return error_of(train, ctx.model, clips_for_training(ctx), small_training(ctx, "cancel", steps=3), callbacks)


def motion_module_missing(ctx):
    return error_of(run_node, ctx.comfy, "MD_LoadAnimateDiffModel", checkpoint="tiny_sd15.safetensors",
                    motion_module="v3_sd15_mm.ckpt", vae="(the checkpoint's own)", dtype="fp32", device="cpu")


def checkpoint_missing(ctx):
    return error_of(run_node, ctx.comfy, "MD_LoadAnimateDiffModel", checkpoint="v1-5-pruned-emaonly.safetensors",
                    motion_module="tiny_mm_v3.safetensors", vae="(the checkpoint's own)", dtype="fp32", device="cpu")


def checkpoint_without_motion_module(ctx):
    return error_of(load_model, checkpoint=ctx.animatediff / "sd15.safetensors", device="cpu")


def checkpoint_as_motion_module(ctx):
    sd15 = ctx.animatediff / "sd15.safetensors"
    return error_of(load_model, checkpoint=sd15, motion_module=sd15, device="cpu")


def motion_module_as_checkpoint(ctx):
    mm = ctx.animatediff / "mm_v3.safetensors"
    return error_of(load_model, checkpoint=mm, motion_module=mm, device="cpu")


def sdxl_checkpoint(ctx):
    from safetensors.torch import save_file

    path = ctx.tmp / "sdxl.safetensors"
    save_file({"model.diffusion_model.label_emb.0.0.weight": torch.zeros(2, 2)}, str(path))
    return error_of(load_model, checkpoint=path, motion_module=ctx.animatediff / "mm_v3.safetensors", device="cpu")


def too_many_frames_for_animatediff(ctx):
    from motiondirector_core.sample import SampleSettings, generate

    model = load_model(checkpoint=ctx.animatediff / "sd15.safetensors",
                       motion_module=ctx.animatediff / "mm_v3.safetensors", device="cpu")
    return error_of(generate, model, SampleSettings(prompt="a cat", frames=40, width=64, height=64, steps=1))


# Quoted message -> what makes it (several ways, where users meet the same message in several ways).
TRIGGERS = {
    "base model '...' was not found": base_model_not_found,
    "model folder ... does not exist": model_folder_missing,
    "has no model_index.json": no_model_index,
    "has no 'unet/' subfolder": no_unet_folder,
    "is a ... model; supported families": other_family,
    "could not be loaded (...); re-copy the model": damaged_weights,
    "motion module '...' was not found": motion_module_missing,
    "checkpoint '...' was not found": checkpoint_missing,
    "is a single-file checkpoint: AnimateDiff also needs a motion module": checkpoint_without_motion_module,
    "is not an AnimateDiff motion module": checkpoint_as_motion_module,
    "is not a Stable Diffusion checkpoint": motion_module_as_checkpoint,
    "is an SDXL (or other conditioned) checkpoint": sdxl_checkpoint,
    "frames are more than this animatediff model's temporal layers take": too_many_frames_for_animatediff,
    "LoRA '...' was not found": lora_not_found,
    "does not fit this modelscope model": lora_of_another_model,
    "does not fit this UNet as a temporal LoRA": authors_file_of_another_model,
    "holds NaN or infinite values": lora_with_nan,
    "is not a readable safetensors file": damaged_safetensors,
    "is not a readable PyTorch file": damaged_pt,
    "refused to load ...: it holds Python objects other than tensors": pickle_that_runs_code,
    "cannot tell whether ... is a spatial or a temporal LoRA": authors_file_of_unknown_kind,
    "clip path not found": clip_path_missing,
    "folder ... holds no clips": folder_without_clips,
    "unsupported file type": unsupported_image,
    "cannot decode video ...: the file is corrupt, truncated or not a video": (cut_video, junk_video, zero_frame_video),
    "cannot read image ...: the file is corrupt, truncated or not an image": corrupt_image,
    "has no video stream (audio only?)": audio_only,
    "has N frames, but N frames with stride N need N frames": too_short,
    "cannot decode video ...: only N frames could be decoded": fewer_frames_decode,
    "no prompt for <clip>": no_prompt,
    "width must be a positive multiple of 8": width_not_multiple_of_8,
    "is not a positive multiple of 8": size_not_multiple_of_8,
    "frames must be a whole number of at least 1": zero_frames_asked,
    "Prompt is N tokens, the text encoder reads N; cut to": prompt_too_long,
    "cannot write to ... (Permission denied): choose a writable folder": folder_not_writable,
    "could not save ... (No space left on device); the previous file, if any, is intact": disk_full,
    "must be a relative name inside the output folder": prefix_outside_output,
    "already holds a training run": output_already_used,
    "loss is nan at step N": loss_turns_nan,
    "training cancelled at step N/N": cancelled,
}


@pytest.fixture
def ctx(comfy, tiny_model, tiny_model_dir, tmp_path, monkeypatch, animatediff_files):
    return SimpleNamespace(comfy=comfy, model=tiny_model, model_dir=tiny_model_dir, tmp=tmp_path,
                           monkeypatch=monkeypatch, animatediff=animatediff_files)


@pytest.mark.parametrize("quoted", [m for m in quoted_messages() if m not in EXTERNAL])
def test_each_quoted_message_is_what_the_pack_says(ctx, quoted):
    assert quoted in TRIGGERS, f"README quotes {quoted!r}: add a trigger for it here"

    triggers = TRIGGERS[quoted] if isinstance(TRIGGERS[quoted], tuple) else (TRIGGERS[quoted],)
    pieces = [p.strip() for p in PLACEHOLDER.split(quoted) if p.strip()]
    for trigger in triggers:
        message = trigger(ctx)

        missing = [p for p in pieces if p not in message]
        assert not missing, f"{trigger.__name__}: {missing} not in the message: {message}"


def test_every_trigger_is_quoted_in_the_readme():
    quoted = set(quoted_messages())
    assert sorted(set(TRIGGERS) - quoted) == []
    assert sorted(set(EXTERNAL) - quoted) == []
