"""napari reader: TIFF, OME-TIFF, OME-Zarr and the vendors' CZI, ND2 and LIF through :func:`awdvd.read_image`,
with the pixel size as scale; a multi-channel file (:func:`awdvd.io.channels.read_channels`) as one layer per channel."""

from __future__ import annotations

import os
from pathlib import Path

from ..io import ZARR_SUFFIX, image_stem, read_image, read_ome_optics
from ..io.channels import channel_count, read_channels
from ..io.vendor import VENDOR_SUFFIXES
from .layers import layer_scale

__all__ = ["get_reader", "read_layers", "channel_colormap"]

_SUFFIXES = (".tif", ".tiff") + VENDOR_SUFFIXES


def get_reader(path):
    """npe2 reader hook: :func:`read_layers` for one TIFF / OME-TIFF / CZI / ND2 / LIF file or one ``*.zarr``
    folder, else None (napari then asks another plugin)."""
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
    try:
        optics = read_ome_optics(path)
    except ValueError:  # optics are a bonus: a file whose metadata cannot be parsed still opens
        optics = {}
    if channel_count(path) > 1:
        return [_channel_layers(path, optics)]
    image = read_image(path)
    kwargs = {
        "name": image_stem(path),
        "scale": layer_scale(image.pixel_um, image.data.ndim),
        "metadata": {"pixel_um": image.pixel_um, "path": str(path),
                     "optics": {k: v for k, v in optics.items() if v is not None}},
    }
    if image.pixel_um:
        kwargs["units"] = ("um",) * image.data.ndim if image.data.ndim == 2 else ("pixel", "um", "um")
    return [(image.data, kwargs, "image")]


def channel_colormap(emission_um: float | None) -> str:
    """A colormap near a channel's emission colour: blue below 0.49 um, green to 0.57 um, magenta beyond;
    gray when the file does not record it."""
    if emission_um is None:
        return "gray"
    return "blue" if emission_um < 0.49 else "green" if emission_um < 0.57 else "magenta"


def _channel_layers(path, optics: dict) -> tuple:
    """A multi-channel file as one layer-data tuple that napari splits into a layer per channel
    (``channel_axis=0``): each named after its channel, coloured near its emission, with its own emission
    wavelength in its optics (what the widgets restore it with)."""
    image = read_channels(path)
    recorded = {k: v for k, v in optics.items() if v is not None and k != "wavelength_um"}
    metadata = [{"pixel_um": image.pixel_um, "path": str(path), "channel": name, "channel_index": index,
                 "optics": {**recorded, **({"wavelength_um": w} if w is not None else {})}}
                for index, (name, w) in enumerate(zip(image.names, image.emission_um))]
    kwargs = {"channel_axis": 0, "name": [f"{image_stem(path)} [{name}]" for name in image.names],
              "colormap": [channel_colormap(w) for w in image.emission_um], "scale": layer_scale(image.pixel_um, 2),
              "metadata": metadata}
    if image.pixel_um:
        kwargs["units"] = ("um", "um")
    return image.data, kwargs, "image"
