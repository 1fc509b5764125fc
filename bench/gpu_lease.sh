#!/usr/bin/env bash
# The GPU speed benchmark in one command, sized for a GPU lent for a short time (this workplace's device tool):
#   here:   bash bench/gpu_wheels.sh
#   there:  run(command="bash bench/gpu_lease.sh", carry=[".whl"], timeout_s=590)
# Installs the carried wheels, then runs bench/speed.py --device cuda with 2 alternating rounds of 15 measured steps
# and a deadline (DEADLINE_MINUTES, default 6.5) after which it starts no new cell, so that it ends inside the lease.
# The report, its JSON, the log and nvidia-smi's view land in $OUT (output/bench/gpu/ elsewhere): copy the report and
# JSON into bench/results/ and commit them. Extra arguments go to bench/speed.py (e.g. --compile).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-output/bench/gpu}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  site=${TMPDIR:-/tmp}/md-site
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl \
    || { echo "gpu_lease: installing the carried wheels failed" >&2; exit 1; }
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
nvidia-smi >"$out/nvidia-smi.txt" 2>&1
missing="gpu_lease: a package bench/speed.py needs is missing: run bash bench/gpu_wheels.sh here and carry .whl"
python3 - <<'PY' || { echo "$missing" >&2; exit 1; }
import av, diffusers, peft, torch, transformers
print("gpu_lease: torch", torch.__version__, "diffusers", diffusers.__version__, "transformers",
      transformers.__version__, "peft", peft.__version__, "av", av.__version__,
      "cuda", torch.cuda.is_available() and torch.cuda.get_device_name(0))
PY
python3 bench/speed.py --device cuda --rounds 2 --steps 15 --deadline "${DEADLINE_MINUTES:-6.5}" --out "$out" "$@" \
  2>&1 | tee "$out/speed_gpu.log"
