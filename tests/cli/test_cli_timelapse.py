"""Time-lapses (a T axis): `awdvd deconvolve` frame by frame into one OME-TIFF with its T axis, resumable;
`awdvd predict` a map and a QC row per frame; --time-smoothing combines neighbouring frames' maps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from _standins import tiny_delpnet_model

from awdvd.cli import main
from awdvd.io.channels import read_frame, stack_axis

pytest.importorskip("torch")
ARGS = ["--psf-size", "15", "--iterations", "3", "--stride", "42", "--device", "cpu", "--workers", "0",
        "--na", "0.5", "--wavelength-um", "0.451", "--immersion-n", "1.0"]


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    root = tmp_path_factory.mktemp("movie")
    model = tiny_delpnet_model(seed=2).save(root / "tiny.pt")
    rng = np.random.default_rng(3)
    frames = (rng.poisson(150, size=(4, 100, 130)) + 96).astype(np.uint16)
    for t in range(4):
        frames[t, 30:50, 40 + 5 * t:70 + 5 * t] += 2500
    folder = root / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "movie.tif", frames, imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                     metadata={"axes": "TYX", "unit": "um"})
    return root, model, folder, frames


def test_deconvolve_restores_every_frame_into_one_time_lapse(movie, tmp_path):
    from awdvd import deconvolve, load_model

    root, model, folder, frames = movie
    out = tmp_path / "out"
    assert main(["deconvolve", str(folder), "-o", str(out), "--model", str(model), *ARGS]) == 0
    target = out / "movie.awdvd.ome.tif"
    assert stack_axis(target) == "T"
    restored = tifffile.imread(target)
    assert restored.shape == frames.shape and restored.dtype == np.float32
    # each frame is what the library gives for that frame alone (no time smoothing)
    alone = deconvolve(frames[2], load_model(model), iterations=3, stride=42, psf_size=15)
    np.testing.assert_allclose(restored[2], alone, rtol=1e-5, atol=1e-3)
    meta = json.loads((out / "movie.awdvd.json").read_text())
    assert meta["parameters"]["frames"] == 4 and len(meta["level_grids"]) == 4
    assert not list(out.glob(".*resume*"))  # the resumable part is gone once the file is done


def test_a_stopped_time_lapse_goes_on_from_the_frames_done(movie, tmp_path, monkeypatch):
    from awdvd.batch import timelapse_files

    root, model, folder, frames = movie
    out = tmp_path / "out"
    calls = []
    real = timelapse_files.restore_image

    def stop_at_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(timelapse_files, "restore_image", stop_at_third)
    assert main(["deconvolve", str(folder), "-o", str(out), "--model", str(model), *ARGS]) != 0  # Ctrl-C
    assert not (out / "movie.awdvd.ome.tif").exists()
    monkeypatch.setattr(timelapse_files, "restore_image", real)
    assert main(["deconvolve", str(folder), "-o", str(out), "--model", str(model), *ARGS]) == 0
    meta = json.loads((out / "movie.awdvd.json").read_text())
    assert meta["parameters"]["resumed_frames"] == 2
    fresh = tmp_path / "fresh"
    assert main(["deconvolve", str(folder), "-o", str(fresh), "--model", str(model), *ARGS]) == 0
    np.testing.assert_array_equal(tifffile.imread(out / "movie.awdvd.ome.tif"),
                                  tifffile.imread(fresh / "movie.awdvd.ome.tif"))


def test_predict_gives_a_row_per_frame_and_smooths_over_time(movie, tmp_path):
    root, model, folder, _ = movie
    out = tmp_path / "maps"
    assert main(["predict", str(folder), "-o", str(out), "--model", str(model), "--time-smoothing", "1",
                 *ARGS[6:]]) == 0
    meta = json.loads((out / "movie.defocus.json").read_text())
    assert meta["stack_axis"] == "t" and meta["time_smoothing_frames"] == 1
    assert [row["image"] for row in meta["focus_qc"]] == [f"movie.tif[t={t}]" for t in range(4)]
    assert read_frame(folder / "movie.tif", 3).shape == (100, 130)
