"""A file that changes while awdvd reads it (a microscope still writing it, a copy in progress): one clear line,
nothing kept for it, the other files go on; the next run restores it."""

from __future__ import annotations

import numpy as np
import pytest
from _standins import tiny_delpnet_model

from awdvd.cli import main
from awdvd.io import write_tiff

pytest.importorskip("torch")
ARGS = ["--psf-size", "15", "--iterations", "2", "--stride", "42", "--device", "cpu", "--workers", "0"]


@pytest.mark.parametrize("command", ["deconvolve", "predict"])
def test_a_file_changed_midway_keeps_nothing_and_the_rerun_restores_it(tmp_path, monkeypatch, capsys, command):
    import awdvd.batch.file_optics as file_optics

    model = tiny_delpnet_model(seed=1).save(tmp_path / "tiny.pt")
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("growing", "steady"):
        write_tiff(folder / f"{name}.tif", (rng.poisson(150, (100, 130)) + 96).astype(np.uint16), pixel_um=0.65)
    original = file_optics.file_optics

    def rewrite_growing_then_read_optics(path, *args, **kwargs):  # called once the job has read the pixels
        if path.name == "growing.tif":
            write_tiff(path, np.full((100, 130), 500, np.uint16), pixel_um=0.65, overwrite=True)
        return original(path, *args, **kwargs)

    for module in ("awdvd.batch.jobs", "awdvd.batch.predict_job"):
        if hasattr(__import__(module, fromlist=["x"]), "file_optics"):
            monkeypatch.setattr(f"{module}.file_optics", rewrite_growing_then_read_optics)
    out = tmp_path / "out"
    extra = ARGS if command == "deconvolve" else ARGS[4:]
    assert main([command, str(folder), "-o", str(out), "--model", str(model), *extra]) != 0
    err = capsys.readouterr().err
    assert "growing.tif changed while awdvd read it" in err and "run again once the file is complete" in err
    assert not list(out.glob("growing.*")) and list(out.glob("steady.*"))
    monkeypatch.undo()
    assert main([command, str(folder), "-o", str(out), "--model", str(model), *extra]) == 0
    assert list(out.glob("growing.*"))
