"""How AWDVD restores an image: :class:`AWDVDOptions`, the one place where awdvd's restoration defaults are written
(the library's :func:`awdvd.defocus_map` and :func:`awdvd.deconvolve`, the CLI, the per-file jobs and the napari
widgets all take theirs from it), and the vocabularies its fields choose from."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._checks import check_odd_size, check_positive_int
from .._config import FrozenConfig
from .rl import BOUNDARIES, RL_VARIANTS, check_offset, check_variant
from .windows import WEIGHTINGS

__all__ = ["AWDVDOptions", "options_with", "METHODS", "LEVEL_BLENDS", "MAP_MODES", "NORMALIZATIONS", "TTA_CHOICES"]


#: the blend's algorithms: one RL per level over its region (DESIGN 4), or one RL per window (the paper's)
METHODS = ("fast", "patchwise")
#: how a window's restoration is chosen: its most likely level's ("argmax", the paper's) or its candidate
#: levels' blended by probability ("probability")
LEVEL_BLENDS = ("argmax", "probability")
#: how a defocus map is computed (:mod:`awdvd.restore.defocus_maps`)
MAP_MODES = ("auto", "patch", "dense")
#: dense maps of "window-minmax" models: per-pixel min-max over a window-sized box, or the image's
NORMALIZATIONS = ("local", "global")
TTA_CHOICES = (1, 2, 4, 8)  # dihedral transforms averaged: identity; + transpose; + 180 degree turns; all 8


def _check_device_name(device) -> str:
    if not isinstance(device, str):
        raise TypeError(f"device must be a string ('auto', 'cpu', 'cuda' or 'cuda:N'), got {type(device).__name__}")
    if device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit()):
        return device
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")


@dataclass(frozen=True)
class AWDVDOptions(FrozenConfig):
    """How AWDVD restores an image: the one place awdvd's restoration defaults are written. Frozen, validated
    when built, JSON-able (``to_dict`` / ``from_dict``); ``replace(**changes)`` makes a checked copy.

    Parameters
    ----------
    stride : window step (px), 1 .. the model's window side (``model.patch_px``, 84 for DelpNet; checked
        against the model in the pipeline). The paper's case (ii) is 42 with triangular weights, case (i) 84
        with rectangular ones.
    iterations : Richardson-Lucy iterations: one int >= 0 for every level (the paper's behaviour), a tuple of
        one int per level (0 leaves that level as it is), or None: the model's calibrated per-level schedule
        when its file carries one (:mod:`awdvd.restore.calibration`: per level a stopping rule and its most iterations,
        level 0 left as it is), else 30 for every level (:func:`rl_schedule` resolves it; the sidecar records
        which was used).
    rl : the Richardson-Lucy variant: "plain" (the paper's Eq. 3), "accelerated" (Biggs-Andrews) or "tv"
        (total-variation regularised, Dey et al.); None: the model schedule's (its default variant), else
        plain.
    tv_weight : weight of the TV prior for ``rl="tv"`` (typical 0.001-0.01), or None: the schedule's, else
        0.006.
    method : "fast" (one RL per level over its region, DESIGN 4) or "patchwise" (one RL per window, the
        paper's algorithm and the reference).
    weighting : "triangular" (base = window, height stride / (window / 2)) or "rectangular".
    level_blend : "probability" (default: a window whose probabilities are split between levels gets their
        restorations in proportion, classes under 10% dropped; :func:`awdvd.restore.blend.window_label_weights`) or
        "argmax" (each window takes its most likely level's restoration, the paper's). Measured on tilted
        specimens of the six shared fields with the bundled model (stride 42): whole-image gain +7.96 dB vs
        +7.72, worst level band -0.01 vs -0.14 dB, worst band of a single field -1.18 vs -1.27 dB. Maps without
        probabilities (known levels) are one-hot: both are the same.
    boundary : how the fast method's RLs treat the outside of the image: "extended" (default: unknown, the
        estimate reaching a PSF radius beyond the image, only the image's pixels data, so the light of nuclei
        outside the field of view is not restored against their mirror image; on cropped tilted specimens of
        unseen fields the outer 40 px band gains +0.28 dB more than the interior, against 2.14 dB less with
        "symmetric": benchmarks/bench_borders.py) or "symmetric" (the image mirrored at its edges; the one that
        keeps the image's flux exactly).
    offset : camera offset + background (ADU) removed before RL and added back: a number, or "auto" (the
        image's 1st percentile, one value per image; on BBBC006-like data 0.4-2.7 dB PSNR better than 0).
        The value used is recorded (:class:`Restoration`, the job's sidecar).
    psf_size : odd PSF side (px) of the deconvolution PSFs, or None (99% of the deepest level's energy).
    halo_px : image context (px) around the pixels each RL serves, or None (per level 3 x the PSF's 99%
        radius, :func:`awdvd.restore.rl.default_halo_px`).
    map_mode : how the defocus map is computed: "auto" (dense where a dense pass is exact, i.e. for
        "image-range" models like the bundled one; patch otherwise), "patch" (every window through the network,
        the reference) or "dense" (one trunk pass, :mod:`awdvd.restore.defocus_maps`).
    normalization : dense maps only: "local" (per-pixel min-max over the window-sized box) or "global".
    tta : the map's class probabilities averaged over 1, 2, 4 or 8 dihedral transforms of the image.
    smoothing_px : each window's log-probabilities combined with its neighbours' by a Gaussian of this sigma
        (px, between window centres; 0: none): depth varies smoothly across a specimen
        (:func:`awdvd.restore.defocus_maps.smooth_proba`). Default 21: on a tilted specimen of the held-out BBBC006 field a07
        (BBBC006's camera, bundled model) window levels exact 0.547 -> 0.620, within +/-1 0.740 -> 0.802, AWDVD
        PSNR 37.84 -> 37.86 dB; 42 px gave 0.604 / 0.865 / 37.62 dB.
    device : where the network's map and RL run: "auto" (CUDA when torch sees a GPU), "cpu", "cuda[:N]"
        (resolved by :func:`awdvd._device.resolve_device` when the pipeline runs).

    """

    stride: int = 42
    iterations: int | tuple[int, ...] | None = None
    rl: str | None = None
    tv_weight: float | None = None
    method: str = "fast"
    weighting: str = "triangular"
    level_blend: str = "probability"
    boundary: str = "extended"
    offset: float | str = "auto"
    psf_size: int | None = None
    halo_px: int | None = None
    map_mode: str = "auto"
    normalization: str = "local"
    tta: int = 1
    smoothing_px: float = 21.0
    device: str = "auto"

    def __post_init__(self) -> None:
        check_positive_int(self.stride, "stride")
        if isinstance(self.iterations, (list, tuple)):
            values = tuple(check_positive_int(v, "iterations", minimum=0) for v in self.iterations)
            if not values:
                raise ValueError("iterations is an empty tuple; give one int per level, one int, or None")
            object.__setattr__(self, "iterations", values)
        elif self.iterations is not None:
            check_positive_int(self.iterations, "iterations", minimum=0)
        if self.rl is not None and self.rl not in RL_VARIANTS:
            raise ValueError(f"rl must be one of {RL_VARIANTS} or None (the model's schedule), got {self.rl!r}")
        if self.tv_weight is not None:
            object.__setattr__(self, "tv_weight", check_variant("tv", self.tv_weight)[1])
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {self.boundary!r}")
        if self.level_blend not in LEVEL_BLENDS:
            raise ValueError(f"level_blend must be one of {LEVEL_BLENDS}, got {self.level_blend!r}")
        if isinstance(self.offset, str):
            if self.offset != "auto":
                raise ValueError(f"offset must be a number (ADU) or 'auto', got {self.offset!r}")
        else:
            object.__setattr__(self, "offset", check_offset(self.offset))
        if self.psf_size is not None:
            check_odd_size(self.psf_size, "psf_size")
        if self.halo_px is not None:
            check_positive_int(self.halo_px, "halo_px", minimum=0)
        if self.map_mode not in MAP_MODES:
            raise ValueError(f"map_mode must be one of {MAP_MODES}, got {self.map_mode!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if isinstance(self.tta, bool) or self.tta not in TTA_CHOICES:
            raise ValueError(f"tta must be one of {TTA_CHOICES} (dihedral transforms averaged), got {self.tta!r}")
        if (isinstance(self.smoothing_px, bool) or not isinstance(self.smoothing_px, (int, float))
                or not math.isfinite(self.smoothing_px) or self.smoothing_px < 0):
            raise ValueError(f"smoothing_px must be a number >= 0 (px; 0: no smoothing), got {self.smoothing_px!r}")
        object.__setattr__(self, "smoothing_px", float(self.smoothing_px))
        _check_device_name(self.device)

    def check_patch_px(self, patch_px: int) -> None:
        """Raise ValueError (one sentence) if ``stride`` exceeds a model's window side ``patch_px``."""
        if self.stride > int(patch_px):
            raise ValueError(f"stride {self.stride} px is larger than the model's {patch_px} px windows, which "
                             f"would leave pixels between them; choose a stride of 1..{patch_px}")


def options_with(options: AWDVDOptions | None, overrides: dict) -> AWDVDOptions:
    """``options`` (default ``AWDVDOptions()``) with keyword overrides of its fields applied and checked."""
    if options is None:
        options = AWDVDOptions()
    elif not isinstance(options, AWDVDOptions):
        raise TypeError(f"options must be an AWDVDOptions, got {type(options).__name__}")
    return options.replace(**overrides) if overrides else options
