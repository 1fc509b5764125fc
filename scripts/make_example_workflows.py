#!/usr/bin/env python
"""Write the example workflows: example_workflows/<name>.json (UI format) and example_workflows/api/<name>.json.

    python scripts/make_example_workflows.py

The graphs are described below; input order, defaults and output slots come from the node definitions of
a real ComfyUI (the test host from scripts/install_host.sh, started here for a few seconds with this pack),
so the files match what the frontend saves. The API copies are the UI files converted as the frontend
would (tests/integration/workflow_convert.py). The committed files are this script's output.
"""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.host.server import ComfyServer  # noqa: E402
from tests.integration.workflow_convert import input_specs, is_widget, ui_only_values, ui_to_api  # noqa: E402

OUT = REPO / "example_workflows"
PACK = "ComfyUI-MotionDirector"
MODEL = "toyworld-t2v"  # the pack's embedded default model
INPUTS = "motiondirector_examples"  # where the pack copies example_workflows/inputs in ComfyUI's input folder
LORA = "orbit_temporal.safetensors"  # the motion LoRA that example 1 saves
SIZE = dict(width=32, height=32)  # the embedded model's native clip: 8 frames of 32x32
SAMPLE = dict(frames=8, steps=25, cfg=7.5, **SIZE)
LEARN = dict(rank=16, lr_spatial=1e-3, lr_temporal=1e-3)  # what bench/motion_quality.py measured on this model
MOTION_STEPS = 900  # ditto: at 300 steps the embedded model's subject barely leaves its place
COLUMN, GAP = 380, 30
# Example 7's files: the names of the checkpoint and motion module most AnimateDiff users have (the tests put tiny
# models under these names); AnimateDiff's own size.
AD_CHECKPOINT, AD_MOTION_MODULE = "v1-5-pruned-emaonly.safetensors", "v3_sd15_mm.ckpt"
AD_SIZE = dict(width=512, height=512)


@dataclass
class Node:
    id: int
    type: str
    widgets: dict
    links: dict  # input name -> (Node, output name)
    title: str | None = None

    def __getitem__(self, output: str) -> tuple["Node", str]:
        return self, output


@dataclass
class Graph:
    name: str
    note: str
    nodes: list[Node] = field(default_factory=list)

    def add(self, kind: str, title: str | None = None, **inputs) -> Node:
        links = {k: v for k, v in inputs.items() if isinstance(v, tuple)}
        widgets = {k: v for k, v in inputs.items() if not isinstance(v, tuple)}
        node = Node(len(self.nodes) + 2, kind, widgets, links, title)  # id 1 is the note
        self.nodes.append(node)
        return node


def clips_of(g: Graph, path: str, prompt: str = "", frames: int = 8, stride: int = 2):
    # The example clips are 16 frames at 8 fps: every 2nd frame spans the whole motion (fps 0: by stride).
    return g.add("MD_LoadClips", path=f"{INPUTS}/{path}", prompt=prompt, frames=frames, stride=stride, fps=0.0,
                 **SIZE)


def save_video(g: Graph, frames, prefix: str) -> None:
    video = g.add("CreateVideo", images=frames, fps=8.0)
    g.add("SaveVideo", video=video["VIDEO"], filename_prefix=f"motiondirector/examples/{prefix}")


def motion_from_one_video() -> Graph:
    g = Graph("1_motion_from_one_video", (
        "## Motion from one video\nLearns the **orbit** of the reference clip (a motion the base model never saw) as a "
        "temporal LoRA, then gives it to a new subject, starting from the inverted reference (noise prior).\n\n"
        "The LoRA is also saved as `orbit_temporal.safetensors` for examples 3 and 6. The inputs are copied into "
        f"ComfyUI's input folder under `{INPUTS}/` when the pack loads."))
    model = g.add("MD_LoadBaseModel", model=MODEL)
    clips = clips_of(g, "orbit.mp4")
    train = g.add("MD_TrainMotion", pipeline=model["pipeline"], clips=clips["clips"], train="both", steps=MOTION_STEPS,
                  checkpoint_every=300, run_name="orbit", **LEARN)
    g.add("LossGraphNode", loss=train["loss"], filename_prefix="motiondirector/examples/orbit_loss")
    g.add("MD_SaveLora", lora=train["lora"], filename_prefix="orbit")
    styled = g.add("MD_ApplyLora", pipeline=model["pipeline"], lora=train["lora"], temporal_scale=1.0,
                   spatial_scale=0.0)
    noise = g.add("MD_InvertReference", pipeline=model["pipeline"], images=clips["first_clip"], steps=30)
    frames = g.add("MD_Sample", pipeline=styled["pipeline"], noise=noise["noise"], prompt="a green triangle orbiting",
                   noise_prior=0.3, **SAMPLE)
    save_video(g, frames["frames"], "orbit_green_triangle")
    return g


def motion_concept_from_clips() -> Graph:
    g = Graph("2_motion_concept_from_clips", (
        "## A motion concept from several clips\nThree clips of one motion (a **zigzag**) with different subjects, "
        "each with its caption in a `.txt` beside it: the temporal LoRA learns what they share, the motion, and the "
        "spatial LoRA takes their looks. Generates two new subjects with the motion alone (spatial scale 0)."))
    model = g.add("MD_LoadBaseModel", model=MODEL)
    clips = clips_of(g, "zigzag")
    train = g.add("MD_TrainMotion", pipeline=model["pipeline"], clips=clips["clips"], train="both", steps=MOTION_STEPS,
                  checkpoint_every=300, run_name="zigzag", **LEARN)
    g.add("LossGraphNode", loss=train["loss"], filename_prefix="motiondirector/examples/zigzag_loss")
    styled = g.add("MD_ApplyLora", pipeline=model["pipeline"], lora=train["lora"], temporal_scale=1.0,
                   spatial_scale=0.0)
    for prompt, prefix in (("a red circle moving in a zigzag", "zigzag_red_circle"),
                           ("a white square moving in a zigzag", "zigzag_white_square")):
        frames = g.add("MD_Sample", pipeline=styled["pipeline"], prompt=prompt, noise_prior=0.0, **SAMPLE)
        save_video(g, frames["frames"], prefix)
    return g


def generate_with_saved_lora() -> Graph:
    g = Graph("3_generate_with_saved_lora", (
        f"## Generate with a saved LoRA\nNo training: loads `{LORA}` (saved by example 1) from `models/motiondirector` "
        "or `output/motiondirector`, and applies it to the base model. Put LoRAs you download in "
        "`models/motiondirector`, then refresh (R) to see them in the list."))
    model = g.add("MD_LoadBaseModel", model=MODEL)
    lora = g.add("MD_LoadLora", lora_name=LORA)
    styled = g.add("MD_ApplyLora", pipeline=model["pipeline"], lora=lora["lora"], temporal_scale=1.0,
                   spatial_scale=0.0)
    frames = g.add("MD_Sample", pipeline=styled["pipeline"], prompt="a blue circle orbiting", seed=1, noise_prior=0.0,
                   **SAMPLE)
    save_video(g, frames["frames"], "saved_lora_blue_circle")
    return g


def appearance_plus_motion() -> Graph:
    g = Graph("4_appearance_plus_motion", (
        "## Appearance from images + motion from another run\nA spatial LoRA learns a subject from still images "
        "(train = spatial); a temporal LoRA learns the zigzag from clips of other subjects (train = temporal). Two "
        "Apply nodes stack them: the look of one, the motion of the other."))
    model = g.add("MD_LoadBaseModel", model=MODEL)
    images = clips_of(g, "appearance", frames=1, stride=1)
    look = g.add("MD_TrainMotion", pipeline=model["pipeline"], clips=images["clips"], train="spatial", steps=100,
                 checkpoint_every=0, run_name="white_circle_look", **LEARN)
    clips = clips_of(g, "zigzag")
    motion = g.add("MD_TrainMotion", pipeline=model["pipeline"], clips=clips["clips"], train="temporal",
                   steps=MOTION_STEPS, checkpoint_every=0, run_name="zigzag_motion", **LEARN)
    with_look = g.add("MD_ApplyLora", pipeline=model["pipeline"], lora=look["lora"], temporal_scale=0.0,
                      spatial_scale=1.0)
    mixed = g.add("MD_ApplyLora", pipeline=with_look["pipeline"], lora=motion["lora"], temporal_scale=1.0,
                  spatial_scale=0.0)
    frames = g.add("MD_Sample", pipeline=mixed["pipeline"], prompt="a white circle moving in a zigzag",
                   noise_prior=0.0, **SAMPLE)
    save_video(g, frames["frames"], "white_circle_zigzag")
    return g


def animate_an_image() -> Graph:
    g = Graph("5_animate_an_image", (
        "## Animate an image with a learned motion\nThe image is inverted into a noise prior (spread over every "
        "frame), so the video starts from its layout and colours; the temporal LoRA, learned from the orbit clip, "
        "moves it. Raise noise_prior to keep more of the image."))
    model = g.add("MD_LoadBaseModel", model=MODEL)
    clips = clips_of(g, "orbit.mp4")
    train = g.add("MD_TrainMotion", pipeline=model["pipeline"], clips=clips["clips"], train="temporal",
                  steps=MOTION_STEPS, checkpoint_every=0, run_name="orbit_motion", **LEARN)
    image = g.add("LoadImage", image=f"{INPUTS}/still.png")
    noise = g.add("MD_InvertReference", pipeline=model["pipeline"], images=image["IMAGE"], steps=30)
    styled = g.add("MD_ApplyLora", pipeline=model["pipeline"], lora=train["lora"], temporal_scale=1.0,
                   spatial_scale=0.0)
    frames = g.add("MD_Sample", pipeline=styled["pipeline"], noise=noise["noise"], prompt="a purple triangle orbiting",
                   noise_prior=0.5, **SAMPLE)
    save_video(g, frames["frames"], "animated_still")
    return g


def sweep() -> Graph:
    g = Graph("6_sweep_prompts_scales_seeds", (
        f"## Sweep prompts x scales x seeds\nEvery prompt (one per line) x motion strength x seed with `{LORA}` "
        "(saved by example 1). Each result is written to `output/motiondirector/examples/orbit_sweep/` with its "
        "settings and an index; all of them also come out as one video, in order."))
    model = g.add("MD_LoadBaseModel", model=MODEL)
    lora = g.add("MD_LoadLora", lora_name=LORA)
    styled = g.add("MD_ApplyLora", pipeline=model["pipeline"], lora=lora["lora"], temporal_scale=1.0,
                   spatial_scale=0.0)
    prompts = "a yellow triangle orbiting\na blue circle orbiting"
    results = g.add("MD_Sweep", pipeline=styled["pipeline"], prompts=prompts,
                    temporal_scales="0.5, 1.0", spatial_scales="0", seeds="0, 1", folder="examples/orbit_sweep",
                    noise_prior=0.0, frames=8, steps=20, cfg=7.5, **SIZE)
    save_video(g, results["frames"], "orbit_sweep")
    return g


def animatediff_with_exports() -> Graph:
    g = Graph("7_animatediff_motion_with_exports", (
        "## AnimateDiff: learn a motion, use it in AnimateDiff-Evolved\nLoads **your** Stable Diffusion 1.5 "
        f"checkpoint (`models/checkpoints`) with an AnimateDiff motion module (`models/animatediff_models`, e.g. "
        f"`{AD_MOTION_MODULE}`), learns the orbit of the reference clip, and samples a new subject doing it.\n\n"
        "Save LoRA also writes the motion LoRA into `models/animatediff_motion_lora` (AnimateDiff-Evolved's **Load "
        "AnimateDiff LoRA** lists it) and the appearance LoRA into `models/loras` (ComfyUI's **Load LoRA**). Pick "
        "your own file names in the loader after a refresh (R)."))
    model = g.add("MD_LoadAnimateDiffModel", checkpoint=AD_CHECKPOINT, motion_module=AD_MOTION_MODULE)
    clips = g.add("MD_LoadClips", path=f"{INPUTS}/orbit.mp4", prompt="a red square orbiting", frames=16, stride=1,
                  fps=8.0, **AD_SIZE)
    train = g.add("MD_TrainMotion", pipeline=model["pipeline"], clips=clips["clips"], train="both", steps=300,
                  rank=64, lr_spatial=1e-4, lr_temporal=5e-4, checkpoint_every=100, run_name="orbit_animatediff")
    g.add("LossGraphNode", loss=train["loss"], filename_prefix="motiondirector/examples/orbit_animatediff_loss")
    g.add("MD_SaveLora", lora=train["lora"], filename_prefix="orbit_animatediff", export_for_other_tools=True)
    styled = g.add("MD_ApplyLora", pipeline=model["pipeline"], lora=train["lora"], temporal_scale=1.0,
                   spatial_scale=0.0)
    frames = g.add("MD_Sample", pipeline=styled["pipeline"], prompt="a golden retriever orbiting, studio light",
                   noise_prior=0.0, frames=16, steps=25, cfg=7.5, **AD_SIZE)
    save_video(g, frames["frames"], "orbit_animatediff_retriever")
    return g


EXAMPLES = (motion_from_one_video, motion_concept_from_clips, generate_with_saved_lora, appearance_plus_motion,
            animate_an_image, sweep, animatediff_with_exports)


# ---------------------------------------------------------------------------------------------- UI format


def widget_value(name: str, spec: list, given: dict):
    kind, options = spec
    if name in given:
        return given[name]
    if "default" in options:
        return options["default"]
    choices = kind if isinstance(kind, list) else options.get("options", [])
    if choices:
        return choices[0]
    raise ValueError(f"no value and no default for {name!r}")


def node_height(info: dict, sockets: int) -> int:
    rows = max(sockets, len(info["output"]))
    widgets = [(n, s) for n, s in input_specs(info) if is_widget(s)]
    height = 46 + 22 * rows
    for name, spec in widgets:
        tall = spec[0] == "STRING" and spec[1].get("multiline")
        height += (84 if tall else 26) + 26 * len(ui_only_values(name, spec))
    return height


def to_ui(graph: Graph, object_info: dict) -> dict:
    missing = {node.type for node in graph.nodes} - set(object_info)
    if missing:
        raise SystemExit(f"{graph.name}: the server has no {sorted(missing)}")
    depth = {}
    for node in graph.nodes:  # nodes are added after what they read, so one pass gives each its column
        depth[node.id] = 1 + max((depth[src.id] for src, _ in node.links.values()), default=-1)
    links, ui_nodes, column_y = [], {}, {}
    for order, node in enumerate(graph.nodes):
        info = object_info[node.type]
        specs = input_specs(info)
        unknown = (set(node.widgets) | set(node.links)) - {name for name, _ in specs}
        if unknown:
            raise SystemExit(f"{graph.name}: {node.type} has no input {sorted(unknown)}")
        sockets = [(name, spec) for name, spec in specs if not is_widget(spec)]
        values = []
        for name, spec in specs:
            if is_widget(spec):
                values.append(widget_value(name, spec, node.widgets))
                values += ui_only_values(name, spec)
        inputs = []
        for slot, (name, spec) in enumerate(sockets):
            link = None
            if name in node.links:
                source, output = node.links[name]
                source_info = object_info[source.type]
                origin_slot = source_info["output_name"].index(output)
                link = len(links) + 1
                links.append([link, source.id, origin_slot, node.id, slot, source_info["output"][origin_slot]])
                ui_nodes[source.id]["outputs"][origin_slot]["links"].append(link)
            inputs.append({"name": name, "type": spec[0], "link": link})
        column = depth[node.id]
        y = column_y.get(column, 40)
        height = node_height(info, len(sockets))
        column_y[column] = y + height + GAP
        ui_nodes[node.id] = {
            "id": node.id, "type": node.type, "pos": [40 + COLUMN * (column + 1), y], "size": [340, height],
            "flags": {}, "order": order + 1, "mode": 0, "inputs": inputs,
            "outputs": [{"name": name, "type": kind, "links": [], "slot_index": i}
                        for i, (name, kind) in enumerate(zip(info["output_name"], info["output"]))],
            "properties": {"Node name for S&R": node.type}, "widgets_values": values,
        }
        if node.title:
            ui_nodes[node.id]["title"] = node.title
    note = {"id": 1, "type": "MarkdownNote", "pos": [40, 40], "size": [340, 360], "flags": {}, "order": 0, "mode": 0,
            "inputs": [], "outputs": [], "properties": {}, "widgets_values": [graph.note]}
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"motiondirector/{graph.name}")), "revision": 0,
        "last_node_id": max(ui_nodes), "last_link_id": len(links), "nodes": [note, *ui_nodes.values()],
        "links": links, "groups": [], "config": {}, "extra": {"ds": {"scale": 0.75, "offset": [0, 0]}},
        "version": 0.4,
    }


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        custom_nodes = Path(tmp, "custom_nodes")
        custom_nodes.mkdir()
        (custom_nodes / PACK).symlink_to(REPO, target_is_directory=True)
        with ComfyServer(None, Path(tmp, "comfy"), custom_nodes, None) as server:
            object_info = server.object_info()
    for make in EXAMPLES:
        graph = make()
        ui = to_ui(graph, object_info)
        write_json(OUT / f"{graph.name}.json", ui)
        write_json(OUT / "api" / f"{graph.name}.json", ui_to_api(ui, object_info))
        print(OUT / f"{graph.name}.json")


if __name__ == "__main__":
    main()
