#!/usr/bin/env python
"""The main job's look check: does the README's first command give a video that keeps the prompt's look in every
frame, and over how many of 8 seeds?

    python bench/main_job_look.py                       # runs scripts/example.sh, then seeds 0-7 -> bench/results/
    python bench/main_job_look.py --example output/example   # reuses a folder scripts/example.sh already wrote

The video of seed 0 is the one scripts/example.sh writes (checked to within float noise); seeds 1-7 are the
command its settings JSON records, only the seed changed, with the same trained motion LoRA. Every frame of every
video is read alone (the colour of the object's core pixels and the shape of its moments,
motiondirector_core/metrics/toyworld_object.py): a seed passes when every frame shows the prompt's colour and shape.
The trajectory fidelity against the bundled references is given too. Writes main_job_look.md (a row per seed), .json
(the whole report) and .png (the reference clip, then one row per seed, frames left to right).
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from motiondirector_core.cli import main as cli_main  # noqa: E402
from motiondirector_core.cli_evaluate import read_frames, video_files  # noqa: E402
from motiondirector_core.errors import MotionDirectorError  # noqa: E402
from motiondirector_core.files import write_json, write_text  # noqa: E402
from motiondirector_core.metrics.evaluate import evaluate  # noqa: E402
from motiondirector_core.video_io import resize_images, write_image  # noqa: E402

REFERENCES = REPO / "example_workflows" / "inputs" / "zigzag"  # the clips scripts/example.sh trains on
REFERENCE_STRIDE, FRAMES = 2, 8  # as it reads them: every 2nd frame, the model's 8
SEEDS = 8  # seeds 0..SEEDS-1
ENLARGE = 3  # pixels per pixel in the picture, nearest-neighbour
# Seed 0 rerun in another process (other thread count, other CPU kernels) need not match the example's video bit for
# bit: float sums in another order may move a few pixels by a level or two. Another seed or command moves them by
# about 11 levels on average, so a mean under 2 levels is the same video.
SAME_VIDEO_MEAN_LEVELS = 2.0


def mean_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of two decoded clips (uint8 [F, H, W, 3]) in levels of 255; inf when their sizes
    differ."""
    if a.shape != b.shape:
        return float("inf")
    return (a.float() - b.float()).abs().mean().item()


def run_example(folder: Path) -> None:
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    subprocess.run(["bash", str(REPO / "scripts" / "example.sh"), str(folder)], cwd=REPO, check=True)


def example_record(folder: Path) -> dict:
    """The settings JSON that scripts/example.sh's generate step wrote in `folder`."""
    records = sorted(p for p in folder.glob("*.json") if p.is_file())
    if len(records) != 1:
        raise MotionDirectorError(f"{folder} should hold the one settings JSON scripts/example.sh writes, found "
                                  f"{len(records)}: run `bash scripts/example.sh {folder}` into an empty folder.")
    return json.loads(records[0].read_text())


def with_seed(command: str, seed: int, out: Path, temporal_scale: float) -> list[str]:
    """The generate arguments of a recorded command line with its seed, output and motion-LoRA strength replaced
    (the side-by-side dropped: the picture this script writes shows every seed)."""
    words = shlex.split(command)
    argv = words[words.index("generate"):]
    for flag, value in (("--seed", str(seed)), ("--out", str(out)), ("--temporal-scale", str(temporal_scale))):
        argv[argv.index(flag) + 1] = value
    if "--side-by-side" in argv:
        at = argv.index("--side-by-side")
        del argv[at:at + 4]  # --side-by-side CLIP --side-by-side-stride N
    return argv


def recorded_temporal_scale(record: dict) -> float:
    return next(lora["scale"] for lora in record["loras"] if lora["kind"] == "temporal")


def seed_videos(record: dict, folder: Path, seeds: int, temporal_scale: float) -> list[Path]:
    """The recorded generate command once per seed at the given motion-LoRA strength; at the recorded strength seed
    0 must give the example's own video back."""
    folder.mkdir(parents=True, exist_ok=True)
    videos = []
    for seed in range(seeds):
        out = folder / f"seed_{seed}.mp4"
        if cli_main(with_seed(record["command"], seed, out, temporal_scale)) != 0:
            raise MotionDirectorError(f"generating seed {seed} failed (see above)")
        videos.append(out)
    if record["seed"] == 0 and temporal_scale == recorded_temporal_scale(record):
        difference = mean_difference(read_frames(Path(record["video"])), read_frames(videos[0]))
        if difference > SAME_VIDEO_MEAN_LEVELS:
            raise MotionDirectorError(
                f"seed 0 did not reproduce {record['video']} (its frames differ by {difference:.1f} levels of 255 on "
                f"average, more than {SAME_VIDEO_MEAN_LEVELS:g}): the recorded command is not the one that made it. "
                "Rerun `bash scripts/example.sh` into an empty folder and point --example at it.")
    return videos


def report(record: dict, videos: list[Path]) -> tuple[dict, torch.Tensor]:
    """The look check's results, and its picture."""
    reference_files = video_files([str(REFERENCES)], "--reference")
    references = [read_frames(p, REFERENCE_STRIDE, FRAMES) for p in reference_files]
    generated = [read_frames(p) for p in videos]
    result = evaluate(generated, references, prompt=record["prompt"])
    asked = " ".join(result["prompt"][part] for part in ("colour", "shape"))
    rows = []
    for seed, (found, kept, trajectory) in enumerate(zip(result["generated_objects"],
                                                         result["look_kept_frames_per_sample"],
                                                         result["trajectory_fidelity_per_sample"])):
        rows.append({"seed": seed, "look": f"{found['colour']} {found['shape']}", "frames_kept": kept,
                     "frames": len(found["frame_colours"]), "trajectory_fidelity": trajectory,
                     "per_frame": [f"{c or '-'} {s or '-'}" for c, s in zip(found["frame_colours"],
                                                                             found["frame_shapes"])]})
    return {"prompt": record["prompt"], "command": record["command"], "rows": rows,
            "kept_every_frame": result["look_kept_every_frame"], "seeds": len(videos),
            "most_common_look_kept": sum(r["look"] == asked for r in rows),
            "trajectory_fidelity": result["trajectory_fidelity"], "evaluation": result,
            "pictured_reference": reference_files[0].name}, picture([references[0], *generated])


def picture(clips: list[torch.Tensor]) -> torch.Tensor:
    """The clips (uint8 [F, H, W, 3] each) one row each at the last one's size, frames left to right, enlarged."""
    height, width = clips[-1].shape[1:3]
    clips = [resize_images(clip.float() / 255, height, width) for clip in clips]
    rows = [clip.permute(1, 0, 2, 3).flatten(1, 2) for clip in clips]  # [H, F*W, 3]
    grid = torch.cat(rows, dim=0)
    return grid.repeat_interleave(ENLARGE, dim=0).repeat_interleave(ENLARGE, dim=1)


def write_results(data: dict, image: torch.Tensor, out: Path, command: str, minutes: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_image(out / "main_job_look.png", image)
    data |= {"made_by": command, "minutes": round(minutes, 1)}
    write_json(out / "main_job_look.json", data)
    lines = [
        f"# The main job's look over {data['seeds']} seeds",
        "",
        f"Made by `{command}` in {minutes:.0f} min: scripts/example.sh (train on the three bundled zigzag clips, "
        f"generate \"{data['prompt']}\"), then its recorded generate command at seeds 0-{data['seeds'] - 1}, "
        f"the motion LoRA at strength {data['temporal_scale']:g}. "
        "Each frame's colour and shape are read from that frame alone; a seed keeps the look when every frame "
        "shows the prompt's. Trajectory fidelity: -1..1 against the references' path.",
        "",
        f"**The prompt's look in every frame: {data['kept_every_frame']} of {data['seeds']} seeds** (by each "
        f"video's most common look: {data['most_common_look_kept']} of {data['seeds']}); trajectory fidelity "
        f"{data['trajectory_fidelity']:.2f} on average.",
        "",
        "| seed | most common look | frames with the prompt's look | trajectory fidelity | each frame |",
        "|---|---|---|---|---|",
        *(f"| {r['seed']} | {r['look']} | {r['frames_kept']} of {r['frames']} | {r['trajectory_fidelity']:.2f} | "
          f"{', '.join(r['per_frame'])} |" for r in data["rows"]),
        "",
        f"`main_job_look.png`: a reference clip ({data['pictured_reference']}), then seeds 0-{data['seeds'] - 1}, "
        "one row each.",
        "",
    ]
    write_text(out / "main_job_look.md", "\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--example", type=Path, help="a folder scripts/example.sh wrote (default: run it afresh "
                        "into output/bench/main_job)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="results folder")
    parser.add_argument("--seeds", type=int, default=SEEDS, help=f"how many seeds, from 0 (default {SEEDS})")
    parser.add_argument("--temporal-scale", type=float, help="rerun the seeds at this motion-LoRA strength "
                        "(default: the recorded one; seed 0 is checked against the example's video only there)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    began = time.time()
    folder = args.example
    if folder is None:
        folder = REPO / "output" / "bench" / "main_job"
        run_example(folder)
    record = example_record(folder)
    if args.seeds < 1:
        raise SystemExit(f"--seeds must be at least 1, got {args.seeds}")
    scale = recorded_temporal_scale(record) if args.temporal_scale is None else args.temporal_scale
    data, image = report(record, seed_videos(record, folder / "seeds", args.seeds, scale))
    data["temporal_scale"] = scale
    command = "python bench/main_job_look.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write_results(data, image, args.out, command.strip(), (time.time() - began) / 60)
    print(f"the prompt's look in every frame: {data['kept_every_frame']} of {data['seeds']} seeds; "
          f"wrote {args.out / 'main_job_look.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
