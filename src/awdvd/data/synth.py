"""Synthetic defocus: the forward model of the paper's Eq. 1, camera noise, and patch datasets (paper 2.1).

Arrays in, arrays out: nothing here reads or writes files (see :mod:`awdvd.data.datasets` and :mod:`awdvd.io`). The
patch vocabulary (:class:`~awdvd.data.patches.PatchSet`, the normalisation, the background rule, SPLITS and
BACKGROUND) lives in :mod:`awdvd.data.patches`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from .._checks import check_image, check_positive_int
from .._config import FrozenConfig
from .._threads import allowed_threads
from ..physics.optics import Optics
from ..physics.psf import check_psf_stack, psf_bank, psf_otfs
from .patches import SPLITS, PatchSet, image_range, is_background

__all__ = [
    "CameraNoise",
    "DatasetSpec",
    "blur",
    "blur_levels",
    "depth_variant_blur",
    "estimate_camera_noise",
    "forward_bank",
    "make_patch_dataset",
    "split_counts",
    "synthetic_nuclei",
    "tilted_levels", "TiltedSpecimen", "tilted_specimen"]

# --------------------------------------------------------------------------------------------- camera noise
@dataclass(frozen=True)
class CameraNoise(FrozenConfig):
    """Camera model: ADU = gain * Poisson(photons) + offset + Normal(0, read_noise).

    The defaults are BBBC006's camera as measured from the shared z00 images by :func:`estimate_camera_noise`
    (photon transfer: variance = 0.33 * (mean - 96) ADU^2). They reproduce the real background noise (about
    3 ADU at 125 ADU), which the paper's background rule (range < 30 ADU in an 84 x 84 patch) relies on.
    ``CameraNoise(gain_adu_per_e=1, offset_adu=0)`` treats raw counts as photon counts.
    """

    gain_adu_per_e: float = 0.33
    offset_adu: float = 96.0
    read_noise_adu: float = 0.0

    def __post_init__(self) -> None:
        for name in ("gain_adu_per_e", "offset_adu", "read_noise_adu"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"CameraNoise.{name} must be a finite number, got {value!r}")
        if self.gain_adu_per_e <= 0:
            raise ValueError(f"CameraNoise.gain_adu_per_e must be positive, got {self.gain_adu_per_e}")
        if self.offset_adu < 0 or self.read_noise_adu < 0:
            raise ValueError("CameraNoise.offset_adu and read_noise_adu must be >= 0")

    def apply(self, expected_adu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noisy camera image (float32, ADU) for a noise-free image ``expected_adu`` (ADU, offset included)."""
        photons = np.clip((np.asarray(expected_adu, dtype=np.float64) - self.offset_adu) / self.gain_adu_per_e, 0, None)
        noisy = rng.poisson(photons).astype(np.float64) * self.gain_adu_per_e + self.offset_adu
        if self.read_noise_adu > 0:
            noisy += rng.normal(0.0, self.read_noise_adu, size=noisy.shape)
        return noisy.astype(np.float32)


def estimate_camera_noise(images: Sequence[np.ndarray], *, n_bins: int = 40) -> CameraNoise:
    """Fit gain and offset from the photon-transfer curve of smooth (e.g. strongly defocused) images.

    Per pixel, the noise variance is taken from a 5-point Laplacian (which removes smooth signal) and the
    local mean from a 9 x 9 box; binned means and variances are fit by ``var = gain * (mean - offset)``.
    Works best on images without sharp structure, such as the BBBC006 z00 plane.
    """
    from scipy import ndimage as ndi

    means, variances = [], []
    for index, image in enumerate(images):
        a = check_image(image, f"images[{index}]", min_shape=(16, 16)).astype(np.float64)
        hp = a[1:-1, 1:-1] - 0.25 * (a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:])
        means.append(ndi.uniform_filter(a, 9)[1:-1, 1:-1].ravel())
        variances.append(hp.ravel() ** 2 / 1.25)  # var(hp) = (1 + 4/16) var for white noise
    if not means:
        raise ValueError("estimate_camera_noise needs at least one image")
    m, v = np.concatenate(means), np.concatenate(variances)
    edges = np.unique(np.percentile(m, np.linspace(0, 95, n_bins + 1)))
    index = np.digitize(m, edges[1:-1])
    bm = np.array([m[index == i].mean() for i in range(len(edges) - 1) if np.any(index == i)])
    bv = np.array([v[index == i].mean() for i in range(len(edges) - 1) if np.any(index == i)])
    if len(bm) < 3 or np.ptp(bm) <= 0:
        raise ValueError("the images have too little intensity range to fit a photon-transfer curve")
    gain, intercept = np.polyfit(bm, bv, 1)
    if gain <= 0:
        raise ValueError("noise variance does not grow with intensity in these images; cannot fit a gain")
    return CameraNoise(gain_adu_per_e=float(gain), offset_adu=float(max(0.0, -intercept / gain)))


# --------------------------------------------------------------------------------------------- blurring
def blur_levels(image: np.ndarray, psfs: np.ndarray) -> np.ndarray:
    """Convolve ``image`` (H, W) with each PSF of ``psfs`` (L, k, k): (L, H, W) float32.

    Boundaries are half-sample symmetric ("reflect" in scipy.ndimage's terms), under which a symmetric,
    sum-1 PSF conserves the image's flux exactly. The image's FFT is shared by all PSFs.
    """
    from scipy import fft

    image = check_image(image).astype(np.float64)
    psfs, _ = check_psf_stack(psfs)
    r = psfs.shape[-1] // 2
    padded = np.pad(image, r, mode="symmetric")
    shape = tuple(fft.next_fast_len(s + 2 * r, real=True) for s in padded.shape)
    spectrum = fft.rfft2(padded, s=shape, workers=allowed_threads())
    out = np.empty((psfs.shape[0],) + image.shape, dtype=np.float32)
    otfs = psf_otfs(psfs, shape, dtype=np.complex128)
    for index, otf in enumerate(otfs):
        full = fft.irfft2(spectrum * otf, s=shape, workers=allowed_threads())
        out[index] = full[r : r + image.shape[0], r : r + image.shape[1]]
    return out


def blur(image: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """Depth-invariant blur of ``image`` (H, W) by one ``psf`` (k, k): float32 (H, W); see :func:`blur_levels`."""
    psf = np.asarray(psf)
    if psf.ndim != 2:
        raise ValueError(f"psf must be 2-D, got shape {psf.shape}")
    return blur_levels(image, psf[None])[0]


def depth_variant_blur(image: np.ndarray, levels: np.ndarray, psfs: np.ndarray) -> np.ndarray:
    """Depth-variant forward model: i = sum_l psfs[l] conv (image * [levels == l]).

    Parameters
    ----------
    image : (H, W) in-focus object, non-negative.
    levels : (H, W) integer defocus level of every pixel, in ``0 .. len(psfs) - 1``.
    psfs : (L, k, k) one PSF per level (e.g. :func:`forward_bank`).

    Returns
    -------
    (H, W) float32, flux conserved (symmetric boundaries).
    """
    image = check_image(image).astype(np.float64)
    levels = np.asarray(levels)
    psfs, _ = check_psf_stack(psfs)
    if levels.shape != image.shape:
        raise ValueError(f"levels has shape {levels.shape}, the image {image.shape}; they must match")
    if not np.issubdtype(levels.dtype, np.integer):
        raise TypeError(f"levels must be integers, got dtype {levels.dtype}")
    if levels.size and (levels.min() < 0 or levels.max() >= len(psfs)):
        raise ValueError(f"levels must lie in 0..{len(psfs) - 1}, got {levels.min()}..{levels.max()}")
    out = np.zeros(image.shape, dtype=np.float64)
    for level in np.unique(levels):
        out += blur(image * (levels == level), psfs[level])
    return out.astype(np.float32)


def forward_bank(optics: Optics | None = None, *, size: int | None = None) -> np.ndarray:
    """PSFs for synthesising level ``l`` from an in-focus image, as in the paper: level 0 is the in-focus image
    itself (a delta PSF, "no synthetic degradation"), level ``l > 0`` the Eq. 2 PSF at ``l * z_step_um``."""
    bank = psf_bank(optics, size=size)
    bank[0] = 0.0
    bank[0, bank.shape[1] // 2, bank.shape[2] // 2] = 1.0
    return bank


# --------------------------------------------------------------------------------------------- patch datasets
@dataclass(frozen=True)
class DatasetSpec(FrozenConfig):
    """How :func:`make_patch_dataset` builds patches (paper 2.1 defaults).

    split_by : "image" shuffles synthetic images into the splits (the paper: one source image's levels may
        sit in different splits, but a synthetic image's patches never do); "source" keeps all levels of a
        source image in one split (strict).
    realizations : synthetic images per (source, level), each with its own noise draw and crops. The paper
        had 381 sources; with a handful, 1 leaves whole levels out of val/test (e.g. 6 sources: 7 test
        images), and several realizations give every split every level. Realizations of one (source, level)
        are split independently under "image", like the paper's levels of one source.
    """

    patch_px: int = 84
    crops_per_image: int = 20
    realizations: int = 1
    fractions: tuple[float, float, float] = (0.75, 0.15, 0.10)
    split_by: str = "image"
    bg_max_below: float = 230.0
    bg_range_below: float = 30.0
    psf_size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive_int(self.patch_px, "patch_px", minimum=8)
        check_positive_int(self.crops_per_image, "crops_per_image")
        check_positive_int(self.realizations, "realizations")
        check_positive_int(self.seed, "seed", minimum=0)
        f = tuple(float(x) for x in self.fractions)
        if len(f) != 3 or any(x < 0 or not math.isfinite(x) for x in f) or abs(sum(f) - 1) > 1e-6:
            raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {self.fractions}")
        object.__setattr__(self, "fractions", f)
        if self.split_by not in ("image", "source"):
            raise ValueError(f"split_by must be 'image' or 'source', got {self.split_by!r}")


def split_counts(n: int, fractions: Sequence[float]) -> tuple[int, ...]:
    """Integer sizes summing to ``n`` (largest remainder), every non-zero fraction getting >= 1 when n allows."""
    raw = np.asarray(fractions, dtype=float) * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    for i in np.nonzero((counts == 0) & (np.asarray(fractions) > 0))[0]:
        donor = int(np.argmax(counts))
        if counts[donor] > 1:
            counts[donor] -= 1
            counts[i] += 1
    return tuple(int(c) for c in counts)


def _assign_splits(n_sources: int, n_levels: int, spec: DatasetSpec) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) of every synthetic image, shape (n_sources, n_levels, realizations)."""
    rng = np.random.default_rng([spec.seed, 1])
    r = spec.realizations
    units = n_sources * n_levels * r if spec.split_by == "image" else n_sources
    order = rng.permutation(units)
    assignment = np.empty(units, dtype=np.int8)
    start = 0
    for split, count in enumerate(split_counts(units, spec.fractions)):
        assignment[order[start : start + count]] = split
        start += count
    if spec.split_by == "image":
        return assignment.reshape(n_sources, n_levels, r)
    return np.broadcast_to(assignment[:, None, None], (n_sources, n_levels, r))


def make_patch_dataset(
    sources: Sequence[np.ndarray],
    *,
    optics: Optics | None = None,
    noise: CameraNoise | None = None,
    spec: DatasetSpec | None = None,
    source_names: Sequence[str] | None = None,
    progress: bool = False,
) -> tuple[dict[str, PatchSet], dict]:
    """Synthesise the paper's patch dataset from in-focus images.

    Every source image is blurred at each level of ``optics`` (level 0: the image itself), camera noise is
    added to the whole synthetic image (not at level 0, the real in-focus image, which keeps its own noise),
    ``spec.realizations`` times with independent noise; the synthetic images are split into train/val/test, and
    each is cropped ``spec.crops_per_image`` times.

    Parameters
    ----------
    sources : in-focus images, each 2-D (H, W) with H, W >= ``spec.patch_px``, in camera units (ADU).
    optics, noise, spec : see :class:`~awdvd.physics.optics.Optics`, :class:`CameraNoise`, :class:`DatasetSpec`.
    source_names : one name per source, stored in the metadata.
    progress : show a progress bar over source images.

    Returns
    -------
    splits : {"train", "val", "test"} -> :class:`PatchSet`.
    metadata : JSON-serialisable dict (optics, noise, spec, sources, counts per class and split).

    The result depends only on the inputs and ``spec.seed``: every synthetic image draws from its own
    generator seeded by (seed, source, level, realization).
    """
    optics = Optics() if optics is None else optics
    noise = CameraNoise() if noise is None else noise
    spec = DatasetSpec() if spec is None else spec
    sources = list(sources)
    if not sources:
        raise ValueError("no source images given")
    names = [f"source_{i}" for i in range(len(sources))] if source_names is None else [str(n) for n in source_names]
    if len(names) != len(sources):
        raise ValueError(f"{len(names)} source names for {len(sources)} sources")
    p = spec.patch_px
    for index, image in enumerate(sources):
        check_image(image, f"source image {names[index]!r}", min_shape=(p, p))
        if np.ptp(image) == 0:
            raise ValueError(f"source image {names[index]!r} is constant; it holds nothing to defocus")

    bank = forward_bank(optics, size=spec.psf_size)
    assignment = _assign_splits(len(sources), optics.n_levels, spec)
    parts: dict[int, list[PatchSet]] = {0: [], 1: [], 2: []}

    for s_index in tqdm(range(len(sources)), desc="synthesising", unit="image", disable=not progress):
        image = np.asarray(sources[s_index], dtype=np.float64)
        blurred = blur_levels(image, bank[1:])
        for level in range(optics.n_levels):
            for r in range(spec.realizations):
                # realization 0 keeps the seeds of datasets made before realizations existed
                rng = np.random.default_rng([spec.seed, 2, s_index, level] + ([r] if r else []))
                if level == 0:
                    synthetic = image.astype(np.float32)
                else:
                    synthetic = noise.apply(blurred[level - 1], rng)
                ys = rng.integers(0, image.shape[0] - p + 1, size=spec.crops_per_image)
                xs = rng.integers(0, image.shape[1] - p + 1, size=spec.crops_per_image)
                raw = np.stack([synthetic[y : y + p, x : x + p] for y, x in zip(ys, xs)])
                truth = np.stack([image[y : y + p, x : x + p] for y, x in zip(ys, xs)]).astype(np.float32)
                n = spec.crops_per_image
                image_id = (s_index * optics.n_levels + level) * spec.realizations + r
                parts[int(assignment[s_index, level, r])].append(
                    PatchSet(
                        raw=raw,
                        truth=truth,
                        level=np.full(n, level, np.int16),
                        background=is_background(raw, max_below=spec.bg_max_below,
                                                 range_below=spec.bg_range_below),
                        source=np.full(n, s_index, np.int32),
                        image=np.full(n, image_id, np.int32),
                        yx=np.stack([ys, xs], axis=1).astype(np.int32),
                        image_range=np.tile(np.asarray(image_range(synthetic), np.float32), (n, 1)),
                    )
                )
    splits = {name: PatchSet.concatenate(parts[i], p) for i, name in enumerate(SPLITS)}
    metadata = {
        "format": "awdvd-patches",
        "format_version": 1,
        "optics": optics.to_dict(),
        "noise": noise.to_dict(),
        "spec": spec.to_dict(),
        "psf_size": int(bank.shape[-1]),
        "level_depths_um": list(optics.depths_um),
        "class_names": [str(level) for level in range(optics.n_levels)] + ["bg"],
        "sources": names,
        "counts": {name: splits[name].class_counts(optics.n_levels) for name in SPLITS},
        "n_patches": {name: len(splits[name]) for name in SPLITS},
        "n_synthetic_images": {name: int(np.sum(assignment == i)) for i, name in enumerate(SPLITS)},
    }
    json.dumps(metadata)  # fail here, not at write time, if anything is not serialisable
    return splits, metadata


# --------------------------------------------------------------------------------------------- specimens
def synthetic_nuclei(
    shape: tuple[int, int] = (520, 696),
    *,
    n_nuclei: int | None = None,
    diameter_px: tuple[float, float] = (12.0, 28.0),
    background_adu: float = 125.0,
    brightness_adu: tuple[float, float] = (400.0, 1600.0),
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """A procedural in-focus field of Hoechst-stained nuclei in camera units (float32, ADU), noise-free.

    Ellipses of random size, orientation and brightness with soft edges and a chromatin-like texture
    (smoothed noise plus a few bright spots), on a flat background. At 0.65 um/px the default diameters
    (12-28 px) match U2OS nuclei (8-18 um); the default count gives BBBC006-like densities (about one
    nucleus per 4000 px^2).
    """
    from scipy import ndimage as ndi

    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    h, w = (check_positive_int(s, "shape") for s in shape)
    n = int(round(h * w / 4000)) if n_nuclei is None else check_positive_int(n_nuclei, "n_nuclei", minimum=0)
    texture = ndi.gaussian_filter(rng.standard_normal((h, w)), 1.5)
    texture /= texture.std() + 1e-12
    out = np.zeros((h, w), dtype=np.float64)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(n):
        d = rng.uniform(*diameter_px)
        a, b = d / 2 * rng.uniform(1.0, 1.35), d / 2 * rng.uniform(0.75, 1.0)
        theta = rng.uniform(0, np.pi)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = int(np.ceil(max(a, b))) + 3
        y0, y1, x0, x1 = max(0, int(cy) - r), min(h, int(cy) + r + 1), max(0, int(cx) - r), min(w, int(cx) + r + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        u = (dx * np.cos(theta) + dy * np.sin(theta)) / a
        v = (-dx * np.sin(theta) + dy * np.cos(theta)) / b
        rho = np.sqrt(u * u + v * v)
        body = 1.0 / (1.0 + np.exp((rho - 1.0) * 12.0))  # soft edge about one pixel wide
        level = rng.uniform(*brightness_adu)
        chromatin = 1.0 + 0.18 * texture[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = np.maximum(out[y0:y1, x0:x1], level * body * chromatin)
        for _ in range(rng.integers(1, 4)):  # nucleoli / bright foci
            fy, fx = cy + rng.normal(0, b / 3), cx + rng.normal(0, a / 3)
            spot = np.exp(-((yy[y0:y1, x0:x1] - fy) ** 2 + (xx[y0:y1, x0:x1] - fx) ** 2) / (2 * rng.uniform(0.8, 1.6) ** 2))
            out[y0:y1, x0:x1] += 0.35 * level * spot * body
    return (out + background_adu).astype(np.float32)


def tilted_levels(shape: tuple[int, int], n_levels: int, *, axis: int = 1, reverse: bool = False) -> np.ndarray:
    """Per-pixel levels of a tilted specimen: bands increasing linearly from 0 to ``n_levels - 1`` along
    ``axis`` (every level present). (H, W) int16."""
    h, w = shape
    length = shape[axis]
    ramp = np.minimum((np.arange(length) * n_levels) // length, n_levels - 1)
    if reverse:
        ramp = ramp[::-1]
    grid = np.broadcast_to(ramp[None, :] if axis == 1 else ramp[:, None], (h, w))
    return np.ascontiguousarray(grid, dtype=np.int16)


@dataclass
class TiltedSpecimen:
    """truth: (H, W) in-focus image (ADU); observed: (H, W) float32 defocused and noisy; levels: (H, W) int64
    true defocus level of every pixel."""

    truth: np.ndarray
    observed: np.ndarray
    levels: np.ndarray


def tilted_specimen(in_focus, *, optics=None, noise=None, psf_size: int | None = None, seed: int = 0,
                    first_level: int = 0, last_level: int | None = None) -> TiltedSpecimen:
    """A specimen tilted along x: the level grows in equal bands from ``first_level`` at the left edge to
    ``last_level`` (default the deepest) at the right. Forward model: :func:`awdvd.data.synth.depth_variant_blur`
    with :func:`awdvd.data.synth.forward_bank` (level 0 = no blur), then camera noise."""

    truth = check_image(in_focus, "in_focus", min_shape=(1, 1)).astype(np.float32)
    optics = Optics() if optics is None else optics
    noise = CameraNoise() if noise is None else noise
    last_level = optics.n_levels - 1 if last_level is None else int(last_level)
    if not 0 <= first_level <= last_level < optics.n_levels:
        raise ValueError(f"need 0 <= first_level <= last_level < {optics.n_levels}, got {first_level}, {last_level}")
    width = truth.shape[1]
    bands = last_level - first_level + 1
    column_levels = first_level + np.minimum(np.arange(width) * bands // width, bands - 1)
    levels = np.broadcast_to(column_levels[None, :], truth.shape).astype(np.int64)
    # the camera offset is electronic, not light: only what lies above it is blurred (blurring a constant
    # offset band by band would draw false edges into the background where the level changes)
    offset = min(noise.offset_adu, float(truth.min()))
    expected = depth_variant_blur(truth - offset, levels, forward_bank(optics, size=psf_size)) + offset
    observed = noise.apply(expected, np.random.default_rng(seed))
    return TiltedSpecimen(truth=truth, observed=observed, levels=levels.copy())
