"""The one restoration pipeline: :class:`AWDVDOptions` (every AWDVD default, written once) and
:func:`deconvolve`, which every entry point runs (the library, ``awdvd deconvolve`` and its per-file job, the
demo, the evaluation).

``deconvolve(image, model, options)`` (or keyword overrides of the options' fields) owns the pipeline:

1. the model (the bundled one when None), the stride checked once against ``model.patch_px``, the image's pixel
   size checked against the model's optics (when given);
2. the "auto" offset: one value per image, from a regular subsample of at most 4 million pixels (also when the
   image is processed in tiles, whose results must agree);
3. whole or tiled: images held in memory up to ``max_px`` pixels are restored whole; larger ones and lazy ones
   (dask, zarr) go through :mod:`awdvd.restore.tiles` (the whole image's windows, restored tile by tile, optionally on
   a Dask cluster, written into ``out``); dense maps always go through tiles of windows (the same map, in
   bounded memory: the default DelpNet's first feature maps hold 32 float32 values per pixel);
4. the defocus map (:mod:`awdvd.restore.defocus_maps`), then the blend (:mod:`awdvd.restore.blend`) with the per-level iterations
   (:func:`iterations_per_level`) on the resolved device.

:func:`restore_image` returns the restored image with what was resolved (map, offset, iterations, timings), for
callers that record it (the job's sidecar).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .._checks import check_image, check_offset_in_range, check_positive_int
from .._cluster import dask_client
from .._device import resolve_device
from ..io import LARGEST_IMAGE_IN_MEMORY_PX, check_pixel_size
from ..learn.model_files import load_model
from ..physics.optics import Optics, UndersamplingWarning
from ..physics.psf import default_psf_size, defocus_psf, psf_bank
from .blend import MIN_PROBABILITY, deconvolve_levels
from .defocus_maps import compute_map, exact_dense, resolve_map_mode
from .image_optics import (
    image_optics_or_model,
    map_on_image_grid,
    restoration_optics,
    sampling_factor,
    to_model_grid,
    warn_beyond_range,
    warn_object_scale,
)
from .options import AWDVDOptions, options_with
from .plan import RestorationPlan
from .rl import resolve_offset, richardson_lucy
from .rl_schedule import RLSchedule, default_schedule, model_schedule
from .tiles import resolve_model, tiled_deconvolve_levels, tiled_defocus_map
from .tiling import DEFAULT_TILE_PX, should_tile
from .windows import DefocusMap

__all__ = [ "Restoration", "deconvolve", "restore_image", "deconvolve_invariant",
           "defocus_map", "iterations_per_level", "rl_schedule", "map_psf_size", "OFFSET_SAMPLES"]

#: pixels the "auto" offset is estimated from (a regular subsample of larger images)
OFFSET_SAMPLES = 4_000_000


def rl_schedule(options: AWDVDOptions, model=None, *, n_levels: int | None = None) -> RLSchedule:
    """How every level's Richardson-Lucy runs: ``options.iterations`` and ``options.rl`` resolved.

    None (the default): the model file's calibrated schedule of ``options.rl`` (default: the file's default
    variant; :func:`awdvd.restore.rl_schedule.model_schedule`), or, for a model without one (or without a model), 30
    iterations of every level (plain RL unless ``options.rl`` says otherwise). An int applies to every level, a
    tuple must have one entry per level: fixed counts of ``options.rl`` (default plain). ``options.tv_weight``
    replaces the schedule's. ``n_levels`` defaults to ``model.optics.n_levels``.
    """
    if n_levels is None:
        if model is None:
            raise ValueError("rl_schedule needs a model or n_levels")
        n_levels = model.optics.n_levels
    n_levels = check_positive_int(n_levels, "n_levels")
    iterations = options.iterations
    if iterations is None:
        schedule = model_schedule(model, options.rl) if model is not None else None
        if schedule is None:
            return default_schedule(n_levels, variant=options.rl, tv_weight=options.tv_weight)
        if schedule.n_levels != n_levels:
            raise ValueError(f"the model's schedule has {schedule.n_levels} levels but there are {n_levels} PSFs")
        return schedule if options.tv_weight is None else schedule.replace(tv_weight=options.tv_weight)
    if isinstance(iterations, tuple) and len(iterations) != n_levels:
        raise ValueError(f"iterations has {len(iterations)} entries but there are {n_levels} levels; give one "
                         "per level, one int for all, or None")
    variant = options.rl or "plain"
    weight = options.tv_weight if options.tv_weight is not None else (default_schedule(1, variant=variant).tv_weight)
    return RLSchedule.fixed(iterations, n_levels, variant=variant, tv_weight=weight, source="options")


def iterations_per_level(options: AWDVDOptions, model=None, *, n_levels: int | None = None) -> tuple[int, ...]:
    """RL iterations of every level (with a stopping rule: the most): :func:`rl_schedule`'s counts."""
    return rl_schedule(options, model, n_levels=n_levels).iterations


@dataclass
class Restoration:
    """What :func:`restore_image` made, and the plan it followed.

    image : (H, W) float32 restored image, or the ``out`` it was written into.
    dmap : the image's :class:`awdvd.restore.windows.DefocusMap`.
    options : the options asked for (for a given map, with the map's stride).
    plan : the :class:`awdvd.restore.plan.RestorationPlan` they resolved to for this image: the RL schedule of
        every level, the offset ("auto" resolved), the device, the blend's choices.
    psf_size : side of the PSFs (px). tiled : True if the image went through tiles.
    timings_s : {"defocus_map", "deconvolution"} seconds.
    iterations_run : {level: [iterations of each RL region]} (None for images restored in tiles).
    """

    image: object
    dmap: DefocusMap
    options: AWDVDOptions
    plan: RestorationPlan
    psf_size: int
    tiled: bool
    timings_s: dict = field(default_factory=dict)
    iterations_run: dict | None = None

    @property
    def schedule(self) -> RLSchedule:
        """The RL schedule used (variant, counts or rule per level, where it came from)."""
        return self.plan.iterations

    @property
    def offset(self) -> float:
        """The offset removed before RL (ADU)."""
        return self.plan.offset

    @property
    def iterations(self) -> tuple[int, ...]:
        """RL iterations of every level (the most, with a stopping rule)."""
        return self.schedule.iterations

    @property
    def device(self) -> str:
        """Where RL ran."""
        return self.plan.device

    def resolved(self) -> dict:
        """The plan as decided for this image (JSON-ready, what the job's sidecar records): the blend's choices,
        offset, device, the RL schedule (variant, iterations and where they came from: "model" schedule,
        "options" or "default"; stopping rule), the iterations each level's RLs ran, psf_size, tiled."""
        out = {**self.plan.describe(), "psf_size": self.psf_size, "tiled": self.tiled}
        out["iterations_run"] = (None if self.iterations_run is None else
                                 {str(level): runs for level, runs in self.iterations_run.items()})
        return out


def _is_lazy(image) -> bool:
    return not isinstance(image, np.ndarray) and hasattr(image, "shape") and hasattr(image, "dtype")


def defocus_map(image, model=None, options: AWDVDOptions | None = None, *, optics: Optics | None = None,
                tile_px: int = DEFAULT_TILE_PX, max_px: int = LARGEST_IMAGE_IN_MEMORY_PX, client=None,
                progress: bool = False, **overrides) -> DefocusMap:
    """The defocus level (or background) of every window of ``image``: the map :func:`deconvolve` restores from,
    with the same defaults as ``awdvd predict`` and the napari widgets (:class:`AWDVDOptions`).

    Parameters
    ----------
    image : (H, W) raw intensities (numpy, or lazy: dask, zarr), H and W >= the model's window side.
    model : a :class:`awdvd.learn.model.DefocusModel`, a picklable zero-argument loader of one, or None: the
        bundled model.
    options : :class:`AWDVDOptions` (default ``AWDVDOptions()``: stride 42, smoothing 21 px, map mode "auto");
        ``**overrides`` replace its fields (``defocus_map(image, stride=21)``).
    optics : the image's :class:`awdvd.physics.optics.Optics` (emission wavelength, NA, immersion index, pixel
        size), or None: the model's. The model reads the image brought to its own sampling (in optical units,
        :mod:`awdvd.restore.image_optics`); the map comes back on the image's pixels with depths in the image's
        optics (``dmap.depth_um``; one level is the model's z step carried into these optics).
    tile_px, max_px, client, progress : images of more than ``max_px`` pixels, lazy ones and dense maps of
        padded networks are computed a tile of windows at a time (:func:`awdvd.restore.tiles.tiled_defocus_map`:
        the same map in bounded memory), on ``client``'s Dask cluster when given, with progress bars.

    Returns
    -------
    :class:`awdvd.restore.windows.DefocusMap`: ``levels``, ``proba``, ``depth_um`` and ``depth_spread_um`` per
    window, ``to_pixels()`` and ``depth_pixels()`` per pixel.

    Warns
    -----
    BeyondRangeWarning : when most foreground windows sit at the model's deepest level (the image is at least
        that deep, past the range it can tell apart).
    ObjectScaleWarning : when the image's optics would show cells more than 1.4 times larger on the model's
        sampling than its training nuclei (a 60x / 1.4 oil objective, for instance): the image is then read at its
        own scale in micrometres (:func:`awdvd.restore.image_optics.reads_at_object_scale`), which assumes nuclei
        of about the training size.

    Examples
    --------
    >>> import numpy as np
    >>> from awdvd import defocus_map
    >>> image = np.random.default_rng(0).poisson(200, (168, 168)).astype(np.float32)
    >>> defocus_map(image).levels.shape   # 84 px windows every 42 px
    (3, 3)
    """
    options = options_with(options, overrides)
    if model is None:
        model = load_model()
    loaded = resolve_model(model)
    options.check_patch_px(int(loaded.patch_px))
    dmap = _defocus_map(image, model, loaded, options, optics, tile_px=tile_px, max_px=max_px, client=client,
                        progress=progress)
    warn_beyond_range(dmap)
    warn_object_scale(optics, loaded.optics)
    return dmap


def _defocus_map(image, model, loaded, options: AWDVDOptions, optics: Optics | None, *, tile_px, max_px, client,
                 progress) -> DefocusMap:
    """:func:`defocus_map` with the options already checked against ``loaded`` (the model ``model`` loads), on
    the model's sampling when the image's optics differ from the model's."""
    image_optics = image_optics_or_model(optics, loaded.optics)
    factor = sampling_factor(image_optics, loaded.optics)
    if factor != 1.0:
        array = image if _is_lazy(image) else check_image(image, "image")
        shape = tuple(int(v) for v in array.shape)
        side = int(loaded.patch_px)
        if min(shape) * factor < side:
            raise ValueError(f"image is {shape[0]} x {shape[1]} px of {image_optics.pixel_um:g} um; in the model's "
                             f"sampling that is smaller than one of its {side} x {side} px windows "
                             f"({side / factor:.0f} px of this image)")
        # the map is made on the model's sampling (only the resampled image is whole in memory)
        model_map = _defocus_map(to_model_grid(array, factor), model, loaded, options, None, tile_px=tile_px,
                                 max_px=max_px, client=client, progress=progress)
        return map_on_image_grid(model_map, factor, shape,
                                 z_step_um=restoration_optics(image_optics, loaded.optics).z_step_um)

    mode = resolve_map_mode(options.map_mode, loaded)
    # dense passes of padded trunks hold wide feature maps: through tiles of windows, in bounded memory
    if _is_lazy(image) or should_tile(tuple(image.shape), max_px=max_px) or (mode == "dense" and not exact_dense(loaded)):
        dmap = tiled_defocus_map(image, model, stride=options.stride, mode=mode,
                                 normalization=options.normalization, tile_px=tile_px, client=client,
                                 progress=progress, tta=options.tta, smoothing_px=options.smoothing_px)
    else:
        dmap = compute_map(image, loaded, stride=options.stride, mode=mode, tta=options.tta,
                           smoothing_px=options.smoothing_px)
    if image_optics is not loaded.optics:  # the same sampling, other optics: depths in the image's optics
        dmap.z_step_um = restoration_optics(image_optics, loaded.optics).z_step_um
    return dmap


def restore_image(
    image,
    model=None,
    options: AWDVDOptions | None = None,
    *,
    dmap: DefocusMap | None = None,
    psfs=None,
    out=None,
    optics: Optics | None = None,
    pixel_um: float | None = None,
    tile_px: int = DEFAULT_TILE_PX,
    max_px: int = LARGEST_IMAGE_IN_MEMORY_PX,
    client=None,
    progress: bool = False,
    **overrides,
) -> Restoration:
    """:func:`deconvolve`, returning a :class:`Restoration` (the image with the map, offset, iterations and
    timings it was made with). Parameters as for :func:`deconvolve`."""

    options = options_with(options, overrides)
    if isinstance(image, (list, tuple)):
        image = np.asarray(image)
    lazy = _is_lazy(image)
    if lazy:
        if len(image.shape) != 2:
            raise ValueError(f"image must be 2-D (one plane; pass a z-stack plane by plane), got shape {image.shape}")
    else:
        image = check_image(image, "image")
    shape = tuple(int(s) for s in image.shape)
    loaded = None
    if model is not None or dmap is None:
        if model is None:
            model = load_model()
        loaded = resolve_model(model)
    if dmap is not None:
        if tuple(dmap.image_shape) != shape:
            raise ValueError(f"the defocus map is of a {dmap.image_shape[0]} x {dmap.image_shape[1]} image; this "
                             f"image is {shape[0]} x {shape[1]}")
        options = options.replace(stride=int(dmap.stride))
    patch_px = int(dmap.patch_px if dmap is not None else loaded.patch_px)
    options.check_patch_px(patch_px)
    if min(shape) < patch_px:
        raise ValueError(f"image is {shape[0]} x {shape[1]} px; AWDVD needs at least one {patch_px} x {patch_px} "
                         "window (use richardson_lucy or deconvolve_invariant for smaller images)")
    if pixel_um is not None and loaded is not None and optics is None:
        check_pixel_size(pixel_um, loaded.optics.pixel_um)
    if psfs is None and loaded is None and dmap is not None and dmap.z_step_um is not None:
        # no model: the map's own levels and depths, in the image's optics (the default Optics' without them)
        n_levels = int(max(int(v) for v in np.asarray(dmap.class_levels))) + 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndersamplingWarning)
            at_map_depths = image_optics_or_model(optics, Optics()).replace(z_step_um=float(dmap.z_step_um),
                                                                            n_levels=max(n_levels, 1))
        psfs = psf_bank(at_map_depths, size=options.psf_size)
    bank_optics = None
    if psfs is None:  # the model's levels in the image's optics, made once the map says how deep it goes
        model_optics = loaded.optics if loaded is not None else Optics()
        bank_optics = restoration_optics(image_optics_or_model(optics, model_optics), model_optics)
    else:
        psfs = np.asarray(psfs)
    schedule = rl_schedule(options, loaded, n_levels=len(psfs) if bank_optics is None else bank_optics.n_levels)
    device = resolve_device(options.device)
    offset = resolve_offset(options.offset, image, max_samples=OFFSET_SAMPLES)
    check_offset_in_range(options.offset, image, max_samples=OFFSET_SAMPLES)  # a number that would destroy the image
    tiled = lazy or should_tile(shape, max_px=max_px)
    plan = RestorationPlan(iterations=schedule, method=options.method, weighting=options.weighting,
                           level_blend=options.level_blend, offset=offset, halo_px=options.halo_px, device=device,
                           boundary=options.boundary)
    record: dict = {}
    with contextlib.ExitStack() as stack:
        if client is not None and (tiled or (dmap is None and options.map_mode == "dense")):
            client = stack.enter_context(dask_client(1, client))[0]  # one connection for both steps
        start = time.perf_counter()
        if dmap is None:
            dmap = _defocus_map(image, model, loaded, options, optics, tile_px=tile_px, max_px=max_px,
                                client=client, progress=progress)
            warn_beyond_range(dmap)
            warn_object_scale(optics, loaded.optics)
        mapped = time.perf_counter()
        if bank_optics is not None:  # its time counts as the deconvolution's, not the map's
            psfs = psf_bank(bank_optics, size=options.psf_size or map_psf_size(bank_optics, dmap))
        if tiled:
            restored = tiled_deconvolve_levels(image, dmap, psfs, plan, tile_px=tile_px, out=out, client=client,
                                               progress=progress)
        else:
            restored = deconvolve_levels(image, dmap, psfs, plan, record=record)
            if out is not None:
                out[...] = restored
                restored = out
    timings = {"defocus_map": round(mapped - start, 4), "deconvolution": round(time.perf_counter() - mapped, 4)}
    return Restoration(image=restored, dmap=dmap, options=options, plan=plan, psf_size=int(psfs.shape[-1]),
                       tiled=tiled, timings_s=timings, iterations_run=record.get("iterations_run"))


def map_psf_size(optics: Optics, dmap: DefocusMap) -> int:
    """The PSF size restoring ``dmap``'s image needs: :func:`awdvd.physics.psf.default_psf_size` of the deepest
    level any window may be restored at (its most likely level, or one with at least
    :data:`awdvd.restore.blend.MIN_PROBABILITY`, which probability blending uses). A range-extended model's bank
    reaches 40 um; an image that stays within 20 um is restored with the PSFs (and speed) of a 20 um bank."""
    classes = np.asarray(dmap.class_levels)
    proba = np.asarray(dmap.proba).reshape(-1, len(classes))
    used = (proba >= MIN_PROBABILITY).any(axis=0) if len(proba) else np.zeros(len(classes), bool)
    if len(proba):
        used[np.unique(np.argmax(proba, axis=1))] = True
    deepest = int(classes[used].max()) if used.any() else 0
    return default_psf_size(optics.replace(n_levels=min(max(deepest + 1, 2), optics.n_levels)))


def deconvolve(
    image,
    model=None,
    options: AWDVDOptions | None = None,
    *,
    dmap: DefocusMap | None = None,
    psfs=None,
    out=None,
    optics: Optics | None = None,
    pixel_um: float | None = None,
    tile_px: int = DEFAULT_TILE_PX,
    max_px: int = LARGEST_IMAGE_IN_MEMORY_PX,
    client=None,
    progress: bool = False,
    **overrides,
):
    """AWDVD with DelpNet: predict every window's defocus level, deconvolve each with its level's PSF, blend.

    Parameters
    ----------
    image : (H, W) raw intensities (H, W >= the model's window side): a numpy array, or a lazy one (dask,
        zarr: restored in tiles, never whole in memory).
    model : a :class:`awdvd.learn.model.DefocusModel` (e.g. ``load_model("mine.pt")``), a picklable zero-argument
        loader of one (e.g. :class:`awdvd.batch.jobs.ModelFile`, loaded once per Dask worker), or None: the bundled
        model.
    options : :class:`AWDVDOptions` (default ``AWDVDOptions()``); ``**overrides`` replace its fields
        (``deconvolve(image, stride=21)`` is ``deconvolve(image, options=AWDVDOptions(stride=21))``).
    dmap : a defocus map to restore from instead of the model's (e.g. known levels:
        ``DefocusMap.from_levels``); its window grid (stride, window side) is used. With a map and no model,
        the PSFs are those of the default :class:`awdvd.physics.optics.Optics` unless ``psfs`` is given.
    psfs : (n_levels, k, k) deconvolution PSFs; default ``psf_bank(model.optics, size=options.psf_size)``
        (pass it when processing many images: computing the bank takes about a second).
    out : (H, W) array to write the result into (numpy, memmap, zarr, e.g. ``awdvd.io.open_image_output``);
        None returns a new array.
    optics : the image's :class:`awdvd.physics.optics.Optics` (emission wavelength, NA, immersion index, pixel
        size), or None: the model's. The map is made on the model's sampling (:func:`defocus_map`); the image is
        restored on its own pixel grid with the PSFs of its own optics at the map's depths.
    pixel_um : without ``optics``: the image's pixel size (um), when known: a :class:`awdvd.io.PixelSizeWarning`
        if it disagrees with the model's optics.
    tile_px, max_px : images of more than ``max_px`` pixels (and lazy ones) are restored in ``tile_px`` tiles.
    client : a ``distributed.Client`` or scheduler address to spread a tiled image's tiles over a cluster.
    progress : progress bars over tiles.

    Returns
    -------
    (H, W) float32 restored image (``out`` when given; see :func:`awdvd.restore.rl.to_input_dtype` to go back to the
    input's dtype).

    Raises
    ------
    ValueError for a bad option, a stride larger than the model's windows, an image smaller than one window,
    NaN/inf; TypeError for unknown option names.
    """
    return restore_image(image, model, options, dmap=dmap, psfs=psfs, out=out, optics=optics, pixel_um=pixel_um,
                         tile_px=tile_px,
                         max_px=max_px, client=client, progress=progress, **overrides).image


def deconvolve_invariant(image, psf_or_level=0, options: AWDVDOptions | None = None, *, optics=None,
                         eps: float | None = None, **overrides) -> np.ndarray:
    """Depth-invariant baseline: RL of the whole image with one PSF, with the options of :func:`deconvolve`
    (``iterations`` (None: 30; no model schedule applies), ``rl``, ``tv_weight``, ``offset`` (default "auto",
    resolved on this image), ``psf_size``, ``device``).

    Parameters
    ----------
    psf_or_level : a defocus level (int; the paper's baseline is level 0, the in-focus PSF) whose Eq. 2 PSF
        is computed from ``optics`` (default ``Optics()``) at ``options.psf_size``, or a (k, k) PSF array.
    eps : RL's floor (see :func:`awdvd.restore.rl.richardson_lucy`). Returns (H, W) float32.
    """

    options = options_with(options, overrides)
    optics = Optics() if optics is None else optics
    level = None
    if isinstance(psf_or_level, (int, np.integer)) and not isinstance(psf_or_level, bool):
        level = int(psf_or_level)
        if not 0 <= level < optics.n_levels:
            raise ValueError(f"level must be in 0..{optics.n_levels - 1}, got {level}")
        psf = defocus_psf(optics.depths_um[level], optics=optics, size=options.psf_size)
    else:
        psf = np.asarray(psf_or_level)
        if psf.ndim != 2:
            raise ValueError(f"give one level (int) or one 2-D PSF, got an array of shape {psf.shape}")
    if isinstance(options.iterations, tuple):
        if level is None:
            raise ValueError("per-level iterations need a level (int) to choose from; give one int for a PSF array")
        schedule = rl_schedule(options, n_levels=optics.n_levels)
        iterations = schedule.iterations[level]
    else:
        schedule = rl_schedule(options, n_levels=1)
        iterations = schedule.iterations[0]
    array = check_image(image, "image")
    offset = resolve_offset(options.offset, array, max_samples=OFFSET_SAMPLES)
    return richardson_lucy(array, psf, iterations=iterations, offset=offset, eps=eps, device=options.device,
                           variant=schedule.variant, tv_weight=schedule.tv_weight)
