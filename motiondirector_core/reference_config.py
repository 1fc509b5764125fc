"""The reference repo's (showlab/MotionDirector) training config schema, mapped onto TrainConfig.

A reference config means what it means to the reference trainer: keys it leaves out take the
reference's defaults (its `main()` and dataset classes), not ours. Keys that only steer its
implementation (xformers, latent caching, logging ...) are accepted and ignored; the few that would
change the result and that we do not reproduce are ignored with a warning.
"""

import difflib
import logging

from .config_values import coerce
from .errors import MotionDirectorError
from .train_config import TrainConfig, ValidationConfig

log = logging.getLogger(__name__)

MARKERS = ("pretrained_model_path", "train_data", "validation_data", "dataset_types", "max_train_steps")
DATASET_TYPES = ("single_video", "folder", "image")

# Reference defaults for the keys we map (MotionDirector_train.main and utils/dataset.py).
DEFAULTS = dict(
    output_dir="./outputs/train",
    learning_rate=5e-5,
    adam_weight_decay=1e-2,
    max_train_steps=500,
    checkpointing_steps=500,
    validation_steps=100,
    mixed_precision="fp16",
    gradient_checkpointing=False,
    lora_rank=16,
    lora_unet_dropout=0.1,
    single_spatial_lora=False,
    train_temporal_lora=True,
    random_hflip_img=-1.0,
    seed=None,
    use_8bit_adam=False,
)
DATA_DEFAULTS = dict(width=256, height=256, fps=8, frame_step=1, sample_start_idx=1, use_bucketing=False)
# The reference's own default clip length differs per dataset class.
FRAMES_DEFAULT = {"single_video": 4, "folder": 16, "image": 16}

# Ignored silently (debug log): implementation details of the reference trainer.
IGNORED = {
    "cache_latents", "enable_xformers_memory_efficient_attention", "enable_torch_2_attn",
    "text_encoder_gradient_checkpointing", "save_pretrained_model", "use_unet_lora", "logger_type",
    "unet_lora_modules", "text_encoder_lora_modules", "trainable_modules", "extra_unet_params",
    "offset_noise_strength", "extend_dataset", "resume_step", "eval_train",
}
# Ignored with a warning when set to anything but the reference default: they would change the result.
NOT_REPRODUCED = dict(
    train_batch_size=1, gradient_accumulation_steps=1, lr_scheduler="constant", lr_warmup_steps=0,
    adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, use_offset_noise=False, extra_train_data=[],
    lora_path="", resume_from_checkpoint=None, cached_latent_dir=None,
    # Zero-terminal-SNR betas (the reference assigns them to its noise scheduler): a model is trained on the
    # schedule it was pretrained with here, the one in its scheduler config.
    rescale_schedule=False,
)
DATA_KEYS = {
    "path", "single_video_path", "single_video_prompt", "fallback_prompt", "image_dir", "single_img_prompt",
    "n_sample_frames", *DATA_DEFAULTS,
}
DATA_IGNORED = {"json_path", "json_data", "vid_data_key", "preprocessed", "use_caption", "base_width", "base_height"}
VALIDATION_KEYS = {
    "prompt", "sample_preview", "num_frames", "width", "height", "num_inference_steps", "guidance_scale",
    "spatial_scale", "noise_prior",
}
PRECISION = {"no": "fp32", "fp16": "fp16", "bf16": "bf16"}
TOP_KEYS = {"pretrained_model_path", "train_data", "validation_data", "dataset_types", *DEFAULTS}


def is_reference(data: dict) -> bool:
    return any(key in data for key in MARKERS)


def _value(data: dict, key: str, kind, source: str, where: str = "", default=None):
    value = data.get(key, default)
    return value if value is None else coerce(f"{where}{key}", value, kind, source)


def _section(data: dict, key: str, source: str) -> dict:
    section = data.get(key) or {}
    if not isinstance(section, dict):
        raise MotionDirectorError(f"{source}: '{key}' must be a mapping of settings, got {section!r}.")
    return section


def _note_extra_keys(section: dict, known: set, ignored: set, source: str, where: str = "") -> None:
    for key in section:
        if key in known:
            continue
        if key in ignored:
            log.debug("%s: '%s%s' is a reference-trainer setting with no effect here; ignored.", source, where, key)
        elif key in NOT_REPRODUCED and not where:
            if section[key] != NOT_REPRODUCED[key]:
                log.warning(
                    "%s: '%s: %r' is not reproduced (this trainer uses %r); ignored.",
                    source, key, section[key], NOT_REPRODUCED[key],
                )
        else:
            close = difflib.get_close_matches(str(key), sorted(known | ignored), n=1, cutoff=0.6)
            hint = f" (did you mean '{where}{close[0]}'?)" if close else ""
            log.warning("%s: unknown reference setting '%s%s'%s; ignored.", source, where, key, hint)


def _dataset_types(data: dict, source: str) -> list[str]:
    types_ = data.get("dataset_types")
    if types_ is None:
        raise MotionDirectorError(f"{source}: 'dataset_types' is missing; set it to single_video, folder or image.")
    types_ = [types_] if isinstance(types_, str) else types_
    if not isinstance(types_, list) or not types_:
        raise MotionDirectorError(f"{source}: 'dataset_types' must list single_video, folder and/or image.")
    for kind in types_:
        if kind not in DATASET_TYPES:
            raise MotionDirectorError(
                f"{source}: dataset type {kind!r} is not supported; use {', '.join(DATASET_TYPES)} "
                f"(for 'json', list the clips in a folder with one <name>.txt prompt beside each)."
            )
    if "single_video" in types_ and "folder" in types_:
        raise MotionDirectorError(
            f"{source}: 'single_video' (frame_step sampling) and 'folder' (fps sampling) cannot be mixed in one "
            f"run; put the single video into the folder instead."
        )
    return list(dict.fromkeys(types_))


def _data_paths(train: dict, types_: list[str], source: str) -> tuple[list[str], str]:
    """Clip paths and the shared prompt, picked from train_data by dataset type."""
    keys = {"single_video": ("single_video_path", "single_video_prompt"), "folder": ("path", "fallback_prompt"),
            "image": ("image_dir", "single_img_prompt")}
    clips, prompts = [], []
    for kind in types_:
        path_key, prompt_key = keys[kind]
        path = _value(train, path_key, str, source, "train_data.")
        if not path:
            raise MotionDirectorError(f"{source}: dataset type '{kind}' needs 'train_data.{path_key}'.")
        clips.append(path)
        prompt = _value(train, prompt_key, str, source, "train_data.", "")
        if prompt and prompt not in prompts:
            prompts.append(prompt)
    if len(prompts) > 1:
        log.warning("%s: several training prompts %s; using %r for all (a <clip>.txt prompt wins).",
                    source, prompts, prompts[0])
    return clips, prompts[0] if prompts else ""


def _validation(data: dict, seed: int, source: str) -> ValidationConfig:
    valid = _section(data, "validation_data", source)
    _note_extra_keys(valid, VALIDATION_KEYS, set(), source, "validation_data.")
    where = "validation_data."
    prompts = _value(valid, "prompt", list[str], source, where) or []
    preview = _value(valid, "sample_preview", bool, source, where, False)
    every = _value(data, "validation_steps", int, source, default=DEFAULTS["validation_steps"])
    result = ValidationConfig(prompts=prompts, every=every if preview else 0, seed=seed)
    mapping = {"num_frames": ("frames", int), "width": ("width", int), "height": ("height", int),
               "num_inference_steps": ("steps", int), "guidance_scale": ("cfg", float),
               "spatial_scale": ("spatial_scale", float), "noise_prior": ("noise_prior", float)}
    for key, (field_name, kind) in mapping.items():
        value = _value(valid, key, kind, source, where)
        if value is not None:
            setattr(result, field_name, value)
    return result


def from_reference(data: dict, source: str = "<config>") -> TrainConfig:
    """Map a reference-schema mapping onto TrainConfig (see the module docstring for defaults)."""
    _note_extra_keys(data, TOP_KEYS, IGNORED, source)
    train = _section(data, "train_data", source)
    _note_extra_keys(train, DATA_KEYS, DATA_IGNORED, source, "train_data.")
    types_ = _dataset_types(data, source)
    clips, prompt = _data_paths(train, types_, source)

    def top(key, kind):
        return _value(data, key, kind, source, default=DEFAULTS.get(key))

    def data_value(key, kind, default=None):
        return _value(train, key, kind, source, "train_data.", DATA_DEFAULTS.get(key, default))

    model = top("pretrained_model_path", str)
    if not model:
        raise MotionDirectorError(f"{source}: 'pretrained_model_path' is missing; set it to the model folder.")
    mixed = top("mixed_precision", str)
    if mixed not in PRECISION:
        raise MotionDirectorError(f"{source}: 'mixed_precision' is {mixed!r}; use one of {', '.join(PRECISION)}.")
    seed = top("seed", int)
    seed = 0 if seed is None else seed
    lr = top("learning_rate", float)
    video_kind = next((k for k in types_ if k != "image"), "image")
    sample_start = data_value("sample_start_idx", int)
    return TrainConfig(
        model=model,
        clips=clips,
        prompt=prompt,
        output=top("output_dir", str),
        train="both" if top("train_temporal_lora", bool) else "spatial",
        steps=top("max_train_steps", int),
        rank=top("lora_rank", int),
        dropout=top("lora_unet_dropout", float),
        lr_spatial=lr,
        lr_temporal=lr,
        weight_decay=top("adam_weight_decay", float),
        spatial_per_clip=not top("single_spatial_lora", bool),
        hflip=max(0.0, top("random_hflip_img", float)),  # the reference's -1 means never
        width=data_value("width", int),
        height=data_value("height", int),
        frames=data_value("n_sample_frames", int, FRAMES_DEFAULT[video_kind]),
        # single_video steps through frames by frame_step; folder samples at train_data.fps.
        stride=data_value("frame_step", int) if video_kind == "single_video" else 1,
        fps=data_value("fps", float) if video_kind == "folder" else None,
        # sample_start_idx is 1-based in the reference configs ("leave this at one").
        start=max(0, sample_start - 1),
        # The reference's folder dataset draws a random window of each video.
        random_start=video_kind == "folder",
        # Our crop keeps the aspect ratio like its bucketing meant to, without its squash.
        resize="crop" if data_value("use_bucketing", bool) else "squash",
        seed=seed,
        precision=PRECISION[mixed],
        dtype="fp32",  # the reference keeps the trained UNet in fp32 under any mixed_precision
        gradient_checkpointing=top("gradient_checkpointing", bool),
        optimizer="adamw8bit" if top("use_8bit_adam", bool) else "adamw",
        checkpoint_every=top("checkpointing_steps", int),
        validation=_validation(data, seed, source),
    )
