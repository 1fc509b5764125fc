"""A diffusers model's `dtype` read once, not on every forward.

diffusers' `ModelMixin.dtype` walks every submodule (looking for casting hooks) and then the parameters on each
access, and a UNet's forward reads it on every call. With LoRA layers in the tree the walk costs about
3 ms on the embedded model: a tenth of a CPU training step (measured side by side), and one walk per denoising step
when sampling. Here the answer is kept until the model is cast or moved: `.to()`, `.half()`, `.cuda()` and the rest
all go through `Module._apply`, which drops it. (diffusers issue #13401 describes the same cost.)
"""

import torch


class _KeptDtype:
    @property
    def dtype(self) -> torch.dtype:
        kept = self.__dict__.get("_kept_dtype")
        if kept is None:
            kept = self.__dict__["_kept_dtype"] = super().dtype
        return kept

    def _apply(self, fn, *args, **kwargs):
        self.__dict__.pop("_kept_dtype", None)
        return super()._apply(fn, *args, **kwargs)


_SUBCLASSES: dict[type, type] = {}


def keep_dtype(model: torch.nn.Module) -> torch.nn.Module:
    """Give `model` (a diffusers ModelMixin) the kept dtype, in place. Its class keeps its name and module, so
    save_pretrained writes the same config; idempotent."""
    cls = type(model)
    if issubclass(cls, _KeptDtype):
        return model
    if cls not in _SUBCLASSES:
        _SUBCLASSES[cls] = type(cls.__name__, (_KeptDtype, cls), {"__module__": cls.__module__,
                                                                  "__qualname__": cls.__qualname__})
    model.__class__ = _SUBCLASSES[cls]
    return model
