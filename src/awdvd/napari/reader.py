"""napari reader: TIFF, OME-TIFF and OME-Zarr through :func:`awdvd.read_image`, with the pixel size as scale."""

from __future__ import annotations

import os
from pathlib import Path

from ..io import ZARR_SUFFIX, image_stem, read_image, read_ome_optics
from .layers import layer_scale

__all__ = ["get_reader", "read_layers"]

_SUFFIXES = (".tif", ".tiff")


def get_reader(path):
    """npe2 reader hook: :func:`read_layers` for one TIFF / OME-TIFF file or one ``*.zarr`` folder, else None
    (napari then asks another plugin)."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(os.fspath(path))
    if path.suffix.lower() in _SUFFIXES and path.is_file():
        return read_layers
    if path.name.lower().endswith(ZARR_SUFFIX) and path.is_dir():
        return read_layers
    return None


def read_layers(path) -> list[tuple]:
    """One Image layer tuple: the pixels as stored (never rescaled; lazy for large images), ``scale`` from the
    recorded pixel size in um, and in ``metadata`` the pixel size, the path and the optics the file records
    (:func:`awdvd.io.read_ome_optics`), which the widgets compare with the model's."""

    if isinstance(path, (list, tuple)):
        path = path[0]
    image = read_image(path)
    try:
        optics = read_ome_optics(path)
    except ValueError:  # optics are a bonus: a file whose metadata cannot be parsed still opens
        optics = {}
    kwargs = {
        "name": image_stem(path),
        "scale": layer_scale(image.pixel_um, image.data.ndim),
        "metadata": {"pixel_um": image.pixel_um, "path": str(path),
                     "optics": {k: v for k, v in optics.items() if v is not None}},
    }
    if image.pixel_um:
        kwargs["units"] = ("um",) * image.data.ndim if image.data.ndim == 2 else ("pixel", "um", "um")
    return [(image.data, kwargs, "image")]
