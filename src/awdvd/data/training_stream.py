"""A training stream that does not run out: fresh crops and fresh camera noise from a randomized camera.

The paper's dataset (:func:`awdvd.data.synth.make_patch_dataset`) crops every synthetic image 20 times and adds one
noise draw: a network soon learns those patches, and it learns the one camera's noise texture with them (the
first bundled model lost 20 points when another camera's noise was added). Here every source image is blurred
once per level; then every batch draws new windows from random sources, levels and positions, one of the 8
dihedral transforms, an intensity scale and a camera from :class:`CameraRange`, and fresh noise.

Camera model of one draw (ADU, the source image ``raw`` in its own camera's units with offset ``source_offset``)::

    signal   = intensity_scale * max(raw_blurred - source_offset, 0) + pedestal      (ADU-equivalent of light)
    recorded = offset + gain * Poisson(signal / gain) + Normal(0, read_noise)     ("noiseless": offset + signal)

``pedestal`` is diffuse light (or an offset treated as light, as the paper's Eq. 1 does with Poisson noise on
raw counts). The network input is the window normalised with its *image's* range (:func:`image_range`), not the
window's own, so a window reads the same whether it is cut out alone or seen in a whole-image (dense) pass.

Background: a window is "bg" when nothing in it rises more than ``bg_sigmas`` noise standard deviations above its
image's background level (:func:`background_rule`); exactly constant windows are always bg.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .._checks import check_image, check_positive_int
from .._config import FrozenConfig
from ..physics.optics import Optics
from .patches import BACKGROUND, image_range
from .synth import blur_levels, forward_bank

__all__ = ["CameraRange", "Camera", "TrainingStream", "PAPER_CAMERAS", "UNSEEN_CAMERAS", "background_rule"]

# --------------------------------------------------------------------------------------------- cameras
@dataclass(frozen=True)
class Camera(FrozenConfig):
    """One camera (and illumination) for synthetic noise; see the module docstring for the model.

    gain_adu_per_e : ADU per photo-electron. offset_adu : added after the noise. pedestal_adu : diffuse light
    (photon-noisy). read_noise_adu : Gaussian read noise. intensity_scale : multiplies the source's signal.
    noiseless : no noise at all (the blurred source, rescaled and offset).
    """

    gain_adu_per_e: float = 0.33
    offset_adu: float = 96.0
    pedestal_adu: float = 0.0
    read_noise_adu: float = 0.0
    intensity_scale: float = 1.0
    noiseless: bool = False

    def __post_init__(self) -> None:
        for name in ("gain_adu_per_e", "offset_adu", "pedestal_adu", "read_noise_adu", "intensity_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"Camera.{name} must be a finite number >= 0, got {value!r}")
        if self.gain_adu_per_e <= 0 or self.intensity_scale <= 0:
            raise ValueError("Camera.gain_adu_per_e and intensity_scale must be positive")

    def record(self, raw_blurred: np.ndarray, rng: np.random.Generator, *, source_offset_adu: float) -> np.ndarray:
        """A recorded image (float32 ADU) of a noise-free blurred source ``raw_blurred`` (its camera's ADU)."""
        signal = self.intensity_scale * np.clip(np.asarray(raw_blurred, np.float64) - source_offset_adu, 0, None)
        signal += self.pedestal_adu
        if self.noiseless:
            return (signal + self.offset_adu).astype(np.float32)
        out = rng.poisson(signal / self.gain_adu_per_e) * self.gain_adu_per_e + self.offset_adu
        if self.read_noise_adu > 0:
            out = out + rng.normal(0.0, self.read_noise_adu, size=out.shape)
        return out.astype(np.float32)


#: The camera models of the robustness matrix (awdvd.validate.robustness): BBBC006's camera (photon-transfer fit), the
#: paper's Eq. 1 (Poisson on raw counts, offset included), gain 1 above BBBC006's offset, a dim high-gain camera,
#: and no added noise.
PAPER_CAMERAS = {
    "bbbc006": Camera(gain_adu_per_e=0.33, offset_adu=96.0),
    "paper-eq1": Camera(gain_adu_per_e=1.0, offset_adu=0.0, pedestal_adu=96.0),
    "gain1-offset96": Camera(gain_adu_per_e=1.0, offset_adu=96.0),
    "dim-high-gain": Camera(gain_adu_per_e=2.5, offset_adu=100.0, read_noise_adu=3.0, intensity_scale=0.3),
    "noiseless": Camera(noiseless=True, offset_adu=96.0, gain_adu_per_e=1.0),
}

#: Cameras outside the training stream's :class:`CameraRange` (each has a setting no training draw takes, see
#: :meth:`CameraRange.outside`): a high-offset, high-read-noise sCMOS-like camera, an electron-multiplying
#: camera's large gain on a dim specimen, and a bright specimen recorded at BBBC006's gain.
UNSEEN_CAMERAS = {
    "offset1000-read12": Camera(gain_adu_per_e=0.5, offset_adu=1000.0, read_noise_adu=12.0),
    "gain8-dim": Camera(gain_adu_per_e=8.0, offset_adu=100.0, intensity_scale=0.5),
    "bright-x6": Camera(gain_adu_per_e=0.33, offset_adu=96.0, intensity_scale=6.0),
}


@dataclass(frozen=True)
class CameraRange(FrozenConfig):
    """The randomized camera of the training stream: each window draws its own camera.

    Ranges are (low, high); gain and intensity scale are drawn log-uniformly, the others uniformly. The
    defaults hold every camera of :data:`PAPER_CAMERAS`: gains 0.15-3 ADU/e- (BBBC006 0.33, Eq. 1's 1, a high
    gain 2.5), intensity 0.25-3 x the source, pedestal 0-150 ADU in ``pedestal_probability`` of the draws
    (Eq. 1 puts Poisson noise on the 96 ADU offset), read noise 0-6 ADU, and ``noiseless_probability`` of draws
    without noise.
    """

    gain_adu_per_e: tuple[float, float] = (0.15, 3.0)
    intensity_scale: tuple[float, float] = (0.25, 3.0)
    offset_adu: tuple[float, float] = (0.0, 300.0)
    pedestal_adu: tuple[float, float] = (0.0, 150.0)
    pedestal_probability: float = 0.35
    read_noise_adu: tuple[float, float] = (0.0, 6.0)
    noiseless_probability: float = 0.1

    def __post_init__(self) -> None:
        for name in ("gain_adu_per_e", "intensity_scale", "offset_adu", "pedestal_adu", "read_noise_adu"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 2 or not all(math.isfinite(v) and v >= 0 for v in value) or value[0] > value[1]:
                raise ValueError(f"CameraRange.{name} must be (low, high) with 0 <= low <= high, got {value!r}")
            object.__setattr__(self, name, value)
        for name in ("gain_adu_per_e", "intensity_scale"):
            if getattr(self, name)[0] <= 0:
                raise ValueError(f"CameraRange.{name} must be positive, got {getattr(self, name)}")
        for name in ("pedestal_probability", "noiseless_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"CameraRange.{name} must be in [0, 1], got {getattr(self, name)}")

    def outside(self, camera: Camera) -> list[str]:
        """The settings of ``camera`` that no draw of this range takes (empty: the range holds it)."""
        if camera.noiseless:
            return [] if self.noiseless_probability > 0 else ["noiseless"]
        names = ["gain_adu_per_e", "intensity_scale", "offset_adu", "read_noise_adu"]
        out = [name for name in names if not getattr(self, name)[0] <= getattr(camera, name) <= getattr(self, name)[1]]
        if camera.pedestal_adu > 0 and not (self.pedestal_probability > 0
                                            and self.pedestal_adu[0] <= camera.pedestal_adu <= self.pedestal_adu[1]):
            out.append("pedestal_adu")
        return out

    def draw(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` cameras as arrays: gain, offset, pedestal, read, scale (float64) and noiseless (bool)."""

        def log_uniform(bounds):
            lo, hi = np.log(bounds[0]), np.log(bounds[1])
            return np.exp(rng.uniform(lo, hi, size=n))

        pedestal = rng.uniform(*self.pedestal_adu, size=n) * (rng.random(n) < self.pedestal_probability)
        return {"gain": log_uniform(self.gain_adu_per_e), "scale": log_uniform(self.intensity_scale),
                "offset": rng.uniform(*self.offset_adu, size=n), "pedestal": pedestal,
                "read": rng.uniform(*self.read_noise_adu, size=n),
                "noiseless": rng.random(n) < self.noiseless_probability}


# --------------------------------------------------------------------------------------------- background
#: Gain of the source images' own camera (BBBC006's, measured: variance = 0.33 x signal ADU^2): their native
#: noise stays in a blurred source, so it counts in the background rule (of noiseless draws above all).
SOURCE_GAIN_ADU_PER_E = 0.33


def background_rule(window_max_adu, background_adu, noise_sigma_adu, *, bg_sigmas: float = 4.0) -> np.ndarray:
    """True where nothing in a window rises ``bg_sigmas`` noise standard deviations above its image's
    background: ``window_max - background < bg_sigmas * noise_sigma`` (noise-free values, ADU)."""
    return np.asarray(window_max_adu) - np.asarray(background_adu) < bg_sigmas * np.asarray(noise_sigma_adu)


# --------------------------------------------------------------------------------------------- stream
class TrainingStream:
    """Endless batches of normalised windows with labels, from in-focus sources blurred at every level.

    Parameters
    ----------
    sources : in-focus images (2-D, raw ADU of their camera, offset ``source_offset_adu``), each >= patch_px.
    optics : levels and PSFs (Eq. 2); level 0 is the source itself.
    cameras : the :class:`CameraRange` drawn from (or one :class:`Camera` for every window).
    patch_px : window side.
    source_weights : relative probability of drawing each source (default: equal).
    bg_sigmas : the background rule's threshold (:func:`background_rule`).
    seed : the stream's generator; the same seed gives the same batches.
    psf_size : PSF size (odd px; default: 99% energy of the deepest level).
    source_offset_adu, source_gain_adu_per_e : the offset and gain of the camera that recorded ``sources``
        (BBBC006's by default): light is what lies above the offset, and the sources' own noise is counted in the
        background rule.

    ``batch(n)`` returns (x, labels): x (n, 1, p, p) float32 normalised windows, labels (n,) int64 level or
    BACKGROUND. Iterating yields batches of ``batch_size`` forever.
    """

    def __init__(self, sources: Sequence[np.ndarray], *, optics: Optics | None = None,
                 cameras: CameraRange | Camera | None = None, patch_px: int = 84,
                 source_weights: Sequence[float] | None = None, bg_sigmas: float = 4.0, seed=0,
                 psf_size: int | None = None, source_offset_adu: float = 96.0,
                 source_gain_adu_per_e: float = SOURCE_GAIN_ADU_PER_E, dihedral: bool = True, batch_size: int = 128):
        self.optics = Optics() if optics is None else optics
        self.cameras = CameraRange() if cameras is None else cameras
        self.patch_px = check_positive_int(patch_px, "patch_px")
        self.bg_sigmas = float(bg_sigmas)
        self.source_offset_adu = float(source_offset_adu)
        self.source_gain_adu_per_e = float(source_gain_adu_per_e)
        if not (math.isfinite(self.source_offset_adu) and math.isfinite(self.source_gain_adu_per_e)
                and self.source_gain_adu_per_e > 0):
            raise ValueError("source_offset_adu must be finite and source_gain_adu_per_e positive")
        self.dihedral = bool(dihedral)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        sources = [check_image(s, f"sources[{i}]", min_shape=(patch_px, patch_px)).astype(np.float32)
                   for i, s in enumerate(sources)]
        if not sources:
            raise ValueError("a training stream needs at least one source image")
        bank = forward_bank(self.optics, size=psf_size)
        self.levels = []   # per source: (L, H, W) float32 noise-free blurred images (raw ADU)
        self.ranges = []   # per source: (L, 2) image_range of each blurred image (raw ADU)
        for image in sources:
            blurred = blur_levels(image, bank[1:]) if len(bank) > 1 else np.zeros((0,) + image.shape, np.float32)
            stack = np.concatenate([image[None], blurred]).astype(np.float32)
            self.levels.append(stack)
            self.ranges.append(np.array([image_range(plane) for plane in stack]))
        weights = np.ones(len(sources)) if source_weights is None else np.asarray(source_weights, np.float64)
        if weights.shape != (len(sources),) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError("source_weights must be one non-negative weight per source, not all zero")
        self.source_p = weights / weights.sum()

    @property
    def n_levels(self) -> int:
        return self.optics.n_levels

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            yield self.batch(self.batch_size)

    def _cameras(self, n: int) -> dict[str, np.ndarray]:
        if isinstance(self.cameras, Camera):
            c = self.cameras
            return {"gain": np.full(n, c.gain_adu_per_e), "scale": np.full(n, c.intensity_scale),
                    "offset": np.full(n, c.offset_adu), "pedestal": np.full(n, c.pedestal_adu),
                    "read": np.full(n, c.read_noise_adu), "noiseless": np.full(n, c.noiseless)}
        return self.cameras.draw(self.rng, n)

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        rng, p = self.rng, self.patch_px
        src = rng.choice(len(self.levels), size=n, p=self.source_p)
        lev = rng.integers(0, self.n_levels, size=n)
        raw = np.empty((n, p, p), np.float32)
        rng_lo = np.empty(n)
        rng_hi = np.empty(n)
        for i in range(n):
            stack = self.levels[src[i]]
            y = rng.integers(0, stack.shape[1] - p + 1)
            x = rng.integers(0, stack.shape[2] - p + 1)
            raw[i] = stack[lev[i], y : y + p, x : x + p]
            rng_lo[i], rng_hi[i] = self.ranges[src[i]][lev[i]]
        cam = self._cameras(n)
        x, labels = self.record(raw, lev, rng_lo, rng_hi, cam)
        if self.dihedral:
            kinds = rng.integers(0, 8, size=n)
            for kind in range(8):
                rows = np.nonzero(kinds == kind)[0]
                if rows.size:
                    block = x[rows]
                    if kind >= 4:
                        block = block.transpose(0, 2, 1)
                    x[rows] = np.rot90(block, kind % 4, axes=(1, 2))
        return x[:, None], labels

    def record(self, raw, lev, range_lo, range_hi, cam) -> tuple[np.ndarray, np.ndarray]:
        """Noisy, normalised windows and labels for noise-free windows ``raw`` (n, p, p) of images whose
        noise-free ranges are ``range_lo/hi`` (raw ADU), recorded by cameras ``cam`` (arrays of n)."""
        rng, off = self.rng, self.source_offset_adu
        shape = (-1, 1, 1)
        scale, gain = cam["scale"].reshape(shape), cam["gain"].reshape(shape)
        signal = scale * np.clip(raw.astype(np.float64) - off, 0, None) + cam["pedestal"].reshape(shape)
        noisy = rng.poisson(signal / gain) * gain + rng.normal(size=raw.shape) * cam["read"].reshape(shape)
        quiet = cam["noiseless"]
        noisy[quiet] = signal[quiet]
        recorded = noisy + cam["offset"].reshape(shape)
        # the image's range under this camera: the noise-free range mapped through the same affine signal model
        lo = cam["offset"] + cam["pedestal"] + cam["scale"] * np.clip(range_lo - off, 0, None)
        hi = cam["offset"] + cam["pedestal"] + cam["scale"] * np.clip(range_hi - off, 0, None)
        span = np.maximum(hi - lo, 1e-6)
        x = ((recorded - lo.reshape(shape)) / span.reshape(shape)).astype(np.float32)
        # background: nothing rises bg_sigmas noise sigmas above the image's background
        background = cam["scale"] * np.clip(range_lo - off, 0, None) + cam["pedestal"]
        sigma2 = np.where(quiet, 0.0, cam["gain"] * background + cam["read"] ** 2)
        sigma2 = sigma2 + cam["scale"] ** 2 * self.source_gain_adu_per_e * np.clip(range_lo - off, 1.0, None)
        peak = (signal.max(axis=(1, 2)))
        bg = background_rule(peak, background, np.sqrt(sigma2), bg_sigmas=self.bg_sigmas)
        bg |= raw.max(axis=(1, 2)) == raw.min(axis=(1, 2))
        labels = np.where(bg, BACKGROUND, lev).astype(np.int64)
        return x, labels
