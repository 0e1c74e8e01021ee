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
from .pipeline import Restoration, defocus_map, restore_image
from .tiles import resolve_model
from .windows import DefocusMap

__all__ = ["NUCLEAR_STAINS", "choose_channel", "choose_channels", "channel_psfs", "depth_everywhere",
           "ChannelRestoration", "restore_channels"]

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
    depths in micrometres (``l * dmap.z_step_um``) with this channel's wavelength."""
    levels = [int(v) for v in np.asarray(dmap.class_levels) if v >= 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndersamplingWarning)  # said, if at all, where the image's optics are read
        at_map_depths = optics.replace(z_step_um=float(dmap.z_step_um), n_levels=max(levels) + 1)
    return psf_bank(at_map_depths, size=size)


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


def depth_everywhere(dmap: DefocusMap, *, smoothing_windows: float = 0.7) -> DefocusMap:
    """The map as the other channels need it: a depth for every window. "Background" is said of the map
    channel's intensities (no nuclei there), not of the specimen's depth: another stain (cytoplasm, membranes)
    shines where the nuclear channel is dark, and a window that holds little of the map channel is where the map
    errs most. Every foreground window takes the foreground's level probabilities around it (background shares
    moved onto the levels), weighted by a Gaussian of ``smoothing_windows`` windows (normalised convolution over
    the window grid): depth is smooth over a field. A background window has no depth of its own: it takes the
    plane that fits the foreground windows' depths (robustly: cells at their own depth weigh less), the
    specimen's tilt, as a distribution of width half a level around it. On a tilted two-stain specimen
    (benchmarks/bench_channels.py; a plane, which favours this fill) the second stain kept 56% of its true-depth
    ceiling's gain with the map as it is, 75% with the background filled from the nearest window, 79% smoothed
    (0.7 windows; 1.0: 78%, 2.0: 71%), 86% with the plane under the background (a quadratic surface: 85%); a stain
    around the same cells (a cytoplasm) 91% (smoothing 0.4 windows: 93% there, 85% on the other; none: 93% / 84%).
    Those levers were measured with the model bundled before the present one, whose map gives 85% / 91%.
    A map without any foreground window is returned as it is.

    Examples
    --------
    >>> import numpy as np
    >>> dmap = DefocusMap.from_levels(np.array([[3, -1, -1]]), (84, 168), stride=42, patch_px=84, n_levels=5)
    >>> depth_everywhere(dmap).levels.tolist()
    [[3, 3, 3]]
    """
    from scipy.ndimage import gaussian_filter

    background = np.asarray(dmap.levels) < 0
    class_levels = np.asarray(dmap.class_levels)
    is_level = class_levels >= 0
    if background.all() or not background.any() and is_level.all():
        return dmap
    proba = np.where(is_level, np.asarray(dmap.proba, np.float64), 0.0)
    proba /= np.maximum(proba.sum(axis=-1, keepdims=True), 1e-12)
    # normalised convolution over the window grid: the foreground's level probabilities, smoothed
    weight = (~background).astype(np.float64)
    sigma = (smoothing_windows, smoothing_windows, 0)
    spread = gaussian_filter(proba * weight[..., None], sigma, mode="nearest")
    cover = gaussian_filter(weight, smoothing_windows, mode="nearest")
    smoothed = spread / np.maximum(cover, 1e-12)[..., None]
    # background windows: the plane of the foreground's expected levels, as a Gaussian of half a level
    expected = (proba * np.where(is_level, class_levels, 0)).sum(axis=-1)
    plane = np.clip(_plane_levels(expected, ~background), 0, class_levels[is_level].max())
    filled = np.where(is_level, np.exp(-0.5 * ((class_levels - plane[..., None]) / 0.5) ** 2), 0.0)
    proba = np.where(background[..., None], filled, smoothed)
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
                     map_channel=None, channels=None, **overrides) -> ChannelRestoration:
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
    dmap = defocus_map(image[index], loaded, options, optics=optics[index])
    mapped = time.perf_counter()
    everywhere = depth_everywhere(dmap)
    restorations = [restore_image(image[c], loaded, options, dmap=dmap if c == index else everywhere,
                                  optics=optics[c], psfs=channel_psfs(optics[c], dmap, size=options.psf_size))
                    for c in chosen]
    timings = {"defocus_map": round(mapped - start, 4), "deconvolution": round(time.perf_counter() - mapped, 4)}
    return ChannelRestoration(images=np.stack([r.image for r in restorations]).astype(np.float32), channels=chosen,
                              names=[names[c] for c in chosen], map_channel=index, dmap=dmap,
                              restorations=restorations, timings_s=timings)
