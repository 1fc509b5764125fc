"""`python -m motiondirector_core evaluate`: score generated videos against reference clips (metrics/evaluate.py).

    python -m motiondirector_core evaluate --generated output/sweep --reference clips/ --reference-stride 2 \
        --prompt "a purple circle moving in a zigzag" --out report.json

A folder stands for every video in it and its subfolders, by path (a sweep's folder: all its samples); the report
is the Evaluate node's, with the files it read.
"""

from pathlib import Path

from .clips import media_files
from .errors import MotionDirectorError
from .files import write_json
from .video_io import VIDEO_EXTENSIONS, read_video


def video_files(paths: list[str], flag: str) -> list[Path]:
    """The videos named by `paths`: files as given, folders as every video inside, subfolders included (a sweep
    writes one per prompt), sorted by path."""
    return media_files(paths, VIDEO_EXTENSIONS, recursive=True, label=flag, noun="videos", hint="videos")


def read_frames(path: Path, stride: int = 1, frames: int = 0):
    """uint8 [F, H, W, 3] of a whole video, every stride-th frame, the first `frames` of them (0: all)."""
    return read_video(path)[0][::stride][: frames or None]


def _share(part: dict | None) -> str:
    return "-" if part is None or part["overall"] is None else f"{part['overall']:.2f}"


def evaluate_command(args) -> None:
    from .metrics.evaluate import evaluate

    if args.reference_stride < 1:
        raise MotionDirectorError(f"--reference-stride must be at least 1, got {args.reference_stride}.")
    if args.reference_frames < 0:
        raise MotionDirectorError(f"--reference-frames must be 0 (all) or more, got {args.reference_frames}.")
    generated_files = video_files(args.generated, "--generated")
    reference_files = video_files(args.reference, "--reference")
    generated = [read_frames(path) for path in generated_files]
    references = [read_frames(path, args.reference_stride, args.reference_frames) for path in reference_files]
    report = evaluate(generated, references, args.prompt, args.reference_prompt)
    report["generated_files"] = [str(p) for p in generated_files]
    report["reference_files"] = [str(p) for p in reference_files]
    if args.out:
        write_json(args.out, report)
    print(f"{len(generated)} generated against {len(references)} reference clip(s): motion fidelity "
          f"{report['motion_fidelity']:.3f}, trajectory fidelity {report['trajectory_fidelity']:.3f}, "
          f"text alignment {_share(report['text_alignment'])}, appearance leakage "
          f"{_share(report['appearance_leakage'])}")
    kept = report.get("look_kept_frames_per_sample")
    if kept is not None:
        print(f"the prompt's look kept in every frame by {report['look_kept_every_frame']} of {len(generated)}")
    for i, (path, found) in enumerate(zip(generated_files, report["generated_objects"])):
        frames = "" if kept is None else f", the prompt's look in {kept[i]} of {len(found['frame_colours'])} frames"
        print(f"  {path.name}: {found['colour'] or '-'} {found['shape'] or '-'}{frames}")
    if args.out:
        print(f"report: {args.out}")
