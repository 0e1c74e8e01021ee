"""`awdvd predict` of a z-stack: a depth map per plane, the best-focus plane per region, a QC row per plane;
`awdvd deconvolve` refuses it with the reason."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile

from awdvd.cli import main

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Three planes of one procedural field: 12 um out of focus, in focus, 12 um out of focus on the other side."""
    from awdvd.data.synth import CameraNoise, blur_levels, forward_bank, synthetic_nuclei
    from awdvd.physics.optics import Optics

    folder = tmp_path_factory.mktemp("stack")
    field = synthetic_nuclei((200, 260), n_nuclei=14, seed=4)
    deep = blur_levels(field, forward_bank(Optics(), size=61)[6:7])[0]
    rng = np.random.default_rng(0)
    planes = [CameraNoise().apply(p, rng) for p in (deep, field, deep)]
    tifffile.imwrite(folder / "zstack.tif", np.stack(planes).astype(np.uint16), imagej=True,
                     resolution=(1 / 0.65, 1 / 0.65), metadata={"axes": "ZYX", "unit": "um"})
    return folder


def test_predict_maps_every_plane_and_finds_the_focus(stack, tmp_path, capsys):
    out = tmp_path / "maps"
    argv = ["predict", str(stack / "zstack.tif"), "-o", str(out), "--na", "0.5", "--wavelength-um", "0.451",
            "--immersion-n", "1.0", "--workers", "0"]
    assert main(argv) == 0
    meta = json.loads((out / "zstack.defocus.json").read_text())
    assert meta["planes_in_stack"] == 3 and meta["planes"][-1] == "best_focus_plane"
    maps = tifffile.imread(out / "zstack.defocus.tif")
    assert maps.shape[0] == len(meta["planes"])
    best = np.array(meta["best_focus_plane"])
    assert np.mean(best[best >= 0] == 1) > 0.8  # the middle plane is the sharp one
    depth = {z: maps[meta["planes"].index(f"z={z} depth_um")] for z in range(3)}
    assert np.nanmedian(depth[1]) < 2.5 < 8 < np.nanmedian(depth[0])
    with open(out / "awdvd-predict-focus.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["image"] for r in rows] == ["zstack.tif[z=0]", "zstack.tif[z=1]", "zstack.tif[z=2]"]
    assert rows[1]["verdict"] == "in focus" and rows[0]["verdict"] != "in focus"
    assert not (out / "zstack.defocus.png").exists()
    assert main(argv) == 0 and "1 skipped" in capsys.readouterr().out  # a rerun knows it is done


def test_deconvolve_refuses_a_stack_with_the_reason(stack, tmp_path, capsys):
    assert main(["deconvolve", str(stack / "zstack.tif"), "-o", str(tmp_path / "r"), "--workers", "0"]) != 0
    assert "needs 3-D deconvolution" in capsys.readouterr().err
