"""Test-only launcher for the ComfyUI host installed by scripts/install_host.sh.

    .venv/bin/python tests/host/launch_comfyui.py --cpu --listen 127.0.0.1 --port 8189 --disable-api-nodes \
        --output-directory D --input-directory I --extra-model-paths-config paths.yaml

runs ComfyUI's main.py (from $MD_COMFYUI_DIR, default .host/ComfyUI) with the given arguments, after one
workaround: PyPI's torchvision is a CUDA build whose C extension does not load next to the CPU torch, and
then `import torchvision` fails with "operator torchvision::nms does not exist" (its fake-tensor
registrations need the operator schemas that the extension would have defined). ComfyUI imports
torchvision but uses none of its C ops, so defining the `torchvision::nms` / `qnms` schemas (no kernels)
with torch.library is enough. The definition happens from an import hook, the moment something first
looks torchvision up, so torch is still imported by ComfyUI itself (after main.py's environment setup).

The workaround itself is tests/host/torchvision_shim.py; scripts/install_host.sh also installs it into
the venv (a .pth file), so that pytest and the CLI can import transformers next to this torchvision.

In-process tests call `setup_in_process()` (the same workaround, sys.path, `args.cpu`, and the `utils`
import-order trap) before importing ComfyUI modules. The pack itself must not import torchvision.
"""

from __future__ import annotations

import os
import runpy
import sys

try:
    from . import torchvision_shim  # imported as tests.host.launch_comfyui
except ImportError:
    import torchvision_shim  # run as a script (this folder is sys.path[0])

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_COMFYUI_DIR = os.path.join(REPO_ROOT, ".host", "ComfyUI")


def comfyui_dir() -> str:
    return os.path.abspath(os.environ.get("MD_COMFYUI_DIR") or DEFAULT_COMFYUI_DIR)


def install_torchvision_workaround() -> None:
    """Define the torchvision::nms/qnms schemas when torchvision is first imported (see torchvision_shim)."""
    torchvision_shim.install()


def setup_in_process(cpu: bool = True) -> str:
    """Make ComfyUI importable in this process (for in-process tests); returns its folder.

    - installs the torchvision workaround;
    - puts ComfyUI first on sys.path: its top-level `nodes`, `server`, `utils`, `app`, `tests` ... must win
      over the repository root, where the pack's own `nodes/` lives (then `import nodes` is ComfyUI's);
    - sets `comfy.cli_args.args.cpu` before `comfy.model_management` is imported;
    - imports ComfyUI's `utils` package before its nodes.py puts `ComfyUI/comfy` on sys.path (after that,
      `import utils` finds comfy/utils.py and comfy_extras/nodes_images.py fails: "'utils' is not a package").
    Import the test helpers (`tests.host...`) before calling this: ComfyUI has a regular `tests` package,
    which wins over the repository's namespace package `tests` once ComfyUI is on sys.path.
    Then: `import nodes; asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))`.
    """
    root = comfyui_dir()
    if not os.path.isfile(os.path.join(root, "main.py")):
        raise RuntimeError(f"no ComfyUI at {root}: run scripts/install_host.sh")
    install_torchvision_workaround()
    sys.path[:] = [root] + [p for p in sys.path if os.path.abspath(p or ".") != root]
    for name in ("nodes", "utils", "server", "execution", "folder_paths"):
        module = sys.modules.get(name)
        where = os.path.abspath(getattr(module, "__file__", None) or root)
        if module is not None and not where.startswith(root + os.sep):
            raise RuntimeError(f"`{name}` is already imported from {where}, not from ComfyUI ({root})")
    import comfy.cli_args
    import utils.extra_config  # noqa: F401  (binds the `utils` package first, see above)

    if cpu:
        comfy.cli_args.args.cpu = True
    return root


def main(argv: list[str]) -> None:
    root = comfyui_dir()
    main_py = os.path.join(root, "main.py")
    if not os.path.isfile(main_py):
        raise SystemExit(f"no ComfyUI at {root}: run scripts/install_host.sh")
    install_torchvision_workaround()
    sys.argv = [main_py, *argv]
    sys.path.insert(0, root)
    runpy.run_path(main_py, run_name="__main__")


if __name__ == "__main__":
    # Drop this file's folder from sys.path so it cannot shadow ComfyUI's top-level modules.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    main(sys.argv[1:])
