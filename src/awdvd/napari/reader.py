"""napari reader: TIFF, OME-TIFF, OME-Zarr and the vendors' CZI, ND2 and LIF through :func:`awdvd.read_image`,
with the pixel size as scale; a multi-channel file (:func:`awdvd.io.channels.read_channels`) as one layer per
channel; a vendor file of several scenes as a layer (or a layer per channel) per scene, lazily."""

from __future__ import annotations

import os
from pathlib import Path

from ..io import ZARR_SUFFIX, image_stem, read_image, read_ome_optics
from ..io.channels import channel_count, channel_info, read_channels, stack_axis
from ..io.planes import PlaneReader, plane_layout
from ..io.scenes import scene_count
from ..io.vendor import VENDOR_SUFFIXES, is_vendor_file, open_vendor
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
    scenes = scene_count(path)
    if scenes > 1:
        return [_scene_layer(path, index) for index in range(scenes)]
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
    wavelength in its optics (what the widgets restore it with); a multi-channel time-lapse or z-stack with its T
    or Z axis, read plane by plane as napari shows it."""
    planes = plane_layout(path) if stack_axis(path) else None
    if planes is not None and is_vendor_file(path):  # its T or Z axis and channels, lazily
        return _scene_layer(path, 0)
    image = read_channels(path) if planes is None else channel_info(path)
    data = image.data if planes is None else _lazy_planes(path, planes)
    ndim = 2 if planes is None else 3
    recorded = {k: v for k, v in optics.items() if v is not None and k != "wavelength_um"}
    metadata = [{"pixel_um": image.pixel_um, "path": str(path), "channel": name, "channel_index": index,
                 "optics": {**recorded, **({"wavelength_um": w} if w is not None else {})}}
                for index, (name, w) in enumerate(zip(image.names, image.emission_um))]
    kwargs = {"channel_axis": 0, "name": [f"{image_stem(path)} [{name}]" for name in image.names],
              "colormap": [channel_colormap(w) for w in image.emission_um], "scale": layer_scale(image.pixel_um, ndim),
              "metadata": metadata}
    if image.pixel_um:
        kwargs["units"] = ("pixel",) * (ndim - 2) + ("um", "um")
    return data, kwargs, "image"


def _lazy_planes(path, planes):
    """(C, N, H, W) dask array of a multi-channel time-lapse or z-stack: each plane read when napari shows it."""
    import dask
    import dask.array as da

    reader = PlaneReader(path)
    first = reader.read(planes.axis, 0, 0)
    read = dask.delayed(reader.read)
    return da.stack([da.stack([da.from_delayed(read(planes.axis, i, c), first.shape, first.dtype)
                               for i in range(planes.planes)]) for c in range(planes.channels)])


def _scene_layer(path, index: int) -> tuple:
    """Scene ``index`` of a vendor file as one layer-data tuple, lazily: its T and Z axes where they hold more than
    one plane, a layer per channel (``channel_axis``) where it holds several, named ``STEM [SCENE]`` (and the
    channel), with the scene's pixel size as scale and the optics it records."""
    image = open_vendor(path, scene=index)
    frames, channels, planes = (int(v) for v in image.data.shape[:3])
    data = image.data[slice(None) if frames > 1 else 0, :, slice(None) if planes > 1 else 0]  # (T?, C, Z?, Y, X)
    caxis = 1 if frames > 1 else 0
    ndim = data.ndim - 1
    recorded = {k: image.optics.get(k) for k in ("pixel_um", "na", "n") if image.optics.get(k) is not None}
    metadata = [{"pixel_um": image.pixel_um, "path": str(path), "scene": image.scene, "channel": name,
                 "channel_index": c, "optics": {**recorded, **({"wavelength_um": w} if w is not None else {})}}
                for c, (name, w) in enumerate(zip(image.names, image.emission_um))]
    name = f"{image_stem(path)} [{image.scene}]"
    kwargs = {"scale": layer_scale(image.pixel_um, ndim)}
    if image.pixel_um:
        kwargs["units"] = ("pixel",) * (ndim - 2) + ("um", "um")
    if channels == 1:
        data = data[(slice(None),) * caxis + (0,)]
        return data, {**kwargs, "name": name, "metadata": metadata[0]}, "image"
    return data, {**kwargs, "channel_axis": caxis, "name": [f"{name} {n}" for n in image.names],
                  "colormap": [channel_colormap(w) for w in image.emission_um], "metadata": metadata}, "image"
