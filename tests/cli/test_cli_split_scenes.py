"""`awdvd split-scenes`: every scene of a vendor's file (a CZI written here with pylibCZIrw) as an OME-TIFF that
the other commands read with the same pixels, channels and optics."""

from __future__ import annotations

import numpy as np
import pytest
from _standins import write_czi

from awdvd.cli import main
from awdvd.io import read_image, read_ome_optics
from awdvd.io.channels import read_channels, stack_axis
from awdvd.io.scenes import scene_file_name

pytest.importorskip("bioio_czi", reason="the CZI reader (bioio-czi, awdvd[formats]) is not installed")


def test_each_scene_becomes_an_ome_tiff_with_the_files_optics(tmp_path, capsys):
    data = np.random.default_rng(0).integers(90, 4000, size=(1, 2, 1, 40, 52)).astype(np.uint16)
    plate = write_czi(tmp_path / "plate.czi", data, names=["DAPI", "GFP"], emission_nm=[461, 520], na=0.75, n=1.0,
                      pixel_um=0.1625, scenes=["A1", "B2/x"])
    out = tmp_path / "scenes"
    assert main(["split-scenes", str(plate), "-o", str(out)]) == 0
    assert "plate.czi: 2 scene(s) written" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["plate.A1.ome.tif", "plate.B2_x.ome.tif"]
    scene = read_channels(out / "plate.A1.ome.tif")
    assert np.array_equal(scene.data, data[0, :, 0]) and scene.names == ["DAPI", "GFP"]
    assert scene.emission_um == pytest.approx([0.461, 0.52])
    optics = read_ome_optics(out / "plate.B2_x.ome.tif")
    assert [optics[k] for k in ("pixel_um", "na", "n", "wavelength_um")] == pytest.approx([0.1625, 0.75, 1.0, 0.461])
    assert main(["split-scenes", str(plate), "-o", str(out)]) == 1  # never over existing files
    assert "exists" in capsys.readouterr().err


def test_a_time_lapse_keeps_its_t_axis_and_a_bad_file_fails_alone(tmp_path, capsys):
    frames = np.random.default_rng(1).integers(90, 4000, size=(3, 1, 1, 30, 36)).astype(np.uint16)
    movie = write_czi(tmp_path / "movie.czi", frames, pixel_um=None)
    (tmp_path / "bad.czi").write_bytes(b"no czi" * 50)
    out = tmp_path / "out"
    assert main(["split-scenes", str(tmp_path / "bad.czi"), str(movie), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "bad.czi could not be read as a Zeiss CZI file" in err and len(err.strip().splitlines()) == 2
    target = out / scene_file_name(movie, "Image:0")
    assert stack_axis(target) == "T" and np.array_equal(read_image(target).data, frames[:, 0, 0])
    assert read_image(target).pixel_um is None
