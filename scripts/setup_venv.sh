#!/usr/bin/env bash
# Create (or update) .venv with the pinned versions the project is tested with.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -c constraints.txt -r requirements.txt -r requirements-test.txt
