"""`awdvd deconvolve` of multi-channel files: one map per field, every channel restored with its own emission
PSFs, written with the channels' names; the channel flags and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from _standins import ome_xml, tiny_delpnet_model

from awdvd.cli import main
from awdvd.io.channels import read_channels

pytest.importorskip("torch")
ARGS = ["--psf-size", "15", "--iterations", "3", "--stride", "42", "--device", "cpu", "--workers", "0"]


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    root = tmp_path_factory.mktemp("channels")
    model = tiny_delpnet_model(seed=2).save(root / "tiny.pt")
    rng = np.random.default_rng(1)
    data = (rng.poisson(150, size=(2, 100, 130)) + 96).astype(np.uint16)
    data[:, 30:50, 40:70] += np.array([3000, 800], np.uint16)[:, None, None]
    folder = root / "in"
    folder.mkdir()
    xml = ome_xml(shape=(100, 130), pixel_um=0.65, na=0.5, emission_nm=None, channels=[("GFP", 520), ("DAPI", 461)])
    tifffile.imwrite(folder / "two.ome.tif", data, description=xml, metadata=None)
    return root, model, folder


def test_every_channel_is_restored_from_the_nuclear_channels_map(field, tmp_path, capsys):
    root, model, folder = field
    out = tmp_path / "out"
    assert main(["deconvolve", str(folder), "-o", str(out), "--model", str(model), *ARGS]) == 0
    assert capsys.readouterr().err.strip() == ""  # every optic is in the file
    restored = read_channels(out / "two.awdvd.ome.tif")
    assert restored.data.shape == (2, 100, 130) and restored.data.dtype == np.float32
    assert restored.names == ["GFP", "DAPI"] and restored.emission_um == pytest.approx([0.52, 0.461])
    assert restored.pixel_um == pytest.approx(0.65)
    meta = json.loads((out / "two.awdvd.json").read_text())
    assert meta["parameters"]["map_channel"] == {"index": 1, "name": "DAPI"}
    assert [(c["name"], c["emission_um"], c["source"]) for c in meta["parameters"]["channels"]] == \
        [("GFP", 0.52, "file"), ("DAPI", 0.461, "file")]


def test_chosen_channels_and_map_channel(field, tmp_path):
    root, model, folder = field
    out = tmp_path / "out"
    assert main(["deconvolve", str(folder), "-o", str(out), "--model", str(model), "--map-channel", "GFP",
                 "--channels", "0", *ARGS]) == 0
    restored = read_channels(out / "two.awdvd.ome.tif")
    assert restored.names == ["GFP"] and restored.data.shape == (1, 100, 130)
    assert json.loads((out / "two.awdvd.json").read_text())["parameters"]["map_channel"]["name"] == "GFP"


def test_a_channel_that_does_not_exist_is_one_line_and_nothing_written(field, tmp_path, capsys):
    root, model, folder = field
    out = tmp_path / "out"
    assert main(["deconvolve", str(folder), "-o", str(out), "--model", str(model), "--map-channel", "Cy5",
                 *ARGS]) != 0
    err = capsys.readouterr().err
    assert "no channel is named 'Cy5'; the image's channels are GFP, DAPI" in err
    assert not list(out.glob("two.awdvd*")) if out.exists() else True


def test_a_channel_without_its_emission_is_assumed_with_one_line(field, tmp_path, capsys):
    root, model, _ = field
    folder = tmp_path / "in"
    folder.mkdir()
    data = (np.random.default_rng(2).poisson(150, size=(2, 100, 130)) + 96).astype(np.uint16)
    xml = ome_xml(shape=(100, 130), pixel_um=0.65, na=0.5, emission_nm=None, channels=[("Hoechst", 461), ("GFP", None)])
    tifffile.imwrite(folder / "f.ome.tif", data, description=xml, metadata=None)
    out = tmp_path / "out"
    assert main(["deconvolve", str(folder), "-o", str(out), "--model", str(model), *ARGS]) == 0
    err = capsys.readouterr().err
    assert "does not record the emission wavelength of channel(s) GFP; assumed 0.461 um" in err
    channels = json.loads((out / "f.awdvd.json").read_text())["parameters"]["channels"]
    assert channels[1]["source"] == "assumed" and channels[0]["source"] == "file"


def test_contradicting_metadata_fail_one_file_and_the_others_go_on(field, tmp_path, capsys):
    """A file recording a zero pixel size, one recording NA 1.2 in air: one line each, non-zero exit, nothing
    written for them; the good file beside them is restored."""
    root, model, folder = field
    bad = tmp_path / "in"
    bad.mkdir()
    data = (np.random.default_rng(4).poisson(150, size=(100, 130)) + 96).astype(np.uint16)
    tifffile.imwrite(bad / "zero.ome.tif", data, description=ome_xml(shape=(100, 130), pixel_um=0, na=0.5,
                                                                      emission_nm=461), metadata=None)
    tifffile.imwrite(bad / "na.ome.tif", data, description=ome_xml(shape=(100, 130), pixel_um=0.65, na=1.2,
                                                                    emission_nm=461), metadata=None)
    tifffile.imwrite(bad / "good.ome.tif", data, description=ome_xml(shape=(100, 130), pixel_um=0.65, na=0.5,
                                                                      emission_nm=461), metadata=None)
    out = tmp_path / "out"
    assert main(["deconvolve", str(bad), "-o", str(out), "--model", str(model), *ARGS]) != 0
    err = capsys.readouterr().err
    assert "PhysicalSizeX='0', which is not a positive size" in err
    assert "na.ome.tif: its optics contradict each other" in err
    assert (out / "good.awdvd.tif").is_file()
    assert not list(out.glob("zero.awdvd*")) and not list(out.glob("na.awdvd*"))
