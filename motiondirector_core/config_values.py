"""A config value checked against its TrainConfig field's type (shared by our schema and the reference's)."""

import types
import typing

from .errors import MotionDirectorError


def _type_name(annotation) -> str:
    names = {str: "text", int: "an integer", float: "a number", bool: "true or false", type(None): "null"}
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if typing.get_origin(annotation) is list:
        return "a list of text"
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def coerce(key: str, value, annotation, source: str = "<config>"):
    """`value` checked against a TrainConfig annotation; a lone string is accepted for a list of strings."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return coerce(key, value, arg, source)
                except MotionDirectorError:
                    continue
    elif annotation is bool and isinstance(value, bool):
        return value
    elif annotation is int and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif annotation is str and isinstance(value, str):
        return value
    elif typing.get_origin(annotation) is list:
        items = [value] if isinstance(value, str) else value
        if isinstance(items, (list, tuple)) and all(isinstance(v, str) for v in items):
            return list(items)
    raise MotionDirectorError(f"{source}: '{key}' must be {_type_name(annotation)}, got {value!r}.")
