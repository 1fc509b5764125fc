"""`python -m motiondirector_core`: the contract other tools script against, run as a subprocess."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from motiondirector_core.cli import SCHEDULER_NAMES, build_parser, main
from tests.fixtures.media import moving_square, write_pyav

REPO = Path(__file__).resolve().parents[2]
TINY = ["--frames", "4", "--width", "32", "--height", "32"]


def cli_env(tmp: Path) -> dict:
    threads = os.environ.get("MD_TEST_THREADS", "1")
    return {**os.environ, "MD_TEST_THREADS": threads, "OMP_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "XDG_CACHE_HOME": str(tmp / "cache")}


def run_cli(tmp: Path, *args, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "motiondirector_core", *map(str, args)], cwd=REPO,
                          env=cli_env(tmp), capture_output=True, text=True, timeout=timeout)


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def assert_user_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    write_pyav(folder / "clip.mp4", moving_square(8, height=32, width=64), fps=8)
    return folder


@pytest.fixture(scope="module")
def trained_run(media, tiny_model_dir) -> Path:
    """One 2-step training run through --config (our schema) plus overriding flags."""
    config = media / "run.yaml"
    config.write_text(f"model: {tiny_model_dir}\nclips: [{media / 'clip.mp4'}]\nprompt: a square moves\n"
                      "steps: 50\nrank: 4\ncheckpoint_every: 1\n")
    result = run_cli(media, "train", "--config", config, "--steps", 2, "--output", media / "run",
                     "--motion-layers", "attention", *TINY)
    assert_ok(result)
    assert "step 2/2" in result.stdout and str(media / "run" / "final") in result.stdout
    return media / "run"


@pytest.mark.parametrize("command", [[], ["train"], ["generate"], ["invert"], ["sweep"], ["evaluate"]])
def test_help(tmp_path, command):
    result = run_cli(tmp_path, *command, "--help", timeout=60)
    assert_ok(result)
    assert result.stdout.startswith("usage: python -m motiondirector_core")


def test_scheduler_names_match_the_sampler():
    from motiondirector_core.sample import SCHEDULERS

    assert tuple(SCHEDULERS) == SCHEDULER_NAMES


def bad_model_args(tmp_path: Path, command: str) -> list:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\n")
    args = {
        "train": ["--clips", tmp_path, "--prompt", "p", "--output", tmp_path / "run"],
        "generate": ["--prompt", "p", "--out", tmp_path / "v.mp4"],
        "invert": ["--clip", tmp_path / "c.mp4", "--out", tmp_path / "n.safetensors"],
        "sweep": ["--prompts", prompts, "--out", tmp_path / "sweep"],
    }[command]
    return [command, "--model", tmp_path / "no-model", *args]


def test_bad_model_path_is_one_line_error_exit_2(tmp_path):
    result = run_cli(tmp_path, *bad_model_args(tmp_path, "generate"), timeout=120)
    assert_user_error(result, "no-model", "does not exist")


@pytest.mark.parametrize("command", ["train", "invert", "sweep"])
def test_every_command_reports_a_bad_model_path(tmp_path, capsys, command):
    assert main([str(a) for a in bad_model_args(tmp_path, command)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no-model" in err and "does not exist" in err and err.count("\n") == 1


def test_usage_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["generate", "--prompt", "p"])
    assert info.value.code == 2 and "--model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["train", "--train", "motion"])
    assert info.value.code == 2


def test_train_flags_without_a_value_reach_the_config():
    from motiondirector_core.cli import train_config_from_args

    def parsed(*flags):
        return train_config_from_args(build_parser().parse_args(["train", "--model", "m", "--clips", "c.mp4", *flags]))

    assert (parsed().compile, parsed("--compile").compile, parsed("--no-compile").compile) == (False, True, False)
    assert parsed("--no-cache-encodings").cache_encodings is False


def test_checks_that_run_before_any_model_load(tmp_path, capsys):
    cases = [
        (["generate", "--model", tmp_path, "--prompt", "p", "--out", tmp_path / "v.mp4", "--noise-prior", "0.3"],
         "--noise-prior needs --reference"),
        (["generate", "--model", tmp_path, "--prompt", "p", "--out", tmp_path / "v.avi"], "must end in one of"),
        (["generate", "--model", tmp_path, "--prompt", "p", "--out", tmp_path / "v.mp4", "--side-by-side",
          tmp_path / "gone.mp4"], "--side-by-side"),
        (["generate", "--model", tmp_path, "--prompt", "p", "--out", tmp_path / "v.mp4", "--spatial-lora",
          tmp_path, tmp_path, "--spatial-scale", "1", "2", "3"], "3 values for 2"),
        (["train", "--model", tmp_path, "--output", tmp_path], "no clips given"),
        (["train", "--clips", tmp_path, "--steps", "0"], "'steps' must be greater than 0"),
        (["train", "--config", tmp_path / "missing.yaml"], "missing.yaml does not exist"),
        (["sweep", "--model", tmp_path, "--prompts", tmp_path / "none.txt", "--out", tmp_path], "--prompts"),
    ]
    for argv, message in cases:
        assert main([str(a) for a in argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, err


def test_bad_device_is_a_user_error(tmp_path, capsys, tiny_model_dir):
    argv = ["invert", "--model", tiny_model_dir, "--clip", tmp_path / "c.mp4", "--out", tmp_path / "n.safetensors"]
    assert main([str(a) for a in argv] + ["--device", "cdua"]) == 2
    assert "--device 'cdua' is not a torch device" in capsys.readouterr().err


def test_train_writes_loras_checkpoints_and_config(trained_run):
    final = trained_run / "final"
    assert (final / "temporal.safetensors").is_file() and (final / "spatial.safetensors").is_file()
    assert (trained_run / "checkpoint-1" / "temporal.safetensors").is_file()
    assert (trained_run / "config.yaml").is_file() and (trained_run / "train_log.jsonl").is_file()

    from motiondirector_core.config import load_config

    saved = load_config(trained_run / "config.yaml")
    assert (saved.steps, saved.rank, saved.frames, saved.width, saved.motion_layers) == (2, 4, 4, 32, "attention")


def test_generate_with_lora_and_reference_clip(trained_run, media, tiny_model_dir):
    from motiondirector_core.video_io import read_video

    out = media / "gen" / "video.mp4"
    result = run_cli(media, "generate", "--model", tiny_model_dir, "--prompt", "a cat", "--out", out,
                     "--temporal-lora", trained_run, "--temporal-scale", "0.8",
                     "--spatial-lora", trained_run / "final" / "spatial.safetensors", "--spatial-scale", "0.5",
                     "--reference", media / "clip.mp4", "--inversion-steps", 2, "--steps", 2, "--seed", 7,
                     "--side-by-side", media / "clip.mp4", "--side-by-side-stride", 2, *TINY)
    assert_ok(result)
    frames, _ = read_video(out)
    assert tuple(frames.shape) == (4, 32, 32, 3)
    from PIL import Image

    picture = Image.open(media / "gen" / "video_side_by_side.png")
    assert picture.size == (4 * 96, 2 * 96)  # 4 frames a row, reference over generated, 32 px enlarged 3x
    top_left = torch.tensor(list(picture.getdata())).view(192, 384, 3)[:96, :96].float() / 255
    reference, _ = read_video(media / "clip.mp4")
    assert (top_left[::3, ::3] - reference[0, :, 16:48]).abs().mean() < 0.05  # first frame, centre-cropped
    record = json.loads(out.with_suffix(".json").read_text())
    assert [record[k] for k in ("prompt", "frames", "width", "steps", "seed")] == ["a cat", 4, 32, 2, 7]
    assert record["noise_prior"] == 0.5 and record["reference"]["source"] == str((media / "clip.mp4").resolve())
    assert record["scheduler"] == "ddim" and record["model"] == str(Path(tiny_model_dir).resolve())
    assert record["motiondirector_core_version"]
    assert [(lora["kind"], lora["scale"]) for lora in record["loras"]] == [("temporal", 0.8), ("spatial", 0.5)]
    assert "--temporal-lora" in record["command"] and "--noise-prior 0.5" in record["command"]
    assert record["side_by_side"]["stride"] == 2 and "--side-by-side-stride 2" in record["command"]
    assert list((media / "cache" / "motiondirector" / "inversions").glob("*.safetensors"))


def test_invert_then_sweep_from_the_noise_file(trained_run, media, tiny_model_dir):
    from motiondirector_core.invert import load_noise

    noise = media / "noise.safetensors"
    assert_ok(run_cli(media, "invert", "--model", tiny_model_dir, "--clip", media / "clip.mp4", "--out", noise,
                      "--steps", 2, *TINY))
    prior = load_noise(noise)
    assert prior.latents.shape == (1, 4, 4, 4, 4) and (prior.frames, prior.width, prior.steps) == (4, 32, 2)

    prompts = media / "prompts.txt"
    prompts.write_text("a cat\n# not a prompt\n\na dog\n")
    out = media / "sweep"
    result = run_cli(media, "sweep", "--model", tiny_model_dir, "--prompts", prompts, "--out", out,
                     "--temporal-lora", trained_run, "--temporal-scales", "0.5", "1", "--reference", noise,
                     "--noise-prior", "0.2", "--steps", 1, *TINY)
    assert_ok(result)
    results = json.loads((out / "index.json").read_text())["results"]
    assert [(r["prompt"], r["temporal_scale"]) for r in results] == [
        ("a cat", 0.5), ("a cat", 1.0), ("a dog", 0.5), ("a dog", 1.0)]
    assert all((out / r["video"]).is_file() for r in results)
    assert json.loads((out / "sweep.json").read_text())["reference"]["kind"] == "noise file"


def test_reference_config_trains_and_ctrl_c_cancels_with_a_checkpoint(reference_data, media, tiny_model_dir):
    output = media / "cancelled"
    argv = [sys.executable, "-m", "motiondirector_core", "train",
            "--config", reference_data / "configs" / "config_single_video.yaml", "--model", tiny_model_dir,
            "--clips", media / "clip.mp4", "--output", output, "--steps", 1000, "--precision", "fp32",
            "--validation-every", 0, "--rank", 4, "--log-every", 1, *TINY]
    process = subprocess.Popen([str(a) for a in argv], cwd=REPO, env=cli_env(media), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        for line in process.stdout:
            if line.startswith("step 1/1000") or time.monotonic() > deadline:
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "cancelled: training cancelled at step" in err
    checkpoints = list(output.glob("checkpoint-*"))
    assert checkpoints and (checkpoints[0] / "temporal.safetensors").is_file()


def test_evaluate_scores_videos_and_folders_against_references(tmp_path, capsys):
    from motiondirector_core.toyworld.clips import make_clip
    from motiondirector_core.video_io import write_video

    refs, generated = tmp_path / "refs", tmp_path / "generated" / "000-a-blue-circle"  # a sweep's layout
    for seed in (0, 1):  # 16 frames, read at stride 2 as the main job trains on them
        write_video(refs / f"red_square_{seed}.mp4", make_clip(32, 16, "square", "red", "zigzag", seed=seed).frames)
    same = make_clip(32, 8, "circle", "blue", "zigzag", seed=3).frames
    write_video(generated / "a_same_motion.mp4", same)
    write_video(generated / "b_static.mp4", make_clip(32, 8, "circle", "blue", "static", seed=3).frames)
    (generated / "a_same_motion.json").write_text("{}")  # a sweep's settings beside its videos are not videos
    report_path = tmp_path / "report.json"
    assert main(["evaluate", "--generated", str(generated / "a_same_motion.mp4"), "--reference", str(refs),
                 "--reference-stride", "2", "--prompt", "a blue circle moving in a zigzag",
                 "--out", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert (report["samples"], report["references"]) == (1, 2)
    assert report["trajectory_fidelity"] > 0.7
    assert report["text_alignment"]["overall"] == 1.0 and report["appearance_leakage"]["overall"] == 0.0
    assert report["reference_appearance"]["shape"] == "square"
    assert report["reference_files"] == [str(refs / "red_square_0.mp4"), str(refs / "red_square_1.mp4")]
    printed = capsys.readouterr().out
    assert "1 generated against 2 reference clip(s)" in printed and "a_same_motion.mp4: blue circle" in printed

    assert main(["evaluate", "--generated", str(generated.parent), "--reference", str(refs), "--reference-stride", "2",
                 "--reference-frames", "8", "--out", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["samples"] == 2 and report["text_alignment"] is None  # no prompt: motion only
    moving, static = report["trajectory_fidelity_per_sample"]  # by file name: a_same_motion, b_static
    assert moving > 0.7 and static < 0.1


def test_evaluate_reports_bad_inputs_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a video")
    cases = [
        (["--generated", str(tmp_path / "missing.mp4"), "--reference", str(tmp_path)], "--generated"),
        (["--generated", str(tmp_path / "empty"), "--reference", str(tmp_path)], "holds no videos"),
        (["--generated", str(tmp_path / "notes.txt"), "--reference", str(tmp_path / "notes.txt"),
          "--reference-stride", "0"], "--reference-stride must be at least 1"),
    ]
    for argv, message in cases:
        assert main(["evaluate", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_the_help_states_each_familys_defaults():
    """The flags left unset take the family's defaults; the help text says them, and says them right."""
    from motiondirector_core.cli import build_parser
    from motiondirector_core.models import FAMILIES

    parser = build_parser()
    actions = {(name, a.dest): a.help for name, sub in parser._subparsers._group_actions[0].choices.items()
               for a in sub._actions}
    fields = {("generate", "width"): "width", ("generate", "frames"): "frames", ("generate", "steps"): "sample_steps",
              ("generate", "cfg"): "cfg", ("train", "steps"): "train_steps", ("train", "rank"): "rank",
              ("train", "height"): "height", ("invert", "width"): "width"}
    for (command, dest), field in fields.items():
        text = actions[(command, dest)]
        ms, ad = (getattr(FAMILIES[name].defaults, field) for name in ("modelscope", "animatediff"))
        assert f"ModelScope {ms:g}" in text and f"AnimateDiff {ad:g}" in text, (command, dest, text)
