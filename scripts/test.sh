#!/usr/bin/env bash
# Set up the pinned environment, the ComfyUI test host and the browser check's chromium + playwright, then run
# every test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
bash scripts/install_host.sh
bash scripts/install_browser.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export MD_TEST_THREADS="${MD_TEST_THREADS:-2}"
python -m pytest "$@"
