"""Multi-channel files: (C, H, W) with the channels' names and emission wavelengths, read and written."""

import numpy as np
import pytest
import tifffile

from _standins import ome_xml
from awdvd.io import ImageReadError, read_image
from awdvd.io.channels import channel_count, read_channels, write_channels


def _two_channels(path, *, emission=(460.0, 600.0), names=("Hoechst", "GFP")):
    data = np.stack([np.full((90, 100), 100 + 10 * c, np.uint16) for c in range(2)])
    data[1, 5, 7] = 4000
    xml = ome_xml(shape=(90, 100), pixel_um=0.325, na=0.75, emission_nm=None,
                  channels=list(zip(names, emission)))
    tifffile.imwrite(path, data, description=xml, metadata=None)
    return data


def test_an_ome_tiff_gives_its_channels_names_and_emission(tmp_path):
    data = _two_channels(tmp_path / "field.ome.tif")
    image = read_channels(tmp_path / "field.ome.tif")
    assert image.data.shape == (2, 90, 100) and np.array_equal(image.data, data)
    assert image.names == ["Hoechst", "GFP"]
    assert image.emission_um == pytest.approx([0.46, 0.60])
    assert image.pixel_um == pytest.approx(0.325) and image.optics["na"] == pytest.approx(0.75)
    assert channel_count(tmp_path / "field.ome.tif") == 2
    with pytest.raises(ImageReadError, match="--map-channel"):  # the one-plane reader says where channels go
        read_image(tmp_path / "field.ome.tif")


def test_channels_without_names_or_wavelengths_are_numbered(tmp_path):
    _two_channels(tmp_path / "bare.ome.tif", emission=(None, 600.0), names=(None, None))
    image = read_channels(tmp_path / "bare.ome.tif")
    assert image.names == ["0", "1"] and image.emission_um[0] is None


def test_an_imagej_hyperstack_gives_its_labels(tmp_path):
    data = np.arange(2 * 64 * 70, dtype=np.uint16).reshape(2, 64, 70)
    tifffile.imwrite(tmp_path / "hyper.tif", data, imagej=True, metadata={"axes": "CYX", "Labels": ["DAPI", "Cy5"]})
    image = read_channels(tmp_path / "hyper.tif")
    assert image.names == ["DAPI", "Cy5"] and np.array_equal(image.data, data)


def test_a_time_lapse_of_channels_is_refused_with_the_reason(tmp_path):
    data = np.zeros((3, 2, 64, 70), np.uint16)
    tifffile.imwrite(tmp_path / "movie.tif", data, imagej=True, metadata={"axes": "TCYX"})
    with pytest.raises(ImageReadError, match="3 time points besides its channels"):
        read_channels(tmp_path / "movie.tif")


def test_written_channels_read_back_with_their_names(tmp_path):
    data = np.random.default_rng(0).random((2, 50, 60)).astype(np.float32)
    path = write_channels(tmp_path / "out.ome.tif", data, names=["Hoechst", "GFP"], emission_um=[0.46, 0.6],
                          pixel_um=0.5)
    back = read_channels(path)
    assert np.array_equal(back.data, data) and back.names == ["Hoechst", "GFP"]
    assert back.emission_um == pytest.approx([0.46, 0.6]) and back.pixel_um == pytest.approx(0.5)
    with pytest.raises(FileExistsError):
        write_channels(path, data, names=["a", "b"])
    with pytest.raises(ValueError, match="2 channel names for 3 channels"):
        write_channels(tmp_path / "x.ome.tif", np.zeros((3, 8, 8)), names=["a", "b"])
    assert not (tmp_path / "x.ome.tif").exists()


def test_an_ome_zarr_with_a_channel_axis_gives_its_omero_labels(tmp_path):
    import zarr

    data = np.arange(2 * 40 * 50, dtype=np.uint16).reshape(2, 40, 50)
    root = zarr.open_group(str(tmp_path / "field.zarr"), mode="w", zarr_format=3)
    root.create_array("0", shape=data.shape, dtype=data.dtype, chunks=(1, 40, 50))[...] = data
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": "c", "type": "channel"}, {"name": "y", "type": "space", "unit": "micrometer"},
                 {"name": "x", "type": "space", "unit": "micrometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 0.4, 0.4]}]}]}],
        "omero": {"channels": [{"label": "Hoechst"}, {"label": "Actin"}]}}
    image = read_channels(tmp_path / "field.zarr")
    assert image.names == ["Hoechst", "Actin"] and np.array_equal(image.data, data)
    assert image.pixel_um == pytest.approx(0.4) and channel_count(tmp_path / "field.zarr") == 2


def test_ome_zarr_channels_and_time_lapses_round_trip(tmp_path):
    """OME-Zarr outputs keep their c or t axis (names, emission, pixel size); an OME-Zarr time-lapse reads as one."""
    from awdvd.io import image_shape
    from awdvd.io.channels import read_frame, stack_axis, write_frames

    data = np.random.default_rng(3).random((2, 30, 40)).astype(np.float32)
    write_channels(tmp_path / "c.ome.zarr", data, names=["DAPI", "GFP"], emission_um=[0.46, 0.52], pixel_um=0.325)
    image = read_channels(tmp_path / "c.ome.zarr")
    assert np.array_equal(image.data, data) and image.names == ["DAPI", "GFP"]
    assert image.emission_um == pytest.approx([0.46, 0.52]) and image.pixel_um == pytest.approx(0.325)
    assert channel_count(tmp_path / "c.ome.zarr") == 2 and stack_axis(tmp_path / "c.ome.zarr") is None
    write_frames(tmp_path / "t.ome.zarr", data, pixel_um=0.325)
    assert stack_axis(tmp_path / "t.ome.zarr") == "T" and image_shape(tmp_path / "t.ome.zarr") == (2, 30, 40)
    assert np.array_equal(read_frame(tmp_path / "t.ome.zarr", 1), data[1])
    assert np.array_equal(read_image(tmp_path / "t.ome.zarr").data, data)
    with pytest.raises(ValueError, match=r"ends in \.ome\.tif or \.ome\.tiff .* or \.ome\.zarr"):
        write_frames(tmp_path / "t.tif", data)
