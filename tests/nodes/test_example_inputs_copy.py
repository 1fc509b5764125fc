"""The pack copies the example inputs into ComfyUI's input folder when it loads, never over a user's file."""

from pathlib import Path

from tests.nodes.conftest import pack_module

BUNDLED = Path(__file__).resolve().parents[2] / "example_workflows" / "inputs"


def bundled_files() -> list[Path]:
    return sorted(p.relative_to(BUNDLED) for p in BUNDLED.rglob("*") if p.is_file())


def test_loading_the_pack_copied_the_example_inputs(comfy, comfy_dirs):
    target = comfy_dirs["input"] / "motiondirector_examples"

    for name in bundled_files():
        assert (target / name).read_bytes() == (BUNDLED / name).read_bytes(), name


def test_missing_files_are_copied_and_a_users_files_are_kept(comfy, tmp_path):
    install = pack_module(comfy, "nodes.examples").install_example_inputs
    target = tmp_path / "motiondirector_examples"
    (target / "zigzag").mkdir(parents=True)
    (target / "orbit.mp4").write_bytes(b"the user's own video")
    (target / "zigzag" / "blue_triangle.txt").write_text("my caption", encoding="utf-8")

    copied = install(BUNDLED, input_dir=tmp_path)

    assert (target / "orbit.mp4").read_bytes() == b"the user's own video"
    assert (target / "zigzag" / "blue_triangle.txt").read_text(encoding="utf-8") == "my caption"
    expected = [n for n in bundled_files() if n.as_posix() not in ("orbit.mp4", "zigzag/blue_triangle.txt")]
    assert sorted(p.relative_to(target) for p in copied) == expected
    assert not list(target.rglob(".*"))  # no half-copied files left
    assert install(BUNDLED, input_dir=tmp_path) == []  # a second load copies nothing


def test_an_unwritable_input_folder_does_not_stop_the_pack(comfy, tmp_path):
    install = pack_module(comfy, "nodes.examples").install_example_inputs
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the input folder should be", encoding="utf-8")

    assert install(BUNDLED, input_dir=blocker) == []
