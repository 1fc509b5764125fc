"""Load Clips and Clips from Images: files in ComfyUI's input folder, core video nodes, chaining, bad inputs."""

import numpy as np
import pytest
import torch
from PIL import Image

from tests.fixtures.media import moving_square, square_index, write_pyav
from tests.nodes.conftest import SAMPLING, pack_module, run_node


def load_clips(comfy, path, prompt="", **overrides):
    return run_node(comfy, "MD_LoadClips", path=str(path), prompt=prompt, **{**SAMPLING, **overrides}, seed=0)


def square_video(path, count=8):
    return write_pyav(path, moving_square(count, height=32, width=32), fps=8)


def error_class(comfy):
    return pack_module(comfy, "motiondirector_core.errors").MotionDirectorError


def test_video_with_sidecar_prompt_relative_to_the_input_folder(comfy, input_dir):
    square_video(input_dir / "square.mp4")
    (input_dir / "square.txt").write_text("a white square slides right\n")
    clips, first = load_clips(comfy, f"{input_dir.name}/square.mp4", prompt="ignored: the sidecar wins", stride=2)
    assert len(clips) == 1
    clip = clips[0]
    assert clip.prompt == "a white square slides right"
    assert clip.frames.shape == (4, 32, 32, 3) and clip.indices == [0, 2, 4, 6]
    assert [square_index(f) for f in clip.frames] == [0, 2, 4, 6]
    assert torch.equal(first, clip.frames)


def defaults(comfy, node_id):
    return {i.id: i.default for i in comfy[node_id].GET_SCHEMA().inputs if getattr(i, "default", None) is not None}


def test_a_video_is_read_at_8_fps_by_default_and_an_image_batch_by_stride(comfy, input_dir):
    write_pyav(input_dir / "fast.mp4", moving_square(24, height=32, width=128), fps=24)
    settings = {k: v for k, v in defaults(comfy, "MD_LoadClips").items() if k in SAMPLING}
    assert (settings["fps"], settings["stride"]) == (8.0, 1)
    clips, _ = run_node(comfy, "MD_LoadClips", path=str(input_dir / "fast.mp4"), prompt="p",
                        **{**settings, "frames": 4, "width": 32, "height": 32}, seed=0)
    assert clips[0].indices == [0, 3, 6, 9] and clips[0].frame_rate == pytest.approx(8.0)
    assert defaults(comfy, "MD_ClipsFromImages")["fps"] == 0.0  # an IMAGE batch has no frame rate of its own


def test_folder_of_clips_in_name_order_with_shared_prompt(comfy, input_dir):
    square_video(input_dir / "b.mp4")
    square_video(input_dir / "a.mp4")
    (input_dir / "b.txt").write_text("its own prompt")
    (input_dir / "notes.md").write_text("not a clip")
    clips, _ = load_clips(comfy, input_dir, prompt="a square moves", start=2)  # absolute path
    assert [c.source.rsplit("/", 1)[1] for c in clips] == ["a.mp4", "b.mp4"]
    assert [c.prompt for c in clips] == ["a square moves", "its own prompt"]
    assert all(c.indices == [2, 3, 4, 5] for c in clips)


def test_image_is_a_one_frame_clip(comfy, input_dir):
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:, :32] = 255
    Image.fromarray(pixels).save(input_dir / "half.png")
    clips, first = load_clips(comfy, f"{input_dir.name}/half.png", prompt="a half white card", resize="squash")
    assert first.shape == (1, 32, 32, 3) and clips[0].is_image
    assert first[0, :, :14].min() > 0.9 and first[0, :, 18:].max() < 0.1


def test_core_load_video_frames_chain_into_clips(comfy, input_dir, comfy_dirs):
    square_video(comfy_dirs["input"] / f"{input_dir.name}.mp4", count=12)
    (video,) = run_node(comfy, "LoadVideo", file=f"{input_dir.name}.mp4")
    images, _audio, fps = run_node(comfy, "GetVideoComponents", video=video)
    assert images.shape[0] == 12 and fps == 8.0
    (clips,) = run_node(comfy, "MD_ClipsFromImages", images=images, prompt="a square", resample=True,
                        frame_rate=fps, **{**SAMPLING, "fps": 4.0})
    assert clips[0].indices == [0, 2, 4, 6]  # 4 fps out of 8
    assert [square_index(f) for f in clips[0].frames] == [0, 2, 4, 6]


def test_clips_from_images_chain_and_leave_their_input_alone(comfy):
    images = torch.rand(6, 40, 48, 3)
    kept = images.clone()
    (one,) = run_node(comfy, "MD_ClipsFromImages", images=images, prompt="first", resample=False, frame_rate=0.0,
                      **SAMPLING)
    before = list(one)
    (two,) = run_node(comfy, "MD_ClipsFromImages", images=images, prompt="second", clips=one, resample=True,
                      frame_rate=0.0, **SAMPLING)
    assert one == before and len(one) == 1 and one[0].frames.shape == (6, 40, 48, 3)  # taken as they are
    assert len(two) == 2 and two[0] is one[0] and two[1].prompt == "second"
    assert two[1].frames.shape == (4, 32, 32, 3)
    assert torch.equal(images, kept)


@pytest.mark.parametrize("path", ["", "   "])
def test_empty_path_is_refused(comfy, path):
    with pytest.raises(error_class(comfy), match="path is empty"):
        load_clips(comfy, path, prompt="x")


def test_missing_clip_path_is_named(comfy):
    with pytest.raises(error_class(comfy), match="clip path not found: .*no_such_clip.mp4"):
        load_clips(comfy, "no_such_clip.mp4", prompt="x")


def test_clip_without_any_prompt_is_refused(comfy, input_dir):
    square_video(input_dir / "mute.mp4")
    with pytest.raises(error_class(comfy), match="no prompt for .*mute.mp4"):
        load_clips(comfy, input_dir / "mute.mp4")


@pytest.mark.parametrize("node_id", ["MD_LoadClips", "MD_ClipsFromImages"])
def test_size_not_a_multiple_of_8_is_refused(comfy, input_dir, node_id):
    square_video(input_dir / "v.mp4")
    with pytest.raises(error_class(comfy), match="width must be a positive multiple of 8.*try 32"):
        if node_id == "MD_LoadClips":
            load_clips(comfy, input_dir / "v.mp4", prompt="x", width=30)
        else:
            run_node(comfy, node_id, images=torch.rand(4, 32, 32, 3), prompt="x", resample=True, frame_rate=0.0,
                     **{**SAMPLING, "width": 30})
