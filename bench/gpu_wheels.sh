#!/usr/bin/env bash
# Run here, before a GPU lease: wheels of what the lent GPU machine lacks for bench/speed.py, into .whl/ (git-ignored)
# for bench/gpu_lease.sh to install there. That machine has Python 3.12, torch, transformers, huggingface_hub,
# tokenizers, accelerate and safetensors; it has no diffusers or PyAV, and its peft is not ours. Versions are
# constraints.txt's. The wheels travel with the working tree (64 MiB in all with it): about 43 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl
mkdir .whl
for name in diffusers peft av; do
  pin=$(grep -i "^${name}==" constraints.txt)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "$pin"
done
ls .whl
du -sh .whl
