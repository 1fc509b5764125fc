"""Track-based motion fidelity: do two clips' point tracks move the same way, step by step?

The Motion Fidelity Score of Yatim et al., "Space-Time Diffusion Features for Zero-Shot Text-Driven Motion
Transfer" (CVPR 2024, arXiv:2311.17009). For tracks T = {tau_1..tau_n} of one clip and T~ = {tau~_1..tau~_m} of
the other, corr(tau, tau~) = 1/F sum_k (v_k . v~_k) / (|v_k| |v~_k|), the mean over steps of the cosine between
the two tracks' displacements v_k = p_{k+1} - p_k; the score is the mean over the tracks of one clip of their best
correlation with a track of the other, taken both ways. Its public script (diffusion-motion-transfer,
motion_fidelity_score.py at ab55bcd) computes exactly that correlation matrix (unit displacements, einsum, mean over
steps) on CoTracker tracks of a 55x55 grid, and scores one direction (edited -> original). Here:
- both directions, averaged: score = 1/2 (mean_A max_B corr + mean_B max_A corr), in [-1, 1];
- tracks come from our Lucas-Kanade tracker (tracking.py); tracks lost on the way (occlusion) are left out;
- only moving tracks count: a track moves when it gets `moving_threshold` (a fraction of the frame's larger
  side) away from where it started, and a clip moves when at least MIN_MOVING of its tracks do (a stray track
  or two drifting in noise is not motion). Static background points would otherwise match each other and say
  nothing about the motion (the public script divides their zero displacements by zero);
- a step that is still (shorter than `still_step`, same unit) in one track only scores 0; a step still in both is
  left out of that pair's mean (two tracks that rest at the same time say nothing about their directions);
- neither clip moves: 1.0 (the same, absent motion); one moves and the other does not: 0.0;
- clips with different frame counts are compared over the same span of time (tracks resampled to the shorter).
Several reference clips: the mean of the scores against each reference (`reduce="mean"`, the default: a
generation should carry the motion the references share, not match one of them by chance); "max" is available.
"""

from dataclasses import dataclass

import torch

from ..errors import MotionDirectorError
from .frames import as_list, resample_time
from .tracking import Tracks, track_points

MOVING_THRESHOLD = 0.05  # of the frame's larger side: 3.2 px at 64x64
MIN_MOVING = 3  # tracks
STILL_STEP = 0.002  # of the frame's larger side: 0.13 px at 64x64
REDUCTIONS = ("mean", "max")


@dataclass(frozen=True)
class Motion:
    """The moving, reliable tracks of one clip, as what matters for fidelity."""

    displacements: torch.Tensor  # [N, F - 1, 2] of the moving tracks, in units of the frame's larger side
    tracked: int  # reliable tracks (visible in every frame)

    @property
    def moving(self) -> int:
        return self.displacements.shape[0]


def moving_tracks(tracks: Tracks, moving_threshold: float = MOVING_THRESHOLD, frames: int | None = None) -> Motion:
    """The displacements of tracks that stay visible and move, positions resampled to `frames` if given."""
    side = float(max(tracks.height, tracks.width))
    points = tracks.points[tracks.reliable].double() / side  # [N, F, 2]
    if frames is not None:
        points = resample_time(points, frames, dim=1)
    travel = (points - points[:, :1]).norm(dim=-1).amax(dim=1) if points.shape[0] else torch.zeros(0)
    moving = points[travel > moving_threshold]
    return Motion(displacements=moving[:, 1:] - moving[:, :-1], tracked=int(points.shape[0]))


def correlation(a: torch.Tensor, b: torch.Tensor, still_step: float = STILL_STEP) -> torch.Tensor:
    """[N, M] mean over steps of the cosine between displacements a [N, T, 2] and b [M, T, 2] (steps still in
    both left out; 0 where every step is)."""
    length_a, length_b = a.norm(dim=-1), b.norm(dim=-1)  # [N, T], [M, T]
    unit_a = a / length_a.clamp_min(1e-12)[..., None]
    unit_b = b / length_b.clamp_min(1e-12)[..., None]
    cosine = torch.einsum("ntc,mtc->nmt", unit_a, unit_b)
    still_a, still_b = (length_a < still_step)[:, None], (length_b < still_step)[None]
    cosine = torch.where(still_a | still_b, torch.zeros_like(cosine), cosine)
    counted = (~(still_a & still_b)).sum(dim=-1)
    return cosine.sum(dim=-1) / counted.clamp_min(1)


def track_fidelity(a: Tracks, b: Tracks, moving_threshold: float = MOVING_THRESHOLD,
                   still_step: float = STILL_STEP) -> float:
    """The symmetric motion fidelity of two clips' tracks (see the module's docstring), in [-1, 1]."""
    frames = min(a.points.shape[1], b.points.shape[1])
    if frames < 2:
        raise MotionDirectorError("motion fidelity needs clips of at least 2 frames.")
    motion_a = moving_tracks(a, moving_threshold, frames)
    motion_b = moving_tracks(b, moving_threshold, frames)
    moves_a, moves_b = motion_a.moving >= MIN_MOVING, motion_b.moving >= MIN_MOVING
    if not (moves_a and moves_b):
        return 1.0 if moves_a == moves_b else 0.0
    matrix = correlation(motion_a.displacements, motion_b.displacements, still_step)
    return float(0.5 * (matrix.amax(dim=1).mean() + matrix.amax(dim=0).mean()))


def _tracks(clip, name: str, **tracker) -> Tracks:
    if isinstance(clip, Tracks):
        return clip
    try:
        return track_points(clip, **tracker)
    except MotionDirectorError as error:
        raise MotionDirectorError(f"{name}: {error}") from None


def motion_fidelity(generated, references, reduce: str = "mean", moving_threshold: float = MOVING_THRESHOLD,
                    still_step: float = STILL_STEP, **tracker) -> float:
    """Motion fidelity of a generated clip against one reference clip or several, each given as frames
    [F, H, W, 3] (or a ToyClip) or as Tracks already computed; `tracker` goes to track_points."""
    if reduce not in REDUCTIONS:
        raise MotionDirectorError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}.")
    generated = _tracks(generated, "generated", **tracker)
    scores = [track_fidelity(generated, _tracks(reference, f"reference {index}", **tracker), moving_threshold,
                             still_step) for index, reference in enumerate(as_list(references))]
    return max(scores) if reduce == "max" else sum(scores) / len(scores)
