"""The example workflows' input files, copied into ComfyUI's input folder (motiondirector_examples/) when missing."""

import logging
import shutil
from pathlib import Path

import folder_paths

SOURCE = Path(__file__).resolve().parents[1] / "example_workflows" / "inputs"
FOLDER = "motiondirector_examples"

log = logging.getLogger(__name__)


def install_example_inputs(source: Path = SOURCE, input_dir: str | Path | None = None) -> list[Path]:
    """Copy every bundled example input that is not there yet; files already there (the user's) are never replaced.

    Returns the files copied. A failure (read-only input folder ...) is logged: the pack loads anyway.
    """
    target = Path(input_dir or folder_paths.get_input_directory()) / FOLDER
    copied = []
    if not source.is_dir():
        return copied
    try:
        for file in sorted(source.rglob("*")):
            if not file.is_file() or file.name.startswith("."):
                continue
            destination = target / file.relative_to(source)
            if destination.exists() or destination.is_symlink():
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            partial = destination.with_name(f".{destination.name}.partial")
            shutil.copyfile(file, partial)
            partial.replace(destination)
            copied.append(destination)
    except OSError as exc:
        log.warning("MotionDirector: could not copy the example inputs into %s (%s); the examples will not find "
                    "them, copy %s there by hand.", target, exc, source)
    return copied
