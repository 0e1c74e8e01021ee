"""awdvd.batch.jobs: per-file predict/deconvolve over many files: Dask equals serial, the model and PSF bank load once
per worker, resume skips finished files (and refuses finished files made with other options), a corrupt file
fails alone, large images go through tiles (on the cluster too), output formats keep data and pixel size.

Dask runs on the session's shared 2-worker cluster (conftest.dask_cluster), through ``scheduler=``.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from awdvd.batch.jobs import DeconvolveJob, ModelFile, PredictJob, auto_workers, run_jobs
from awdvd.io import read_image, write_tiff
from awdvd.restore.options import AWDVDOptions

N_GOOD = 4
SMALL = dict(options=AWDVDOptions(stride=42, iterations=3, psf_size=15, device="cpu"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("in")
    rng = np.random.default_rng(0)
    for i in range(N_GOOD):
        image = (rng.poisson(200, size=(110 + 10 * i, 150)) + 96).astype(np.uint16)
        image[30:70, 40:120] += 3000
        write_tiff(folder / f"img{i}.tif", image, pixel_um=0.65)
    (folder / "corrupt.tif").write_bytes(b"II*\x00 this is not a TIFF")
    return folder


@pytest.fixture(scope="module")
def model(tiny_model_file):
    return ModelFile(str(tiny_model_file))


def outputs(folder):
    return {p.name: read_image(p).data for p in sorted(folder.glob("*.tif"))}


@pytest.fixture(scope="module")
def serial_and_dask(inputs, model, dask_cluster, tmp_path_factory):
    serial_dir, dask_dir = tmp_path_factory.mktemp("serial"), tmp_path_factory.mktemp("dask")
    serial = run_jobs(inputs, DeconvolveJob(out_dir=serial_dir, model=model, **SMALL), workers=0)
    on_dask = run_jobs(inputs, DeconvolveJob(out_dir=dask_dir, model=model, **SMALL),
                       scheduler=dask_cluster.scheduler_address)
    return serial, serial_dir, on_dask, dask_dir


def test_dask_equals_serial_and_a_corrupt_file_fails_alone(serial_and_dask):
    serial, serial_dir, on_dask, dask_dir = serial_and_dask
    for report in (serial, on_dask):
        assert report.counts == {"done": N_GOOD, "skipped": 0, "failed": 1}
        (bad,) = report.failed
        assert bad.path.name == "corrupt.tif" and bad.error.startswith("ImageReadError")
    a, b = outputs(serial_dir), outputs(dask_dir)
    assert sorted(a) == sorted(b) == [f"img{i}.awdvd.tif" for i in range(N_GOOD)]
    assert all(np.array_equal(a[name], b[name]) and a[name].dtype == np.float32 for name in a)
    assert serial.where == "serial" and "Dask cluster at" in on_dask.where
    meta = json.loads((dask_dir / "img0.awdvd.json").read_text())
    assert meta["options"] == SMALL["options"].to_dict()  # the sidecar stores the options ...
    assert meta["parameters"]["psf_size"] == 15 and not meta["parameters"]["tiled"]  # ... and what was resolved
    assert meta["parameters"]["iterations"] == [3] * 11 and meta["parameters"]["device"] == "cpu"
    (first,) = [r.path for r in serial.results if r.path.name == "img0.tif"]
    assert meta["parameters"]["offset"] == pytest.approx(np.percentile(read_image(first).data, 1))


def test_model_and_psf_bank_load_once_per_worker(serial_and_dask):
    _, _, on_dask, _ = serial_and_dask
    done = [r for r in on_dask.results if r.status == "done"]
    assert {r.value["loads"]["model"] for r in done} == {1}
    assert {r.value["loads"]["psf_bank"] for r in done} == {1}
    assert all(r.worker.startswith("tcp://") for r in done)


def test_resume_skips_finished_files_and_overwrite_redoes_them(inputs, model, tmp_path):
    job = DeconvolveJob(out_dir=tmp_path, model=model, **SMALL)
    files = sorted(inputs.glob("img*.tif"))[:2]
    assert run_jobs(files, job, workers=0).counts["done"] == 2
    (tmp_path / "img0.awdvd.json").unlink()  # as if interrupted between the image and its sidecar
    stamp = (tmp_path / "img1.awdvd.tif").stat().st_mtime_ns
    again = run_jobs(files, job, workers=0)
    assert [r.status for r in again.results] == ["done", "skipped"]
    assert (tmp_path / "img1.awdvd.tif").stat().st_mtime_ns == stamp
    assert run_jobs(files, job, workers=0, overwrite=True).counts["done"] == 2
    # finished with other options: skipping them would look like a rerun with the new options, so refuse
    other = DeconvolveJob(out_dir=tmp_path, model=model, options=SMALL["options"].replace(iterations=4))
    with pytest.raises(ValueError, match="other options: iterations 3 \\(now 4\\)"):
        run_jobs(files, other, workers=0)
    assert run_jobs(files, other, workers=0, overwrite=True).counts["done"] == 2


def test_outputs_never_replace_inputs_and_never_collide(inputs, model, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_tiff(tmp_path / "a" / "s.tif", np.ones((90, 90), np.uint16))
    write_tiff(tmp_path / "b" / "s.ome.tif", np.ones((90, 90), np.uint16))  # same stem once ".ome" goes
    with pytest.raises(ValueError, match="both write"):
        run_jobs([tmp_path / "a", tmp_path / "b"], DeconvolveJob(out_dir=tmp_path / "out", model=model), workers=0)
    with pytest.raises(NotADirectoryError):
        DeconvolveJob(out_dir=tmp_path / "a" / "s.tif", model=model)


def test_large_images_go_through_tiles_and_match_whole(inputs, model, dask_cluster, tmp_path):
    """An image over max_px is processed in tiles, written as OME-Zarr by default, on the cluster too."""
    path = inputs / "img3.tif"  # 140 x 150 = 21000 px
    whole_job = DeconvolveJob(out_dir=tmp_path / "whole", model=model, **SMALL)
    tiled_job = DeconvolveJob(out_dir=tmp_path / "tiled", model=model, max_px=20_000, tile_px=128, **SMALL)
    assert not whole_job.is_large(path) and tiled_job.is_large(path)
    assert tiled_job.outputs(path)[0].name == "img3.awdvd.ome.zarr"
    assert run_jobs([path], whole_job, workers=0).ok
    here = run_jobs([path], tiled_job, workers=0)
    assert here.ok and here.results[0].value["large"]
    whole = read_image(tmp_path / "whole" / "img3.awdvd.tif")
    tiled = read_image(tmp_path / "tiled" / "img3.awdvd.ome.zarr")
    assert tiled.pixel_um == pytest.approx(0.65)
    np.testing.assert_allclose(tiled.data, whole.data, rtol=0, atol=1e-5 * float(whole.data.max()))
    there_job = DeconvolveJob(out_dir=tmp_path / "there", model=model, max_px=20_000, tile_px=128,
                              output_format="ome-tiff", dtype="input", **SMALL)
    there = run_jobs([path], there_job, scheduler=dask_cluster.scheduler_address)
    assert there.ok
    back = read_image(tmp_path / "there" / "img3.awdvd.ome.tif")
    assert back.data.dtype == np.uint16 and back.pixel_um == pytest.approx(0.65)
    from awdvd.restore.rl import to_input_dtype

    np.testing.assert_array_equal(back.data, to_input_dtype(tiled.data, np.uint16)[0])


@pytest.mark.parametrize("fmt, suffix", [("ome-tiff", ".awdvd.ome.tif"), ("ome-zarr", ".awdvd.ome.zarr")])
def test_output_formats_keep_data_and_pixel_size(inputs, model, serial_and_dask, tmp_path, fmt, suffix):
    _, serial_dir, _, _ = serial_and_dask
    job = DeconvolveJob(out_dir=tmp_path, model=model, output_format=fmt, **SMALL)
    assert run_jobs(inputs / "img1.tif", job, workers=0).ok
    back = read_image(tmp_path / f"img1{suffix}")
    assert back.pixel_um == pytest.approx(0.65)
    np.testing.assert_array_equal(back.data, read_image(serial_dir / "img1.awdvd.tif").data)


def test_zarr_input_its_pixel_size_honoured_and_the_rest_assumed_with_a_warning(model, tmp_path):
    from awdvd.io import write_ome_zarr

    image = np.random.default_rng(1).poisson(300, (200, 240)).astype(np.uint16)
    write_ome_zarr(tmp_path / "fine.ome.zarr", image, pixel_um=0.325)
    job = DeconvolveJob(out_dir=tmp_path / "out", model=model, **SMALL)
    report = run_jobs(tmp_path / "fine.ome.zarr", job, workers=0)
    assert report.ok
    (result,) = report.results
    (warning,) = result.value["warnings"]  # one line: NGFF records no NA, immersion or wavelength
    assert "does not record its NA, immersion index, emission wavelength" in warning and "--na" in warning
    meta = json.loads((tmp_path / "out" / "fine.awdvd.json").read_text())
    optics = meta["parameters"]["optics"]
    assert meta["warnings"] == result.value["warnings"] and optics["pixel_um"] == pytest.approx(0.325)
    assert optics["source"] == {"pixel_um": "file", "na": "assumed", "n": "assumed", "wavelength_um": "assumed"}
    assert read_image(tmp_path / "out" / "fine.awdvd.tif").pixel_um == pytest.approx(0.325)


def test_predict_job_small_and_large(inputs, model, tmp_path):
    path = inputs / "img3.tif"
    dense = AWDVDOptions(map_mode="dense", device="cpu")
    small = PredictJob(out_dir=tmp_path / "s", model=model, options=dense)
    large = PredictJob(out_dir=tmp_path / "l", model=model, options=dense, max_px=20_000, tile_px=128)
    assert [p.name for p in small.outputs(path)] == ["img3.defocus.tif", "img3.defocus.png", "img3.defocus.json"]
    assert [p.name for p in large.outputs(path)] == ["img3.defocus.tif", "img3.defocus.json"]  # no overlay
    assert run_jobs(path, small, workers=0).ok and run_jobs(path, large, workers=0).ok
    a = read_image(tmp_path / "s" / "img3.defocus.tif").data
    b = read_image(tmp_path / "l" / "img3.defocus.tif").data
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_auto_workers(monkeypatch):
    import awdvd.batch.orchestrate

    assert auto_workers(1, any_large=False, cpus=4) == 0  # one file: this process, all its cores
    assert auto_workers(7, any_large=False, cpus=4) == 0  # too few files per worker to pay for a cluster
    assert auto_workers(8, any_large=False, cpus=4) == 2
    assert auto_workers(50, any_large=False, cpus=4) == 4
    assert auto_workers(500, any_large=False, cpus=2) == 0  # on 2 cores one process was always faster
    assert auto_workers(1, any_large=True, cpus=4) == 4  # a large image's tiles use them all
    monkeypatch.setattr(awdvd.batch.orchestrate, "available_cpus", lambda: 16)
    assert auto_workers(100, any_large=False) == 16


def test_job_options_are_checked(inputs, model, tmp_path):
    with pytest.raises(ValueError, match="output_format"):
        DeconvolveJob(out_dir=tmp_path, model=model, output_format="png")
    with pytest.raises(TypeError, match="ModelFile"):
        DeconvolveJob(out_dir=tmp_path, model="model.pt")
    with pytest.raises(TypeError, match="AWDVDOptions"):
        DeconvolveJob(out_dir=tmp_path, model=model, options={"stride": 21})
    # the stride is checked against the model's windows before any file is touched
    job = DeconvolveJob(out_dir=tmp_path / "x", model=model, options=AWDVDOptions(stride=90, device="cpu"))
    with pytest.raises(ValueError, match="stride 90 px is larger than the model's 84 px windows"):
        run_jobs(inputs, job, workers=0)
    assert not (tmp_path / "x").exists()
    assert DeconvolveJob(out_dir=tmp_path, model=model, **SMALL).model.device == "cpu"  # the options' device
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ModelFile("x.pt").path.endswith("x.pt") and ModelFile().describe() == "bundled"
