"""How much of a reference clip's background pattern a generated toy-world clip carries.

    share = background_share(generated, reference)   # frames [F, H, W, 3] in 0..1 each

The toy world's captions never name the background, so a textured backdrop is a look that only the pixels hold:
the leak that MotionDirector's split is meant to stop. Each clip's backdrop is its per-pixel median over the
frames (the one object moves, so most pixels show background in most frames); pixels where either backdrop
still holds the object (far from its median colour) are left out. What every textured backdrop of the renderer
has in common (its checker and mean colour field, the mean over many seeds) is projected out of both, since the
base model draws that for any caption. The share is then the least-squares slope of the generated backdrop on the
reference's: 1 is the reference's own pattern at its full contrast, 0 a plain backdrop or another seed's texture,
values between a faded copy.
"""

from functools import lru_cache

import torch

from ..errors import MotionDirectorError
from ..toyworld.clips import render_background
from .frames import video_tensor

OBJECT_DISTANCE = 0.3  # RGB distance from a backdrop's median colour beyond which a pixel is the object's
COMMON_SEEDS = 64  # textures averaged for the pattern they all share
MIN_CONTRAST = 1e-5  # variance of the reference's own pattern below which it has nothing to leak


def backdrop(frames) -> torch.Tensor:
    """[H, W, 3]: the clip's per-pixel median over its frames."""
    return video_tensor(frames, min_frames=1).median(dim=0).values


@lru_cache(maxsize=8)
def common_texture(height: int, width: int) -> torch.Tensor:
    """[H, W, 3] the mean of the renderer's textured backgrounds over COMMON_SEEDS seeds, centred per channel."""
    side = max(height, width)
    mean = torch.stack([render_background(side, "textured", seed) for seed in range(COMMON_SEEDS)]).mean(dim=0)
    mean = mean[:height, :width]
    return mean - mean.mean(dim=(0, 1))


def _pattern(image: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The kept pixels of an image, centred per channel, less its projection on the common texture."""
    values = image[keep]
    values = values - values.mean(dim=0)
    common = common_texture(*image.shape[:2])[keep]
    common = common - common.mean(dim=0)
    return values - (values * common).sum() / (common * common).sum().clamp_min(1e-12) * common


def background_share(generated, reference) -> float:
    """The slope of the generated clip's backdrop on the reference's (see the module's docstring)."""
    mine, theirs = backdrop(generated), backdrop(reference)
    if mine.shape != theirs.shape:
        raise MotionDirectorError(f"clips of {tuple(mine.shape[:2])} and {tuple(theirs.shape[:2])} pixels: compare "
                                  "clips of one size.")
    keep = torch.ones(mine.shape[:2], dtype=torch.bool)
    for image in (mine, theirs):
        keep &= (image - image.flatten(0, 1).median(dim=0).values).norm(dim=-1) < OBJECT_DISTANCE
    if keep.sum() < 16:
        raise MotionDirectorError("the clips' backdrops have too few pixels without the object to compare.")
    mine, theirs = _pattern(mine, keep), _pattern(theirs, keep)
    contrast = float((theirs * theirs).mean())
    if contrast < MIN_CONTRAST:
        raise MotionDirectorError("the reference's background is plain: there is no pattern whose leak to "
                                  "measure; render the references on a textured one.")
    return float((mine * theirs).mean()) / contrast
