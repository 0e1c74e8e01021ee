"""One plane at a time of files of several planes (awdvd.io.planes): OME-TIFF, ImageJ hyperstacks, multi-page
TIFFs, OME-Zarr; planes along two axes are refused with the reason."""

import numpy as np
import pytest
import tifffile

from awdvd.io import ImageReadError
from awdvd.io.channels import write_channels
from awdvd.io.planes import PlaneStack, plane_layout, read_plane


def _data(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 4000, size=shape).astype(np.uint16)


@pytest.mark.parametrize("suffix", [".ome.tif", ".ome.zarr"])
def test_a_two_channel_time_lapse_is_read_plane_by_plane(tmp_path, suffix):
    data = _data((3, 2, 20, 24))
    path = write_channels(tmp_path / f"live{suffix}", data, names=["a", "b"], pixel_um=0.5)
    layout = plane_layout(path)
    assert (layout.axis, layout.planes, layout.channels, layout.shape) == ("T", 3, 2, (20, 24))
    for t in range(3):
        for c in range(2):
            np.testing.assert_array_equal(read_plane(path, "T", t, c), data[t, c])
    stack = PlaneStack(path, channel=1)
    assert stack.shape == (3, 20, 24) and len(stack) == 3
    np.testing.assert_array_equal(stack[2], data[2, 1])
    with pytest.raises(IndexError, match="has 3 T entries; asked for 3"):
        read_plane(path, "T", 3, 0)


def test_imagej_hyperstacks_and_multi_page_tiffs(tmp_path):
    data = _data((2, 4, 3, 16, 18), seed=1)  # T Z C Y X: planes along two axes
    tifffile.imwrite(tmp_path / "both.tif", data, imagej=True, metadata={"axes": "TZCYX"})
    with pytest.raises(ImageReadError, match=r"planes along several axes \(2 T x 4 Z\)"):
        plane_layout(tmp_path / "both.tif")
    stack = data[0, :, 0]
    tifffile.imwrite(tmp_path / "pages.tif", stack, photometric="minisblack")  # no axes: a stack
    layout = plane_layout(tmp_path / "pages.tif")
    assert layout.axis == "Z" and layout.planes == 4 and layout.channels == 1
    np.testing.assert_array_equal(read_plane(tmp_path / "pages.tif", "Z", 3), stack[3])
    tifffile.imwrite(tmp_path / "one.tif", stack[0])
    assert plane_layout(tmp_path / "one.tif") is None
    with pytest.raises(ImageReadError, match="holds one plane"):
        PlaneStack(tmp_path / "one.tif")
