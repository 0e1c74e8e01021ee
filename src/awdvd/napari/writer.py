"""napari writer: an image layer as float32 TIFF, OME-TIFF or OME-Zarr with its pixel size (awdvd.io writers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import write_image as write

__all__ = ["write_image", "layer_pixel_um"]


def layer_pixel_um(attributes: dict) -> float | None:
    """The pixel size (um) of a layer: its ``metadata["pixel_um"]`` (set by awdvd's reader and widgets), else its
    y/x ``scale`` read as micrometres when it is not napari's default 1 (no physical size)."""
    metadata = attributes.get("metadata") or {}
    if metadata.get("pixel_um"):
        return float(metadata["pixel_um"])
    scale = attributes.get("scale")
    if scale is not None and len(scale) >= 2 and np.isclose(scale[-1], scale[-2]) and not np.isclose(scale[-1], 1.0):
        return float(scale[-1])
    return None


def write_image(path: str, data, attributes: dict) -> list[str]:
    """npe2 single-layer writer: ``*.ome.tif(f)`` as OME-TIFF, ``*.tif(f)`` as ImageJ TIFF, ``*.zarr`` as OME-Zarr;
    float32 always (values as they are: no rescaling, no clipping), the layer's pixel size kept.

    napari's save dialog asks before replacing a file; the write itself is atomic (a temporary file renamed).
    Returns the paths written.
    """

    path = Path(path)
    name = path.name.lower()
    array = np.asarray(data, dtype=np.float32)
    pixel_um = layer_pixel_um(attributes)
    if name.endswith((".ome.tif", ".ome.tiff")):
        format = "ome-tiff"
    elif name.endswith((".tif", ".tiff")):
        format = "tiff"
    elif name.endswith(".zarr"):
        format = "ome-zarr"
    else:
        raise ValueError(f"{path.name}: awdvd writes .tif, .tiff, .ome.tif or .zarr")
    options = ((attributes.get("metadata") or {}).get("awdvd") or None) if format == "tiff" else None
    written = write(path, array, format=format, pixel_um=pixel_um, overwrite=True,
                    **({"description": options} if options else {}))
    return [str(written)]
