import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("MD_TEST_THREADS", "1")))

from tests.fixtures.tiny_model import build_tiny_model  # noqa: E402

REFERENCE_DATA = Path(__file__).resolve().parents[2] / "shared" / "reference_data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-weight ModelScope-family diffusers folder, written once per test session."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-t2v")


@pytest.fixture()
def tiny_model(tiny_model_dir):
    """A freshly loaded tiny model (fp32, CPU): tests may add adapters to it freely."""
    from motiondirector_core.models import load_model

    return load_model(tiny_model_dir, dtype="fp32", device="cpu")


@pytest.fixture(scope="session")
def reference_data() -> Path:
    if not REFERENCE_DATA.is_dir():
        pytest.skip("../shared/reference_data is not present")
    return REFERENCE_DATA


ANIMATEDIFF_WRITER = Path(__file__).resolve().parent / "fixtures" / "write_animatediff.py"
ARTIFACTS = Path(__file__).resolve().parents[1] / ".test_artifacts"


def write_animatediff(out: Path, full: bool = False) -> Path:
    """tests/fixtures/write_animatediff.py in a process of its own (it imports the ComfyUI host's converters)."""
    import subprocess

    if not (out / "written.json").is_file():
        command = [sys.executable, str(ANIMATEDIFF_WRITER), str(out)] + (["--full"] if full else [])
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            pytest.fail(f"writing the AnimateDiff test files failed:\n{result.stderr[-3000:]}")
    return out


@pytest.fixture(scope="session")
def animatediff_files(tmp_path_factory) -> Path:
    """Tiny random AnimateDiff files in the original layouts: sd15.safetensors, vae.safetensors, mm_v2.ckpt,
    mm_v3.safetensors / .ckpt, and the diffusers models they came from (diffusers/)."""
    return write_animatediff(tmp_path_factory.mktemp("animatediff") / "files")


@pytest.fixture(scope="session")
def animatediff_full_files() -> Path:
    """The same at SD 1.5's and the motion modules' full size (random weights, fp16, 2.8 GB): written once into
    .test_artifacts/ and reused by later runs while the writer is unchanged."""
    import hashlib

    key = hashlib.sha256(ANIMATEDIFF_WRITER.read_bytes()).hexdigest()[:12]
    return write_animatediff(ARTIFACTS / f"animatediff-full-{key}", full=True)


@pytest.fixture()
def tiny_animatediff(animatediff_files):
    """A freshly loaded tiny AnimateDiff model (SD 1.5 layout + a v3 motion module), fp32 on the CPU."""
    from motiondirector_core.models import load_model

    return load_model(checkpoint=animatediff_files / "sd15.safetensors",
                      motion_module=animatediff_files / "mm_v3.safetensors", dtype="fp32", device="cpu")
