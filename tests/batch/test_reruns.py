"""What a rerun does with outputs that exist (awdvd.batch.reruns, awdvd.io.resumable): a changed input is redone, a file
that merely has an output's name is never replaced, awdvd's own outputs are never inputs (output folder = input
folder), the pieces a killed run left are swept, and a tiled restoration resumes from the tiles it holds.
Each was a fault of issue 15 (items 2, 4, 5, 8)."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

import awdvd.restore.tiling
from awdvd.batch.jobs import DeconvolveJob, ModelFile, PredictJob, run_jobs
from awdvd.batch.reruns import ForeignOutputError, OtherSettingsError
from awdvd.io import read_image, write_tiff
from awdvd.restore.options import AWDVDOptions

SMALL = dict(options=AWDVDOptions(stride=42, iterations=3, psf_size=15, device="cpu"))
_APPLY_TILE = awdvd.restore.tiling._apply_tile  # the real one, before a test replaces it


@pytest.fixture(scope="module")
def model(tiny_model_file):
    return ModelFile(str(tiny_model_file))


def field(seed: int, shape=(110, 150)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = (rng.poisson(200, size=shape) + 96).astype(np.uint16)
    image[30:70, 40:120] += 3000 + 100 * seed
    return image


def hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_changed_input_is_redone_and_said_so(model, tmp_path):
    """Item 2: replacing field.tif by another image and rerunning said "1 skipped" and kept the old restoration."""
    source, out = tmp_path / "in", tmp_path / "out"
    write_tiff(source / "field.tif", field(0))
    write_tiff(source / "other.tif", field(1))
    job = DeconvolveJob(out_dir=out, model=model, **SMALL)
    assert run_jobs(source, job, workers=0).counts["done"] == 2
    recorded = json.loads((out / "field.awdvd.json").read_text())["input_file"]
    assert recorded["size"] == (source / "field.tif").stat().st_size and recorded["hash"].startswith("blake2b")
    before = read_image(out / "field.awdvd.tif").data
    write_tiff(source / "field.tif", field(2), overwrite=True)  # another image under the same name
    os.utime(source / "other.tif")  # touched only: the same content, not redone
    again = run_jobs(source, job, workers=0)
    assert [r.status for r in again.results] == ["done", "skipped"]
    assert [p.name for p in again.changed] == ["field.tif"] and "input changed" in again.summary()
    assert not np.array_equal(read_image(out / "field.awdvd.tif").data, before)
    assert [r.status for r in run_jobs(source, job, workers=0).results] == ["skipped", "skipped"]


@pytest.mark.parametrize("kind", ["deconvolve", "predict"])
def test_a_file_that_merely_has_an_output_name_is_never_replaced(model, tmp_path, kind):
    """Item 4: good.awdvd.tif (and predict's .defocus.png) without an awdvd sidecar were replaced silently."""
    write_tiff(tmp_path / "in" / "good.tif", field(0))
    out = tmp_path / "out"
    out.mkdir()
    name = "good.awdvd.tif" if kind == "deconvolve" else "good.defocus.png"
    (out / name).write_bytes(b"my own file")
    job = (DeconvolveJob if kind == "deconvolve" else PredictJob)(out_dir=out, model=model, **SMALL)
    with pytest.raises(FileExistsError, match=f"{name} exists but was not written by awdvd") as refused:
        run_jobs(tmp_path / "in", job, workers=0)
    # what it found travels with it, for the CLI to word in its flags; the message is a Python caller's
    assert isinstance(refused.value, ForeignOutputError) and refused.value.output == out / name
    assert refused.value.more == 0 and refused.value.sidecar_name == job.sidecar(tmp_path / "in" / "good.tif").name
    assert "pass overwrite=True" in str(refused.value) and "--overwrite" not in str(refused.value)
    assert str(pickle.loads(pickle.dumps(refused.value))) == str(refused.value)
    assert (out / name).read_bytes() == b"my own file" and sorted(p.name for p in out.iterdir()) == [name]
    # with --overwrite the user asked for it
    assert run_jobs(tmp_path / "in", job, workers=0, overwrite=True).ok
    assert (out / name).read_bytes() != b"my own file"
    # awdvd's own half-finished output (image written, then killed before the sidecar) is simply redone
    (out / job.sidecar(tmp_path / "in" / "good.tif").name).unlink()
    assert run_jobs(tmp_path / "in", job, workers=0).counts["done"] == 1


def test_finished_files_made_with_other_settings_are_refused_with_what_differs(model, tmp_path):
    """The refusal carries (field, recorded, wanted) per setting, optics field by field, and its message is in a
    Python caller's words (the CLI words it in flags: tests/cli/test_words.py)."""
    write_tiff(tmp_path / "in" / "good.tif", field(0))
    out = tmp_path / "out"
    job = DeconvolveJob(out_dir=out, model=model, optics={"pixel_um": 0.65, "na": 0.5}, **SMALL)
    assert run_jobs(tmp_path / "in", job, workers=0).ok
    other = DeconvolveJob(out_dir=out, model=model, optics={"na": 0.6}, dtype="input",
                          options=SMALL["options"].replace(iterations=4, rl="tv"))
    with pytest.raises(OtherSettingsError) as refused:
        run_jobs(tmp_path / "in", other, workers=0)
    error = refused.value
    assert isinstance(error, ValueError) and error.sidecar == out / "good.awdvd.json"
    assert error.differences == (("iterations", 3, 4), ("rl", None, "tv"), ("dtype", "float32", "input"),
                                 ("na", 0.5, 0.6), ("pixel_um", 0.65, None))
    assert "other options: iterations 3 (now 4), rl None (now 'tv')" in str(error)
    assert "pass overwrite=True" in str(error) and "--overwrite" not in str(error)
    copy = pickle.loads(pickle.dumps(error))  # crosses processes intact
    assert (copy.sidecar, copy.differences, str(copy)) == (error.sidecar, error.differences, str(error))
    assert run_jobs(tmp_path / "in", other, workers=0, overwrite=True).counts["done"] == 1


def test_output_folder_may_be_the_input_folder(model, tmp_path):
    """Item 8: the first run worked, every rerun failed (awdvd read its own outputs as inputs)."""
    write_tiff(tmp_path / "good.tif", field(0))
    for job in (DeconvolveJob(out_dir=tmp_path, model=model, **SMALL), PredictJob(out_dir=tmp_path, model=model, **SMALL)):
        first = run_jobs(tmp_path, job, workers=0)
        assert [r.path.name for r in first.results] == ["good.tif"] and first.ok
        rerun = run_jobs(tmp_path, job, workers=0)
        assert [(r.path.name, r.status) for r in rerun.results] == [("good.tif", "skipped")]
    # named on purpose, an output is an input like any other
    named = run_jobs([tmp_path / "good.awdvd.tif"], DeconvolveJob(out_dir=tmp_path / "again", model=model, **SMALL),
                     workers=0)
    assert named.ok and (tmp_path / "again" / "good.awdvd.awdvd.tif").is_file()
    # a user's file whose name only looks like an output is still found
    import tifffile

    (tmp_path / "mine").mkdir()
    tifffile.imwrite(tmp_path / "mine" / "x.defocus.tif", field(1))
    found = run_jobs(tmp_path / "mine", PredictJob(out_dir=tmp_path / "mine-out", model=model, **SMALL), workers=0)
    assert [r.path.name for r in found.results] == ["x.defocus.tif"]


def test_pieces_of_dead_runs_are_swept_and_live_ones_kept(model, tmp_path):
    """Item 5: a killed run's hidden pieces were never removed."""
    from awdvd.io.resumable import ORPHAN_AGE_S, owner_tag

    write_tiff(tmp_path / "in" / "good.tif", field(0))
    out = tmp_path / "out"
    out.mkdir()
    host = owner_tag().rsplit("-", 1)[0]
    dead = out / f".good.awdvd.tif.{host}-{2**22 + 12345}.k3j4.part.tif"  # no such pid on Linux (pid_max 2^22)
    dead_folder = out / f".good.awdvd.json.{host}-{2**22 + 12346}.x9.part"
    live = out / f".good.awdvd.tif.{owner_tag()}.zz.part.tif"  # this process: alive
    old_style = out / ".good.awdvd.tif.q8w7e6r5.part.tif"  # no owner (awdvd before this fix): swept once old
    recent_old_style = out / ".good.awdvd.tif.a1s2d3f4.part.tif"
    for piece in (dead, live, old_style, recent_old_style):
        piece.write_bytes(b"x" * 100)
    dead_folder.mkdir()
    (dead_folder / "chunk").write_bytes(b"x")
    stale = os.stat(old_style).st_mtime - ORPHAN_AGE_S - 60
    os.utime(old_style, (stale, stale))
    someone_else = out / ".unrelated.tif.host-1.part"  # not a piece of this batch's outputs
    someone_else.write_bytes(b"x")
    assert run_jobs(tmp_path / "in", DeconvolveJob(out_dir=out, model=model, **SMALL), workers=0).ok
    assert hidden(out) == sorted(p.name for p in (live, recent_old_style, someone_else))


def _interrupt_after(monkeypatch, n: int):
    """Make the n+1-th tile of awdvd.restore.tiling.tiled_map raise KeyboardInterrupt, as a Ctrl-C would; count tiles."""
    calls = {"n": 0}
    original = _APPLY_TILE

    def apply(*args):
        calls["n"] += 1
        if calls["n"] > n:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(awdvd.restore.tiling, "_apply_tile", apply)
    return calls


@pytest.mark.parametrize("fmt,name", [("ome-zarr", "big.awdvd.ome.zarr"), ("tiff", "big.awdvd.tif")])
def test_an_interrupted_tiled_restoration_resumes_from_its_tiles(model, tmp_path, monkeypatch, fmt, name):
    """Item 5: an interrupted tiled run left a hidden part that reruns never removed, and redid every tile."""
    write_tiff(tmp_path / "in" / "big.tif", field(3, shape=(300, 270)))
    tiled = dict(max_px=20_000, tile_px=128, output_format=fmt, dtype="input", **SMALL)
    reference = run_jobs(tmp_path / "in", DeconvolveJob(out_dir=tmp_path / "ref", model=model, **tiled), workers=0)
    assert reference.ok and reference.results[0].value["large"]
    n_tiles = 9  # 300 x 270 in 128 px tiles: 3 x 3
    out = tmp_path / "out"
    job = DeconvolveJob(out_dir=out, model=model, **tiled)
    calls = _interrupt_after(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        run_jobs(tmp_path / "in", job, workers=0)
    assert hidden(out) == [f".{name}.resume.part"] and not (out / name).exists()
    journal = (out / f".{name}.resume.part" / "tiles.txt").read_text().splitlines()
    assert len(journal) == 4
    calls = _interrupt_after(monkeypatch, n_tiles)  # counts only, from here on
    resumed = run_jobs(tmp_path / "in", job, workers=0)
    assert resumed.ok and calls["n"] == n_tiles - 4  # the 4 finished tiles were kept
    assert hidden(out) == []
    np.testing.assert_array_equal(read_image(out / name).data, read_image(tmp_path / "ref" / name).data)
    meta = json.loads((out / "big.awdvd.json").read_text())
    assert meta["parameters"]["resumed_tiles"] == 4
    assert meta["clipped_pixels"] == json.loads((tmp_path / "ref" / "big.awdvd.json").read_text())["clipped_pixels"]


def test_a_part_of_other_work_is_not_resumed(model, tmp_path, monkeypatch):
    write_tiff(tmp_path / "in" / "big.tif", field(3, shape=(300, 270)))
    tiled = dict(max_px=20_000, tile_px=128, **SMALL)
    out = tmp_path / "out"
    _interrupt_after(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        run_jobs(tmp_path / "in", DeconvolveJob(out_dir=out, model=model, **tiled), workers=0)
    write_tiff(tmp_path / "in" / "big.tif", field(4, shape=(300, 270)), overwrite=True)  # the input changed
    calls = _interrupt_after(monkeypatch, 100)
    assert run_jobs(tmp_path / "in", DeconvolveJob(out_dir=out, model=model, **tiled), workers=0).ok
    assert calls["n"] == 9 and hidden(out) == []  # every tile made again, the old part gone
