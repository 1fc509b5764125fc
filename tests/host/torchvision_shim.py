"""Make `import torchvision` work next to the CPU torch of the test venv (test host only).

PyPI's torchvision (installed with ComfyUI's requirements) is a CUDA build: its C extension `_C` does not
load next to torch 2.13.0+cpu, and `import torchvision` then fails with "operator torchvision::nms does
not exist" (its fake-tensor registrations need the operator schemas that `_C` would have defined).
ComfyUI imports torchvision at start, and transformers imports it whenever it is installed (every
diffusers pipeline and CLIPTextModel import would fail), yet nothing here calls a torchvision C op. So
define the `torchvision::nms` / `qnms` schemas (no kernels) with torch.library just before torchvision is
first imported; calling the ops still raises torchvision's "Couldn't load custom C++ ops".

`install()` puts an import hook on sys.meta_path; it imports torch only when something looks torchvision
up. scripts/install_host.sh copies this file into the venv as `md_torchvision_shim.py` with a .pth file
that calls install() at interpreter start, so every process of the venv (pytest, the CLI, ComfyUI) gets it;
tests/host/launch_comfyui.py also calls it. A torchvision whose `_C` loads is left alone.
"""

from __future__ import annotations

import glob
import importlib.abc
import importlib.util
import os
import sys

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
# torch.library.Library objects own their definitions: keep a reference for the process' lifetime.
_LIBRARIES: list = []


def _torchvision_c_loads(spec) -> bool:
    import torch

    for location in spec.submodule_search_locations or ():
        for path in glob.glob(os.path.join(location, "_C*.so")) + glob.glob(os.path.join(location, "_C*.pyd")):
            try:
                torch.ops.load_library(path)
                return True
            except (ImportError, OSError):
                return False
    return False


def _has_op(name: str) -> bool:
    import torch

    try:
        getattr(torch.ops.torchvision, name)
        return True
    except (AttributeError, RuntimeError):
        return False


def define_torchvision_schemas() -> bool:
    """Define the schemas if torchvision is installed and its `_C` does not load. True if it defined them.

    Must run before torchvision is first imported; calling it again is harmless.
    """
    if "torchvision" in sys.modules:
        return False
    spec = importlib.util.find_spec("torchvision")
    if spec is None or _torchvision_c_loads(spec):
        return False
    import torch

    missing = [s for s in _SCHEMAS if not _has_op(s.split("(")[0])]
    if not missing:
        return False
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for schema in missing:
        lib.define(schema)
    _LIBRARIES.append(lib)
    return True


def _initializing(name: str) -> bool:
    module = sys.modules.get(name)
    return module is not None and bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


class TorchvisionHook(importlib.abc.MetaPathFinder):
    """Runs define_torchvision_schemas() the first time torchvision is looked up, then removes itself."""

    md_torchvision_hook = True

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torchvision" or _initializing("torch"):
            return None  # (a lookup from inside torch's own import: wait for the next one)
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        try:
            define_torchvision_schemas()
        except Exception as exc:  # never break the import itself; torchvision will say what is wrong
            print(f"md_torchvision_shim: could not define torchvision schemas: {exc!r}", file=sys.stderr)
        return None  # the normal finders import it


def install() -> None:
    """Arrange for the schemas to be defined when torchvision is first looked up (idempotent)."""
    if "torchvision" in sys.modules:
        return
    if not any(getattr(f, "md_torchvision_hook", False) for f in sys.meta_path):
        sys.meta_path.insert(0, TorchvisionHook())
