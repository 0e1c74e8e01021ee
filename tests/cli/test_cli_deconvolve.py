"""`awdvd deconvolve` and `awdvd predict` end to end with a tiny random-init model file, and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _standins import ome_xml, tiny_delpnet_model

from awdvd.cli import main
from awdvd.io import read_image, write_tiff

pytest.importorskip("torch")

# the BBBC006 optics, for test images written without them (plain TIFF): no "assumed" warning line
OPTICS = ["--pixel-um", "0.65", "--na", "0.5", "--wavelength-um", "0.451", "--immersion-n", "1.0"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model_path = tiny_delpnet_model(seed=2).save(root / "tiny.pt")
    inputs = root / "in"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        image = (rng.poisson(200, size=(100, 130)) + 96).astype(np.uint16)
        image[30:50, 40:70] += 3000
        write_tiff(inputs / f"{name}.tif", image, pixel_um=0.65)
    return root, model_path, inputs


def test_deconvolve_end_to_end(workspace, capsys):
    root, model_path, inputs = workspace
    out = root / "restored"
    args = ["deconvolve", str(inputs), "-o", str(out), "--model", str(model_path), "--psf-size", "15",
            "--iterations", "5", "--stride", "21", "--device", "cpu", "--workers", "0"]
    assert main(args) == 0
    for name in ("a", "b"):
        restored = read_image(out / f"{name}.awdvd.tif")
        original = read_image(inputs / f"{name}.tif").data
        assert restored.data.shape == original.shape and restored.data.dtype == np.float32
        assert restored.pixel_um == pytest.approx(0.65)
        meta = json.loads((out / f"{name}.awdvd.json").read_text())
        assert meta["parameters"]["stride"] == 21 and meta["parameters"]["psf_size"] == 15
        assert sum(meta["levels_used"].values()) == np.size(meta["level_grid"])
        assert set(meta["timings_s"]) == {"defocus_map", "deconvolution", "total"}
        # the default offset is the image's own background: its 1st percentile, recorded
        assert meta["options"]["offset"] == "auto"
        assert meta["parameters"]["offset"] == pytest.approx(np.percentile(original, 1))
    assert "2 done" in capsys.readouterr().out
    report = json.loads((out / "awdvd-deconvolve-report.json").read_text())
    assert report["counts"] == {"done": 2, "skipped": 0, "failed": 0}
    # a rerun skips finished images (an interrupted run is simply started again) ...
    stamp = (out / "a.awdvd.tif").stat().st_mtime_ns
    assert main(args) == 0
    assert "2 skipped" in capsys.readouterr().out and (out / "a.awdvd.tif").stat().st_mtime_ns == stamp
    # ... but not ones made with other options, which would then look redone
    assert main(args[:-4] + ["--iterations", "6", "--workers", "0"]) == 1
    err = capsys.readouterr().err
    assert "other settings: --iterations 5 (now 6)" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert main(args + ["--overwrite", "--dtype", "input", "--method", "patchwise", "--weighting", "rectangular",
                        "--stride", "84"]) == 0
    assert read_image(out / "a.awdvd.tif").data.dtype == np.uint16
    meta = json.loads((out / "a.awdvd.json").read_text())
    assert meta["parameters"]["method"] == "patchwise" and isinstance(meta["clipped_pixels"], int)


def test_predict_end_to_end(workspace):
    root, model_path, inputs = workspace
    out = root / "maps"
    assert main(["predict", str(inputs / "a.tif"), "-o", str(out), "--model", str(model_path), "--stride", "42",
                 "--device", "cpu", "--workers", "0"]) == 0
    planes = read_image(out / "a.defocus.tif").data
    meta = json.loads((out / "a.defocus.json").read_text())
    assert planes.shape == (15, len(meta["window_rows"]), len(meta["window_cols"]))
    assert meta["planes"][:3] == ["level", "depth_um", "depth_spread_um"]
    np.testing.assert_allclose(planes[3:].sum(axis=0), 1.0, rtol=1e-5)
    foreground = planes[0] >= 0
    np.testing.assert_allclose(planes[1][foreground], (planes[3:14][:, foreground] * np.arange(11)[:, None]).sum(0)
                               / planes[3:14][:, foreground].sum(0) * 2.0, rtol=1e-5)  # depth = E[level] x 2 um
    assert set(np.unique(planes[0])) <= set(range(-1, 11))
    assert (out / "a.defocus.png").stat().st_size > 1000
    assert main(["predict", str(inputs / "b.tif"), "-o", str(out), "--model", str(model_path), "--mode", "dense",
                 "--device", "cpu"]) == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["deconvolve", "{inputs}/nothing.tif", "-o", "{root}/x", "--model", "{model}"], "no such file"),
        (["deconvolve", "{inputs}", "-o", "{root}/x", "--model", "{root}/missing.pt"], "no such model file"),
        (["deconvolve", "{inputs}", "-o", "{root}/x", "--model", "{inputs}/a.tif"], "model file"),
        (["deconvolve", "{inputs}", "-o", "{inputs}", "--model", "{model}", "--overwrite", "--psf-size", "15"], None),
        (["predict", "{root}/small.tif", "-o", "{root}/x", "--model", "{model}"], "at least one 84 x 84"),
        (["deconvolve", "{root}/stack.tif", "-o", "{root}/x", "--model", "{model}"], "stack"),
    ],
)
def test_bad_input_gives_one_error_line(workspace, capsys, args, message):
    root, model_path, inputs = workspace
    write_tiff(root / "small.tif", np.ones((50, 60), np.uint16), overwrite=True)
    write_tiff(root / "stack.tif", np.ones((3, 90, 90), np.uint16), overwrite=True)
    argv = [a.format(inputs=inputs, root=root, model=model_path) for a in args] + ["--workers", "0"]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    if message is None:  # writing into the input folder is fine as long as no input is replaced
        assert code == 0
        return
    assert code == 1 and len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_outputs_that_would_collide_are_refused_up_front(workspace, tmp_path, capsys):
    root, model_path, _ = workspace
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        write_tiff(tmp_path / sub / "s.tif", np.ones((90, 90), np.uint16))
    code = main(["deconvolve", str(tmp_path / "a" / "s.tif"), str(tmp_path / "b" / "s.tif"), "-o", str(tmp_path / "o"),
                 "--model", str(model_path), "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 1 and "both write" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_many_files_on_a_local_cluster_equal_serial(workspace, tmp_path, capsys, dask_cluster, monkeypatch):
    """--workers 2 (a local Dask cluster) gives the serial outputs bit for bit, loads the model and PSF bank once
    per worker, and a corrupt file fails alone with a non-zero exit. (The cluster run_jobs starts is the
    session's: awdvd._cluster.local_cluster(2) made both, so the test does not pay for starting another.)"""
    import contextlib

    import awdvd.batch.orchestrate

    @contextlib.contextmanager
    def session_cluster(workers):
        assert workers == 2
        yield dask_cluster

    monkeypatch.setattr(awdvd.batch.orchestrate, "local_cluster", session_cluster)
    root, model_path, _ = workspace
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):
        write_tiff(folder / f"f{i}.tif", (rng.poisson(300, (100, 120)) + 90).astype(np.uint16), pixel_um=0.65)
    (folder / "corrupt.tif").write_text("not an image")
    common = ["--model", str(model_path), "--psf-size", "15", "--iterations", "3", "--device", "cpu", *OPTICS]
    codes = {}
    for workers in ("0", "2"):
        codes[workers] = main(["deconvolve", str(folder), "-o", str(tmp_path / f"w{workers}"), "--workers", workers,
                               *common])
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "3 done" in err and "1 failed" in err and "corrupt.tif" in err
    assert codes == {"0": 1, "2": 1}
    for i in range(3):
        assert np.array_equal(read_image(tmp_path / "w0" / f"f{i}.awdvd.tif").data,
                              read_image(tmp_path / "w2" / f"f{i}.awdvd.tif").data)
    report = json.loads((tmp_path / "w2" / "awdvd-deconvolve-report.json").read_text())
    assert "local Dask cluster, 2 workers" in report["where"]
    done = [r for r in report["results"] if r["status"] == "done"]
    assert {r["value"]["loads"]["model"] for r in done} == {1} and {r["value"]["loads"]["psf_bank"] for r in done} == {1}
    # resume: the finished files are skipped, the corrupt one is tried again and still fails
    assert main(["deconvolve", str(folder), "-o", str(tmp_path / "w0"), "--workers", "0", *common]) == 1
    assert "3 skipped" in capsys.readouterr().err


def test_formats_tiles_and_pixel_size_warning(workspace, tmp_path, capsys):
    root, model_path, _ = workspace
    image = (np.random.default_rng(6).poisson(300, (200, 260)) + 90).astype(np.uint16)
    write_tiff(tmp_path / "fine.tif", image, pixel_um=0.325)
    common = ["--model", str(model_path), "--psf-size", "15", "--iterations", "3", "--workers", "0"]
    assert main(["deconvolve", str(tmp_path / "fine.tif"), "-o", str(tmp_path / "whole"), "--format", "ome-tiff",
                 *common]) == 0
    err = capsys.readouterr().err  # the file's pixel size is honoured; the rest of its optics assumed, in one line
    assert err.count("warning: fine.tif: the file does not record its NA, immersion index, emission wavelength") == 1
    whole = read_image(tmp_path / "whole" / "fine.awdvd.ome.tif")
    assert whole.pixel_um == pytest.approx(0.325)
    # over --max-whole-px: in tiles, OME-Zarr by default
    assert main(["deconvolve", str(tmp_path / "fine.tif"), "-o", str(tmp_path / "tiled"), "--max-whole-px", "10000",
                 "--tile-px", "128", *common]) == 0
    tiled = read_image(tmp_path / "tiled" / "fine.awdvd.ome.zarr")  # a lazy image read on the model's sampling
    assert tiled.pixel_um == pytest.approx(0.325)
    np.testing.assert_allclose(tiled.data, whole.data, rtol=0, atol=1e-5 * float(whole.data.max()))
    assert main(["deconvolve", str(tmp_path / "fine.tif"), "-o", str(tmp_path / "x"), "--scheduler", "localhost:1",
                 *common[:-2]]) == 1
    assert "tcp://" in capsys.readouterr().err


def test_stride_beyond_the_models_windows_is_one_error_up_front(workspace, tmp_path, capsys):
    """A 32 px model with --stride 50: refused before any image is read, in one line."""
    from awdvd.learn.model import DefocusModel

    root, _, inputs = workspace
    tiny = tiny_delpnet_model(seed=4)
    small = DefocusModel(tiny.network, optics=tiny.optics, class_levels=tiny.class_levels, patch_px=32)
    model_path = small.save(tmp_path / "small.pt")
    out = tmp_path / "out"
    for command in ("deconvolve", "predict"):
        code = main([command, str(inputs), "-o", str(out), "--model", str(model_path), "--stride", "50",
                     "--workers", "0", "--device", "cpu"])
        err = capsys.readouterr().err
        assert code == 1 and len(err.splitlines()) == 1
        assert "stride 50 px is larger than the model's 32 px windows" in err and "1..32" in err
    assert not out.exists()


@pytest.mark.parametrize("option, value, message", [("--stride", "0", "expected a number >= 1"),
                                                    ("--offset", "dark", "expected 'auto' or a number"),
                                                    ("--offset", "nan", "finite")])
def test_bad_option_is_a_usage_error(workspace, capsys, option, value, message):
    root, model_path, inputs = workspace
    with pytest.raises(SystemExit) as exit_info:
        main(["deconvolve", str(inputs), "-o", str(root / "x"), option, value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- a standalone cluster
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    """A `dask scheduler` and two `dask worker` processes on loopback, started as a lab with several machines
    would start them (separate processes, nothing shared with this one but the address); torn down at the end,
    also when starting them or a test fails."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from distributed import Client

    dask_cli = str(Path(sys.executable).parent / "dask")
    logs = tmp_path_factory.mktemp("dask-logs")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    commands = [[dask_cli, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard",
                 "--dashboard-address", "127.0.0.1:0"]]
    commands += [[dask_cli, "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                  "--dashboard-address", "127.0.0.1:0", "--host", "127.0.0.1", "--name", f"lab-{i}"]
                 for i in range(2)]
    processes = []
    try:
        for index, command in enumerate(commands):
            log = open(logs / f"process{index}.log", "w")
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                              start_new_session=True))
            if index == 0:
                time.sleep(0.5)  # let the scheduler bind before the workers dial it
        with Client(address, timeout="30s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
            workers = sorted(client.scheduler_info()["workers"])
        yield address, workers
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)  # the worker's nanny and its worker process together
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_deconvolve_on_a_standalone_dask_cluster_equals_serial(workspace, standalone_cluster, tmp_path, capsys):
    """`awdvd deconvolve --scheduler tcp://...` against separately started scheduler and workers: the outputs
    are the serial run's, bit for bit, and the files ran on those workers."""
    import shutil

    root, model_path, shared_inputs = workspace
    address, workers = standalone_cluster
    inputs = tmp_path / "in"  # its own folder: other tests write outputs into the shared one
    inputs.mkdir()
    for name in ("a", "b"):
        shutil.copy(shared_inputs / f"{name}.tif", inputs)
    common = [str(inputs), "--model", str(model_path), "--psf-size", "15", "--iterations", "3", "--stride", "21",
              "--device", "cpu"]
    assert main(["deconvolve", *common, "-o", str(tmp_path / "serial"), "--workers", "0"]) == 0
    assert main(["deconvolve", *common, "-o", str(tmp_path / "lab"), "--scheduler", address]) == 0
    assert "2 done" in capsys.readouterr().out
    for name in ("a", "b"):
        serial = read_image(tmp_path / "serial" / f"{name}.awdvd.tif").data
        lab = read_image(tmp_path / "lab" / f"{name}.awdvd.tif").data
        assert serial.dtype == lab.dtype == np.float32 and np.array_equal(serial, lab)
    report = json.loads((tmp_path / "lab" / "awdvd-deconvolve-report.json").read_text())
    assert report["where"] == f"Dask cluster at {address}"
    assert {r["worker"] for r in report["results"]} <= set(workers)


def test_dtype_input_says_how_many_pixels_were_clipped(workspace, tmp_path, capsys):
    """Issue 15 item 9: the count of clipped pixels was only in the JSON."""
    root, model_path, _ = workspace
    image = np.full((100, 130), 20, np.uint8)
    image[40:60, 50:80] = 250  # deconvolution sharpens the bright block beyond 255
    write_tiff(tmp_path / "u8.tif", image)
    assert main(["deconvolve", str(tmp_path / "u8.tif"), "-o", str(tmp_path / "out"), "--model", str(model_path), *OPTICS,
                 "--dtype", "input", "--workers", "0", "--psf-size", "15", "--iterations", "10"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    clipped = json.loads((tmp_path / "out" / "u8.awdvd.json").read_text())["clipped_pixels"]
    assert clipped > 0 and len(err) == 1
    assert err[0].startswith(f"awdvd deconvolve: warning: u8.tif: {clipped} of 13000 pixels (")
    assert "outside the uint8 range and were clipped" in err[0]


def test_a_rerun_keeps_the_previous_report(workspace, tmp_path, capsys):
    """Issue 15 item 11: a rerun overwrote the previous run's report."""
    root, model_path, inputs = workspace
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.tif").write_bytes(b"II*\x00 not a TIFF")
    common = ["--model", str(model_path), "--workers", "0"]
    for _ in range(2):
        assert main(["deconvolve", str(folder), "-o", str(tmp_path / "out"), *common]) == 1
    capsys.readouterr()
    reports = sorted(p.name for p in (tmp_path / "out").glob("awdvd-deconvolve-report*.json"))
    assert len(reports) == 2 and "awdvd-deconvolve-report.json" in reports




@pytest.fixture
def plate(workspace, tmp_path):
    """Three fields named as BBBC006 names them (wells A01, A02, B01), as OME-TIFF; B01 recorded with NA 0.8
    and 520 nm emission (the model's optics: 451 nm, NA 0.5)."""
    import tifffile

    rng = np.random.default_rng(5)
    folder = tmp_path / "plate"
    folder.mkdir()
    for well, na, emission in (("a01", 0.5, 451), ("a02", 0.5, 451), ("b01", 0.8, 520)):
        image = (rng.poisson(200, size=(100, 130)) + 96).astype(np.uint16)
        image[30:50, 40:70] += 3000
        tifffile.imwrite(folder / f"mcf-z-stacks-03212011_{well}_s1_w1.ome.tif", image,
                         description=ome_xml(shape=(100, 130), pixel_um=0.65, na=na, emission_nm=emission), metadata=None)
    return folder


def test_predict_writes_the_runs_focus_qc_and_plate(workspace, plate, tmp_path, capsys):
    """Issue 14 items 3-4 wired into `awdvd predict`: one QC table for the run, a plate heat-map where names
    carry wells; the optics each file records are the image's (B01's NA 0.8 and 520 nm are honoured, read in the
    model's optical units, no warning) and the sidecar says where each came from."""
    import csv

    from awdvd.batch.jobs import FOCUS_CSV, FOCUS_PLATE
    from awdvd.qc import focus_columns

    root, model_path, _ = workspace
    out = tmp_path / "maps"
    argv = ["predict", str(plate), "-o", str(out), "--model", str(model_path), "--workers", "0"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"focus QC: {out / FOCUS_CSV}" in captured.out and f"plate heat-map: {out / FOCUS_PLATE}" in captured.out
    assert captured.err.strip() == ""  # every file records its optics: nothing assumed
    with open(out / FOCUS_CSV, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["well"] for r in rows] == ["A01", "A02", "B01"] and list(rows[0]) == focus_columns(11)
    assert (out / FOCUS_PLATE).stat().st_size > 5000
    meta = json.loads((out / "mcf-z-stacks-03212011_b01_s1_w1.defocus.json").read_text())
    assert meta["optics"]["na"] == pytest.approx(0.8) and meta["optics"]["wavelength_um"] == pytest.approx(0.52)
    assert set(meta["optics"]["source"].values()) == {"file"} and meta["focus_qc"]["well"] == "B01"
    # depths in the image's optics: one level at NA 0.8 and 520 nm is 2 um x (0.8 / 0.5)^-2 x 520 / 451
    assert meta["z_step_um"] == pytest.approx(2.0 * (0.5 / 0.8) ** 2 * 0.52 / 0.451, rel=1e-6)
    # a rerun skips every map and still writes the table of the whole run
    (out / FOCUS_CSV).unlink()
    assert main(argv) == 0 and "3 skipped" in capsys.readouterr().out
    with open(out / FOCUS_CSV, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 3


def test_optics_a_file_does_not_record_are_assumed_with_one_line_or_given_by_flags(workspace, tmp_path, capsys):
    """A plain TIFF without a pixel size: the model's optics, one warning line naming them and the flags, and the
    sidecar says "assumed"; flags give them instead; --strict-optics fails the file instead."""
    import tifffile

    root, model_path, _ = workspace
    rng = np.random.default_rng(2)
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "plain.tif", (rng.poisson(200, (200, 260)) + 96).astype(np.uint16))
    base = ["predict", str(tmp_path / "in" / "plain.tif"), "--model", str(model_path), "--workers", "0"]
    assert main(base + ["-o", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "plain.tif: the file does not record its pixel size, NA, immersion index, emission" in err[0]
    assert err[0].count("plain.tif") == 1
    assert "--pixel-um --na --immersion-n --wavelength-um" in err[0]
    meta = json.loads((tmp_path / "a" / "plain.defocus.json").read_text())
    assert set(meta["optics"]["source"].values()) == {"assumed"} and meta["optics"]["pixel_um"] == 0.65

    assert main(base + ["-o", str(tmp_path / "b"), "--pixel-um", "0.325", "--na", "0.5", "--wavelength-um", "0.451",
                        "--immersion-n", "1.0"]) == 0
    assert capsys.readouterr().err.strip() == ""
    meta = json.loads((tmp_path / "b" / "plain.defocus.json").read_text())
    assert set(meta["optics"]["source"].values()) == {"argument"} and meta["optics"]["pixel_um"] == 0.325
    assert meta["patch_px"] == 168  # windows of the model's 84 px at half its pixel size

    assert main(base + ["-o", str(tmp_path / "c"), "--strict-optics"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "plain.tif (the file does not record" in err[0] and "would be assumed" in err[0]
    assert "OpticsAssumedError" not in err[0]  # a Python name: only the report's JSON keeps it
    report = json.loads((tmp_path / "c" / "awdvd-predict-report.json").read_text())
    assert report["results"][0]["error"].startswith("OpticsAssumedError: ")
    assert not (tmp_path / "c" / "plain.defocus.tif").exists()

    assert main(base + ["-o", str(tmp_path / "d"), "--na", "1.2"]) == 1  # NA 1.2 in air (assumed n 1.0)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "contradict each other" in err[0] and "NA 1.2 (argument)" in err[0]
