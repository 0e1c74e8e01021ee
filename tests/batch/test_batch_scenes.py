"""`awdvd deconvolve` and `awdvd predict` of a vendor file of several scenes (a CZI written here with pylibCZIrw):
every scene restored as a field of its own within one run, named STEM.SCENE, resumable scene by scene; a scene
that cannot be restored fails the file with a line naming it."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from _standins import tiny_delpnet_model, write_czi

from awdvd.cli import main
from awdvd.io import read_image
from awdvd.io.channels import read_channels
from awdvd.io.scenes import split_scenes

pytest.importorskip("torch")
pytest.importorskip("bioio_czi", reason="the CZI reader (bioio-czi, awdvd[formats]) is not installed")
ARGS = ["--psf-size", "15", "--iterations", "3", "--stride", "42", "--device", "cpu", "--workers", "0"]


def _plate(scenes: int, channels: int = 1, planes: int = 1) -> np.ndarray:
    """(S, T, C, Z, Y, X) pixels, a bright nucleus at another place in each scene."""
    data = (np.random.default_rng(4).poisson(150, size=(scenes, 1, channels, planes, 90, 120)) + 96).astype(np.uint16)
    for s in range(scenes):
        data[s, :, :, :, 20 + 10 * s: 40 + 10 * s, 30 + 20 * s: 55 + 20 * s] += 2500
    return data


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_delpnet_model(seed=3).save(tmp_path_factory.mktemp("model") / "tiny.pt")


def test_each_scene_is_restored_as_its_own_split_file_would_be(model, tmp_path, capsys):
    plate = write_czi(tmp_path / "plate.czi", _plate(2, channels=2), names=["DAPI", "GFP"], emission_nm=[461, 520],
                      na=0.5, n=1.0, pixel_um=0.65, scenes=["A1", "B2"])
    out = tmp_path / "out"
    assert main(["deconvolve", str(plate), "-o", str(out), "--model", str(model), *ARGS]) == 0
    assert capsys.readouterr().err.strip() == ""  # every optic is in the file
    assert sorted(p.name for p in out.iterdir()) == [
        "awdvd-deconvolve-report.json", "plate.A1.awdvd.json", "plate.A1.awdvd.ome.tif", "plate.B2.awdvd.json",
        "plate.B2.awdvd.ome.tif", "plate.awdvd.json"]  # the temporary scene files are gone
    # the same pixels as restoring each scene written as a file of its own
    split_scenes(plate, tmp_path / "scenes")
    alone = tmp_path / "alone"
    assert main(["deconvolve", str(tmp_path / "scenes"), "-o", str(alone), "--model", str(model), *ARGS]) == 0
    for scene in ("A1", "B2"):
        restored = read_channels(out / f"plate.{scene}.awdvd.ome.tif")
        assert restored.names == ["DAPI", "GFP"] and restored.pixel_um == pytest.approx(0.65)
        assert np.array_equal(restored.data, read_channels(alone / f"plate.{scene}.awdvd.ome.tif").data)
        meta = json.loads((out / f"plate.{scene}.awdvd.json").read_text())
        assert (meta["input"], meta["scene"]) == (str(plate), scene)
        assert meta["input_file"]["path"] == str(plate)
    a1, b2 = (read_channels(out / f"plate.{s}.awdvd.ome.tif").data for s in ("A1", "B2"))
    assert not np.array_equal(a1, b2)
    summary = json.loads((out / "plate.awdvd.json").read_text())
    assert [s["scene"] for s in summary["scenes"]] == ["A1", "B2"] and summary["input"] == str(plate)
    assert main(["deconvolve", str(plate), "-o", str(out), "--model", str(model), *ARGS]) == 0
    assert "0 done, 1 skipped" in capsys.readouterr().out


def test_a_stopped_run_goes_on_from_the_scene_it_stopped_at(model, tmp_path, capsys):
    plate = write_czi(tmp_path / "plate.czi", _plate(3), names=["DAPI"], emission_nm=[461], na=0.5, n=1.0,
                      pixel_um=0.65, scenes=["A1", "A2", "A3"])
    out = tmp_path / "out"
    assert main(["deconvolve", str(plate), "-o", str(out), "--model", str(model), *ARGS]) == 0
    first = {s: (out / f"plate.{s}.awdvd.tif").stat().st_mtime_ns for s in ("A1", "A2", "A3")}
    # as if stopped while A3 was restored: its outputs and the file's own sidecar missing
    for name in ("plate.A3.awdvd.tif", "plate.A3.awdvd.json", "plate.awdvd.json"):
        (out / name).unlink()
    assert main(["deconvolve", str(plate), "-o", str(out), "--model", str(model), *ARGS]) == 0
    summary = json.loads((out / "plate.awdvd.json").read_text())
    assert [s["resumed"] for s in summary["scenes"]] == [True, True, False]
    assert all((out / f"plate.{s}.awdvd.tif").stat().st_mtime_ns == first[s] for s in ("A1", "A2"))
    # other options: nothing resumed, the finished file refused without --overwrite, every scene redone with it
    assert main(["deconvolve", str(plate), "-o", str(out), "--model", str(model), *ARGS, "--iterations", "4"]) == 1
    assert "--iterations 3 (now 4)" in capsys.readouterr().err
    assert main(["deconvolve", str(plate), "-o", str(out), "--model", str(model), *ARGS, "--iterations", "4",
                 "--overwrite"]) == 0
    summary = json.loads((out / "plate.awdvd.json").read_text())
    assert [s["resumed"] for s in summary["scenes"]] == [False, False, False]
    assert json.loads((out / "plate.A1.awdvd.json").read_text())["options"]["iterations"] == 4


def test_predict_gives_a_focus_row_and_a_plate_well_per_scene(model, tmp_path, capsys):
    plate = write_czi(tmp_path / "plate.czi", _plate(2), names=["DAPI"], emission_nm=[461], na=0.5, n=1.0,
                      pixel_um=0.65, scenes=["A1", "C3"])
    out = tmp_path / "maps"
    assert main(["predict", str(plate), "-o", str(out), "--model", str(model), "--stride", "42", "--device", "cpu",
                 "--workers", "0"]) == 0
    with open(out / "awdvd-predict-focus.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["image"], r["well"]) for r in rows] == [("plate.A1", "A01"), ("plate.C3", "C03")]
    assert (out / "awdvd-predict-plate.png").is_file()
    for scene in ("A1", "C3"):
        assert (out / f"plate.{scene}.defocus.tif").is_file() and (out / f"plate.{scene}.defocus.png").is_file()
        assert json.loads((out / f"plate.{scene}.defocus.json").read_text())["scene"] == scene


def test_a_scene_that_cannot_be_restored_fails_the_file_in_one_line(model, tmp_path, capsys):
    stacks = write_czi(tmp_path / "stacks.czi", _plate(2, planes=3), na=0.5, n=1.0, pixel_um=0.65,
                       scenes=["A1", "A2"])
    out = tmp_path / "out"
    assert main(["deconvolve", str(stacks), "-o", str(out), "--model", str(model), *ARGS]) == 1
    err = capsys.readouterr().err
    assert "stacks.czi scene A1 holds a stack" in err and "3-D deconvolution" in err
    assert ".awdvd-scenes" not in err
    assert sorted(p.name for p in out.iterdir()) == ["awdvd-deconvolve-report.json"]  # nothing half-written


def test_predict_maps_z_stack_scenes_and_every_sidecar_keeps_the_assumed_optics(model, tmp_path, capsys):
    stacks = write_czi(tmp_path / "stacks.czi", _plate(2, planes=3), pixel_um=None, scenes=["A1", "A2"])
    out = tmp_path / "maps"
    assert main(["predict", str(stacks), "-o", str(out), "--model", str(model), "--stride", "42", "--device", "cpu",
                 "--workers", "0"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warned) == 1 and "stacks.czi" in warned[0] and "pixel size" in warned[0] and "assumed" in warned[0]
    for sidecar in ("stacks.A1.defocus.json", "stacks.A2.defocus.json", "stacks.defocus.json"):
        assert any("pixel size" in m for m in json.loads((out / sidecar).read_text())["warnings"])
    with open(out / "awdvd-predict-focus.csv") as handle:
        images = [row["image"] for row in csv.DictReader(handle)]
    assert images == [f"stacks.{s}[z={z}]" for s in ("A1", "A2") for z in range(3)]


def test_on_a_dask_cluster_the_scenes_run_on_its_workers_with_the_same_result(model, tmp_path):
    pytest.importorskip("distributed")
    from awdvd.batch.jobs import DeconvolveJob, ModelFile, run_jobs
    from awdvd.restore.options import AWDVDOptions

    plate = write_czi(tmp_path / "plate.czi", _plate(3), names=["DAPI"], emission_nm=[461], na=0.5, n=1.0,
                      pixel_um=0.65, scenes=["A1", "A2", "A3"])
    options = AWDVDOptions(iterations=3, stride=42, psf_size=15, device="cpu")
    serial = run_jobs([plate], DeconvolveJob(out_dir=tmp_path / "serial", model=ModelFile(str(model)),
                                             options=options), workers=0)
    spread = run_jobs([plate], DeconvolveJob(out_dir=tmp_path / "spread", model=ModelFile(str(model)),
                                             options=options), workers=2)
    assert serial.ok and spread.ok and spread.where.startswith("local Dask cluster, 2 workers")
    for scene in ("A1", "A2", "A3"):
        a = read_image(tmp_path / "serial" / f"plate.{scene}.awdvd.tif").data
        assert np.array_equal(a, read_image(tmp_path / "spread" / f"plate.{scene}.awdvd.tif").data)
    summary = json.loads((tmp_path / "spread" / "plate.awdvd.json").read_text())
    assert [s["scene"] for s in summary["scenes"]] == ["A1", "A2", "A3"]
    assert all(s["ran_on"].startswith("tcp://") for s in summary["scenes"])  # each scene a task on a worker
    assert {s["ran_on"] for s in json.loads((tmp_path / "serial" / "plate.awdvd.json").read_text())["scenes"]} == {
        "this process"}
    assert not (tmp_path / "spread" / ".plate.awdvd-scenes").exists()
