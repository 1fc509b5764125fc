"""Training configs in YAML: our schema (TrainConfig field names) and the reference repo's, read as is.

Both schemas support `${VAR}` / `${VAR:-default}` substitution in strings and a top-level
`base: other.yaml` that the file inherits from (deep-merged, path relative to the file).
Data and model paths are kept as written: relative ones resolve against the current directory when
used, as in the reference. The reference schema lives in `reference_config`.
"""

import copy
import dataclasses
import difflib
import logging
import math
import os
import re
import typing
from pathlib import Path

import yaml

from .config_values import coerce
from .errors import MotionDirectorError
from .files import write_text
from .reference_config import TOP_KEYS, from_reference, is_reference
from .train_config import DROPOUT_PLACEMENTS, MOTION_LAYERS, PRECISIONS, TRAIN_MODES, UPDATE_ORDERS, TrainConfig
from .train_config import ValidationConfig

log = logging.getLogger(__name__)

BASE_KEY = "base"
CHOICES = {
    "train": TRAIN_MODES,
    "precision": PRECISIONS,
    "dtype": PRECISIONS,
    "resize": ("crop", "squash"),
    "optimizer": ("adamw", "adamw8bit"),
    "motion_layers": MOTION_LAYERS,
    "update_order": UPDATE_ORDERS,
    "dropout_placement": DROPOUT_PLACEMENTS,
}
POSITIVE = {"steps", "rank", "width", "height", "frames", "stride", "fps", "lr_spatial", "lr_temporal", "alpha"}
NON_NEGATIVE = {"checkpoint_every", "every", "start", "seed", "weight_decay", "beta", "cfg"}
PROBABILITIES = {"dropout", "hflip", "spatial_skip_prob", "noise_prior"}
VALIDATION_PREFIX = "validation_"


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `5e-4` as a float (YAML 1.1 wants `5.0e-4`), as the reference's OmegaConf does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str = "<text>"):
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise MotionDirectorError(f"{source} is not valid YAML{where}: {problem}. Fix the file and retry.") from exc


# ---- ${VAR} substitution -------------------------------------------------------------------------

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute_env(value, source: str = "<config>", key: str = ""):
    """Replace `${VAR}` / `${VAR:-default}` in every string of `value` (`$$` is a literal `$`).

    A string that is one reference alone is re-read as a YAML scalar, so `steps: ${STEPS:-150}` is a number.
    """
    if isinstance(value, dict):
        return {k: substitute_env(v, source, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found:
            return found
        if default is not None:
            return default
        raise MotionDirectorError(
            f"{source}: '{key}' uses ${{{name}}} but the environment variable {name} is not set: "
            f"set it, or write ${{{name}:-default}} to give a default."
        )

    whole = _ENV_REF.fullmatch(value)
    result = _ENV_REF.sub(replace, value)
    if whole and whole.group(0) != "$$":
        scalar = parse_yaml(result, f"{source} ('{key}' after substitution)") if result.strip() else result
        return scalar if isinstance(scalar, (str, int, float, bool)) or scalar is None else result
    return result


# ---- base: inheritance ---------------------------------------------------------------------------


def deep_merge(base: dict, override: dict) -> dict:
    """Mappings merge key by key; anything else in `override` (lists included) replaces the base value."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_config_tree(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict:
    """The raw mapping of a config file with its `base:` chain merged in (before substitution)."""
    path = Path(path).expanduser()
    resolved = path.resolve()
    if resolved in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, resolved))
        raise MotionDirectorError(f"config files inherit from each other in a cycle ({cycle}): remove one 'base:'.")
    if not path.is_file():
        if _chain:
            raise MotionDirectorError(f"{_chain[-1]}: its base config {path} does not exist; fix the 'base:' path.")
        raise MotionDirectorError(f"config file {path} does not exist.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MotionDirectorError(f"config file {path} could not be read ({exc}).") from exc
    data = parse_yaml(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MotionDirectorError(f"{path} must hold a mapping of settings (key: value), not a {type(data).__name__}.")
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    base = substitute_env(base, str(path), BASE_KEY)
    if not isinstance(base, str) or not base:
        raise MotionDirectorError(f"{path}: 'base' must be the path of another config file, got {base!r}.")
    base_path = Path(base).expanduser()
    if not base_path.is_absolute():
        base_path = resolved.parent / base_path
    return deep_merge(read_config_tree(base_path, (*_chain, resolved)), data)


# ---- our schema ----------------------------------------------------------------------------------


def unknown_key(key: str, valid, source: str, where: str = "") -> MotionDirectorError:
    close = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else f" Valid keys: {', '.join(sorted(valid))}."
    return MotionDirectorError(f"{source}: unknown setting '{where}{key}'.{hint}")


def _update(obj, data: dict, source: str, where: str = ""):
    """Set the fields of `obj` (a TrainConfig or ValidationConfig) from `data`, checking names and types."""
    hints = typing.get_type_hints(type(obj))
    for key, value in data.items():
        if key not in hints:
            raise unknown_key(key, hints, source, where)
        if hints[key] is ValidationConfig:
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise MotionDirectorError(f"{source}: 'validation' must be a mapping of validation settings.")
            _update(obj.validation, value, source, "validation.")
        else:
            setattr(obj, key, coerce(f"{where}{key}", value, hints[key], source))
    return obj


def check_config(config: TrainConfig, source: str = "<config>") -> TrainConfig:
    """Value checks shared by files and overrides: choices, positive sizes, probabilities in [0, 1]."""
    for where, obj in (("", config), ("validation.", config.validation)):
        for f in dataclasses.fields(obj):
            name, value = f.name, getattr(obj, f.name)
            if value is None or isinstance(value, (ValidationConfig, list)):
                continue
            label = f"'{where}{name}'"
            if isinstance(value, float) and not math.isfinite(value):
                raise MotionDirectorError(f"{source}: {label} must be a finite number, got {value}.")
            if name in CHOICES and value not in CHOICES[name]:
                raise MotionDirectorError(f"{source}: {label} is {value!r}; use one of {', '.join(CHOICES[name])}.")
            if name in POSITIVE and value <= 0:
                raise MotionDirectorError(f"{source}: {label} must be greater than 0, got {value}.")
            if name in NON_NEGATIVE and value < 0:
                raise MotionDirectorError(f"{source}: {label} must not be negative, got {value}.")
            if name in PROBABILITIES and not 0 <= value <= 1:
                raise MotionDirectorError(f"{source}: {label} must be between 0 and 1, got {value}.")
    if config.fps is not None and config.stride != 1:
        raise MotionDirectorError(
            f"{source}: 'stride' {config.stride} and 'fps' {config.fps:g} are both set, and only one can choose the "
            f"frames: set fps to null (CLI --fps 0) to take every {config.stride}th frame, or stride to 1."
        )
    return config


def config_from_dict(data: dict, source: str = "<config>") -> TrainConfig:
    """A TrainConfig from an already-parsed mapping in either schema (substitution done by the caller).

    A reference-schema mapping may also hold our keys (e.g. a file whose `base:` is a reference config):
    they are applied over the mapped reference settings.
    """
    if not is_reference(data):
        config = TrainConfig(fps=None) if "stride" in data and "fps" not in data else TrainConfig()
        return check_config(_update(config, data, source), source)
    ours = {k: v for k, v in data.items() if k in typing.get_type_hints(TrainConfig) and k not in TOP_KEYS}
    config = from_reference({k: v for k, v in data.items() if k not in ours}, source)
    return check_config(_update(config, ours, source), source)


def load_config(path: str | Path) -> TrainConfig:
    """Read a training config in our schema or the reference repo's (detected from its keys)."""
    source = str(path)
    data = substitute_env(read_config_tree(path), source)
    config = config_from_dict(data, source)
    log.info("read config %s", source)
    return config


def dump_config(config: TrainConfig) -> str:
    """YAML in our schema; `load_config` reads it back to an equal TrainConfig."""
    header = "# MotionDirector training config (motiondirector_core schema)\n"
    return header + yaml.safe_dump(dataclasses.asdict(config), sort_keys=False, allow_unicode=True)


def write_config(path: str | Path, config: TrainConfig) -> Path:
    return write_text(path, dump_config(config))


def apply_overrides(config: TrainConfig, source: str = "override", /, **overrides) -> TrainConfig:
    """A copy of `config` with the given fields replaced; None means "not given" and keeps the file's value.

    Validation settings are `validation_<field>` (e.g. validation_prompts=[...], validation_every=50).
    `source` names where the overrides came from in error messages.
    """
    result = copy.deepcopy(config)
    if overrides.get("fps") == 0 or overrides.get("stride") is not None and overrides.get("fps") is None:
        result.fps = None  # fps 0, or a stride without fps: every stride-th frame instead of 8 fps
        overrides = {k: v for k, v in overrides.items() if k != "fps"}
    hints = typing.get_type_hints(TrainConfig)
    valid_hints = typing.get_type_hints(ValidationConfig)
    valid_keys = [k for k in hints if k != "validation"] + [VALIDATION_PREFIX + k for k in valid_hints]
    for key, value in overrides.items():
        if value is None:
            continue
        if key.startswith(VALIDATION_PREFIX) and key[len(VALIDATION_PREFIX):] in valid_hints:
            field_name = key[len(VALIDATION_PREFIX):]
            setattr(result.validation, field_name, coerce(key, value, valid_hints[field_name], source))
        elif key in hints and key != "validation":
            setattr(result, key, coerce(key, value, hints[key], source))
        else:
            raise unknown_key(key, valid_keys, source)
    return check_config(result, source)
