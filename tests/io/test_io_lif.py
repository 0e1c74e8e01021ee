"""Leica LIF files read through bioio-lif (liffile): written here byte by byte in the layout LAS X writes
(:func:`_standins.write_lif`), since no package on PyPI writes or ships one. Channels, their own names, time-lapses,
scenes, the optics LAS X records (which bioio-lif does not convert: awdvd reads them from the XML), damage, and one
end-to-end restoration from the CLI."""

import json

import numpy as np
import pytest
from _standins import tiny_delpnet_model, write_lif

from awdvd.cli import main
from awdvd.io import ImageReadError, image_shape, read_image, read_ome_optics
from awdvd.io.channels import channel_count, read_channels, read_frame, stack_axis
from awdvd.io.vendor import open_vendor

pytest.importorskip("bioio_lif", reason="the LIF reader (bioio-lif, awdvd[formats]) is not installed")


def _pixels(shape, seed=0):
    return np.random.default_rng(seed).integers(90, 4000, size=shape).astype(np.uint16)


def test_a_two_channel_lif_gives_its_channels_their_own_names_and_the_optics_las_x_records(tmp_path):
    data = _pixels((1, 2, 50, 60))
    path = write_lif(tmp_path / "field.lif", {"Position 1": data}, names=["DAPI", "GFP"], emission_nm=[461, 520],
                     na=0.75, n=1.0, pixel_um=0.1625)
    image = read_channels(path)
    assert np.array_equal(image.data, data[0]) and image.data.dtype == np.uint16
    assert image.names == ["DAPI", "GFP"]  # the user's channel names, not bioio-lif's LUT--method--cube
    assert image.emission_um == pytest.approx([0.461, 0.52]) and image.pixel_um == pytest.approx(0.1625)
    optics = read_ome_optics(path)
    assert optics["na"] == pytest.approx(0.75) and optics["n"] == pytest.approx(1.0)
    assert optics["wavelength_um"] == pytest.approx(0.461) and optics["source"] == "lif"
    assert channel_count(path) == 2 and stack_axis(path) is None


def test_a_lif_time_lapse_and_one_without_settings(tmp_path):
    frames = _pixels((3, 1, 40, 52), seed=2)
    path = write_lif(tmp_path / "movie.lif", {"movie": frames})
    assert stack_axis(path) == "T" and image_shape(path) == (3, 40, 52)
    assert np.array_equal(read_frame(path, 2), frames[2, 0])
    optics = read_ome_optics(path)  # no camera settings written: pixel size only
    assert optics["pixel_um"] == pytest.approx(0.1625)
    assert [optics[k] for k in ("wavelength_um", "na", "n")] == [None] * 3
    assert open_vendor(path).names == ["Blue"]  # bioio-lif's own name where LAS X recorded none


def test_a_lif_stack_is_read_plane_by_plane_with_its_channels(tmp_path):
    planes = _pixels((1, 2, 4, 30, 36), seed=6)
    path = write_lif(tmp_path / "stack.lif", {"stack": planes}, names=["DAPI", "GFP"], emission_nm=[461, 520],
                     na=0.75, n=1.0)
    assert stack_axis(path) == "Z" and channel_count(path) == 2
    opened = open_vendor(path)
    assert np.array_equal(np.asarray(opened.data)[0], planes[0]) and opened.names == ["DAPI", "GFP"]


def test_several_scenes_are_named_and_opened_one_at_a_time(tmp_path):
    path = write_lif(tmp_path / "plate.lif", {"A1": _pixels((1, 1, 30, 30), 4), "B2": _pixels((1, 1, 30, 30), 5)})
    with pytest.raises(ImageReadError, match=r"2 scenes \(A1, B2\).*awdvd split-scenes plate.lif"):
        read_image(path)
    second = open_vendor(path, scene="B2")
    assert second.scene == "B2" and np.array_equal(np.asarray(second.data)[0, 0, 0], _pixels((1, 1, 30, 30), 5)[0, 0])


def test_a_confocal_lif_says_so_and_the_cli_warns_in_one_line(tmp_path, capsys):
    pytest.importorskip("torch")
    data = (np.random.default_rng(2).poisson(150, size=(1, 1, 100, 130)) + 96).astype(np.uint16)
    folder = tmp_path / "in"
    folder.mkdir()
    path = write_lif(folder / "sp8.lif", {"field": data}, na=0.5, n=1.0, pixel_um=0.65, confocal=True)
    optics = read_ome_optics(path)
    assert optics["modality"] == "LaserScanningConfocalMicroscopy" and optics["na"] == pytest.approx(0.5)
    widefield = write_lif(tmp_path / "dmi8.lif", {"field": data}, na=0.75, n=1.0)
    assert read_ome_optics(widefield)["modality"] == "WideField"
    model = tiny_delpnet_model(seed=2).save(tmp_path / "tiny.pt")
    assert main(["predict", str(folder), "-o", str(tmp_path / "out"), "--model", str(model), "--stride", "42",
                 "--device", "cpu", "--workers", "0", "--wavelength-um", "0.52"]) == 0
    err = capsys.readouterr().err
    assert "recorded by laser scanning confocal microscopy" in err and "widefield microscope's" in err
    meta = json.loads((tmp_path / "out" / "sp8.defocus.json").read_text())
    assert meta["optics"]["modality"] == "LaserScanningConfocalMicroscopy"
    assert any("confocal" in m for m in meta["warnings"])


def test_a_truncated_lif_is_one_clear_error(tmp_path):
    good = write_lif(tmp_path / "good.lif", {"field": _pixels((1, 1, 64, 64))})
    bad = tmp_path / "cut.lif"
    bad.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ImageReadError, match="cut.lif could not be read as a Leica LIF file") as caught:
        read_image(bad)
    assert "\n" not in str(caught.value)


def test_the_cli_restores_a_lif_with_its_names_and_optics(tmp_path, capsys):
    pytest.importorskip("torch")
    model = tiny_delpnet_model(seed=2).save(tmp_path / "tiny.pt")
    data = (np.random.default_rng(1).poisson(150, size=(1, 2, 100, 130)) + 96).astype(np.uint16)
    data[:, :, 30:50, 40:70] += np.array([3000, 800], np.uint16)[:, None, None]
    folder = tmp_path / "in"
    folder.mkdir()
    write_lif(folder / "two.lif", {"field": data}, names=["GFP", "Hoechst"], emission_nm=[520, 461], na=0.5, n=1.0,
              pixel_um=0.65)
    out = tmp_path / "out"
    assert main(["deconvolve", str(folder), "-o", str(out), "--model", str(model), "--psf-size", "15",
                 "--iterations", "3", "--stride", "42", "--device", "cpu", "--workers", "0"]) == 0
    assert capsys.readouterr().err.strip() == ""  # every optic is in the file
    restored = read_channels(out / "two.awdvd.ome.tif")
    assert restored.data.shape == (2, 100, 130) and restored.names == ["GFP", "Hoechst"]
    assert restored.emission_um == pytest.approx([0.52, 0.461]) and restored.pixel_um == pytest.approx(0.65)
    meta = json.loads((out / "two.awdvd.json").read_text())
    assert meta["parameters"]["map_channel"] == {"index": 1, "name": "Hoechst"}
    assert {c["source"] for c in meta["parameters"]["channels"]} == {"file"}
