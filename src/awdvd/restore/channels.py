"""Multi-channel fields: one depth map, every channel restored with its own emission PSFs.

Depth is the specimen's geometry, shared by every channel of a field; a channel's blur differs from another's
only through its emission wavelength (Eq. 2's k = 2 pi n / lambda). So the map is made once, from one channel
(by default one named like a nuclear stain: the model was trained on nuclei), and each channel is restored from
that map with the PSFs of its own wavelength at the map's depths in micrometres (not at the map channel's
level-equivalents: the defocus phase at a depth scales as 1 / wavelength, the in-focus pattern as the wavelength).
The other channels get a depth in every window, also where the map channel is dark (:func:`depth_everywhere`).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .._checks import check_image
from ..learn.model_files import load_model
from ..physics.optics import Optics, UndersamplingWarning
from ..physics.psf import psf_bank
from .options import AWDVDOptions, options_with
from .pipeline import Restoration, defocus_map, map_psf_size, restore_image
from .tiles import resolve_model
from .windows import DefocusMap

__all__ = ["NUCLEAR_STAINS", "choose_channel", "choose_channels", "channel_psfs", "depth_everywhere",
           "ChannelRestoration", "restore_channels"]

#: refits of the other channels' depth surface with each reading down-weighted by its distance from the last fit
#: (:func:`depth_everywhere`)
ROBUST_PASSES = 2
#: channel names (lower case, matched as substrings) taken for nuclear stains: the default map channel
NUCLEAR_STAINS = ("dapi", "hoechst", "draq5", "nuclei", "nuclear", "nucleus", "sytox", "h2b")


def choose_channel(names: Sequence[str], choice=None) -> int:
    """The index of the map channel: ``choice`` (an index, a digit string or a name, case-insensitive), or by
    default the first channel named like a nuclear stain (:data:`NUCLEAR_STAINS`), else the first.

    Examples
    --------
    >>> choose_channel(["GFP", "Hoechst 33342"])
    1
    >>> choose_channel(["GFP", "mCherry"], "mcherry")
    1
    """
    names = [str(n) for n in names]
    if not names:
        raise ValueError("the image has no channels")
    if choice is None:
        return next((i for i, n in enumerate(names) if any(s in n.lower() for s in NUCLEAR_STAINS)), 0)
    if isinstance(choice, (int, np.integer)) and not isinstance(choice, bool) or str(choice).strip().isdigit():
        index = int(choice)
        if not 0 <= index < len(names):
            raise ValueError(f"channel {index} does not exist: the image has {len(names)} channels "
                             f"(0-{len(names) - 1}: {', '.join(names)})")
        return index
    matches = [i for i, n in enumerate(names) if n.lower() == str(choice).strip().lower()]
    if not matches:
        raise ValueError(f"no channel is named {str(choice)!r}; the image's channels are {', '.join(names)}")
    return matches[0]


def choose_channels(names: Sequence[str], choice=None) -> list[int]:
    """Indices of the channels to restore: ``choice`` (a sequence of indices or names, or one comma-separated
    string of them), or all channels when None."""
    if choice is None:
        return list(range(len(names)))
    items = [part for part in str(choice).split(",")] if isinstance(choice, str) else list(choice)
    picked = [choose_channel(names, item) for item in items if str(item).strip()]
    if not picked:
        raise ValueError("no channel chosen to restore")
    return list(dict.fromkeys(picked))


def channel_psfs(optics: Optics, dmap: DefocusMap, *, size: int | None = None) -> np.ndarray:
    """The PSFs that restore a channel of ``optics`` from ``dmap``: one per class level of the map, at the map's
    depths in micrometres (``l * dmap.z_step_um``) with this channel's wavelength; by default as large as the
    deepest level the map may use (:func:`awdvd.restore.pipeline.map_psf_size`)."""
    levels = [int(v) for v in np.asarray(dmap.class_levels) if v >= 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndersamplingWarning)  # said, if at all, where the image's optics are read
        at_map_depths = optics.replace(z_step_um=float(dmap.z_step_um), n_levels=max(levels) + 1)
    return psf_bank(at_map_depths, size=map_psf_size(at_map_depths, dmap) if size is None else size)


def _local_quadratic(values: np.ndarray, weight: np.ndarray, sigma: float, offsets=None) -> np.ndarray:
    """Weighted local quadratic regression of ``values`` over the window grid (LOESS with a Gaussian kernel of
    ``sigma`` windows): at every window, the value at its centre of the quadratic in (x, y) that fits the windows
    around it (within 3 sigma), each weighing ``weight`` times the kernel. ``offsets``: (dy, dx) arrays, where
    each window's value sits relative to its centre, in windows (default 0: at the centre). Where no weight lies
    within reach the robust plane of all weighted windows is used."""
    values = np.asarray(values, np.float64)
    weight = np.asarray(weight, np.float64)
    ny, nx = values.shape
    dy0, dx0 = (np.zeros_like(values), np.zeros_like(values)) if offsets is None else offsets
    radius = max(1, int(np.ceil(3 * sigma)))

    def padded(array):
        return np.pad(np.asarray(array, np.float64), radius)

    pv, pw, pdy, pdx = padded(values), padded(weight), padded(dy0), padded(dx0)
    normal = np.zeros((ny, nx, 6, 6))
    rhs = np.zeros((ny, nx, 6))
    for sy in range(-radius, radius + 1):
        for sx in range(-radius, radius + 1):
            cut = (slice(radius + sy, radius + sy + ny), slice(radius + sx, radius + sx + nx))
            dy, dx = sy + pdy[cut], sx + pdx[cut]
            k = pw[cut] * np.exp(-0.5 * (dx * dx + dy * dy) / sigma ** 2)
            terms = np.stack([np.ones_like(dx), dx, dy, dx * dx, dy * dy, dx * dy], axis=-1)
            normal += k[..., None, None] * terms[..., :, None] * terms[..., None, :]
            rhs += (k * pv[cut])[..., None] * terms
    cover = normal[..., 0, 0]
    scale = np.array([0.0, sigma ** 2, sigma ** 2, sigma ** 4, sigma ** 4, sigma ** 4])
    normal += 1e-3 * cover[..., None, None] * np.diag(scale) + 1e-12 * np.eye(6)
    fit = np.linalg.solve(normal, rhs[..., None])[..., 0, 0]
    reached = cover > 1e-3 * max(float(weight.max()), 1e-12)
    if not reached.all():
        fit = np.where(reached, fit, _plane_levels(values, weight > 0))
    return fit


def _signal_offsets(image: np.ndarray, dmap: DefocusMap) -> tuple[np.ndarray, np.ndarray]:
    """(dy, dx) in windows: where each window's signal sits, the centroid of its intensities above the image's 5th
    percentile, relative to the window's centre (0 where the window holds none). One band of window rows at a
    time, so that memory stays at one band of the image."""
    image = np.asarray(image)
    step = max(1, int(np.sqrt(image.size / 1e6)))  # the percentile from about a million pixels
    floor = float(np.percentile(image[::step, ::step], 5))
    patch = dmap.patch_px
    xs = np.asarray(dmap.xs)
    dy, dx = np.zeros((len(dmap.ys), len(xs))), np.zeros((len(dmap.ys), len(xs)))

    def window_sums(per_column):  # sums of a per-column array over every window's columns
        table = np.concatenate([[0.0], np.cumsum(per_column)])
        return table[xs + patch] - table[xs]

    for j, y in enumerate(np.asarray(dmap.ys)):
        band = np.clip(np.asarray(image[y:y + patch], np.float64) - floor, 0, None)
        total = window_sums(band.sum(axis=0))
        safe = np.maximum(total, 1e-12)
        along_y = window_sums(np.arange(patch) @ band) / safe
        along_x = window_sums(band.sum(axis=0) * np.arange(band.shape[1])) / safe - xs
        dy[j] = np.where(total > 0, along_y - (patch - 1) / 2, 0.0)
        dx[j] = np.where(total > 0, along_x - (patch - 1) / 2, 0.0)
    return dy / dmap.stride, dx / dmap.stride


def _plane_levels(expected: np.ndarray, known: np.ndarray) -> np.ndarray:
    """A plane over the window grid fitted to the ``known`` windows' ``expected`` levels (least squares,
    re-weighted three times so that a window far off the plane, a cell at its own depth, weighs less)."""
    yy, xx = np.mgrid[: expected.shape[0], : expected.shape[1]].astype(np.float64)
    terms = np.stack([np.ones_like(yy), xx, yy], axis=-1)
    a, b = terms[known], expected[known]
    weight = np.ones(len(b))
    for _ in range(3):
        coef = np.linalg.lstsq(a * weight[:, None], b * weight, rcond=None)[0]
        residual = np.abs(b - a @ coef)
        scale = 1.4826 * float(np.median(residual)) + 1e-6
        weight = np.sqrt(np.minimum(1.0, 2.0 * scale / np.maximum(residual, 1e-12)))
    return terms @ coef


def depth_everywhere(dmap: DefocusMap, image=None, *, smoothing_windows: float = 2.0) -> DefocusMap:
    """The map as the other channels need it: a depth for every window. "Background" is said of the map
    channel's intensities (no nuclei there), not of the specimen's depth: another stain (cytoplasm, membranes)
    shines where the nuclear channel is dark, and also, inside a window, where its nuclei are not, so a window's
    own reading (the depth of its nuclei) errs for the other stain more than for the map channel. Depth is smooth
    over a field: every window takes the local quadratic surface (:func:`_local_quadratic`, a Gaussian kernel of
    ``smoothing_windows`` windows) fitted to the foreground windows' expected levels, each weighing the inverse of
    its level variance (a window split between levels weighs less) and, given the map channel's ``image`` (the
    one the map was made from), placed where its signal is (the centroid of its intensities: a window reads the
    depth of its nuclei), as a distribution of width half a level around it; the fit is repeated
    :data:`ROBUST_PASSES` times with each reading down-weighted by its distance from the last fit (LOWESS's
    robustness passes). A background window has no depth of its own: the surface around it gives it one.

    Measured on two-stain specimens of BBBC006 a07 (``python benchmarks/bench_channels.py``: the second stain a
    held-out BBBC039 field's texture or a cytoplasm around a07's nuclei) over six depth surfaces (tilted along x
    and along y, a bowl, a dome, two smooth random surfaces), the second stain's share of its true-depth
    ceiling's gain, mean / worst of the 12: the plane under the background that this replaced (the foreground
    smoothed over 0.7 windows) 72.9% / 14.4% (a plane misfits a bowl), this surface with every reading at its
    window's centre 92.2% / 80.6%, at its signal's centroid 96.0% / 86.3%. In an exploration of the
    same 12 (a loop implementation): a local plane over 1.5 windows 87.3% / 47.7%; the quadratic over 2.5 or 3
    windows 92.9 / 80.0% and 93.2 / 70.9% (smoother favours the smooth surfaces, less the random ones); a window's
    own probabilities times the surface as a prior 90.0% / 67.9%. On 15 specimens not looked at while choosing
    (other surfaces, textures and noise; the record's "check") 89.9% / 40.0% (the replaced fill: 68.2% / 6.5%).
    The robustness passes (stop 37): the 12 96.1% / 86.3% (95.9 / 86.2% without), the check set 90.0 / 40.3%
    (89.8 / 40.3%), crops of the tilted specimen (the record's "crops") 75.0 / 63.1% (73.6 / 62.1%).
    A map without any foreground window is returned as it is.

    Examples
    --------
    >>> import numpy as np
    >>> dmap = DefocusMap.from_levels(np.array([[3, -1, -1]]), (84, 168), stride=42, patch_px=84, n_levels=5)
    >>> depth_everywhere(dmap).levels.tolist()
    [[3, 3, 3]]
    """
    background = np.asarray(dmap.levels) < 0
    class_levels = np.asarray(dmap.class_levels)
    is_level = class_levels >= 0
    if background.all():
        return dmap
    proba = np.where(is_level, np.asarray(dmap.proba, np.float64), 0.0)
    proba /= np.maximum(proba.sum(axis=-1, keepdims=True), 1e-12)
    values = np.where(is_level, class_levels, 0).astype(np.float64)
    expected = (proba * values).sum(axis=-1)
    variance = (proba * (values - expected[..., None]) ** 2).sum(axis=-1)
    weight = np.where(background, 0.0, 1.0 / (variance + 0.1))
    offsets = None if image is None else _signal_offsets(image, dmap)
    surface = _local_quadratic(expected, weight, smoothing_windows, offsets)
    for _ in range(ROBUST_PASSES):  # LOWESS's robustness passes: a reading far off the surface weighs less
        residual = np.abs(expected - surface)
        scale = 1.4826 * float(np.median(residual[~background])) + 0.25  # at least a quarter of a level
        robust = np.sqrt(np.minimum(1.0, 2.0 * scale / np.maximum(residual, 1e-12)))
        surface = _local_quadratic(expected, weight * robust, smoothing_windows, offsets)
    surface = np.clip(surface, 0, class_levels[is_level].max())
    proba = np.where(is_level, np.exp(-0.5 * ((class_levels - surface[..., None]) / 0.5) ** 2), 0.0)
    proba /= np.maximum(proba.sum(axis=-1, keepdims=True), 1e-12)
    levels = class_levels[np.argmax(proba, axis=-1)]
    return dataclasses.replace(dmap, levels=levels.astype(np.int64), proba=proba.astype(np.float32))


@dataclass
class ChannelRestoration:
    """images : (len(channels), H, W) float32, the restored channels in ``channels`` order. channels : their
    indices in the input; names : their names. map_channel : the index the map was made from. dmap : the map.
    restorations : each channel's :class:`~awdvd.restore.pipeline.Restoration` (its ``resolved()`` for a
    sidecar). timings_s : {"defocus_map", "deconvolution"} seconds (the map once)."""

    images: np.ndarray
    channels: list[int]
    names: list[str]
    map_channel: int
    dmap: DefocusMap
    restorations: list[Restoration] = field(default_factory=list)
    timings_s: dict = field(default_factory=dict)


def restore_channels(image, model=None, options: AWDVDOptions | None = None, *,
                     optics: Optics | Sequence[Optics] | None = None, names: Sequence[str] | None = None,
                     map_channel=None, channels=None, dmap: DefocusMap | None = None,
                     **overrides) -> ChannelRestoration:
    """AWDVD of a (C, H, W) multi-channel field from one defocus map.

    Parameters
    ----------
    image : (C, H, W) raw intensities, channel first.
    model, options, overrides : as for :func:`awdvd.restore.pipeline.restore_image`.
    optics : each channel's :class:`~awdvd.physics.optics.Optics` (a sequence of C; they share NA, immersion index
        and pixel size and differ in emission wavelength), one for every channel, or None: the model's.
    names : the channels' names (default "0", "1", ...).
    map_channel : the channel the map is made from (index or name; default :func:`choose_channel`'s).
    channels : the channels to restore (indices or names; default all).
    dmap : the map channel's defocus map when it is already made (e.g. combined with a time-lapse's neighbouring
        frames, :func:`awdvd.restore.frames.smooth_over_frames`); None: made here.

    Returns
    -------
    :class:`ChannelRestoration`.

    Examples
    --------
    >>> import numpy as np
    >>> from awdvd.data.synth import synthetic_nuclei
    >>> field = np.stack([synthetic_nuclei((120, 120), seed=1), synthetic_nuclei((120, 120), seed=2)])
    >>> out = restore_channels(field, names=["Hoechst", "GFP"], iterations=2)
    >>> out.images.shape, out.map_channel, out.names
    ((2, 120, 120), 0, ['Hoechst', 'GFP'])
    """
    options = options_with(options, overrides)
    image = check_image(image, "image", ndim=3)
    n = image.shape[0]
    names = [str(i) for i in range(n)] if names is None else [str(v) for v in names]
    if len(names) != n:
        raise ValueError(f"{len(names)} channel names for {n} channels")
    loaded = resolve_model(load_model() if model is None else model)
    if optics is None or isinstance(optics, Optics):
        optics = [optics] * n
    optics = list(optics)
    if len(optics) != n:
        raise ValueError(f"{len(optics)} optics for {n} channels")
    optics = [loaded.optics if o is None else o for o in optics]
    index = choose_channel(names, map_channel)
    chosen = choose_channels(names, channels)
    start = time.perf_counter()
    if dmap is None:
        dmap = defocus_map(image[index], loaded, options, optics=optics[index])
    elif tuple(dmap.image_shape) != tuple(image.shape[1:]):
        raise ValueError(f"the defocus map is of a {dmap.image_shape[0]} x {dmap.image_shape[1]} image; the channels "
                         f"are {image.shape[1]} x {image.shape[2]}")
    mapped = time.perf_counter()
    everywhere = depth_everywhere(dmap, image[index])
    restorations = [restore_image(image[c], loaded, options, dmap=dmap if c == index else everywhere,
                                  optics=optics[c], psfs=channel_psfs(optics[c], dmap, size=options.psf_size))
                    for c in chosen]
    timings = {"defocus_map": round(mapped - start, 4), "deconvolution": round(time.perf_counter() - mapped, 4)}
    return ChannelRestoration(images=np.stack([r.image for r in restorations]).astype(np.float32), channels=chosen,
                              names=[names[c] for c in chosen], map_channel=index, dmap=dmap,
                              restorations=restorations, timings_s=timings)
