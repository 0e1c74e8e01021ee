"""Multi-channel images and time-lapses: reading a (C, H, W) field with its channels' names and emission
wavelengths, and writing one back with them; telling a time-lapse from a z-stack (:func:`stack_axis`), reading
one frame at a time (:func:`read_frame`) and writing (T, H, W) as OME-TIFF with its T axis (:func:`write_frames`).

Readers: OME-TIFF and ImageJ hyperstack TIFF (a ``C`` axis in tifffile's series axes), OME-Zarr (a ``c`` axis;
names from the ``omero`` channel labels). Every axis but C, Y and X must be a singleton for :func:`read_channels`
(time-lapses and stacks of several channels are read a plane at a time, :mod:`awdvd.io.planes`;
:func:`channel_info` gives their channels). Names come from OME-XML ``Channel/@Name``, the
``omero`` labels or ImageJ's ``Labels``, else "0", "1", ...; emission wavelengths from OME-XML
``Channel/@EmissionWavelength`` (None where absent).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from .images import ImageReadError, check_pixel_um, check_readable, is_image_folder, open_tiff, read_zarr, tiff_pixel_um
from .optics_metadata import UNIT_TO_UM, read_ome_optics
from .vendor import is_vendor_file, open_vendor
from .writers import atomic_path, open_ome_zarr_output, software

__all__ = ["ChannelImage", "channel_count", "channel_info", "read_channels", "write_channels", "stack_axis",
           "read_frame", "write_frames"]


@dataclass
class ChannelImage:
    """data : (C, H, W) as stored (None from :func:`channel_info`). names : one per channel. emission_um : one
    per channel (None: not recorded). pixel_um : the file's pixel size or None. optics : what
    :func:`awdvd.io.read_ome_optics` reads."""

    data: np.ndarray
    path: Path
    names: list[str]
    emission_um: list[float | None]
    pixel_um: float | None = None
    optics: dict = field(default_factory=dict)


def _tiff_axes(path: Path) -> tuple[str, tuple[int, ...]]:
    with open_tiff(path) as (tif, _):
        series = tif.series[0]
        return str(getattr(series, "axes", "")), tuple(series.shape)


def channel_count(path: str | os.PathLike) -> int:
    """The number of channels ``path`` holds (1 for files without a channel axis, and for formats without one)."""
    path = Path(path)
    if is_image_folder(path):
        data, _, metadata = read_zarr(path, True, channels=True)
        axes = metadata.get("axes") or []
        return int(data.shape[axes.index("c")]) if "c" in axes else 1
    if is_vendor_file(path):
        return int(open_vendor(path).data.shape[1])
    if path.suffix.lower() not in (".tif", ".tiff"):
        return 1
    axes, shape = _tiff_axes(path)
    return int(shape[axes.index("C")]) if "C" in axes else 1


def _ome_channels(text: str) -> tuple[list[str | None], list[float | None]]:
    root = ET.fromstring(text)
    image = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Image"), None)
    channels = [] if image is None else [e for e in image.iter() if e.tag.rsplit("}", 1)[-1] == "Channel"]
    names, emission = [], []
    for channel in channels:
        names.append(channel.get("Name"))
        value, unit = channel.get("EmissionWavelength"), channel.get("EmissionWavelengthUnit", "nm")
        try:
            um = float(value) * UNIT_TO_UM[unit] if value is not None and unit in UNIT_TO_UM else None
        except ValueError:
            um = None
        emission.append(um if um is not None and np.isfinite(um) and um > 0 else None)
    return names, emission


def _channels_first(data: np.ndarray, axes: str, path: Path) -> np.ndarray:
    axes = axes.upper()
    for name, size in zip(axes, data.shape):
        if name not in "CYX" and size > 1:
            what = {"T": "time points", "Z": "planes", "S": "samples (colour)"}.get(name, f"{name} entries")
            raise ImageReadError(f"{path.name} has {size} {what} besides its channels; awdvd restores one 2-D "
                                 "plane per channel (save each time point or plane as its own file)")
    keep = [i for i, name in enumerate(axes) if name in "CYX"]
    squeezed = data.reshape([data.shape[i] for i in keep])
    order = [axes[i] for i in keep]
    return np.moveaxis(squeezed, order.index("C"), 0) if "C" in order else squeezed[None]


def read_channels(path: str | os.PathLike) -> ChannelImage:
    """Read a multi-channel field as (C, H, W) with its channels' names and emission wavelengths.

    Raises
    ------
    ImageReadError : not a TIFF, OME-Zarr or vendor (CZI, ND2, LIF) file, or axes besides C, Y and X that are not
        singletons.
    """
    return _channels(Path(path), pixels=True)


def channel_info(path: str | os.PathLike) -> ChannelImage:
    """The channels of ``path`` without its pixels (``data`` is None): their names, emission wavelengths, the
    pixel size and the optics the file records, whatever other axes (time points, planes) it has."""
    return _channels(Path(path), pixels=False)


def _channels(path: Path, *, pixels: bool) -> ChannelImage:
    check_readable(path)
    data = None
    if is_vendor_file(path):
        image = open_vendor(path)
        if pixels:
            data = _channels_first(image.data, image.axes, path).compute()
        return ChannelImage(data=data, path=path, names=image.names, emission_um=image.emission_um,
                            pixel_um=image.pixel_um, optics=image.optics)
    if is_image_folder(path):
        lazy, pixel_um, metadata = read_zarr(path, not pixels, channels=True)
        axes = "".join(metadata.get("axes") or "tczyx"[-len(lazy.shape):])
        n = dict(zip(axes.upper(), lazy.shape)).get("C", 1)
        if pixels:
            data = _channels_first(np.asarray(lazy), axes, path)
        entries = (metadata.get("omero") or {}).get("channels", [])
        # emission_um: what awdvd's own OME-Zarr outputs add to each omero channel (NGFF records no wavelength)
        names, emission = [c.get("label") for c in entries], [c.get("emission_um") for c in entries]
    elif path.suffix.lower() in (".tif", ".tiff"):
        with open_tiff(path) as (tif, _):
            series = tif.series[0]
            axes = str(getattr(series, "axes", ""))
            n = dict(zip(axes.upper(), series.shape)).get("C", 1)
            if pixels:
                data = _channels_first(series.asarray(), axes, path)
            pixel_um = tiff_pixel_um(tif)
            names, emission = _ome_channels(tif.ome_metadata) if tif.ome_metadata else ([], [])
            if not names and tif.imagej_metadata:
                names = list(tif.imagej_metadata.get("Labels") or [])[:n]
    else:
        raise ImageReadError(f"{path}: channels are read from TIFF, OME-Zarr, CZI, ND2 and LIF files, not "
                             f"{path.suffix!r}")
    names = [str(v) if v else str(i) for i, v in enumerate((list(names) + [None] * n)[:n])]
    emission = (list(emission) + [None] * n)[:n]
    optics = read_ome_optics(path)
    return ChannelImage(data=data, path=path, names=names, emission_um=emission,
                        pixel_um=pixel_um if pixel_um is not None else optics.get("pixel_um"), optics=optics)


def write_channels(path: str | os.PathLike, data, *, names, emission_um=None, pixel_um: float | None = None,
                   overwrite: bool = False) -> Path:
    """Write a (C, H, W) image, or a (T, C, H, W) time-lapse of one, as OME-TIFF (``.ome.tif``) with each
    channel's name (and emission wavelength, nm), so that Fiji and napari open it as channels, or as OME-Zarr
    (``.ome.zarr``: axes (t,) c, y, x, the names as omero labels). Atomic; float data as float32, uint8/uint16 as
    stored; a memmap is written plane by plane."""
    path = Path(path)
    _check_name(path)
    if len(data.shape) not in (3, 4) or 0 in data.shape:
        raise ValueError(f"write_channels writes (C, H, W) images or (T, C, H, W) time-lapses, got shape "
                         f"{tuple(data.shape)}")
    axes = "tcyx"[-len(data.shape):]
    names = [str(n) for n in names]
    channels = data.shape[axes.index("c")]
    if len(names) != channels:
        raise ValueError(f"{len(names)} channel names for {channels} channels")
    if data.dtype not in (np.uint8, np.uint16, np.float32):
        data = np.asarray(data, dtype=np.float32)
    emission = list(emission_um) if emission_um is not None else [None] * len(names)
    if path.name.lower().endswith(".zarr"):
        omero = {"channels": [{"label": name, "active": True, **({"emission_um": float(w)} if w else {})}
                              for name, w in zip(names, emission)]}
        return _write_zarr(path, data, axes, pixel_um, overwrite, omero)
    channel: dict = {"Name": names}
    if all(v is not None for v in emission):
        channel.update(EmissionWavelength=[round(float(v) * 1000, 3) for v in emission],
                       EmissionWavelengthUnit=["nm"] * len(names))
    metadata: dict = {"axes": axes.upper(), "Channel": channel}
    if pixel_um is not None:
        pixel_um = check_pixel_um(pixel_um)
        metadata.update(PhysicalSizeX=pixel_um, PhysicalSizeXUnit="µm", PhysicalSizeY=pixel_um, PhysicalSizeYUnit="µm")
    with atomic_path(path, overwrite=overwrite) as tmp:
        tifffile.imwrite(tmp, data, ome=True, photometric="minisblack", metadata=metadata, software=software())
    return path


def _check_name(path: Path) -> None:
    if not path.name.lower().endswith((".ome.tif", ".ome.tiff", ".zarr")):
        raise ValueError(f"{path.name}: the file name ends in .ome.tif or .ome.tiff (OME-TIFF, so Fiji reads the "
                         "metadata) or .ome.zarr (OME-Zarr)")


def _write_zarr(path: Path, data, axes: str, pixel_um, overwrite: bool, omero: dict | None = None) -> Path:
    """(C or T, H, W) or (T, C, H, W) as OME-Zarr, one entry of the first axis at a time (a memmap is never
    read whole)."""
    dtype = data.dtype if data.dtype in (np.uint8, np.uint16, np.float32) else np.float32
    with open_ome_zarr_output(path, shape=tuple(data.shape), dtype=dtype, pixel_um=pixel_um, overwrite=overwrite,
                              axes=axes, omero=omero) as out:
        for index in range(data.shape[0]):
            out[index] = np.asarray(data[index], dtype=out.dtype)
    return path


def stack_axis(path: str | os.PathLike) -> str | None:
    """What the third axis of a 3-D image is: "T" (a time-lapse: a T axis of more than one frame, as ImageJ
    hyperstacks, OME-TIFF and OME-Zarr record it), "Z" (any other stack, multi-page TIFFs without axes included),
    or None for a 2-D image (or a file whose axes cannot be read)."""
    path = Path(path)
    try:
        if is_image_folder(path):
            data, _, metadata = read_zarr(path, True, channels=True)
            axes = "".join(metadata.get("axes") or "tczyx"[-len(data.shape):]).upper()
            shape = tuple(data.shape)
        elif path.suffix.lower() in (".tif", ".tiff"):
            axes, shape = _tiff_axes(path)
        elif is_vendor_file(path):
            data = open_vendor(path).data
            axes, shape = "TCZYX", tuple(data.shape)
        else:
            return None
    except Exception:
        return None
    big = [name for name, size in zip(axes.upper(), shape) if size > 1 and name not in "CYX"]
    if not big:
        return None
    return "T" if "T" in big else "Z"


def read_frame(path: str | os.PathLike, t: int) -> np.ndarray:
    """Frame ``t`` of a (T, H, W) time-lapse, read alone (TIFF: its page; OME-Zarr: its slice)."""
    path = Path(path)
    if is_image_folder(path):
        data, _, metadata = read_zarr(path, True, channels=True)
        axes = "".join(metadata.get("axes") or "tczyx"[-len(data.shape):]).upper()
        index = tuple(t if name == "T" else slice(None) if name in "YX" else 0 for name in axes)
        return np.asarray(data[index])
    if is_vendor_file(path):
        return np.asarray(open_vendor(path).data[t, 0, 0])
    with open_tiff(path) as (tif, _):
        return tif.series[0].pages[t].asarray() if len(tif.series[0].pages) > t else tif.series[0].asarray()[t]


def write_frames(path: str | os.PathLike, data, *, pixel_um: float | None = None, overwrite: bool = False) -> Path:
    """Write a (T, H, W) time-lapse (numpy or a memmap) as OME-TIFF (``.ome.tif``) or OME-Zarr (``.ome.zarr``)
    with its T axis and pixel size. Atomic."""
    path = Path(path)
    _check_name(path)
    if len(data.shape) != 3:
        raise ValueError(f"write_frames writes (T, H, W) time-lapses, got shape {tuple(data.shape)}")
    if path.name.lower().endswith(".zarr"):
        return _write_zarr(path, data, "tyx", pixel_um, overwrite)
    metadata: dict = {"axes": "TYX"}
    if pixel_um is not None:
        pixel_um = check_pixel_um(pixel_um)
        metadata.update(PhysicalSizeX=pixel_um, PhysicalSizeXUnit="µm", PhysicalSizeY=pixel_um, PhysicalSizeYUnit="µm")
    with atomic_path(path, overwrite=overwrite) as tmp:
        with tifffile.TiffWriter(tmp, ome=True) as writer:
            writer.write(np.asarray(data), photometric="minisblack", metadata=metadata, software=software())
    return path
