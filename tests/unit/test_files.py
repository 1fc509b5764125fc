"""What a process killed in the middle of a save leaves behind is tidied, and nothing else is touched."""

from motiondirector_core.files import atomic_dir, recover_interrupted_saves


def test_unfinished_saves_go_and_a_folder_caught_between_renames_comes_back(tmp_path):
    (tmp_path / ".checkpoint-4.k2x9_q7m.tmp").mkdir()  # atomic_dir's folder, killed while writing
    (tmp_path / ".temporal.safetensors.a1b2c3d4.tmp").write_bytes(b"half")  # atomic_path's file
    (tmp_path / ".final.old").mkdir()  # killed after moving final aside, before the new one took its place
    (tmp_path / ".final.old" / "temporal.safetensors").write_bytes(b"the previous final")
    (tmp_path / ".checkpoint-2.old").mkdir()  # its replacement did land: the old copy is surplus
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / ".notes.tmp").write_text("the user's own file")  # not a name our saves use

    done = recover_interrupted_saves(tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.tmp", "checkpoint-2", "final"]
    assert (tmp_path / "final" / "temporal.safetensors").read_bytes() == b"the previous final"
    assert len(done) == 4 and any("restored final" in line for line in done)


def test_a_finished_atomic_save_leaves_nothing_to_tidy(tmp_path):
    for _ in range(2):  # the second replaces the first
        with atomic_dir(tmp_path / "final") as tmp:
            (tmp / "temporal.safetensors").write_bytes(b"weights")

    assert recover_interrupted_saves(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["final"]
