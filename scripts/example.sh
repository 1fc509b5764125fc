#!/usr/bin/env bash
# The main job on the embedded small-world model: teach it a motion it has never seen (a zigzag) from the bundled
# reference clips, then generate a new subject performing it. A few minutes on a 2-core CPU.
#
#   bash scripts/example.sh [OUTPUT_FOLDER]          (default output/example)
#
# Writes OUTPUT_FOLDER/run-<time>/ (the LoRAs, their checkpoints and the training log), and
# OUTPUT_FOLDER/<prompt>.mp4 with its settings (.json) and <prompt>_side_by_side.png: reference frames above the
# generated ones. The two commands it runs are printed first; change them to train your own clips.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup_venv.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

OUT="${1:-output/example}"
MODEL=models/toyworld-t2v
CLIPS=example_workflows/inputs/zigzag            # three clips of one motion, three different subjects
PROMPT="a purple circle moving in a zigzag"      # a subject none of the clips shows
RUN="$OUT/run-$(date +%Y%m%d-%H%M%S)"
SIZE=(--frames 8 --width 32 --height 32)         # the embedded model's native clip: 8 frames of 32x32
STEPS="${MD_EXAMPLE_STEPS:-900}"                 # (the tests shorten the run)
MOTION=0.75  # the motion LoRA's strength: at 1 the subject slips off the prompt's look in some frames
             # (README, "Fresh machine"; bench/results/diagnosis/main_job_strength/)

run() { echo "+ $*"; "$@"; }
run .venv/bin/python -m motiondirector_core train --model "$MODEL" --clips "$CLIPS" --output "$RUN" \
    --stride 2 "${SIZE[@]}" --steps "$STEPS" --lr 1e-3 --rank 16 --checkpoint-every 300
run .venv/bin/python -m motiondirector_core generate --model "$MODEL" --prompt "$PROMPT" \
    --temporal-lora "$RUN" --temporal-scale "$MOTION" --out "$OUT/${PROMPT// /_}.mp4" "${SIZE[@]}" \
    --steps 25 --cfg 7.5 --seed 0 \
    --side-by-side "$CLIPS/yellow_circle.mp4" --side-by-side-stride 2
