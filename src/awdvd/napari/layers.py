"""Library results as napari layer-data tuples ``(data, kwargs, layer_type)``: plain numpy, no napari import.

The level map is a Labels layer whose label ``l + 1`` is defocus level ``l`` and whose label 0, background,
is transparent, so the image stays visible where the model sees no specimen; colours run along viridis from
in focus (dark) to the deepest level (yellow), and :func:`level_legend` lists them with their depths. The depth
map (:func:`depth_layer`) is an Image layer of the depth in um at every pixel, on the same viridis scale from 0
to the deepest level's depth (so the legend reads for both), NaN (drawn transparent) where only background.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..data.patches import BACKGROUND

__all__ = ["level_colours", "level_legend", "level_depths_um", "levels_layer", "depth_layer", "depth_spread_layer",
           "confidence_layer", "restored_layer", "pixel_confidence", "layer_scale", "is_map_layer"]


def layer_scale(pixel_um: float | None, ndim: int = 2) -> tuple[float, ...]:
    """napari ``scale`` for an image with ``pixel_um`` pixels (1.0 per axis where the size is unknown; the z
    step of a stack is not recorded by the files awdvd reads, so z stays 1.0)."""
    xy = (float(pixel_um), float(pixel_um)) if pixel_um else (1.0, 1.0)
    return (1.0,) * (ndim - 2) + xy


def is_map_layer(metadata) -> bool:
    """Whether a layer is one of awdvd's maps of an image (depth, depth spread, confidence): an image layer, but
    not a picture of the specimen, so never the widgets' input."""
    awdvd = metadata.get("awdvd") if isinstance(metadata, Mapping) else None
    return isinstance(awdvd, Mapping) and "map" in awdvd


def _with_units(kwargs: dict, units) -> dict:
    """``kwargs`` with napari ``units`` (e.g. ("um", "um")) where given: all layers of a view should have the
    same units (napari ignores units that differ between layers)."""
    if units is not None:
        kwargs["units"] = tuple(str(u) for u in units)
    return kwargs


def level_colours(n_levels: int) -> dict:
    """Label -> RGBA colour: 0 (background) and unknown labels (None) transparent, label l + 1 for level l."""
    from matplotlib import colormaps

    ramp = colormaps["viridis"](np.linspace(0.0, 1.0, max(n_levels, 2)))
    colours: dict = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0)}
    for level in range(n_levels):
        colours[level + 1] = tuple(float(c) for c in ramp[level])
    return colours


def level_depths_um(dmap) -> tuple[float, ...]:
    """The depth (um) of each of a map's levels 0 .. n_levels - 1 in the image's optics: ``l * dmap.z_step_um``."""
    if dmap.z_step_um is None:
        raise ValueError("this map holds levels without a depth step (z_step_um is None): no depth in um")
    n_levels = max((int(level) for level in np.asarray(dmap.class_levels) if level != BACKGROUND), default=-1) + 1
    return tuple(level * float(dmap.z_step_um) for level in range(n_levels))


def level_legend(n_levels: int, depths_um) -> str:
    """The level legend as rich text (one coloured swatch per level with its depth in um, then background), for
    a Qt label; the depth map's colours are the same at the same depths."""
    colours = level_colours(n_levels)
    rows = []
    for level in range(n_levels):
        r, g, b, _ = (int(round(255 * c)) for c in colours[level + 1])
        rows.append(f'<span style="background-color:#{r:02x}{g:02x}{b:02x}">&nbsp;&nbsp;&nbsp;&nbsp;</span>'
                    f"&nbsp;{level}: {depths_um[level]:.3g} um")
    rows.append("&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;no colour: background")
    return "<b>defocus level: depth (this image's optics)</b><br>" + "<br>".join(rows)


def _features(n_levels: int, depths_um) -> dict:
    """Per-label table (napari shows it under the cursor): label 0 background, label l + 1 level l."""
    return {
        "index": list(range(n_levels + 1)),
        "level": ["background"] + [str(level) for level in range(n_levels)],
        "defocus_um": [float("nan")] + [float(depths_um[level]) for level in range(n_levels)],
    }


def levels_layer(levels_px: np.ndarray, *, depths_um, name: str, scale=(1.0, 1.0), translate=(0.0, 0.0),
                 units=None, metadata: dict | None = None) -> tuple:
    """A Labels layer tuple of a per-pixel level map (H, W) (-1 = background, 0 .. n_levels - 1)."""
    levels_px = np.asarray(levels_px)
    n_levels = len(depths_um)
    if levels_px.size and (levels_px.max() >= n_levels or levels_px.min() < BACKGROUND):
        raise ValueError(f"levels must be -1 (background) or 0..{n_levels - 1}")
    labels = (levels_px + 1).astype(np.uint8)  # background -1 -> 0, the transparent label
    kwargs = {"name": name, "scale": tuple(scale), "translate": tuple(translate), "opacity": 0.45,
              "colormap": level_colours(n_levels), "features": _features(n_levels, depths_um),
              "metadata": {"awdvd": {"label_is_level_plus_one": True, "depths_um": list(map(float, depths_um)),
                                     **(metadata or {})}}}
    return labels, _with_units(kwargs, units), "labels"


def depth_layer(depth_px: np.ndarray, *, depths_um, name: str, scale=(1.0, 1.0), translate=(0.0, 0.0), units=None,
                metadata: dict | None = None) -> tuple:
    """An Image layer tuple of the depth (um) at every pixel (:meth:`~awdvd.restore.windows.DefocusMap.depth_pixels`),
    float32, NaN where only background (napari draws NaN transparent). Coloured along viridis from 0 to the
    deepest level's depth ``depths_um[-1]``, as the level map and its legend, and translucent over the image."""
    data = np.asarray(depth_px, dtype=np.float32)
    deepest = float(depths_um[-1]) if len(depths_um) and depths_um[-1] > 0 else 1.0
    kwargs = {"name": name, "scale": tuple(scale), "translate": tuple(translate), "colormap": "viridis",
              "contrast_limits": (0.0, deepest), "opacity": 0.5, "blending": "translucent",
              "metadata": {"awdvd": {"map": "depth_um",
                                     "what": "defocus depth (um), the windows' probability-weighted depths blended "
                                             "with their triangular weights; NaN: background",
                                     "depths_um": list(map(float, depths_um)), **(metadata or {})}}}
    return data, _with_units(kwargs, units), "image"


def depth_spread_layer(spread_px: np.ndarray, *, name: str, scale=(1.0, 1.0), translate=(0.0, 0.0),
                       units=None) -> tuple:
    """An Image layer tuple of the depth's uncertainty (um) at every pixel, float32, NaN where only background;
    hidden at first."""
    data = np.asarray(spread_px, dtype=np.float32)
    finite = data[np.isfinite(data)]
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    kwargs = {"name": name, "scale": tuple(scale), "translate": tuple(translate), "colormap": "magma",
              "contrast_limits": (0.0, top), "visible": False,
              "metadata": {"awdvd": {"map": "depth_spread_um",
                                     "what": "spread of the defocus depth (um): the probability-weighted standard "
                                             "deviation of the windows' depths; NaN: background"}}}
    return data, _with_units(kwargs, units), "image"


def pixel_confidence(dmap) -> np.ndarray:
    """(H, W) float32: the probability of the predicted class of the window whose centre is nearest to each
    pixel (ties: the earlier window), i.e. the model's confidence at every pixel."""
    height, width = dmap.image_shape
    offset = (dmap.patch_px - 1) / 2

    def nearest(n, starts):
        centres = np.asarray(starts, dtype=np.float64) + offset
        return np.abs(np.arange(n)[:, None] - centres[None, :]).argmin(axis=1)

    confidence = np.asarray(dmap.confidence, dtype=np.float32)
    return confidence[nearest(height, dmap.ys)[:, None], nearest(width, dmap.xs)[None, :]]


def confidence_layer(dmap, *, name: str, scale=(1.0, 1.0), translate=(0.0, 0.0), units=None) -> tuple:
    """An Image layer tuple of the model's confidence (max class probability, 0-1) at each pixel."""
    kwargs = {"name": name, "scale": tuple(scale), "translate": tuple(translate), "colormap": "magma",
              "contrast_limits": (0.0, 1.0), "visible": False,
              "metadata": {"awdvd": {"map": "confidence", "what": "max class probability of the nearest window"}}}
    return pixel_confidence(dmap), _with_units(kwargs, units), "image"


def restored_layer(restored: np.ndarray, *, name: str, scale=(1.0, 1.0), translate=(0.0, 0.0), units=None,
                   pixel_um: float | None = None, options: dict | None = None) -> tuple:
    """An Image layer tuple of a restored image: float32 as computed (never rescaled), same scale as its input."""
    data = np.asarray(restored, dtype=np.float32)
    finite = data[np.isfinite(data)]
    lo, hi = (float(np.percentile(finite, 0.5)), float(np.percentile(finite, 99.8))) if finite.size else (0.0, 1.0)
    kwargs = {"name": name, "scale": tuple(scale), "translate": tuple(translate), "colormap": "gray",
              "contrast_limits": (lo, hi if hi > lo else lo + 1.0),
              "metadata": {"pixel_um": pixel_um, "awdvd": dict(options or {})}}
    return data, _with_units(kwargs, units), "image"
