"""awdvd.batch.runner: serial equals Dask, resume, failures stay local, outputs never replace inputs, per-worker
caching. (Tiles of large images: tests/restore/test_tiles.py.)

At most 2 Dask workers run at any time: the first tests use run_batch's own local cluster (started and shut
down inside the call); the module's `cluster` fixture is created after them and shared by the rest.
Tasks live at module level so that the worker processes can import them.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from awdvd._cluster import clear_worker_resources, local_cluster, worker_resource, worker_resource_loads
from awdvd.batch.runner import BatchReport, FileResult, run_batch
from awdvd.data.synth import blur
from awdvd.io import read_image, write_tiff

N_GOOD = 5
PSF_KEY = ("test-psf", 7)


# --------------------------------------------------------------------------------------------- tasks
def gaussian_psf(size: int, sigma: float) -> np.ndarray:
    r = np.arange(size) - size // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def outputs_in(path: Path, out_dir: Path) -> list[Path]:
    return [out_dir / f"{path.stem}_blur.tif"]


def blur_task(path: Path, out_dir: Path) -> dict:
    """A deterministic per-file task: blur with a PSF cached per worker, write one TIFF."""
    psf = worker_resource(PSF_KEY, lambda: gaussian_psf(7, 1.3))
    image = read_image(path)
    result = blur(image.data, psf)
    write_tiff(outputs_in(path, out_dir)[0], result, pixel_um=image.pixel_um, overwrite=True)
    from awdvd._threads import allowed_threads

    return {"pid": os.getpid(), "psf_loads": worker_resource_loads()[PSF_KEY], "total": float(result.sum()),
            "omp_threads": os.environ.get("OMP_NUM_THREADS"), "malloc_trim": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
            "awdvd_threads": allowed_threads()}


def dying_task(path: Path, out_dir: Path) -> dict:
    if "poison" in path.name:
        os._exit(3)  # the worker process dies, as in an out-of-memory kill or a segfault
    return blur_task(path, out_dir)


def lazy_task(path: Path, out_dir: Path) -> dict:
    return {"note": "forgot to write the output"}


def list_task(path: Path, out_dir: Path):
    blur_task(path, out_dir)
    return [1, 2]


def lock_task(path: Path, lock) -> dict:
    return {}


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(11)
    for i in range(N_GOOD):
        data = rng.uniform(100, 3000, (40 + 3 * i, 52)).astype(np.uint16)
        write_tiff(folder / f"img{i}.tif", data, pixel_um=0.65)
    (folder / "corrupt.tif").write_text("this is not a TIFF")
    return folder


def read_outputs(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: read_image(p).data for p in sorted(folder.glob("*.tif"))}


@pytest.fixture(scope="module")
def serial_and_local(inputs, tmp_path_factory) -> tuple[BatchReport, Path, BatchReport, Path]:
    """The same batch serially and on run_batch's own local cluster of 2 workers."""
    out_serial, out_dask = tmp_path_factory.mktemp("serial"), tmp_path_factory.mktemp("dask")
    clear_worker_resources()
    serial = run_batch(inputs, functools.partial(blur_task, out_dir=out_serial),
                       outputs_for=functools.partial(outputs_in, out_dir=out_serial), workers=0, progress=False)
    environ = dict(os.environ)
    local = run_batch(inputs, functools.partial(blur_task, out_dir=out_dask),
                      outputs_for=functools.partial(outputs_in, out_dir=out_dask), workers=2, progress=False)
    assert dict(os.environ) == environ  # the cluster's settings for its workers do not leak into this process
    return serial, out_serial, local, out_dask


@pytest.fixture(scope="module")
def cluster():
    """One local cluster of 2 workers for the rest of the module, made as run_batch makes its own."""
    with local_cluster(2) as local:
        yield local


# --------------------------------------------------------------------------------------------- run_batch
def test_dask_equals_serial_bitwise(serial_and_local):
    serial, out_serial, local, out_dask = serial_and_local
    a, b = read_outputs(out_serial), read_outputs(out_dask)
    assert sorted(a) == sorted(b) == [f"img{i}_blur.tif" for i in range(N_GOOD)]
    for name in a:
        assert a[name].dtype == b[name].dtype == np.float32
        assert np.array_equal(a[name], b[name]), name
    assert [r.value.get("total") for r in serial.results] == [r.value.get("total") for r in local.results]
    assert serial.where == "serial" and "local Dask cluster, 2 workers" in local.where


def test_corrupt_file_fails_alone_and_report_says_why(serial_and_local):
    for report in serial_and_local[0], serial_and_local[2]:
        assert report.counts == {"done": N_GOOD, "skipped": 0, "failed": 1}
        assert not report.ok
        (bad,) = report.failed
        assert bad.path.name == "corrupt.tif" and bad.error.startswith("ImageReadError")
        assert "Traceback" in bad.traceback
        summary = report.summary()
        assert "5 done" in summary and "1 failed" in summary and "corrupt.tif (ImageReadError" in summary
        assert "\n" not in summary
        assert [r.path.name for r in report.results] == ["corrupt.tif"] + [f"img{i}.tif" for i in range(N_GOOD)]


def test_model_loaded_once_per_worker(serial_and_local):
    _, _, local, _ = serial_and_local
    done = [r for r in local.results if r.status == "done"]
    pids = {r.pid for r in done}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert all(r.value["pid"] == r.pid and r.worker.startswith("tcp://") for r in done)
    assert all(r.value["psf_loads"] == 1 for r in done)  # reused, never reloaded, on every worker
    assert max(sum(r.pid == pid for r in done) for pid in pids) >= 2  # 5 files, <= 2 workers: some reuse


def test_workers_run_one_numeric_thread_and_keep_glibc_malloc_defaults(serial_and_local):
    done = [r for r in serial_and_local[2].results if r.status == "done"]
    assert {r.value["omp_threads"] for r in done} == {"1"}
    assert {r.value["awdvd_threads"] for r in done} == {1}  # awdvd's own FFTs and thread pools too
    assert {r.value["malloc_trim"] for r in done} == {None}


def test_scheduler_address_path(inputs, cluster, serial_and_local, tmp_path):
    _, out_serial, _, _ = serial_and_local
    report = run_batch(inputs, functools.partial(blur_task, out_dir=tmp_path),
                       outputs_for=functools.partial(outputs_in, out_dir=tmp_path),
                       scheduler=cluster.scheduler_address, progress=False)
    assert report.counts == {"done": N_GOOD, "skipped": 0, "failed": 1}
    assert cluster.scheduler_address in report.where
    from distributed import Client

    with Client(cluster, set_as_default=False) as client:
        worker_pids = set(client.run(os.getpid).values())
    assert {r.pid for r in report.results if r.status == "done"} <= worker_pids
    a, b = read_outputs(out_serial), read_outputs(tmp_path)
    assert all(np.array_equal(a[name], b[name]) for name in a)


def test_resume_skips_done_files_and_overwrite_redoes_them(inputs, cluster, tmp_path):
    task = functools.partial(blur_task, out_dir=tmp_path)
    outputs_for = functools.partial(outputs_in, out_dir=tmp_path)
    run = functools.partial(run_batch, inputs, task, outputs_for=outputs_for,
                            scheduler=cluster.scheduler_address, progress=False)
    first = run()
    assert first.counts["done"] == N_GOOD
    (tmp_path / "img0_blur.tif").unlink()  # as if the first run had been interrupted before img0
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.tif")}
    second = run()
    assert second.counts == {"done": 1, "skipped": N_GOOD - 1, "failed": 1}  # the corrupt file is retried
    assert {r.path.name for r in second.results if r.status == "done"} == {"img0.tif"}
    assert all(r.seconds == 0 and r.worker is None for r in second.results if r.status == "skipped")
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.tif") if p.name in stamps} == stamps
    assert "skipped" in second.summary() and "overwrite" in second.summary()
    third = run(overwrite=True)
    assert third.counts == {"done": N_GOOD, "skipped": 0, "failed": 1}
    assert all(p.stat().st_mtime_ns != stamps[p.name] for p in tmp_path.glob("*.tif") if p.name in stamps)


def test_outputs_never_overwrite_inputs(inputs, tmp_path):
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    task = functools.partial(blur_task, out_dir=tmp_path)
    with pytest.raises(ValueError, match="would overwrite the input"):
        run_batch(inputs, task, outputs_for=lambda p: [p], workers=0, progress=False)
    with pytest.raises(ValueError, match="would overwrite the input"):  # same file by another spelling
        run_batch(inputs, task, outputs_for=lambda p: [p.parent / ".." / p.parent.name / p.name], workers=0,
                  progress=False)
    with pytest.raises(ValueError, match="both write"):
        run_batch(inputs, task, outputs_for=lambda p: [tmp_path / "same.tif"], workers=0, progress=False)
    with pytest.raises(ValueError, match="at least one output"):
        run_batch(inputs, task, outputs_for=lambda p: [], workers=0, progress=False)
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before
    assert list(tmp_path.iterdir()) == []  # refused up front: nothing ran


def test_outputs_left_in_the_input_folder_are_refused_on_rerun(tmp_path):
    write_tiff(tmp_path / "a.tif", np.ones((20, 20), np.float32))
    task = functools.partial(blur_task, out_dir=tmp_path)
    outputs_for = functools.partial(outputs_in, out_dir=tmp_path)
    assert run_batch(tmp_path, task, outputs_for=outputs_for, workers=0, progress=False).ok
    # now a_blur.tif is an "input" too, and it is also a.tif's output: deconvolving our own outputs is refused
    with pytest.raises(ValueError, match="a_blur.tif.*would overwrite the input"):
        run_batch(tmp_path, task, outputs_for=outputs_for, workers=0, progress=False)


def test_task_contract_violations_are_failures(inputs, tmp_path):
    outputs_for = functools.partial(outputs_in, out_dir=tmp_path)
    files = sorted(inputs.glob("img*.tif"))[:2]
    lazy = run_batch(files, functools.partial(lazy_task, out_dir=tmp_path), outputs_for=outputs_for, workers=0,
                     progress=False)
    assert lazy.counts["failed"] == 2 and "did not write" in lazy.failed[0].error
    bad_return = run_batch(files, functools.partial(list_task, out_dir=tmp_path), outputs_for=outputs_for,
                           workers=0, progress=False, overwrite=True)
    assert bad_return.counts["failed"] == 2 and "must return a dict" in bad_return.failed[0].error


def test_unpicklable_task_is_refused_before_starting_a_cluster(inputs, tmp_path):
    task = functools.partial(lock_task, lock=threading.Lock())
    with pytest.raises(TypeError, match="picklable"):
        run_batch(inputs, task, outputs_for=functools.partial(outputs_in, out_dir=tmp_path), workers=2,
                  progress=False)
    with pytest.raises(ValueError, match="serial"):
        run_batch(inputs, task, outputs_for=lambda p: [tmp_path / p.name], workers=0, scheduler="tcp://x:1")
    with pytest.raises(ValueError, match="workers must be >= 0"):
        run_batch(inputs, task, outputs_for=lambda p: [tmp_path / p.name], workers=-1)


def test_report_is_json_ready(serial_and_local):
    import json

    report = serial_and_local[2]
    payload = json.loads(json.dumps(report.as_dict()))
    assert payload["counts"] == report.counts and len(payload["results"]) == N_GOOD + 1
    with pytest.raises(ValueError, match="status"):
        FileResult(path=Path("x"), status="maybe", outputs=())


def test_worker_resource_caches_per_process():
    clear_worker_resources()
    calls = []
    for _ in range(3):
        value = worker_resource("thing", lambda: calls.append(1) or object())
    assert worker_resource("thing", object) is value and len(calls) == 1
    assert worker_resource_loads() == {"thing": 1}
    clear_worker_resources()
    assert worker_resource_loads() == {}


# --------------------------------------------------------------------------------------------- last: kills workers
def test_dead_worker_fails_that_file_alone(inputs, cluster, tmp_path):
    write_tiff(tmp_path / "poison.tif", np.ones((20, 20), np.uint16))
    out = tmp_path / "out"
    files = sorted(inputs.glob("img*.tif")) + [tmp_path / "poison.tif"]
    report = run_batch(files, functools.partial(dying_task, out_dir=out),
                       outputs_for=functools.partial(outputs_in, out_dir=out),
                       scheduler=cluster.scheduler_address, progress=False)
    assert report.counts == {"done": N_GOOD, "skipped": 0, "failed": 1}, [r.error for r in report.failed]
    (dead,) = report.failed
    assert dead.path.name == "poison.tif" and dead.error.startswith("WorkerDied")
    assert not (out / "poison_blur.tif").exists()
