#!/usr/bin/env bash
# Install what the browser check (tests/browser) and scripts/make_thumbnails.py need:
#   1. Debian's chromium package at /usr/bin/chromium (skipped when it is already there; needs root or sudo);
#   2. the PyPI package `playwright` in .venv, at the version pinned in constraints.txt.
# `playwright install` is never run: it downloads a browser build of its own from a CDN that is not reachable here;
# the tests launch /usr/bin/chromium through playwright's executable_path instead.
# Without root and without chromium, the script says so and leaves step 1 undone (the browser tests then skip
# outside CI and fail in CI, where CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "install_browser: $CHROMIUM is already installed"
else
    if [ "$(id -u)" = 0 ]; then
        AS_ROOT=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        AS_ROOT=(sudo -n)
    else
        echo "install_browser: $CHROMIUM is missing and installing it needs root (apt-get install chromium)" >&2
        AS_ROOT=(false)
    fi
    if [ "${AS_ROOT[0]:-}" != false ]; then
        echo "install_browser: installing Debian's chromium"
        export DEBIAN_FRONTEND=noninteractive
        "${AS_ROOT[@]}" apt-get update -q
        "${AS_ROOT[@]}" apt-get install -y -q --no-install-recommends chromium
        [ -x "$CHROMIUM" ] || { echo "install_browser: apt-get installed no $CHROMIUM" >&2; exit 1; }
    fi
fi

if [ ! -x .venv/bin/python ]; then
    echo "install_browser: no .venv yet, running scripts/setup_venv.sh"
    bash scripts/setup_venv.sh
fi
grep -q -i -E '^\s*playwright==' constraints.txt \
    || { echo "install_browser: constraints.txt pins no playwright version" >&2; exit 1; }
.venv/bin/python -m pip install -q -c constraints.txt playwright
echo "install_browser: playwright $(.venv/bin/python -c 'from importlib.metadata import version; print(version("playwright"))') in .venv"
