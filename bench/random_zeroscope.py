"""A diffusers folder with ZeroScope's architecture and random weights, for speed and memory measurements.

Same classes and sizes as zeroscope_v2_576w (UNet3DConditionModel 1.4 B parameters, the SD VAE, a 23-layer CLIP
text encoder of width 1024); only the tokenizer is the small world's (prompt length 77 as ZeroScope's), since no real
vocabulary can be downloaded here and the vocabulary does not change the cost of a step. Loaded by the same
`load_model` as a real ZeroScope folder.

    python bench/random_zeroscope.py output/bench/zeroscope-random [--device cuda]
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from motiondirector_core.files import atomic_dir, write_json  # noqa: E402
from motiondirector_core.families.modelscope import ModelScopeFamily  # noqa: E402
from motiondirector_core.models import FAMILIES  # noqa: E402
from motiondirector_core.toyworld.vocab import load_tokenizer, write_tokenizer  # noqa: E402

VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32, sample_size=512,
    block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=0.18215,
)
TEXT_CONFIG = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                   max_position_embeddings=77, projection_dim=1024, hidden_act="gelu")
SCHEDULER_CONFIG = {"_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
                    "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "clip_sample": False,
                    "set_alpha_to_one": False, "steps_offset": 1, "prediction_type": "epsilon"}


def write_random_zeroscope(folder: str | Path, device: str = "cpu", dtype=torch.float16) -> Path:
    """Write the folder (about 3.5 GB in fp16); an existing complete folder is kept as it is."""
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    if (folder / "model_index.json").is_file():
        return folder
    torch.manual_seed(0)
    with atomic_dir(folder) as tmp:
        write_tokenizer(tmp / "tokenizer", max_length=77)
        tokenizer = load_tokenizer(tmp / "tokenizer")
        with torch.device(device):  # initialising 1.4 B parameters is minutes on a CPU, seconds on a GPU
            unet = UNet3DConditionModel(**FAMILIES["modelscope"].zeroscope_unet_config)
            vae = AutoencoderKL(**VAE_CONFIG)
            text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                                eos_token_id=tokenizer.eos_token_id,
                                                pad_token_id=tokenizer.pad_token_id, **TEXT_CONFIG))
        for name, module in (("unet", unet), ("vae", vae), ("text_encoder", text)):
            module.to(dtype).save_pretrained(tmp / name)
        (tmp / "scheduler").mkdir()
        write_json(tmp / "scheduler" / "scheduler_config.json", SCHEDULER_CONFIG)
        write_json(tmp / "model_index.json", ModelScopeFamily.model_index)
        write_json(tmp / "about.json", {"about": "ZeroScope architecture, random weights: for speed benchmarks only"})
    return folder


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(write_random_zeroscope(args.folder, args.device))
