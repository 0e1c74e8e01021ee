"""`awdvd deconvolve` and `awdvd predict` on a microscope vendor's file (Zeiss CZI, written here with pylibCZIrw):
its channels, time-lapse and optics are used as for OME-TIFF; a damaged one fails alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _standins import tiny_delpnet_model, write_czi

from awdvd.cli import main
from awdvd.io import read_image
from awdvd.io.channels import read_channels

pytest.importorskip("torch")
pytest.importorskip("bioio_czi", reason="the CZI reader (bioio-czi, awdvd[formats]) is not installed")
ARGS = ["--psf-size", "15", "--iterations", "3", "--stride", "42", "--device", "cpu", "--workers", "0"]


def _field(channels: int, frames: int = 1, seed: int = 1) -> np.ndarray:
    data = (np.random.default_rng(seed).poisson(150, size=(frames, channels, 1, 100, 130)) + 96).astype(np.uint16)
    data[:, :, 0, 30:50, 40:70] += np.array([3000, 800][:channels], np.uint16)[:, None, None]
    return data


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_delpnet_model(seed=2).save(tmp_path_factory.mktemp("model") / "tiny.pt")


def test_a_two_channel_czi_is_restored_with_its_names_and_optics(model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write_czi(folder / "two.czi", _field(2), names=["GFP", "DAPI"], emission_nm=[520, 461], na=0.5, n=1.0,
              pixel_um=0.65)
    out = tmp_path / "out"
    assert main(["deconvolve", str(folder), "-o", str(out), "--model", str(model), *ARGS]) == 0
    assert capsys.readouterr().err.strip() == ""  # every optic is in the file
    restored = read_channels(out / "two.awdvd.ome.tif")
    assert restored.data.shape == (2, 100, 130) and restored.names == ["GFP", "DAPI"]
    assert restored.emission_um == pytest.approx([0.52, 0.461]) and restored.pixel_um == pytest.approx(0.65)
    meta = json.loads((out / "two.awdvd.json").read_text())
    assert meta["parameters"]["map_channel"] == {"index": 1, "name": "DAPI"}
    assert {c["source"] for c in meta["parameters"]["channels"]} == {"file"}


def test_a_czi_time_lapse_and_one_without_optics(model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write_czi(folder / "movie.czi", _field(1, frames=3), pixel_um=None)
    out = tmp_path / "out"
    assert main(["deconvolve", str(folder), "-o", str(out), "--model", str(model), *ARGS]) == 0
    err = capsys.readouterr().err
    assert "movie.czi" in err and "pixel size" in err and "assumed" in err  # the one warning line
    restored = read_image(out / "movie.awdvd.ome.tif")
    assert restored.data.shape == (3, 100, 130) and restored.data.dtype == np.float32
    meta = json.loads((out / "movie.awdvd.json").read_text())
    assert meta["parameters"]["optics"]["source"]["pixel_um"] == "assumed"
    assert any("pixel size" in m for m in meta["warnings"])  # the sidecar keeps the warning line too


def test_predict_reads_a_czi_and_a_damaged_one_fails_alone(model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    good = write_czi(folder / "good.czi", _field(1), na=0.5, n=1.0, emission_nm=[461], pixel_um=0.65)
    (folder / "cut.czi").write_bytes(good.read_bytes()[:700])
    out = tmp_path / "out"
    assert main(["predict", str(folder), "-o", str(out), "--model", str(model), "--stride", "42", "--device",
                 "cpu", "--workers", "0"]) != 0
    err = capsys.readouterr().err
    assert "cut.czi could not be read as a Zeiss CZI file" in err and "Traceback" not in err
    assert list(out.glob("good.*")) and not list(out.glob("cut.*"))


def test_format_ome_zarr_keeps_the_channels_and_the_frames(model, tmp_path):
    """--format ome-zarr: a multi-channel field and a time-lapse come back as OME-Zarr with their c and t axes."""
    folder = tmp_path / "in"
    folder.mkdir()
    write_czi(folder / "two.czi", _field(2), names=["GFP", "DAPI"], emission_nm=[520, 461], na=0.5, n=1.0,
              pixel_um=0.65)
    write_czi(folder / "movie.czi", _field(1, frames=2, seed=3), na=0.5, n=1.0, emission_nm=[461], pixel_um=0.65)
    out = tmp_path / "out"
    assert main(["deconvolve", str(folder), "-o", str(out), "--model", str(model), "--format", "ome-zarr",
                 *ARGS]) == 0
    restored = read_channels(out / "two.awdvd.ome.zarr")
    assert restored.data.shape == (2, 100, 130) and restored.names == ["GFP", "DAPI"]
    assert restored.emission_um == pytest.approx([0.52, 0.461]) and restored.pixel_um == pytest.approx(0.65)
    frames = read_image(out / "movie.awdvd.ome.zarr")
    assert frames.data.shape == (2, 100, 130) and frames.pixel_um == pytest.approx(0.65)
    from awdvd.io.channels import stack_axis

    assert stack_axis(out / "movie.awdvd.ome.zarr") == "T"


def test_predict_maps_the_nuclear_channel_of_a_multi_channel_file(model, tmp_path):
    """Focus QC of a multi-channel plate: the map of the nuclear stain (or --map-channel), in its own emission."""
    import json as json_module

    folder = tmp_path / "in"
    folder.mkdir()
    write_czi(folder / "two.czi", _field(2), names=["GFP", "DAPI"], emission_nm=[520, 461], na=0.5, n=1.0,
              pixel_um=0.65)
    out = tmp_path / "out"
    args = ["predict", str(folder), "-o", str(out), "--model", str(model), "--stride", "42", "--device", "cpu",
            "--workers", "0"]
    assert main(args) == 0
    meta = json_module.loads((out / "two.defocus.json").read_text())
    assert meta["map_channel"] == {"index": 1, "name": "DAPI", "emission_um": pytest.approx(0.461)}
    assert meta["optics"]["wavelength_um"] == pytest.approx(0.461)
    assert main(args + ["--map-channel", "GFP", "--overwrite"]) == 0
    meta = json_module.loads((out / "two.defocus.json").read_text())
    assert meta["map_channel"]["name"] == "GFP" and meta["optics"]["wavelength_um"] == pytest.approx(0.52)
