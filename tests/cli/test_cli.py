"""The command line end to end, run as a user would (a subprocess), plus in-process error paths."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from awdvd.cli import main
from awdvd.data.datasets import read_dataset
from awdvd.data.synth import synthetic_nuclei
from awdvd.io import read_image

SRC = Path(__file__).resolve().parents[2] / "src"


def awdvd(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "awdvd", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd)


def test_help_lists_commands():
    result = awdvd("--help")
    assert result.returncode == 0
    for command in ("psf", "simulate", "fetch-bbbc006"):
        assert command in result.stdout


def test_import_is_light():
    code = "import sys, awdvd; print(sorted(m for m in ('torch', 'dask', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(SRC))).stdout.strip()
    assert out == "[]"


def test_psf_bank_command(tmp_path):
    result = awdvd("psf", "-o", tmp_path / "bank.tif", "--size", 31)
    assert result.returncode == 0, result.stderr
    image = read_image(tmp_path / "bank.tif")
    assert image.data.shape == (11, 31, 31) and image.data.dtype == np.float32
    assert image.pixel_um == pytest.approx(0.65)
    np.testing.assert_allclose(image.data.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    assert (tmp_path / "bank.png").stat().st_size > 1000
    again = awdvd("psf", "-o", tmp_path / "bank.tif", "--size", 31)
    assert again.returncode != 0 and "exists" in again.stderr and "Traceback" not in again.stderr


def test_single_psf_command(tmp_path):
    assert main(["psf", "-o", str(tmp_path / "z4.tif"), "--z-um", "4", "--size", "21", "--na", "0.4"]) == 0
    assert read_image(tmp_path / "z4.tif").data.shape == (21, 21)


def test_simulate_command(tmp_path):
    folder = tmp_path / "in_focus"
    folder.mkdir()
    for seed in range(3):
        tifffile.imwrite(folder / f"f{seed}.tif", synthetic_nuclei((100, 110), n_nuclei=4, seed=seed).astype(np.uint16))
    result = awdvd("simulate", folder, "-o", tmp_path / "ds", "--crops", 2, "--psf-size", 15, "--seed", 4)
    assert result.returncode == 0, result.stderr
    train, meta = read_dataset(tmp_path / "ds", "train")
    assert sum(meta["n_patches"].values()) == 3 * 11 * 2
    assert meta["spec"]["seed"] == 4 and meta["sources"] == ["f0.tif", "f1.tif", "f2.tif"]
    assert "33 images" not in result.stdout and "train 25 images" in result.stdout  # 33 * 0.75 = 24.75 -> 25


def test_simulate_real_bbbc006_has_paper_proportions(tmp_path, bbbc006_dir):
    assert main(["simulate", str(bbbc006_dir / "in_focus"), "-o", str(tmp_path / "ds"), "--crops", "2"]) == 0
    _, meta = read_dataset(tmp_path / "ds", "test")
    assert meta["n_synthetic_images"] == {"train": 49, "val": 10, "test": 7}  # 66 images, 0.75/0.15/0.10
    assert sum(meta["counts"]["train"].values()) == 98


@pytest.mark.parametrize(
    "args,message",
    [
        (["simulate", "missing_folder", "-o", "out"], "no such file or folder"),
        (["simulate", "{empty}", "-o", "out"], "no image files"),
        (["simulate", "{bad}", "-o", "out"], "could not be read"),
        (["simulate", "{stack4d}", "-o", "out"], "shape"),
        (["simulate", "{small}", "-o", "out"], "at least"),
        (["simulate", "{flat}", "-o", "out"], "constant"),
        (["simulate", "{nan}", "-o", "out"], "NaN"),
        (["psf", "-o", "x.tif", "--na", "1.2"], "smaller than the refractive index"),
    ],
)
def test_bad_input_gives_one_line(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.tif").write_text("not a tiff")
    nan = np.ones((100, 100), np.float32)
    nan[5, 5] = np.nan
    for name, data in (("stack4d", np.zeros((2, 2, 90, 90), np.uint16)), ("small", np.arange(1600, dtype=np.uint16).reshape(40, 40)),
                       ("flat", np.full((100, 100), 7, np.uint16)), ("nan", nan)):
        (tmp_path / name).mkdir()
        tifffile.imwrite(tmp_path / name / "a.tif", data)
    args = [a.format(**{k: str(tmp_path / k) for k in ("empty", "bad", "stack4d", "small", "flat", "nan")}) for a in args]
    result = awdvd(*args, cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("awdvd ")]  # other lines are progress bars
    assert errors == [lines[-1]] and message in errors[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_usage_errors_exit_2_with_one_line(tmp_path):
    bad_size = awdvd("psf", "-o", tmp_path / "x.tif", "--size", "12")
    assert bad_size.returncode == 2 and bad_size.stderr.count("\n") == 1 and "odd" in bad_size.stderr
    assert not (tmp_path / "x.tif").exists()
    assert awdvd("psf").returncode == 2  # -o is required
    assert awdvd("simulate", "x", "-o", "y", "--crops", "0").returncode == 2
    assert awdvd().returncode == 2


def test_fetch_offline_is_one_line(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def refuse(*a, **k):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    assert main(["fetch-bbbc006", str(tmp_path / "b"), "--planes", "16"]) == 1


def test_progress_bars_only_on_a_terminal(tmp_path, capsys):
    """Issue 15 item 11: progress bars were written into logs (stderr not a terminal), errors glued to them."""
    for seed in range(2):
        tifffile.imwrite(tmp_path / f"f{seed}.tif", synthetic_nuclei((100, 110), n_nuclei=4, seed=seed).astype(np.uint16))
    assert main(["simulate", str(tmp_path), "-o", str(tmp_path / "ds"), "--crops", "2", "--levels", "3"]) == 0
    assert main(["simulate", str(tmp_path), "-o", str(tmp_path / "ds"), "--crops", "2", "--levels", "3"]) == 1
    err = capsys.readouterr().err
    assert "%|" not in err and err.strip().splitlines() == [
        f"awdvd simulate: error: {tmp_path / 'ds'} already holds a dataset; use another folder or --overwrite"]


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_stopping_a_run_with_worker_processes_is_one_line(tmp_path, tiny_model_file, how):
    """Issue 15 item 6: Ctrl-C with worker processes printed 64 lines of Dask tracebacks (every worker got the
    terminal's SIGINT); SIGTERM ended the process at once with a leaked-semaphore warning."""
    import signal
    import time

    import psutil

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(60):  # enough work that the run is still going when the signal comes (dense maps are fast)
        tifffile.imwrite(folder / f"f{i:02d}.tif", (rng.poisson(300, (200, 260)) + 96).astype(np.uint16))
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen([sys.executable, "-m", "awdvd", "deconvolve", str(folder), "-o", str(out), "--workers",
                                "2", "--model", str(tiny_model_file), "--iterations", "60", "--device", "cpu"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True,  # as a shell starts it: Ctrl-C not ignored
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*.awdvd.json")):  # the workers are at work
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.2)
        children = psutil.Process(process.pid).children(recursive=True)
        if how == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)  # a terminal sends Ctrl-C to the whole process group
        else:
            process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    lines = err.strip().splitlines()
    word, code = ("interrupted", 130) if how == "ctrl-c" else ("terminated", 143)
    assert process.returncode == code and len(lines) == 1, err
    assert lines[0].startswith(f"awdvd deconvolve: {word}; finished images are kept in {out}")
    gone, alive = psutil.wait_procs(children, timeout=20)
    assert not alive  # the workers were stopped with the run
    assert not [p for p in out.iterdir() if p.name.startswith(".") and ".part" in p.name]  # nothing half-written


def test_python_and_the_cli_give_the_same_map_and_qc_row(tmp_path):
    """One set of defaults: awdvd.defocus_map(image) (bundled model, AWDVDOptions()) and `awdvd predict` with no
    option give the same window levels and the same focus-QC row (the napari widgets' map is compared with the
    library's in tests/napari/test_napari_plugin.py)."""
    import csv

    from awdvd import defocus_map
    from awdvd.batch.jobs import FOCUS_CSV
    from awdvd.data.synth import tilted_specimen
    from awdvd.io import write_tiff
    from awdvd.qc import focus_row

    truth = synthetic_nuclei((260, 340), n_nuclei=14, seed=5) + 100.0
    image = np.round(tilted_specimen(truth, psf_size=61, seed=5).observed).astype(np.uint16)
    write_tiff(tmp_path / "B03.tif", image, pixel_um=0.65)
    assert main(["predict", str(tmp_path / "B03.tif"), "-o", str(tmp_path / "maps")]) == 0

    dmap = defocus_map(image)
    cli_levels = tifffile.imread(tmp_path / "maps" / "B03.defocus.tif")[0]
    np.testing.assert_array_equal(cli_levels, dmap.levels)
    assert len(np.unique(dmap.levels)) > 2  # a map with several levels, not a trivial agreement
    with open(tmp_path / "maps" / FOCUS_CSV, newline="") as handle:
        (cli_row,) = list(csv.DictReader(handle))
    python_row = focus_row("B03.tif", dmap)
    for key, value in python_row.items():
        if isinstance(value, float):
            assert float(cli_row[key]) == pytest.approx(value, rel=1e-6, abs=1e-9), key
        elif isinstance(value, bool):
            assert cli_row[key] == str(value).lower(), key  # the CSV writes booleans as true / false
        elif key != "site":
            assert cli_row[key] == str(value), key
