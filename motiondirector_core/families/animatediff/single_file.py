"""AnimateDiff from the files ComfyUI users have: an SD 1.5 checkpoint (`models/checkpoints`, original LDM layout),
a motion module (`models/animatediff_models`: guoyww's mm_sd_v15_v2 / v3_sd15_mm, AnimateLCM), and optionally a
separate VAE (`models/vae`).

diffusers converts the files (`from_single_file`, `create_diffusers_clip_model_from_ldm`); the architecture it
needs comes from the SD 1.5 configs shipped in configs/, with the widths, depths and versions read from the
files' own tensors (so a fine-tune of another width, or the tests' tiny models, load the same way). Nothing
reaches a model hub, and a pickled file that holds anything but tensors is refused.
"""

import contextlib
import json
import logging
import re
import tempfile
from pathlib import Path

import torch

from ...errors import MotionDirectorError
from ...files import load_weights_only, read_safetensors

CONFIGS = Path(__file__).parent / "configs"
SD15 = CONFIGS / "sd15"
UNET = "model.diffusion_model."
VAE = "first_stage_model."
CLIP = "cond_stage_model.transformer."
MOTION_PROBE = "down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight"


def read_weights(path: Path, what: str) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors / .ckpt / .pt / .pth / .bin file, as a flat dict."""
    if not path.is_file():
        raise MotionDirectorError(f"{what} {path} does not exist: check the path.")
    if path.suffix.lower() in (".safetensors", ".sft"):
        state, _ = read_safetensors(path, "copy or download it again.")
    else:
        state = load_weights_only(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MotionDirectorError(f"{what} {path} does not hold a state dict of tensors: is it the right file?")
    return state


def _shape(state: dict, key: str, source: Path, what: str) -> torch.Size:
    if key not in state:
        raise MotionDirectorError(
            f"{source} is not {what}: it has no {key!r}. Use a Stable Diffusion 1.5 checkpoint with an AnimateDiff "
            f"SD 1.5 motion module (v2: mm_sd_v15_v2, v3: v3_sd15_mm)."
        )
    return state[key].shape


def _count(state: dict, pattern: str) -> int:
    found = {int(m.group(1)) for key in state if (m := re.match(pattern, key))}
    return max(found) + 1 if found else 0


def unet_config(state: dict, source: Path) -> dict:
    config = json.loads((SD15 / "unet" / "config.json").read_text())
    if any(key.startswith(UNET + "label_emb.") for key in state):
        raise MotionDirectorError(f"{source} is an SDXL (or other conditioned) checkpoint; AnimateDiff here takes "
                                  f"Stable Diffusion 1.5 checkpoints.")
    conv_in = _shape(state, UNET + "input_blocks.0.0.weight", source, "a Stable Diffusion checkpoint")
    widths = [_shape(state, f"{UNET}input_blocks.{1 + 3 * level}.0.out_layers.3.weight", source,
                     "a Stable Diffusion 1.5 checkpoint (4 levels of 2 blocks)")[0] for level in range(4)]
    key = UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
    context = _shape(state, key, source, "a Stable Diffusion 1.5 checkpoint")[1]
    proj_in = _shape(state, UNET + "input_blocks.1.1.proj_in.weight", source, "a Stable Diffusion 1.5 checkpoint")
    if conv_in[1] != 4:
        raise MotionDirectorError(f"{source} takes {conv_in[1]} input channels (an inpainting or other special "
                                  f"checkpoint): use a plain Stable Diffusion 1.5 checkpoint.")
    if context in (1024, 2048):
        raise MotionDirectorError(f"{source} reads {context}-wide text embeddings, not SD 1.5's 768 (an SD 2.x or "
                                  f"SDXL checkpoint): AnimateDiff's SD 1.5 motion modules need an SD 1.5 checkpoint.")
    config.update(block_out_channels=[int(w) for w in widths], cross_attention_dim=int(context),
                  use_linear_projection=len(proj_in) == 2)
    return config


def vae_config(state: dict, source: Path) -> dict:
    config = json.loads((SD15 / "vae" / "config.json").read_text())
    prefix = VAE if any(k.startswith(VAE) for k in state) else ""
    levels = _count(state, re.escape(prefix) + r"encoder\.down\.(\d+)\.")
    blocks = _count(state, re.escape(prefix) + r"encoder\.down\.0\.block\.(\d+)\.")
    if not levels:
        raise MotionDirectorError(f"{source} holds no VAE (no encoder.down.* weights): pick a VAE file (models/vae).")
    widths = [int(_shape(state, f"{prefix}encoder.down.{i}.block.{blocks - 1}.conv2.weight", source, "a VAE")[0])
              for i in range(levels)]
    latent = _shape(state, f"{prefix}encoder.conv_out.weight", source, "a VAE")[0] // 2
    config.update(block_out_channels=widths, down_block_types=["DownEncoderBlock2D"] * levels,
                  up_block_types=["UpDecoderBlock2D"] * levels, layers_per_block=blocks, latent_channels=int(latent))
    return config


def text_encoder_config(state: dict, source: Path) -> dict:
    config = json.loads((SD15 / "text_encoder" / "config.json").read_text())
    prefix = CLIP + ("text_model." if any(k.startswith(CLIP + "text_model.") for k in state) else "")
    tokens = _shape(state, prefix + "embeddings.token_embedding.weight", source,
                    "a checkpoint with its CLIP text encoder")
    positions = _shape(state, prefix + "embeddings.position_embedding.weight", source, "a CLIP text encoder")[0]
    inner = _shape(state, prefix + "encoder.layers.0.mlp.fc1.weight", source, "a CLIP text encoder")[0]
    if tokens[0] != config["vocab_size"]:
        raise MotionDirectorError(f"{source}'s text encoder knows {tokens[0]} tokens, not CLIP's {config['vocab_size']}"
                                  f": it is not an SD 1.5 checkpoint.")
    hidden = int(tokens[1])
    config.update(hidden_size=hidden, intermediate_size=int(inner), max_position_embeddings=int(positions),
                  num_hidden_layers=_count(state, re.escape(prefix) + r"encoder\.layers\.(\d+)\."),
                  num_attention_heads=max(1, hidden // 64), projection_dim=hidden)  # CLIP's heads are 64 wide
    return config


def motion_adapter_config(state: dict, source: Path) -> dict:
    """v1 (24 positions, no mid block), v2 (32, mid block), v3 (32, none), AnimateLCM (no position encoding)."""
    config = json.loads((CONFIGS / "motion_adapter" / "config.json").read_text())
    _shape(state, MOTION_PROBE, source, "an AnimateDiff motion module")
    levels = _count(state, r"down_blocks\.(\d+)\.motion_modules\.")
    if levels != 4:
        raise MotionDirectorError(f"{source} has motion modules in {levels} down blocks, SD 1.5's have 4 (an SDXL "
                                  f"motion module?): use an SD 1.5 motion module such as v3_sd15_mm.")
    widths = [int(_shape(state, f"down_blocks.{i}.motion_modules.0.temporal_transformer.proj_in.weight", source,
                         "an AnimateDiff motion module")[0]) for i in range(levels)]
    pe = next((t for k, t in state.items() if k.endswith("pos_encoder.pe")), None)
    config.update(block_out_channels=widths, use_motion_mid_block=any(k.startswith("mid_block.") for k in state),
                  motion_max_seq_length=int(pe.shape[1]) if pe is not None else 32)
    return config


def has_position_encoding(state: dict) -> bool:
    return any(k.endswith("pos_encoder.pe") for k in state)


@contextlib.contextmanager
def quiet_casts():
    """diffusers warns on every `.to(dtype)` of a model that keeps no fp32 modules anyway: not a user's concern."""
    logger = logging.getLogger("diffusers")
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


def _write(folder: Path, sub: str, config: dict) -> None:
    (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / sub / "config.json").write_text(json.dumps(config))


def load_sd15(checkpoint: Path, vae_file: Path | None, dtype: torch.dtype):
    """UNet2DConditionModel, AutoencoderKL, CLIPTextModel and CLIPTokenizer of an SD 1.5 single-file checkpoint."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPTextModel, CLIPTokenizer

    state = read_weights(checkpoint, "checkpoint")
    vae_state = read_weights(vae_file, "VAE") if vae_file is not None else state
    with tempfile.TemporaryDirectory(prefix="motiondirector-sd15-") as tmp:
        folder = Path(tmp)
        _write(folder, "unet", unet_config(state, checkpoint))
        _write(folder, "vae", vae_config(vae_state, vae_file or checkpoint))
        _write(folder, "text_encoder", text_encoder_config(state, checkpoint))
        common = dict(config=str(folder), local_files_only=True, torch_dtype=dtype)
        try:
            unet = UNet2DConditionModel.from_single_file(state, subfolder="unet", **common)
            vae = AutoencoderKL.from_single_file(vae_state, subfolder="vae", **common)
            text_encoder = create_diffusers_clip_model_from_ldm(CLIPTextModel, state, subfolder="text_encoder",
                                                                **common)
        except (ValueError, RuntimeError, KeyError, NotImplementedError) as exc:  # missing or misshapen tensors
            raise MotionDirectorError(
                f"{checkpoint} could not be read as a Stable Diffusion 1.5 checkpoint ({str(exc)[:300]}): it is "
                f"damaged or of another architecture; download it again or use another."
            ) from exc
    tokenizer = CLIPTokenizer.from_pretrained(SD15 / "tokenizer")
    return unet, vae, text_encoder, tokenizer


def load_motion_adapter(path: Path, dtype: torch.dtype):
    """A diffusers MotionAdapter from an original motion-module file; a file without position encodings
    (AnimateLCM) gets zero ones, as the model it was trained as has none."""
    from diffusers import MotionAdapter

    state = read_weights(path, "motion module")
    with tempfile.TemporaryDirectory(prefix="motiondirector-mm-") as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(motion_adapter_config(state, path)))
        try:
            adapter = MotionAdapter.from_single_file(state, config=tmp, local_files_only=True, torch_dtype=dtype)
        except (ValueError, RuntimeError, KeyError, NotImplementedError) as exc:
            raise MotionDirectorError(
                f"{path} could not be read as an AnimateDiff motion module ({str(exc)[:300]}): it is damaged or "
                f"of another kind; download it again."
            ) from exc
    if not has_position_encoding(state):
        with torch.no_grad():
            for name, buffer in adapter.named_buffers():
                if name.endswith("pos_embed.pe"):
                    buffer.zero_()
    return adapter
