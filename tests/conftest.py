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
