"""The small world's model: configs of a ModelScope-family text-to-video model small enough to ship and pretrain.

Same classes and folder layout as ZeroScope (UNet3DConditionModel, AutoencoderKL, CLIPTextModel, CLIPTokenizer,
DDIM scheduler), so `models.load_model` loads it like any other. Sizes:
- VAE: four levels (factor 8, as ZeroScope's), 16 latent channels: 32x32 frames -> 4x4 latents. Pretraining can
  ask for three levels (factor 4, 8x8 latents, the first shipped model's 4 channels) instead: the UNet then sees
  four times the tokens, and most of its step is the top level's transformers, so a step costs about three times
  as much and a retrain does not fit in an hour on a 2-core CPU (README, the embedded model).
- Text encoder: CLIP text, hidden 64, 2 layers, 16 positions (captions are at most 9 tokens).
- UNet: two levels (64, 128 channels), one layer per block, cross-attention at the latents' size and in the mid
  block at half of it (about 5 M parameters).
- Scheduler: v-prediction on zero-terminal-SNR betas with trailing timesteps, so that the last sampling step
  starts from pure noise as in training and flat backgrounds come out clean (TOYWORLD.md).
"""

from pathlib import Path

from ..files import write_json
from ..families.modelscope import ModelScopeFamily

SIZE = 32  # pixels: the native frame size
FRAMES = 8  # the native clip length
FPS = 8
MAX_TOKENS = 16

VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(32, 64, 64, 64),
    layers_per_block=1,
    latent_channels=16,
    norm_num_groups=16,
    sample_size=SIZE,
    scaling_factor=1.0,  # pretraining replaces it with 1 / std of the toy world's latents
)
TEXT_CONFIG = dict(
    hidden_size=64,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=MAX_TOKENS,
    projection_dim=64,
)
UNET_CONFIG = dict(
    sample_size=SIZE // 8,
    in_channels=16,
    out_channels=16,
    down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),  # the mid block cross-attends too
    up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
    block_out_channels=(64, 128),
    layers_per_block=1,
    norm_num_groups=16,
    cross_attention_dim=TEXT_CONFIG["hidden_size"],
    attention_head_dim=8,  # UNet3DConditionModel reads this as the number of heads
)
SCHEDULER_CONFIG = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=0,
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    timestep_spacing="trailing",
)
MODEL_INDEX = ModelScopeFamily.model_index
LATENT_FACTORS = {4: 3, 8: 4}  # VAE downsampling factor -> levels
LATENT_FACTOR, LATENT_CHANNELS = 8, 16  # the shipped model's


def vae_config(factor: int = LATENT_FACTOR, latent_channels: int = LATENT_CHANNELS) -> dict:
    levels = LATENT_FACTORS[factor]
    return {**VAE_CONFIG, "down_block_types": ("DownEncoderBlock2D",) * levels,
            "up_block_types": ("UpDecoderBlock2D",) * levels, "block_out_channels": (32, 64, 64, 64)[:levels],
            "latent_channels": latent_channels}


def unet_config(factor: int = LATENT_FACTOR, latent_channels: int = LATENT_CHANNELS) -> dict:
    return {**UNET_CONFIG, "sample_size": SIZE // factor, "in_channels": latent_channels,
            "out_channels": latent_channels}


def build_vae(factor: int = LATENT_FACTOR, latent_channels: int = LATENT_CHANNELS):
    from diffusers import AutoencoderKL

    return AutoencoderKL(**vae_config(factor, latent_channels))


def build_text_encoder(tokenizer):
    """A fresh CLIP text model whose vocabulary and special tokens are the tokenizer's."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TEXT_CONFIG,
    )
    return CLIPTextModel(config)


def build_unet(factor: int = LATENT_FACTOR, latent_channels: int = LATENT_CHANNELS):
    from diffusers import UNet3DConditionModel

    return UNet3DConditionModel(**unet_config(factor, latent_channels))


def build_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULER_CONFIG)


def parameter_count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def write_model_index(folder: str | Path) -> Path:
    return write_json(Path(folder) / "model_index.json", MODEL_INDEX)
