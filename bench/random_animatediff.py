"""A diffusers AnimateDiff folder with the real architecture and random weights, for speed and memory measurements.

SD 1.5's UNet, VAE and CLIP text encoder (the configs the pack ships for loading single files) with a v3 motion
module (`motion_adapter/`, no mid block; --v2 adds it), CLIP's own tokenizer. Loaded by the same `load_model` as a
user's diffusers AnimateDiff folder.

    python bench/random_animatediff.py output/bench/animatediff-random [--device cuda] [--v2]
"""

import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from motiondirector_core.families.animatediff.single_file import CONFIGS, SD15  # noqa: E402
from motiondirector_core.files import atomic_dir, write_json  # noqa: E402

MODEL_INDEX = {"_class_name": "AnimateDiffPipeline", "_diffusers_version": "0.42.1",
               "motion_adapter": ["diffusers", "MotionAdapter"], "scheduler": ["diffusers", "DDIMScheduler"],
               "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
               "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}


def config(part: str) -> dict:
    """The shipped config of an SD 1.5 part, or of the motion adapter (v3's)."""
    folder = CONFIGS / part if part == "motion_adapter" else SD15 / part
    return {k: v for k, v in json.loads((folder / "config.json").read_text()).items() if not k.startswith("_")}


def write_random_animatediff(folder: str | Path, device: str = "cpu", dtype=torch.float16, v2: bool = False) -> Path:
    """Write the folder (about 2.8 GB in fp16); an existing complete folder is kept as it is."""
    from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    if (folder / "model_index.json").is_file():
        return folder
    torch.manual_seed(0)
    with atomic_dir(folder) as tmp:
        with torch.device(device):  # initialising 1.7 B parameters is minutes on a CPU, seconds on a GPU
            parts = {"unet": UNet2DConditionModel(**config("unet")), "vae": AutoencoderKL(**config("vae")),
                     "text_encoder": CLIPTextModel(CLIPTextConfig(**config("text_encoder"))),
                     "motion_adapter": MotionAdapter(**{**config("motion_adapter"), "use_motion_mid_block": v2})}
        for name, module in parts.items():
            module.to(dtype).save_pretrained(tmp / name)
        shutil.copytree(SD15 / "tokenizer", tmp / "tokenizer")
        shutil.copytree(SD15 / "scheduler", tmp / "scheduler")
        write_json(tmp / "model_index.json", MODEL_INDEX)
        write_json(tmp / "about.json", {"about": f"AnimateDiff {'v2' if v2 else 'v3'} architecture, random weights: "
                                                 f"for speed benchmarks only"})
    return folder


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--v2", action="store_true", help="the v2 motion module (with its mid-block module)")
    args = parser.parse_args()
    print(write_random_animatediff(args.folder, args.device, v2=args.v2))
