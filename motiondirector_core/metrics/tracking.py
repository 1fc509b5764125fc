"""A dependency-light point tracker: pyramidal Lucas-Kanade on a grid of points, with a forward-backward check.

    tracks = track_points(frames)     # frames [F, H, W, 3] in 0..1
    tracks.points                     # [N, F, 2] (x, y) in pixels; pixel i spans [i, i + 1), as ToyClip.centres
    tracks.visible                    # [N, F] bool: the point is inside the frame and passed every check so far

Points start on a regular grid in the first frame and are followed frame to frame (Bouguet's pyramidal LK: the
template's gradients, a Gaussian-weighted window, coarse to fine, all colour channels in one least-squares
system). Each step is then tracked back; a point whose back-tracked position misses where it came from by more
than `fb_threshold` pixels (occluded, or on a surface with nothing to lock onto) is invisible from then on.
A point whose finest window is matched at least as well by not moving stays where it is: the coarse levels see
far, and a strong moving edge nearby would otherwise drag a weak texture along. A point with too little texture
in the first frame is invisible from the start (Shi-Tomasi: the smaller eigenvalue of its structure tensor under
`min_texture` times the largest among the points, or about none at all).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import MotionDirectorError
from .frames import video_tensor

MIN_LEVEL_SIDE = 8  # the coarsest pyramid level keeps at least this many pixels per side
DAMPING = 1e-4  # added to the 2x2 system: flat windows keep their estimate instead of blowing up
FLAT = 1e-8  # a structure tensor eigenvalue under this is no texture at all


@dataclass(frozen=True)
class Tracks:
    points: torch.Tensor  # [N, F, 2] float32 (x, y) pixels
    visible: torch.Tensor  # [N, F] bool
    fb_error: torch.Tensor  # [N, F - 1] forward-backward distance of each step, in pixels
    texture: torch.Tensor  # [N] the smaller eigenvalue of each point's structure tensor in the first frame
    height: int
    width: int

    @property
    def reliable(self) -> torch.Tensor:
        """[N] bool: tracks visible in every frame."""
        return self.visible.all(dim=1)


def _check(name: str, value, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise MotionDirectorError(f"{name} must be a whole number of at least {least}, got {value!r}.")
    return value


def grid_points(height: int, width: int, grid: int) -> torch.Tensor:
    """[grid * grid, 2] (x, y) at the centres of a grid x grid tiling of the frame."""
    xs = (torch.arange(grid, dtype=torch.float32) + 0.5) * width / grid
    ys = (torch.arange(grid, dtype=torch.float32) + 0.5) * height / grid
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=1)


def _smooth(images: torch.Tensor) -> torch.Tensor:
    """A 3x3 binomial blur per channel, edges replicated."""
    kernel = torch.tensor([1.0, 2.0, 1.0]) / 4
    kernel = (kernel[:, None] * kernel[None, :]).expand(images.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), kernel, groups=images.shape[1])


def _gradients(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences along x and y, edges replicated."""
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    gx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
    gy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
    return gx, gy


@dataclass(frozen=True)
class _Level:
    images: torch.Tensor  # [F, C, h, w]
    gx: torch.Tensor
    gy: torch.Tensor
    scale: torch.Tensor  # [2] this level's pixels per full-resolution pixel (x, y)


def _pyramid(frames: torch.Tensor, levels: int) -> list[_Level]:
    """Finest first. Each level is the previous one area-halved; all are lightly blurred."""
    height, width = frames.shape[1:3]
    images = frames.permute(0, 3, 1, 2)
    out = []
    for index in range(levels):
        if index:
            size = (images.shape[2] // 2, images.shape[3] // 2)
            if min(size) < MIN_LEVEL_SIDE:
                break
            images = F.interpolate(images, size=size, mode="area")
        smooth = _smooth(images)
        gx, gy = _gradients(smooth)
        scale = torch.tensor([images.shape[3] / width, images.shape[2] / height])
        out.append(_Level(smooth, gx, gy, scale))
    return out


def _sample(images: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear samples [B, C, N, K] of images [B, C, h, w] at points [B, N, K, 2] in level pixels."""
    size = torch.tensor([images.shape[3], images.shape[2]], dtype=points.dtype)
    return F.grid_sample(images, points / size * 2 - 1, mode="bilinear", padding_mode="border", align_corners=False)


def _window(radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Offsets [K, 2] of a (2r+1)^2 window and their Gaussian weights [K] (summing to 1)."""
    steps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    y, x = torch.meshgrid(steps, steps, indexing="ij")
    offsets = torch.stack([x.reshape(-1), y.reshape(-1)], dim=1)
    weights = torch.exp(-(offsets**2).sum(1) / (2 * (0.6 * radius + 0.5) ** 2))
    return offsets, weights / weights.sum()


def _texture(level: _Level, points: torch.Tensor, radius: int) -> torch.Tensor:
    """[N] the smaller eigenvalue of the Gaussian-weighted structure tensor around points [N, 2] in frame 0."""
    offsets, weights = _window(radius)
    window = (points * level.scale)[None, :, None, :] + offsets
    gx, gy = _sample(level.gx[:1], window), _sample(level.gy[:1], window)
    gxx, gxy, gyy = ((weights * a * b).sum(dim=(1, 3))[0] for a, b in ((gx, gx), (gx, gy), (gy, gy)))
    half_trace = (gxx + gyy) / 2
    return half_trace - (half_trace**2 - (gxx * gyy - gxy**2)).clamp_min(0).sqrt()


def _lucas_kanade(pyramid: list[_Level], source: torch.Tensor, target: torch.Tensor, points: torch.Tensor,
                  radius: int, iterations: int) -> torch.Tensor:
    """Where points [B, N, 2] (full-resolution pixels) of frames `source` [B] moved to in frames `target` [B]."""
    offsets, weights = _window(radius)
    shift = torch.zeros_like(points)
    for level in reversed(pyramid):
        at = points * level.scale
        window = at[:, :, None, :] + offsets  # [B, N, K, 2]
        template = _sample(level.images[source], window)  # [B, C, N, K]
        gx, gy = _sample(level.gx[source], window), _sample(level.gy[source], window)
        gxx = (weights * gx * gx).sum(dim=(1, 3))  # [B, N]
        gxy = (weights * gx * gy).sum(dim=(1, 3))
        gyy = (weights * gy * gy).sum(dim=(1, 3))
        det = (gxx + DAMPING) * (gyy + DAMPING) - gxy * gxy
        for _ in range(iterations):
            moved = window + (shift * level.scale)[:, :, None, :]
            error = _sample(level.images[target], moved) - template
            bx, by = (weights * error * gx).sum(dim=(1, 3)), (weights * error * gy).sum(dim=(1, 3))
            step = torch.stack([-((gyy + DAMPING) * bx - gxy * by) / det, -((gxx + DAMPING) * by - gxy * bx) / det], -1)
            step = step.clamp(-radius, radius)  # in level pixels: never jump past the window
            shift = shift + step / level.scale
            if step.abs().max() < 0.01:
                break
    # the loop ended on the finest level: where not moving at all explains its window as well, the point stays put
    stay = _residual(level, target, window, template, weights, torch.zeros_like(shift)) <= _residual(
        level, target, window, template, weights, shift)
    return points + torch.where(stay[..., None], torch.zeros_like(shift), shift)


def _residual(level: _Level, target: torch.Tensor, window: torch.Tensor, template: torch.Tensor,
              weights: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """[B, N] weighted squared difference between the template and the target frame's window moved by shift."""
    moved = window + (shift * level.scale)[:, :, None, :]
    return (weights * (_sample(level.images[target], moved) - template) ** 2).sum(dim=(1, 3))


def track_points(frames, grid: int = 16, levels: int = 3, radius: int = 4, iterations: int = 8,
                 fb_threshold: float = 0.5, min_texture: float = 0.02) -> Tracks:
    """Follow a grid x grid lattice of points from the first frame to the last (see the module's docstring)."""
    frames = video_tensor(frames)
    grid, levels = _check("grid", grid, 1), _check("levels", levels, 1)
    radius, iterations = _check("radius", radius, 1), _check("iterations", iterations, 1)
    if not isinstance(fb_threshold, (int, float)) or not fb_threshold > 0:
        raise MotionDirectorError(f"fb_threshold must be a positive number of pixels, got {fb_threshold!r}.")
    if not isinstance(min_texture, (int, float)) or not 0 <= min_texture <= 1:
        raise MotionDirectorError(f"min_texture must be a fraction from 0 to 1, got {min_texture!r}.")
    count, height, width = frames.shape[:3]
    with torch.no_grad():
        pyramid = _pyramid(frames, levels)
        path = [grid_points(height, width, grid)[None]]  # [1, N, 2] per frame
        for index in range(count - 1):
            path.append(_lucas_kanade(pyramid, torch.tensor([index]), torch.tensor([index + 1]), path[-1],
                                      radius, iterations))
        points = torch.cat(path, dim=0)  # [F, N, 2]
        texture = _texture(pyramid[0], points[0], radius)
        back = _lucas_kanade(pyramid, torch.arange(1, count), torch.arange(count - 1), points[1:], radius, iterations)
        fb_error = (back - points[:-1]).norm(dim=-1)  # [F - 1, N]
        inside = (points >= 0).all(-1) & (points[..., 0] <= width) & (points[..., 1] <= height)  # [F, N]
        textured = texture >= max(FLAT, min_texture * float(texture.max()))
        passed = torch.cat([textured[None], fb_error <= fb_threshold], dim=0)
        visible = torch.cumprod((inside & passed).to(torch.uint8), dim=0).bool()
    return Tracks(points=points.transpose(0, 1).contiguous(), visible=visible.T.contiguous(),
                  fb_error=fb_error.T.contiguous(), texture=texture, height=height, width=width)
