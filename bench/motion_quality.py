#!/usr/bin/env python
"""Motion-quality benchmark on the embedded small-world model: does MotionDirector learn a motion the base model
has never seen, while new videos keep the prompt's appearance?

    python bench/motion_quality.py            # every study (STUDIES) in turn -> bench/results/, hours on a CPU
    python bench/motion_quality.py --study textured_background   # one study; the main table's summary refreshed
    python bench/motion_quality.py --rewrite  # every table again from the JSON the studies wrote
    python bench/motion_quality.py --quick    # one motion, fewer steps and samples: a smoke run into output/
    python bench/motion_quality.py --background textured --variants base,full --out DIR   # a run of your own

The studies: `main` (the table below, bench/results/motion_quality.md, which also sums up the others),
`deviations` (two of the reference trainer's ways, bench/results/deviations/), and four diagnoses of why the split
does not show on this model (bench/results/diagnosis/): `shape_captions` (references captioned without their
colour), `textured_background` (one texture behind them that no caption names), `known_motions` (the motions the
base model was pretrained on: the ceiling of trajectory fidelity in this world) and `varied_references` (each
reference in a look of its own).

For each held-out motion (zigzag, orbit, bounce, zoom in) the references are clips of one appearance (a red square
on a plain background; the clips differ only by the seed's jitter of the path). Six variants, the same training
steps, learning rate, rank and seed for every trained one:

    base      the pretrained model untouched
    coupled   one LoRA on spatial and temporal layers, plain diffusion loss (no split, no debiasing)
    dual      spatial + temporal LoRAs with the dual-path step, without the appearance-debiased loss (beta 0)
    full      MotionDirector: dual path and the appearance-debiased loss (beta 1)
    temporal  full without the spatial path: the motion LoRA trained alone (train=temporal), debiased loss
    attention full, with the motion LoRA trained on the temporal attention layers only (motion_layers=attention)

and, with --variants, two of the reference trainer's ways that differ from ours (the correctness issue's question):

    full-reference-order   full, the temporal pass seeing the spatial LoRA as the step began (update_order=reference)
    full-output-dropout    full, LoRA dropout on the adapter's output as the reference's layer
                           (dropout_placement=output)

and one that weighs the debiased loss further toward what frames do not share:

    full-beta-4            full with beta 4 (phi(e) = sqrt(17) e - 4 e[anchor]): the anchor frame's share four times
                           the method's, so what every frame shows (the appearance) weighs less in the motion loss

Each then samples new appearances (prompts naming other colours and shapes, x seeds): the motion LoRA at 1 and the
spatial LoRA off (the coupled LoRA at 1, having no split). Two probes, sampled from the full variant's motion LoRA
with part of its layers left out (no training of their own), show where a leak lives:

    full:attention      only the temporal self-attention layers (attn1, attn2) of the motion LoRA
    full:feed-forward   only the temporal transformers' feed-forward layers (ff), which act on each position alone

and, with --motion-scales, the whole of it at other strengths (the paper's gamma, which trades motion for look):

    full@0.75           the full variant's motion LoRA sampled at strength 0.75

Scores against the references (metrics/evaluate.py):
motion fidelity (point tracks compared both ways), the object's trajectory fidelity, text alignment (colour and
shape the prompt names) and appearance leakage (the reference's colour or shape instead).
"""

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from motiondirector_core.clips import Clip  # noqa: E402
from motiondirector_core.files import write_json, write_text  # noqa: E402
from motiondirector_core.lora import LoraWeights, remove_adapter  # noqa: E402
from motiondirector_core.lora_files import read_lora_source  # noqa: E402
from motiondirector_core.metrics.evaluate import evaluate  # noqa: E402
from motiondirector_core.metrics.toyworld_background import background_share  # noqa: E402
from motiondirector_core.models import load_model  # noqa: E402
from motiondirector_core.pipeline import LoraSet, Pipeline  # noqa: E402
from motiondirector_core.sample import SampleSettings, generate  # noqa: E402
from motiondirector_core.toyworld.clips import HELD_OUT_MOTIONS, caption, make_clip  # noqa: E402
from motiondirector_core.train import train  # noqa: E402
from motiondirector_core.train_config import TrainConfig  # noqa: E402
from motiondirector_core.video_io import write_image  # noqa: E402

MODEL = REPO / "models" / "toyworld-t2v"
RESULTS = REPO / "bench" / "results"
REFERENCE = dict(shape="square", colour="red")
REFERENCE_SEEDS = (0, 1, 2)
VARIED_LOOKS = (("square", "red"), ("triangle", "purple"), ("circle", "white"))  # one per seed, references="varied"
BACKGROUND_SEED = 7  # the one texture behind every reference clip with --background textured
NEW_APPEARANCES = (("circle", "blue"), ("triangle", "green"), ("circle", "yellow"))
VARIANTS = ("base", "coupled", "dual", "full", "temporal", "attention")  # the default run
EXTRA_VARIANTS = ("full-reference-order", "full-output-dropout", "full-beta-4")
PROBES = {"full:attention": (".attn1.", ".attn2."), "full:feed-forward": (".ff.",)}  # kept layers of the motion LoRA
TRAINING = {  # variant -> TrainConfig fields that differ
    "coupled": dict(train="coupled"),
    "dual": dict(train="both", beta=0.0),
    "full": dict(train="both", beta=1.0),
    "temporal": dict(train="temporal", beta=1.0),
    "attention": dict(train="both", beta=1.0, motion_layers="attention"),
    "full-reference-order": dict(train="both", beta=1.0, update_order="reference"),
    "full-output-dropout": dict(train="both", beta=1.0, dropout_placement="output"),
    "full-beta-4": dict(train="both", beta=4.0),
}
BOOTSTRAP = 2000  # resamples for the 95% intervals


@dataclass
class Settings:
    motions: tuple[str, ...] = HELD_OUT_MOTIONS
    steps: int = 900
    lr: float = 1e-3
    rank: int = 16
    train_seed: int = 0
    sample_seeds: tuple[int, ...] = (0, 1, 2)
    sample_steps: int = 25
    cfg: float = 7.5
    size: int = 32
    frames: int = 8
    variants: tuple[str, ...] = VARIANTS
    captions: str = "look"  # look: the references' captions name colour and shape; shape: the shape alone
    background: str = "plain"  # textured: the references share one texture that no caption names
    references: str = "one"  # varied: each reference clip has its own look (VARIED_LOOKS), no look in common
    motion_scales: tuple[float, ...] = ()  # strengths other than 1 at which the full motion LoRA is also sampled


@dataclass(frozen=True)
class Study:
    name: str
    folder: str  # under bench/results
    question: str  # what it asks, as the main table's summary says it
    changes: dict  # the Settings fields that differ from the main study's

    def settings(self) -> Settings:
        return Settings(**self.changes)

    def command(self) -> str:
        return "python bench/motion_quality.py" + ("" if self.name == "main" else f" --study {self.name}")


STUDIES = (
    Study("main", "", "Each variant on the references as they are: captions naming colour and shape, plain "
          "background.", {}),
    Study("deviations", "deviations", "Two ways the reference trainer differs from ours (issue 17): the temporal "
          "pass seeing the spatial LoRA as the step began, and dropout on the adapter's output.",
          dict(variants=("full", "full-reference-order", "full-output-dropout"))),
    Study("shape_captions", "diagnosis/shape_captions", "The references captioned by their shape alone (\"a square "
          "moving in a zigzag\"), their colour left to the pixels.",
          dict(captions="shape", variants=("base", "coupled", "dual", "full"))),
    Study("textured_background", "diagnosis/textured_background", "One texture behind every reference that no "
          "caption names: which motion LoRAs carry it into new subjects' videos (background share)?",
          dict(background="textured", variants=("base", "coupled", "dual", "full", "temporal", "full-beta-4"))),
    Study("known_motions", "diagnosis/known_motions", "The four motions the base model was pretrained on (left, "
          "right, up, down), as references and prompts: how closely this world draws a path it already knows, the "
          "ceiling a learned motion's trajectory fidelity can be read against.",
          dict(motions=("left", "right", "up", "down"), variants=("base", "coupled", "full"))),
    Study("varied_references", "diagnosis/varied_references", "Each of the three references in a look of its own "
          "(a red square, a purple triangle, a white circle), captioned with it: does a motion shown by several "
          "looks reach new subjects where one look's does not? No reference look to leak, so no leakage columns.",
          dict(references="varied", variants=("base", "coupled", "dual", "full"))),
)
STUDY = {study.name: study for study in STUDIES}


def reference_looks(references: str = "one") -> tuple[tuple[str, str], ...]:
    """(shape, colour) of each reference clip, one per REFERENCE_SEEDS: the one REFERENCE, or VARIED_LOOKS."""
    if references == "varied":
        return VARIED_LOOKS
    return ((REFERENCE["shape"], REFERENCE["colour"]),) * len(REFERENCE_SEEDS)


def reference_clips(motion: str, settings: Settings) -> list[Clip]:
    """The references of a motion, captioned with their whole look ("a red square moving in a zigzag") or, with
    captions="shape", with their class alone ("a square moving in a zigzag"): then the caption does not carry the
    colour, as a real caption names "a man", not this man, and the colour is what can leak.
    With background="textured" the clips share one texture behind the square that no caption names: a look the
    pixels alone carry, as this man's street in a real clip. With references="varied" each clip has a look of its
    own (VARIED_LOOKS), as several people lifting weights teach one motion."""
    clips = []
    for seed, (shape, colour) in zip(REFERENCE_SEEDS, reference_looks(settings.references)):
        toy = make_clip(size=settings.size, frames=settings.frames, motion=motion, seed=seed, shape=shape,
                        colour=colour, background=settings.background, background_seed=BACKGROUND_SEED)
        prompt = toy.caption if settings.captions == "look" else caption(shape, None, toy.motion)
        clips.append(Clip(frames=toy.frames, prompt=prompt, source=f"{motion} seed {seed}"))
    return clips


def train_variant(model, variant: str, motion: str, clips: list[Clip], settings: Settings, work: Path):
    """(LoraSet, seconds) for a trained variant."""
    config = TrainConfig(
        output=str(work / motion.replace(" ", "_") / variant), steps=settings.steps, rank=settings.rank,
        lr_spatial=settings.lr, lr_temporal=settings.lr, width=settings.size, height=settings.size,
        frames=settings.frames, seed=settings.train_seed, checkpoint_every=0, **TRAINING[variant],
    )
    began = time.perf_counter()
    result = train(model, clips, config)
    seconds = time.perf_counter() - began
    for name in result.files:  # the trainer leaves its adapters in the UNet; the pipeline loads its own copies
        remove_adapter(model.unet, name)
    return LoraSet(tuple(read_lora_source(result.final)), str(result.final)), seconds


def motion_layers(lora: LoraSet, kept: tuple[str, ...]) -> LoraSet:
    """The set with its motion LoRA cut down to the layers whose path holds one of `kept` (the rest stay at zero)."""
    loras = []
    for weights in lora.loras:
        if weights.kind == "temporal":
            state = {k: v for k, v in weights.state.items() if any(part in k for part in kept)}
            weights = LoraWeights(weights.kind, state, dict(weights.metadata), f"{weights.source} {kept}")
        loras.append(weights)
    return LoraSet(tuple(loras), f"{lora.source} {kept}")


def strength_probe(scale: float) -> str:
    return f"full@{scale:g}"


def sample_variant(base: Pipeline, lora: LoraSet | None, motion: str, settings: Settings,
                   motion_scale: float = 1.0) -> list[tuple[str, torch.Tensor]]:
    pipeline = base if lora is None else base.with_loras(lora, motion_scale=motion_scale, appearance_scale=0.0)
    pipeline.activate()
    samples = []
    for shape, colour in NEW_APPEARANCES:
        prompt = caption(shape, colour, motion)
        for seed in settings.sample_seeds:
            sample = SampleSettings(prompt=prompt, frames=settings.frames, width=settings.size, height=settings.size,
                                    steps=settings.sample_steps, cfg=settings.cfg, seed=seed)
            samples.append((prompt, generate(base.model, sample)))
    return samples


NO_LOOK = {"colour": None, "shape": None}  # the reference appearance of references without one look in common


def score(samples, references: list[Clip], textured: bool = False, varied: bool = False) -> dict:
    """The evaluation report of each prompt's samples (all its seeds), their summary and one record per sample;
    with textured references, each sample's share of their background pattern too. Varied references have no one
    look that could leak: their reports carry no reference appearance and no leakage."""
    reference_prompt = references[0].prompt
    reports = []
    for prompt in dict.fromkeys(p for p, _ in samples):
        frames = [video for p, video in samples if p == prompt]
        report = evaluate(frames, [c.frames for c in references], prompt=prompt, reference_prompt=reference_prompt)
        if varied:
            report |= {"reference_appearance": dict(NO_LOOK),
                       "appearance_leakage": {"overall": None, **NO_LOOK}}
        if textured:
            shares = [background_share(video, references[0].frames) for video in frames]
            report |= {"background_share_per_sample": shares, "background_share": sum(shares) / len(shares)}
        reports.append(report)
    return {**summary(reports), "per_prompt": reports, "per_sample": [s for r in reports for s in per_sample(r)]}


def per_sample(report: dict) -> list[dict]:
    """Each sample's scores from a prompt's report: its fidelities, 1/0 for the prompt's look kept (colour and shape
    both, then each alone) and for the reference's colour or shape leaked in (None where the prompt names the
    reference's)."""
    asked, reference = report["prompt"], report["reference_appearance"]
    check_colour = None not in (asked["colour"], reference["colour"]) and asked["colour"] != reference["colour"]
    check_shape = None not in (asked["shape"], reference["shape"]) and asked["shape"] != reference["shape"]
    shares = report.get("background_share_per_sample")
    out = []
    for i, found in enumerate(report["generated_objects"]):
        colour = float(found["colour"] == reference["colour"]) if check_colour else None
        shape = float(found["shape"] == reference["shape"]) if check_shape else None
        out.append({
            "motion_fidelity": report["motion_fidelity_per_sample"][i],
            "trajectory_fidelity": report["trajectory_fidelity_per_sample"][i],
            "text_alignment": float((asked["colour"] in (None, found["colour"])) and
                                    (asked["shape"] in (None, found["shape"]))),
            "text_alignment_colour": None if asked["colour"] is None else float(found["colour"] == asked["colour"]),
            "text_alignment_shape": None if asked["shape"] is None else float(found["shape"] == asked["shape"]),
            "leakage": None if colour is None and shape is None else float(bool(colour) or bool(shape)),
            "leakage_colour": colour, "leakage_shape": shape,
            "background_share": shares[i] if shares else None,
        })
    return out


def interval(values: list[float], seed: int = 0) -> tuple[float, float] | None:
    """The 95% bootstrap interval of the mean of `values` (resampling the samples), None for fewer than two."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    data = torch.tensor(values, dtype=torch.float64)
    picks = torch.randint(len(values), (BOOTSTRAP, len(values)), generator=torch.Generator().manual_seed(seed))
    means = data[picks].mean(dim=1)
    return float(means.quantile(0.025)), float(means.quantile(0.975))


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def summary(reports: list[dict]) -> dict:
    """Means over the prompts: motion, trajectory, text alignment and leakage (overall, and by colour and shape)."""
    out = {"motion_fidelity": _mean([r["motion_fidelity"] for r in reports]),
           "trajectory_fidelity": _mean([r["trajectory_fidelity"] for r in reports])}
    for name, key in (("text_alignment", "text_alignment"), ("leakage", "appearance_leakage")):
        out[name] = _mean([r[key]["overall"] for r in reports])
        for part in ("colour", "shape"):
            out[f"{name}_{part}"] = _mean([r[key][part] for r in reports])
    out["background_share"] = _mean([r.get("background_share") for r in reports])
    out["samples"] = sum(r["samples"] for r in reports)
    return out


def run(settings: Settings, work: Path, model_dir: Path = MODEL, printer=print) -> dict:
    model = load_model(model_dir, dtype="fp32", device="cpu")
    base = Pipeline(model)
    rows, sheets = [], []
    strengths = {strength_probe(x): x for x in settings.motion_scales}
    probes = (*PROBES, *strengths) if "full" in settings.variants else ()
    for motion in settings.motions:
        references = reference_clips(motion, settings)
        sheet = [references[0].frames]
        trained = {}
        for variant in (*settings.variants, *probes):
            if variant in PROBES:
                lora, seconds = motion_layers(trained["full"], PROBES[variant]), 0.0
            elif variant in strengths:
                lora, seconds = trained["full"], 0.0
            elif variant == "base":
                lora, seconds = None, 0.0
            else:
                lora, seconds = train_variant(model, variant, motion, references, settings, work)
                trained[variant] = lora
            samples = sample_variant(base, lora, motion, settings, strengths.get(variant, 1.0))
            scores = score(samples, references, textured=settings.background == "textured",
                           varied=settings.references == "varied")
            rows.append({"motion": motion, "variant": variant, "train_seconds": round(seconds, 1), **scores})
            if variant not in probes:
                sheet.append(samples[0][1])
            leakage = "-" if scores["leakage"] is None else f"{scores['leakage']:.2f}"
            printer(f"{motion:8s} {variant:8s} motion {scores['motion_fidelity']:.3f} "
                    f"trajectory {scores['trajectory_fidelity']:.3f} text {scores['text_alignment']:.2f} "
                    f"leakage {leakage} train {seconds:.0f} s")
        # one row per motion: the reference clip, then a sample of each variant, every clip's frames left to right
        sheets.append(torch.cat([clip.permute(1, 0, 2, 3).flatten(1, 2) for clip in sheet], dim=1))
    info_path = Path(model_dir) / "toyworld.json"
    caption_eval = json.loads(info_path.read_text()).get("caption_eval", {}) if info_path.is_file() else {}
    return {"settings": vars(settings), "reference": REFERENCE | {"background": settings.background},
            "reference_looks": reference_looks(settings.references),
            "new_appearances": NEW_APPEARANCES, "model": str(model_dir), "model_caption_eval": caption_eval,
            "rows": rows, "sheet": torch.cat(sheets, dim=0)}


HEADINGS = {"motion_fidelity": "motion fidelity", "trajectory_fidelity": "trajectory fidelity",
            "text_alignment": "text alignment", "text_alignment_colour": "prompt's colour",
            "text_alignment_shape": "prompt's shape", "leakage": "leakage", "leakage_colour": "leaked colour",
            "leakage_shape": "leaked shape", "background_share": "background share"}
COLUMNS = (*HEADINGS, "train_seconds")
WITH_INTERVALS = ("trajectory_fidelity", "text_alignment", "text_alignment_colour", "text_alignment_shape", "leakage",
                  "background_share")


def averages(rows: list[dict]) -> list[dict]:
    """One row per variant over all motions: the means of the motions' means, intervals over all their samples."""
    out = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        samples = [s for r in mine for s in r.get("per_sample", [])]
        out.append({"variant": variant, **{key: _mean([r.get(key) for r in mine]) for key in COLUMNS},
                    "per_sample": samples})
    return out


def _cell(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _with_interval(row: dict, key: str, digits: int) -> str:
    bounds = interval([s.get(key) for s in row.get("per_sample", [])])
    value = row.get(key)
    cell = _cell(value, digits)
    return cell if bounds is None or value is None else f"{cell} [{bounds[0]:.{digits}f}, {bounds[1]:.{digits}f}]"


def table(rows: list[dict], first: str) -> list[str]:
    """The markdown table; the background column only where the references were textured."""
    keys = [k for k in HEADINGS if k != "background_share" or any(r.get(k) is not None for r in rows)]
    lines = [f"| {first} | variant | {' | '.join(HEADINGS[k] for k in keys)} | train s |",
             "|---" * (len(keys) + 3) + "|"]
    digits = {k: 3 if k in ("motion_fidelity", "trajectory_fidelity") else 2 for k in keys}
    for r in rows:
        cells = [_with_interval(r, k, digits[k]) if k in WITH_INTERVALS else _cell(r.get(k), digits[k]) for k in keys]
        lines.append(f"| {r.get('motion', 'all')} | {r['variant']} | {' | '.join(cells)} | "
                     f"{_cell(r['train_seconds'], 0)} |")
    return lines


def write_results(result: dict, out: Path, command: str, minutes: float) -> None:
    """motion_quality.png (the samples), .json (every report) and .md (the tables)."""
    out.mkdir(parents=True, exist_ok=True)
    data = {k: v for k, v in result.items() if k != "sheet"} | {"command": command, "minutes": round(minutes, 1),
                                                                 "threads": torch.get_num_threads()}
    write_json(out / "motion_quality.json", data)
    write_table(data, out)
    write_image(out / "motion_quality.png", result["sheet"])


def load_results(out: Path) -> dict:
    """A run's motion_quality.json, each row summarised anew from its reports."""
    data = json.loads((out / "motion_quality.json").read_text())
    for row in data["rows"]:
        row.update(summary(row["per_prompt"]))
        row["per_sample"] = [s for report in row["per_prompt"] for s in per_sample(report)]
    return data


def rewrite_table(out: Path) -> None:
    """motion_quality.md again from motion_quality.json."""
    write_table(load_results(out), out)


def studies_summary(root: Path) -> list[str]:
    """The main table's last section: every other study's means over the motions, read from its JSON."""
    lines = ["## The other studies: means over the motions", ""]
    for study in STUDIES[1:]:
        folder = root / study.folder
        lines += [f"### {study.name}", "", study.question]
        if not (folder / "motion_quality.json").is_file():
            lines[-1] += f" Not run yet: `{study.command()}`."
            lines.append("")
            continue
        data = load_results(folder)
        lines[-1] += (f" Made by `{data['command']}` in {data['minutes']:.0f} min; per motion and the settings in "
                      f"[{study.folder}/motion_quality.md]({study.folder}/motion_quality.md).")
        lines += ["", *table(averages(data["rows"]), "motions"), ""]
    return lines


def write_main_table(root: Path | None = None) -> None:
    """The main study's motion_quality.md with every other study summed up after it."""
    root = RESULTS if root is None else root
    write_table(load_results(root), root, studies_summary(root))


def reference_words(settings: dict) -> str:
    """The study's references, as the table's first line says them."""
    background = ("one texture behind all of them that no caption names" if settings.get("background") == "textured"
                  else "plain background")
    looks = reference_looks(settings.get("references", "one"))
    looks = list(dict.fromkeys(f"a {colour} {shape}" for shape, colour in looks))
    if len(looks) > 1:
        return f"{len(REFERENCE_SEEDS)} clips per motion, each in a look of its own ({', '.join(looks)}; {background})"
    return f"{len(REFERENCE_SEEDS)} clips of {looks[0]} ({background}) per motion"


def write_table(data: dict, out: Path, more: list[str] = ()) -> None:
    s, rows, command, minutes = data["settings"], data["rows"], data["command"], data["minutes"]
    variants = list(s.get("variants", VARIANTS))
    shape = data.get("model_caption_eval", {}).get("shape")
    shape_rate = "about 73%" if shape is None else f"{shape:.0%}"  # results made before the JSON recorded it
    lines = [
        "# Motion quality on the embedded small-world model",
        "",
        f"Made by `{command}` in {minutes:.0f} min ({data.get('threads', 2)} CPU threads). "
        f"References: {reference_words(s)}, captioned "
        f"{'by their shape alone (the colour unnamed)' if s.get('captions') == 'shape' else 'with colour and shape'}; "
        f"{s['steps']} training steps, lr {s['lr']:g}, "
        f"rank {s['rank']}, training seed {s['train_seed']}; samples: "
        f"{len(NEW_APPEARANCES)} new appearances x seeds {list(s['sample_seeds'])}, {s['sample_steps']} DDIM steps, "
        f"cfg {s['cfg']:g}, {s['frames']} frames at {s['size']} px, motion LoRA at 1, spatial LoRA off.",
        "",
        "Motion and trajectory fidelity: -1..1, higher is the reference's motion. Text alignment: share of samples "
        "with the prompt's colour and shape (then each alone). Leakage: share with the reference's colour or shape (then each "
        "alone). Colour, shape and path are read from the pixels (motiondirector_core/metrics); the base model "
        f"draws the asked shape in {shape_rate} of samples (its caption check), so a misread or misdrawn shape "
        "counts as leaked square now and then even without any training. Rows full:attention and "
        "full:feed-forward sample the full variant's motion LoRA restricted to those temporal layers"
        + (", rows full@X the whole of it at strength X" if s.get("motion_scales") else "") + ". In brackets: "
        "95% bootstrap intervals of the mean over the row's samples; call two rows different only where they part."
        + (" Background share: how much of the references' texture a sample's backdrop carries (least-squares "
           "slope, 1 the texture at full contrast, 0 none; metrics/toyworld_background.py)."
           if s.get("background") == "textured" else ""),
        "",
        "## Mean over the motions",
        "",
        *table(averages(rows), "motions"),
        "",
        "## Per motion",
        "",
        *table(rows, "motion"),
        "",
        "`motion_quality.png`: one row per motion: a reference clip, then the first sample of "
        f"{', '.join(variants[:-1])} and {variants[-1]} ({s['frames']} frames each, left to right).",
        "",
        *more,
    ]
    write_text(out / "motion_quality.md", "\n".join(lines))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", help=f"comma-separated studies to run (default all: {', '.join(STUDY)})")
    parser.add_argument("--quick", action="store_true", help="one motion, 60 steps, one seed: a smoke run")
    parser.add_argument("--motions", help=f"comma-separated subset of {', '.join(HELD_OUT_MOTIONS)}")
    parser.add_argument("--steps", type=int, help="training steps of every variant (default 900)")
    parser.add_argument("--lr", type=float, help="learning rate of every LoRA (default 1e-3)")
    parser.add_argument("--rank", type=int, help="LoRA rank (default 16)")
    parser.add_argument("--captions", choices=("look", "shape"), help="references captioned with their whole look "
                        "(default) or their shape alone, the colour unnamed")
    parser.add_argument("--background", choices=("plain", "textured"),
                        help="the references' background: plain (default) or one texture no caption names")
    parser.add_argument("--references", choices=("one", "varied"), help="the references in one look (default) or "
                        "each in a look of its own")
    parser.add_argument("--variants", help=f"comma-separated variants to run (default {','.join(VARIANTS)}; also "
                                           f"{', '.join(EXTRA_VARIANTS)}); the probes run with full")
    parser.add_argument("--motion-scales", help="comma-separated strengths other than 1 at which the full "
                        "variant's motion LoRA is also sampled (rows full@X), e.g. 0.75,0.5")
    parser.add_argument("--model", type=Path, default=MODEL, help="the small-world model folder")
    parser.add_argument("--out", type=Path, help="results folder of a run with changed settings (output/bench with "
                                                 "--quick); the studies write under bench/results")
    parser.add_argument("--work", type=Path, default=REPO / "output" / "bench" / "motion_quality_runs",
                        help="where the trained LoRAs go (emptied first; default output/bench/motion_quality_runs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rewrite", action="store_true", help="only rewrite the tables from their JSON: every "
                        "study's, or the --out folder's")
    return parser.parse_args(argv)


CHANGES = ("motions", "steps", "lr", "rank", "captions", "background", "references", "variants", "motion_scales")


def changed_settings(args, settings: Settings) -> Settings:
    """`settings` with what the command line changes."""
    if args.motions:
        settings.motions = tuple(m.strip() for m in args.motions.split(","))
    if args.variants:
        settings.variants = tuple(v.strip() for v in args.variants.split(","))
        unknown = sorted(set(settings.variants) - set(VARIANTS) - set(EXTRA_VARIANTS))
        if unknown:
            raise SystemExit(f"unknown variants {unknown}: use {', '.join(VARIANTS + EXTRA_VARIANTS)}")
    if args.motion_scales:
        try:
            settings.motion_scales = tuple(float(x) for x in args.motion_scales.split(","))
        except ValueError:
            raise SystemExit("--motion-scales takes comma-separated numbers, e.g. 0.75,0.5; "
                             f"got {args.motion_scales!r}")
        if "full" not in settings.variants:
            raise SystemExit("--motion-scales samples the full variant's motion LoRA: include full in --variants")
    for name in ("captions", "background", "references", "steps", "lr", "rank"):
        if getattr(args, name) is not None:
            setattr(settings, name, getattr(args, name))
    return settings


def chosen_studies(args) -> list[Study]:
    names = [n.strip() for n in args.study.split(",")] if args.study else list(STUDY)
    unknown = [n for n in names if n not in STUDY]
    if unknown:
        raise SystemExit(f"unknown studies {unknown}: use {', '.join(STUDY)}")
    return [STUDY[n] for n in names]


def run_and_write(settings: Settings, out: Path, model: Path, work: Path, command: str, threads: int) -> None:
    torch.set_num_threads(threads)
    if work.exists():
        import shutil

        shutil.rmtree(work)
    began = time.time()
    result = run(settings, work, model)
    write_results(result, out, command, (time.time() - began) / 60)
    print(f"wrote {out / 'motion_quality.md'}")


def main(argv=None) -> int:
    args = parse_args(argv)
    changed = (args.quick or args.out is not None or args.model != MODEL
               or any(getattr(args, name) is not None for name in CHANGES))
    if args.rewrite:
        folders = [args.out] if args.out else [RESULTS / s.folder for s in STUDIES
                                               if (RESULTS / s.folder / "motion_quality.json").is_file()]
        for folder in folders:
            rewrite_table(folder)
            print(f"wrote {folder / 'motion_quality.md'}")
        if not args.out and (RESULTS / "motion_quality.json").is_file():
            write_main_table()
        return 0
    if changed:  # a run of one's own: never into bench/results, which holds the studies as STUDIES defines them
        studies = chosen_studies(args) if args.study else [STUDY["main"]]
        if len(studies) != 1:
            raise SystemExit("changed settings apply to one study: name one with --study, or none (main)")
        if args.out is None and not args.quick:
            raise SystemExit("a run with changed settings needs --out DIR (bench/results holds the studies as "
                             "STUDIES defines them; run those with no setting changed and no --out)")
        settings = studies[0].settings()
        if args.quick:
            settings = Settings(motions=("orbit",), steps=60, sample_seeds=(0,), **studies[0].changes)
        out = args.out or REPO / "output" / "bench"
        command = "python bench/motion_quality.py " + " ".join(sys.argv[1:] if argv is None else argv)
        run_and_write(changed_settings(args, settings), out, args.model, args.work, command.strip(), args.threads)
        return 0
    for study in chosen_studies(args):
        run_and_write(study.settings(), RESULTS / study.folder, args.model, args.work, study.command(), args.threads)
        if (RESULTS / "motion_quality.json").is_file():
            write_main_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
