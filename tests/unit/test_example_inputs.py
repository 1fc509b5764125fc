"""The bundled example inputs are what scripts/make_example_inputs.py writes, and stay small."""

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from motiondirector_core.video_io import read_video

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "example_workflows" / "inputs"


def load_script():
    spec = importlib.util.spec_from_file_location("make_example_inputs", REPO / "scripts" / "make_example_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def files(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def test_bundled_inputs_are_the_scripts_output(tmp_path):
    written = load_script().make_inputs(tmp_path)

    assert sorted(p.relative_to(tmp_path) for p in written) == files(tmp_path) == files(BUNDLED)
    for name in files(BUNDLED):
        fresh, bundled = tmp_path / name, BUNDLED / name
        if name.suffix == ".txt":
            assert fresh.read_text(encoding="utf-8") == bundled.read_text(encoding="utf-8")
        elif name.suffix == ".png":
            assert np.array_equal(np.asarray(Image.open(fresh)), np.asarray(Image.open(bundled)))
        else:
            (a, fps_a), (b, fps_b) = read_video(fresh), read_video(bundled)
            assert a.shape == b.shape and fps_a == fps_b
            assert (a.float() - b.float()).abs().mean() < 1.0  # the same frames, whatever x264 build encoded them


def test_bundled_inputs_are_small_and_every_clip_has_its_caption():
    assert sum((BUNDLED / name).stat().st_size for name in files(BUNDLED)) < 300_000
    for name in files(BUNDLED):
        if name.suffix == ".mp4" or name.parent.name == "appearance" and name.suffix == ".png":
            caption = (BUNDLED / name).with_suffix(".txt").read_text(encoding="utf-8").strip()
            assert caption.startswith("a ") and len(caption.split()) >= 4, name
