#!/usr/bin/env python
"""Write the example workflows' input files (small-world clips and stills) into example_workflows/inputs/.

    python scripts/make_example_inputs.py [FOLDER]

The committed files are this script's output. The pack copies them into ComfyUI's input folder, under
motiondirector_examples/, where the example workflows look for them.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from motiondirector_core.toyworld.clips import make_clip, write_clip  # noqa: E402
from motiondirector_core.video_io import write_image  # noqa: E402

DEFAULT_FOLDER = REPO / "example_workflows" / "inputs"
SIZE, FRAMES, FPS = 64, 16, 8

# name -> make_clip parameters; a video with its caption in <name>.txt
VIDEOS = {
    "orbit.mp4": dict(shape="square", colour="red", motion="orbit", background="textured", seed=0),
    "zigzag/blue_triangle.mp4": dict(shape="triangle", colour="blue", motion="zigzag", background="plain", seed=1),
    "zigzag/yellow_circle.mp4": dict(shape="circle", colour="yellow", motion="zigzag", background="textured", seed=2),
    "zigzag/green_square.mp4": dict(shape="square", colour="green", motion="zigzag", background="plain", seed=3),
}
# name -> make_clip parameters; the first frame as an image (a caption beside it only where training reads it)
STILLS = {
    "still.png": (dict(shape="triangle", colour="purple", motion="static", background="textured", seed=4), False),
    "appearance/white_circle_1.png": (dict(shape="circle", colour="white", motion="static", background="textured",
                                           seed=5), True),
    "appearance/white_circle_2.png": (dict(shape="circle", colour="white", motion="static", background="textured",
                                           seed=6), True),
    "appearance/white_circle_3.png": (dict(shape="circle", colour="white", motion="static", background="textured",
                                           seed=7), True),
}


def make_inputs(folder: str | Path = DEFAULT_FOLDER) -> list[Path]:
    """Write every input file into `folder`; returns the paths written (videos, images and captions)."""
    folder = Path(folder)
    written = []
    for name, params in VIDEOS.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_clip(path, fps=FPS, size=SIZE, frames=FRAMES, **params)
        written += [path, path.with_suffix(".txt")]
    for name, (params, with_caption) in STILLS.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        clip = make_clip(size=SIZE, frames=1, **params)
        written.append(write_image(path, clip.frames[0]))
        if with_caption:
            path.with_suffix(".txt").write_text(clip.caption + "\n", encoding="utf-8")
            written.append(path.with_suffix(".txt"))
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_FOLDER
    for path in make_inputs(target):
        print(path)
