"""The resolved plan of one restoration: what :class:`awdvd.restore.options.AWDVDOptions` left open, decided for one
image and one model (the RL schedule of every level, the offset, the device), together with the blend's choices.

The pipeline (:func:`awdvd.restore.pipeline.restore_image`) builds one :class:`RestorationPlan` and hands it
inward: the blend (:func:`awdvd.restore.blend.deconvolve_levels`) and the tiles of large images
(:func:`awdvd.restore.tiles.tiled_deconvolve_levels`) take it instead of a dozen keyword arguments, and the job's
sidecar records :meth:`RestorationPlan.describe`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

from .options import LEVEL_BLENDS, METHODS
from .rl import BOUNDARIES, check_eps, check_offset
from .rl_schedule import RLSchedule
from .windows import WEIGHTINGS

__all__ = ["RestorationPlan"]


@dataclass(frozen=True)
class RestorationPlan:
    """How the windows of one image are deconvolved and blended, every choice made.

    Parameters
    ----------
    iterations : an :class:`awdvd.restore.rl_schedule.RLSchedule` (variant, counts or stopping rule per level,
        and the share of its change each level keeps), or one int >= 0 for every level, or one per level (plain
        RL; 0 leaves a level as it is).
    method : "fast" (one RL per level over its region) or "patchwise" (one RL per window, the paper's).
    weighting : "triangular" or "rectangular" window weights.
    level_blend : "argmax" (each window takes its most likely level's restoration) or "probability".
    offset : background (ADU) removed before RL and added back: a number ("auto" is resolved before a plan is made).
    halo_px : image context (px) around the pixels each RL serves, or None (per level 3 x the PSF's 99% radius).
    device : where RL runs: "auto" / "cpu" / "cuda[:N]" (the pipeline resolves "auto" before it builds a plan).
    boundary : "extended" (default: every RL's estimate reaches a PSF radius beyond the image or tile it restores,
        and only the pixels inside are data, so light from outside the field of view is explained by the outside
        instead of by mirrored nuclei; on cropped tilted specimens it restores the outer band as well as the
        interior, benchmarks/bench_borders.py) or "symmetric" (the image mirrored at its edges, as
        :func:`awdvd.restore.rl.richardson_lucy`). The "fast" method's RLs only: "patchwise" (the paper's
        one RL per window) always mirrors the image at its edges.
    eps : RL's floor, or None: ``1e-6 * max(image - offset)`` of the image being restored (tiles of a large image
        get the whole image's).

    Examples
    --------
    >>> from awdvd.restore.plan import RestorationPlan
    >>> RestorationPlan(iterations=30, method="fast", weighting="triangular", level_blend="argmax", offset=100.0,
    ...                 halo_px=None, device="cpu").replace(offset=0.0).offset
    0.0
    """

    iterations: RLSchedule | int | tuple[int, ...]
    method: str
    weighting: str
    level_blend: str
    offset: float
    halo_px: int | None
    device: str
    eps: float | None = None
    boundary: str = "extended"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {self.boundary!r}")
        if self.level_blend not in LEVEL_BLENDS:
            raise ValueError(f"level_blend must be one of {LEVEL_BLENDS}, got {self.level_blend!r}")
        object.__setattr__(self, "offset", check_offset(self.offset))
        if self.eps is not None:
            object.__setattr__(self, "eps", check_eps(self.eps))
        if isinstance(self.iterations, Sequence) and not isinstance(self.iterations, str):
            object.__setattr__(self, "iterations", tuple(self.iterations))

    def replace(self, **changes) -> RestorationPlan:
        """A checked copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict:
        """JSON-ready: the blend's choices and the RL schedule (variant, iterations, where they came from)."""
        out = {"method": self.method, "weighting": self.weighting, "level_blend": self.level_blend,
               "offset": self.offset, "halo_px": self.halo_px, "device": self.device, "boundary": self.boundary}
        if isinstance(self.iterations, RLSchedule):
            out.update(self.iterations.describe())
        else:
            out["iterations"] = self.iterations if isinstance(self.iterations, int) else list(self.iterations)
        return out
