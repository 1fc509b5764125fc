"""Training configs: our schema, the reference repo's five configs, substitution, inheritance, errors."""

import logging
from dataclasses import replace

import pytest

from motiondirector_core.config import apply_overrides, dump_config, load_config, write_config
from motiondirector_core.errors import MotionDirectorError
from motiondirector_core.train_config import TrainConfig, ValidationConfig

# What each of the reference repo's configs means (its values, and its defaults where a key is absent).
REFERENCE_EXPECTED = {
    "config_single_video.yaml": dict(
        clips=["./test_data/car_turn/car-turn.mp4"], prompt="A car is running on the road.", train="both",
        steps=150, lr=5e-4, weight_decay=1e-2, frames=16, width=384, height=384, stride=1, fps=None,
        spatial_per_clip=True, hflip=0.0, seed=0, checkpoint_every=50,
        validation=dict(prompts=["A tank is running in the desert.", "A tiger is running in the forest."],
                        every=50, frames=16, width=384, height=384, spatial_scale=0.0, noise_prior=0.5),
    ),
    "config_single_video_24.yaml": dict(
        clips=["./test_data/car_turn/car-turn-24.mp4"], prompt="A car is running on the road.", train="both",
        steps=300, lr=5e-4, weight_decay=1e-2, frames=24, width=576, height=320, stride=1, fps=None,
        spatial_per_clip=True, hflip=0.0, seed=6668889, checkpoint_every=50,
        validation=dict(prompts=["A tank is running in the desert.", "A tiger is running in the forest."],
                        every=50, frames=24, width=576, height=320, spatial_scale=0.0, noise_prior=0.5),
    ),
    "config_multi_videos.yaml": dict(
        clips=["./test_data/bicycle-1/"], prompt="A person is riding a bicycle.", train="both",
        steps=3000, lr=5e-4, weight_decay=1e-4, frames=16, width=384, height=384, stride=1, fps=8.0,
        spatial_per_clip=True, hflip=0.0, seed=0, checkpoint_every=100,
        validation=dict(prompts=["A person is riding a bicycle past the Eiffel Tower.",
                                 "A panda is riding a bicycle in a garden."],
                        every=500, frames=16, width=384, height=384, spatial_scale=0.0, noise_prior=0.0),
    ),
    "config_single_image.yaml": dict(
        clips=["./test_data/img_car/"], prompt="A car is running on the road.", train="spatial",
        steps=300, lr=5e-4, weight_decay=1e-4, frames=16, width=384, height=384, stride=1, fps=None,
        spatial_per_clip=False, hflip=0.5, seed=0, checkpoint_every=100,
        validation=dict(prompts=["A car is running on the road."],
                        every=100, frames=16, width=384, height=384, spatial_scale=1.0, noise_prior=0.0),
    ),
    "config_multi_images.yaml": dict(
        clips=["./test_data/Terracotta_Warrior/"], prompt="A Terracotta Warrior on a pure color background.",
        train="spatial", steps=1000, lr=5e-4, weight_decay=1e-4, frames=16, width=384, height=384, stride=1,
        fps=None, spatial_per_clip=False, hflip=0.5, seed=0, checkpoint_every=50,
        validation=dict(prompts=["A Terracotta Warrior is standing.", "A Terracotta Warrior is running."],
                        every=50, frames=16, width=384, height=384, spatial_scale=1.0, noise_prior=0.0),
    ),
}


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", sorted(REFERENCE_EXPECTED))
def test_reference_config_maps_onto_train_config(reference_data, tmp_path, monkeypatch, name):
    # A tmp config that inherits the untouched reference file and changes only the model path.
    monkeypatch.setenv("MD_TEST_MODEL", str(tmp_path / "model"))
    run = write(tmp_path / "run.yaml", f"base: {reference_data / 'configs' / name}\n"
                                       "pretrained_model_path: ${MD_TEST_MODEL}\n")
    config = load_config(run)
    expected = REFERENCE_EXPECTED[name]
    assert config.model == str(tmp_path / "model")
    assert config.output == "./outputs/train"
    assert config.clips == expected["clips"] and config.prompt == expected["prompt"]
    assert config.train == expected["train"] and config.steps == expected["steps"]
    assert config.lr_spatial == config.lr_temporal == pytest.approx(expected["lr"])
    assert config.weight_decay == pytest.approx(expected["weight_decay"])
    for key in ("frames", "width", "height", "stride", "fps", "spatial_per_clip", "hflip", "seed", "checkpoint_every"):
        assert getattr(config, key) == expected[key], key
    assert (config.rank, config.dropout, config.start) == (32, 0.1, 0)
    assert (config.precision, config.gradient_checkpointing, config.resize) == ("fp16", True, "crop")
    valid = config.validation
    for key, value in expected["validation"].items():
        assert getattr(valid, key) == value, f"validation.{key}"
    assert (valid.steps, valid.cfg, valid.seed) == (30, 12.0, expected["seed"])


def test_reference_keys_map_and_defaults(tmp_path):
    config = load_config(write(tmp_path / "ref.yaml", """
pretrained_model_path: models/zeroscope
dataset_types: single_video
train_data: {single_video_path: a.mp4, single_video_prompt: a car, frame_step: 3, sample_start_idx: 5}
validation_data: {prompt: one prompt, sample_preview: false}
mixed_precision: "no"
use_8bit_adam: true
"""))
    assert (config.stride, config.start, config.fps, config.random_start) == (3, 4, None, False)
    assert config.validation.prompts == ["one prompt"] and config.validation.every == 0
    assert (config.precision, config.optimizer) == ("fp32", "adamw8bit")
    # Absent keys take the reference trainer's defaults, not ours.
    assert (config.steps, config.rank, config.lr_spatial, config.weight_decay) == (500, 16, 5e-5, 1e-2)
    assert (config.width, config.height, config.frames, config.resize) == (256, 256, 4, "squash")
    assert config.spatial_per_clip and config.train == "both"


def test_our_keys_override_an_inherited_reference_config(reference_data, tmp_path):
    run = write(tmp_path / "run.yaml", f"base: {reference_data / 'configs' / 'config_single_video.yaml'}\n"
                                       "pretrained_model_path: m\nsteps: 3\nprecision: fp32\nvalidation: {every: 0}\n"
                                       "train_data: {n_sample_frames: 4}\n")
    config = load_config(run)
    assert (config.model, config.steps, config.precision, config.frames) == ("m", 3, "fp32", 4)
    assert config.validation.every == 0 and config.validation.noise_prior == 0.5  # the rest stays the reference's
    assert config.lr_temporal == 5e-4 and config.clips == ["./test_data/car_turn/car-turn.mp4"]


def test_reference_unknown_and_unsupported_keys(tmp_path, caplog):
    base = "pretrained_model_path: m\ntrain_data: {path: clips/}\n"
    with caplog.at_level(logging.DEBUG, logger="motiondirector_core"):
        config = load_config(write(tmp_path / "a.yaml", base + "dataset_types: [folder]\nxformers: true\n"
                                   "max_train_step: 3\ntrain_batch_size: 2\ncache_latents: true\n"
                                   "rescale_schedule: true\n"))
    assert config.clips == ["clips/"] and config.random_start
    text = caplog.text
    assert "max_train_step" in text and "did you mean 'max_train_steps'" in text
    assert "train_batch_size" in text and "not reproduced" in text
    assert "'rescale_schedule: True' is not reproduced" in text
    assert "cache_latents" in text  # debug line
    with pytest.raises(MotionDirectorError, match="json"):
        load_config(write(tmp_path / "b.yaml", base + "dataset_types: [json]\n"))
    with pytest.raises(MotionDirectorError, match="mixed_precision"):
        load_config(write(tmp_path / "c.yaml", base + "dataset_types: folder\nmixed_precision: fp8\n"))
    with pytest.raises(MotionDirectorError, match="train_data.single_video_path"):
        load_config(write(tmp_path / "d.yaml", base + "dataset_types: single_video\n"))


def test_our_schema_round_trip(tmp_path):
    config = TrainConfig(
        model="/models/zeroscope", clips=["a.mp4", "b dir/"], prompt="a car: turning", output="runs/x",
        train="temporal", steps=7, rank=4, alpha=2.0, lr_spatial=1e-4, weight_decay=1e-4, fps=12.5,
        random_start=True, resize="squash", seed=123, precision="bf16", resume="runs/x/checkpoint-5",
        motion_layers="attention",
        validation=ValidationConfig(prompts=["p: one", "two"], every=5, frames=8, width=64, spatial_scale=0.3),
    )
    path = write_config(tmp_path / "cfg" / "run.yaml", config)
    assert load_config(path) == config
    assert load_config(write(tmp_path / "b.yaml", dump_config(TrainConfig()))) == TrainConfig()


def test_our_schema_values_and_scientific_floats(tmp_path):
    config = load_config(write(tmp_path / "c.yaml", "model: m\nclips: one.mp4\nlr_temporal: 5e-4\nsteps: 1e2\n"
                               "validation:\n  prompts: [a]\n  cfg: 9\n"))
    assert config.clips == ["one.mp4"] and config.lr_temporal == 5e-4 and config.steps == 100
    assert config.validation.cfg == 9.0 and config.validation.prompts == ["a"]
    assert load_config(write(tmp_path / "empty.yaml", "")) == TrainConfig()


def test_env_substitution(tmp_path, monkeypatch):
    monkeypatch.setenv("MD_MODELS", "/data/models")
    monkeypatch.setenv("MD_STEPS", "42")
    monkeypatch.delenv("MD_UNSET", raising=False)
    path = write(tmp_path / "e.yaml", "model: ${MD_MODELS}/zeroscope\nsteps: ${MD_STEPS}\n"
                                      "prompt: ${MD_UNSET:-a default prompt}\noutput: cost $$5\n")
    config = load_config(path)
    assert config.model == "/data/models/zeroscope" and config.steps == 42
    assert config.prompt == "a default prompt" and config.output == "cost $5"
    write(path, "model: ${MD_UNSET}/zeroscope\n")
    with pytest.raises(MotionDirectorError, match="MD_UNSET"):
        load_config(path)


def test_base_inheritance_deep_merge_relative_and_cycle(tmp_path):
    (tmp_path / "bases").mkdir()
    write(tmp_path / "bases" / "root.yaml", "model: m\nsteps: 10\nclips: [a.mp4, b.mp4]\n"
                                            "validation: {prompts: [x], every: 5, cfg: 7.5}\n")
    write(tmp_path / "bases" / "mid.yaml", "base: root.yaml\nrank: 8\n")
    run = write(tmp_path / "run.yaml", "base: bases/mid.yaml\nsteps: 20\nclips: [c.mp4]\nvalidation: {every: 2}\n")
    config = load_config(run)
    assert (config.model, config.steps, config.rank, config.clips) == ("m", 20, 8, ["c.mp4"])
    assert (config.validation.prompts, config.validation.every, config.validation.cfg) == (["x"], 2, 7.5)

    write(tmp_path / "bases" / "root.yaml", "base: ../run.yaml\nmodel: m\n")
    with pytest.raises(MotionDirectorError, match="cycle"):
        load_config(run)
    with pytest.raises(MotionDirectorError, match="missing.yaml"):
        load_config(write(tmp_path / "x.yaml", "base: missing.yaml\n"))


def test_unknown_key_suggests_closest(tmp_path):
    with pytest.raises(MotionDirectorError, match=r"unknown setting 'stpes'.*Did you mean 'steps'"):
        load_config(write(tmp_path / "u.yaml", "stpes: 10\n"))
    with pytest.raises(MotionDirectorError, match=r"'validation.promts'.*'prompts'"):
        load_config(write(tmp_path / "v.yaml", "validation:\n  promts: [a]\n"))


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("steps: ten\n", r"'steps' must be an integer"),
        ("steps: 1.5\n", r"'steps' must be an integer"),
        ("lr_spatial: fast\n", r"'lr_spatial' must be a number"),
        ("spatial_per_clip: 1\n", r"'spatial_per_clip' must be true or false"),
        ("clips: [1, 2]\n", r"'clips' must be a list of text"),
        ("fps: abc\n", r"'fps' must be a number or null"),
        ("validation: {every: x}\n", r"'validation.every' must be an integer"),
        ("validation: 3\n", r"'validation' must be a mapping"),
        ("train: motion\n", r"'train' is 'motion'; use one of both, spatial"),
        ("motion_layers: ff\n", r"'motion_layers' is 'ff'; use one of all, attention"),
        ("steps: 0\n", r"'steps' must be greater than 0"),
        ("dropout: 1.5\n", r"'dropout' must be between 0 and 1"),
        ("lr_spatial: .nan\n", r"'lr_spatial' must be a finite number"),
        ("- a\n- b\n", r"must hold a mapping"),
        ("steps: [1\n", r"not valid YAML at line"),
    ],
)
def test_type_and_value_errors(tmp_path, text, pattern):
    path = write(tmp_path / "t.yaml", text)
    with pytest.raises(MotionDirectorError, match=pattern) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(MotionDirectorError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_apply_overrides():
    base = TrainConfig(model="m", steps=10, validation=ValidationConfig(prompts=["a"]))
    result = apply_overrides(base, steps=3, model=None, clips="x.mp4", validation_every=2,
                             validation_prompts=["b", "c"], fps=8)
    assert (result.steps, result.model, result.clips, result.fps) == (3, "m", ["x.mp4"], 8.0)
    assert result.validation.every == 2 and result.validation.prompts == ["b", "c"]
    assert base == replace(base) and base.steps == 10 and base.validation.prompts == ["a"]
    with pytest.raises(MotionDirectorError, match="Did you mean 'steps'"):
        apply_overrides(base, step=3)
    with pytest.raises(MotionDirectorError, match="'rank' must be an integer"):
        apply_overrides(base, rank="big")
    with pytest.raises(MotionDirectorError, match="'precision'"):
        apply_overrides(base, precision="fp8")


def test_videos_are_read_at_8_fps_unless_a_stride_is_chosen(tmp_path):
    assert (TrainConfig().fps, TrainConfig().stride) == (8.0, 1)  # the reference configs' fps: 8
    assert load_config(write(tmp_path / "a.yaml", "steps: 3\n")).fps == 8.0
    by_stride = load_config(write(tmp_path / "b.yaml", "stride: 2\n"))
    assert (by_stride.stride, by_stride.fps) == (2, None)  # a stride without fps means stride
    assert load_config(write(tmp_path / "c.yaml", "fps: 12\n")).fps == 12.0
    assert (apply_overrides(TrainConfig(), stride=3).fps, apply_overrides(TrainConfig(), fps=0).fps) == (None, None)
    with pytest.raises(MotionDirectorError, match=r"'stride' 2 and 'fps' 12 are both set.*fps to null"):
        load_config(write(tmp_path / "d.yaml", "stride: 2\nfps: 12\n"))
    with pytest.raises(MotionDirectorError, match=r"'stride' 2 and 'fps' 6 are both set"):
        apply_overrides(TrainConfig(fps=None, stride=2), fps=6)
