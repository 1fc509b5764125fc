"""Mutated videos, images and LoRA files never crash the readers or hang: they load or raise our clear error."""

import subprocess
import sys

from tests.unit.test_cli import REPO, cli_env

FUZZER = REPO / "tests" / "fuzz" / "fuzz_inputs.py"


def test_five_hundred_mutated_files_load_or_are_refused_clearly(tmp_path):
    # A subprocess, so that a crash of the interpreter or a hang (the fuzzer's own per-case watchdog) fails the test.
    result = subprocess.run([sys.executable, str(FUZZER), "--cases", "500", "--seed", "0"], cwd=REPO,
                            env=cli_env(tmp_path), capture_output=True, text=True, timeout=900)

    last_case = result.stderr.strip().splitlines()[-1:] if result.stderr else []
    assert result.returncode == 0, f"{result.stdout}\nlast case: {last_case}\n{result.stderr[-6000:]}"
    assert "500 cases" in result.stdout and " 0 failed" in result.stdout
    loaded, refused = (int(result.stdout.split(word)[0].split()[-1]) for word in (" loaded", " refused"))
    assert loaded > 0 and refused > 0, result.stdout  # both outcomes happen, or the mutations are too weak / strong
