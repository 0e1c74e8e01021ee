"""Vendors' files read through bioio: Zeiss CZI written here with pylibCZIrw (pixels, channels, time-lapses,
stacks, the optics ZEN records, scenes, damage); Leica LIF in test_io_lif.py. No ND2 file can be made here or is
shipped by a package on PyPI: that reader is bioio-nd2 behind the same code, untested on a real file."""

import numpy as np
import pytest

from _standins import write_czi
from awdvd.io import ImageReadError, find_images, image_shape, read_image, read_ome_optics
from awdvd.io.channels import channel_count, read_channels, read_frame, stack_axis
from awdvd.io.vendor import open_vendor

pytest.importorskip("bioio_czi", reason="the CZI reader (bioio-czi, awdvd[formats]) is not installed")


def _pixels(shape, seed=0):
    return np.random.default_rng(seed).integers(90, 4000, size=shape).astype(np.uint16)


def test_a_two_channel_czi_gives_its_channels_and_the_optics_zen_records(tmp_path):
    data = _pixels((1, 2, 1, 50, 60))
    path = write_czi(tmp_path / "field.czi", data, names=["DAPI", "GFP"], emission_nm=[461, 520], na=0.75, n=1.0,
                     pixel_um=0.1625)
    image = read_channels(path)
    assert np.array_equal(image.data, data[0, :, 0]) and image.data.dtype == np.uint16
    assert image.names == ["DAPI", "GFP"] and image.emission_um == pytest.approx([0.461, 0.52])
    assert image.pixel_um == pytest.approx(0.1625)
    optics = read_ome_optics(path)
    assert optics["na"] == pytest.approx(0.75) and optics["n"] == pytest.approx(1.0)
    assert optics["wavelength_um"] == pytest.approx(0.461) and optics["source"] == "czi"
    assert channel_count(path) == 2 and stack_axis(path) is None
    with pytest.raises(ImageReadError, match="--map-channel"):  # the one-plane reader says where channels go
        read_image(path)


def test_one_plane_a_time_lapse_and_a_stack(tmp_path):
    plane = _pixels((1, 1, 1, 40, 52), seed=1)
    image = read_image(write_czi(tmp_path / "plane.czi", plane))
    assert np.array_equal(image.data, plane[0, 0, 0]) and image.pixel_um == pytest.approx(0.325)

    frames = _pixels((3, 1, 1, 40, 52), seed=2)
    path = write_czi(tmp_path / "movie.czi", frames)
    assert stack_axis(path) == "T" and image_shape(path) == (3, 40, 52)
    assert np.array_equal(read_frame(path, 2), frames[2, 0, 0])

    planes = _pixels((1, 1, 4, 40, 52), seed=3)
    path = write_czi(tmp_path / "stack.czi", planes)
    assert stack_axis(path) == "Z" and np.array_equal(read_image(path).data, planes[0, 0])


def test_a_czi_records_its_acquisition_mode(tmp_path):
    path = write_czi(tmp_path / "lsm.czi", _pixels((1, 2, 1, 30, 30)), names=["DAPI", "GFP"],
                     modality="LaserScanningConfocalMicroscopy")
    assert read_ome_optics(path)["modality"] == "LaserScanningConfocalMicroscopy"
    assert read_ome_optics(write_czi(tmp_path / "plain.czi", _pixels((1, 1, 1, 30, 30))))["modality"] is None


def test_a_czi_without_metadata_records_no_optics(tmp_path):
    optics = read_ome_optics(write_czi(tmp_path / "bare.czi", _pixels((1, 1, 1, 30, 30)), pixel_um=None))
    assert [optics[k] for k in ("pixel_um", "wavelength_um", "na", "n")] == [None] * 4


def test_several_scenes_are_refused_with_their_names(tmp_path):
    path = write_czi(tmp_path / "plate.czi", _pixels((1, 1, 1, 30, 30)), scenes=["A1", "B2"])
    with pytest.raises(ImageReadError, match=r"2 scenes \(A1, B2\).*awdvd split-scenes plate.czi"):
        read_image(path)
    assert open_vendor(path, scene="B2").scene == "B2" and open_vendor(path, scene=0).scene == "A1"
    with pytest.raises(ImageReadError, match="has no scene 'C3'; its scenes are A1, B2"):
        open_vendor(path, scene="C3")


def test_a_damaged_czi_is_one_clear_error(tmp_path):
    good = write_czi(tmp_path / "good.czi", _pixels((1, 1, 1, 64, 64)))
    bad = tmp_path / "cut.czi"
    bad.write_bytes(good.read_bytes()[:600])
    with pytest.raises(ImageReadError, match="cut.czi could not be read as a Zeiss CZI file"):
        read_image(bad)
    bad.write_bytes(b"not a czi at all" * 10)
    with pytest.raises(ImageReadError, match="Zeiss CZI"):
        open_vendor(bad)


def test_folders_list_vendor_files(tmp_path):
    write_czi(tmp_path / "a.czi", _pixels((1, 1, 1, 30, 30)))
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.name for p in find_images([tmp_path])] == ["a.czi"]


def test_a_missing_plugin_names_what_to_install(tmp_path, monkeypatch):
    path = write_czi(tmp_path / "a.czi", _pixels((1, 1, 1, 30, 30)))
    monkeypatch.setitem(__import__("sys").modules, "bioio_czi", None)  # as if bioio-czi were not installed
    with pytest.raises(ImageReadError, match=r"needs bioio and bioio-czi.*pip install 'awdvd\[formats\]'"):
        read_image(path)


@pytest.mark.parametrize(("suffix", "words", "plugin"), [(".nd2", "Nikon ND2", "bioio_nd2"),
                                                          (".lif", "Leica LIF", "bioio_lif")])
def test_a_damaged_nd2_or_lif_is_one_clear_error(tmp_path, suffix, words, plugin):
    """A file of those names whose header is not one fails in one line naming the format (the real readers,
    bioio-nd2 and bioio-lif, answer)."""
    pytest.importorskip(plugin)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(b"\x00\x01not a microscope file" * 40)
    with pytest.raises(ImageReadError, match=f"cut{suffix} could not be read as a {words} file") as caught:
        read_image(path)
    assert "\n" not in str(caught.value)
