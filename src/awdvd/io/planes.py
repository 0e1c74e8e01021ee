"""Files of several planes (time points or z planes) of one or several channels, read one plane at a time: what
lets awdvd restore a multi-channel time-lapse frame by frame and map one channel of a multi-channel z-stack plane
by plane, in bounded memory (:mod:`awdvd.batch.timelapse_files`, :mod:`awdvd.batch.stack_maps`).

:func:`plane_layout` says along which axis a file's planes run (T or Z), how many there are and how many channels
each has; :func:`read_plane` reads one channel of one plane (:class:`PlaneReader`: many, the file opened once);
:class:`PlaneStack` is one channel's planes as a
(N, H, W) sequence read on indexing. OME-TIFF and ImageJ hyperstacks (one TIFF page per plane and channel),
OME-Zarr and vendor files (CZI, ND2, LIF, lazily through bioio) are read this way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .images import ImageReadError, is_image_folder, open_tiff, read_zarr
from .vendor import is_vendor_file, open_vendor

__all__ = ["PlaneLayout", "PlaneReader", "PlaneStack", "plane_layout", "read_plane"]


@dataclass(frozen=True)
class PlaneLayout:
    """axis : "T" (a time-lapse) or "Z" (a z-stack: any other axis of planes). planes : how many along it.
    channels : per plane. shape : (H, W) of a plane."""

    axis: str
    planes: int
    channels: int
    shape: tuple[int, int]


def _pixels(path: Path):
    """(axes, shape) of ``path``'s pixels, its axes named by the letters T C Z Y X (others as the file names
    them), and read(index) giving the pixels at an index tuple over those axes."""
    if is_vendor_file(path):
        data = open_vendor(path).data
        return "TCZYX", tuple(int(v) for v in data.shape), lambda index: np.asarray(data[index])
    if is_image_folder(path):
        data, _, metadata = read_zarr(path, True, channels=True)
        axes = "".join(metadata.get("axes") or "tczyx"[-len(data.shape):]).upper()
        return axes, tuple(int(v) for v in data.shape), lambda index: np.asarray(data[index])
    with open_tiff(path) as (tif, _):
        series = tif.series[0]
        axes, shape, pages = str(getattr(series, "axes", "")).upper(), tuple(int(v) for v in series.shape), None
        if axes.endswith("YX"):  # one page per plane and channel, in the order of the axes before Y and X
            pages = len(series.pages)

    def read(index):
        lead = index[:-2]
        with open_tiff(path) as (tif, _):
            series = tif.series[0]
            if pages == int(np.prod(shape[:-2], dtype=np.int64)) and all(isinstance(i, int) for i in lead):
                return series.pages[int(np.ravel_multi_index(lead, shape[:-2]))].asarray() if lead \
                    else series.asarray()
            return np.asarray(series.asarray()[index])

    return axes, shape, read


def plane_layout(path: str | os.PathLike) -> PlaneLayout | None:
    """How ``path``'s planes are laid out, or None for a single plane (of any number of channels).

    Raises
    ------
    ImageReadError : planes along two axes (a time-lapse of z-stacks), which awdvd does not process, or colour
        (RGB) samples.
    """
    path = Path(path)
    axes, shape, _ = _pixels(path)
    sizes = dict(zip(axes, shape))
    many = [name for name, size in sizes.items() if size > 1 and name not in "CYX"]
    if not many:
        return None
    if len(many) > 1:
        listed = " x ".join(f"{sizes[name]} {name}" for name in many)
        raise ImageReadError(f"{path.name} has planes along several axes ({listed}); awdvd processes one time-lapse "
                             "or one z-stack per file (save each time point's stack, or each plane's time-lapse, as "
                             "its own file)")
    # as stack_axis says: a T axis is a time-lapse, any other (Z, a multi-page TIFF's I, ...) a stack
    return PlaneLayout(axis="T" if many[0] == "T" else "Z", planes=sizes[many[0]], channels=sizes.get("C", 1),
                       shape=(sizes["Y"], sizes["X"]))


class PlaneReader:
    """``path`` opened once (its axes and how to read them), then any plane read alone by :meth:`read`: a vendor
    file's metadata are parsed once, not for every plane (a small LIF: 12 ms a plane opened each time, 3 ms once
    open)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.axes, self.shape, self._read = _pixels(self.path)

    def read(self, axis: str, index: int, channel: int = 0) -> np.ndarray:
        """Channel ``channel`` of plane ``index`` along ``axis`` ("T" or "Z"), (H, W) as stored (a TIFF page, an
        OME-Zarr or vendor file's slice)."""
        axes, shape = self.axes, self.shape
        if axis not in axes:  # a stack whose planes' axis the file names otherwise (a multi-page TIFF's I)
            axis = next((name for name, size in zip(axes, shape) if size > 1 and name not in "CYX"), axis)
        picks = {axis: int(index), "C": int(channel)}
        location = tuple(slice(None) if name in "YX" else picks.get(name, 0) for name in axes)
        for name, pick, size in zip(axes, location, shape):
            if isinstance(pick, int) and not 0 <= pick < size:
                raise IndexError(f"{self.path.name} has {size} {name} entries; asked for {pick}")
        return self._read(location)


def read_plane(path: str | os.PathLike, axis: str, index: int, channel: int = 0) -> np.ndarray:
    """Channel ``channel`` of plane ``index`` along ``axis`` ("T" or "Z") of ``path``, (H, W) as stored, read
    alone; to read several planes of one file, open it once with :class:`PlaneReader`."""
    return PlaneReader(path).read(axis, index, channel)


class PlaneStack:
    """One channel's planes of ``path`` along its :func:`plane_layout` axis as a (N, H, W) sequence: indexing by
    a plane reads that plane alone (:func:`read_plane`)."""

    def __init__(self, path: str | os.PathLike, channel: int = 0):
        self.path = Path(path)
        layout = plane_layout(self.path)
        if layout is None:
            raise ImageReadError(f"{self.path.name} holds one plane, not a stack of them")
        self.layout, self.channel, self.reader = layout, int(channel), PlaneReader(self.path)
        self.shape = (layout.planes, *layout.shape)
        self.ndim = 3

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> np.ndarray:
        return self.reader.read(self.layout.axis, index, self.channel)
