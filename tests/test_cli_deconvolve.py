"""`awdvd deconvolve` and `awdvd predict` end to end with a tiny random-init model file, and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from awdvd.cli import main
from awdvd.io import read_image, write_tiff

from _standins import tiny_delpnet_model

pytest.importorskip("torch")


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
            "--iterations", "5", "--stride", "21", "--device", "cpu"]
    assert main(args) == 0
    for name in ("a", "b"):
        restored = read_image(out / f"{name}.awdvd.tif")
        original = read_image(inputs / f"{name}.tif").data
        assert restored.data.shape == original.shape and restored.data.dtype == np.float32
        assert restored.pixel_um == pytest.approx(0.65)
        meta = json.loads((out / f"{name}.awdvd.json").read_text())
        assert meta["parameters"]["stride"] == 21 and meta["parameters"]["psf_size"] == 15
        assert sum(meta["levels_used"].values()) == np.size(meta["level_grid"])
        assert set(meta["timings_s"]) == {"psf_bank", "defocus_map", "deconvolution"}
    # existing outputs are kept unless --overwrite
    assert main(args) == 1
    assert "exists" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--dtype", "input", "--method", "patchwise", "--weighting", "rectangular",
                        "--stride", "84"]) == 0
    assert read_image(out / "a.awdvd.tif").data.dtype == np.uint16
    meta = json.loads((out / "a.awdvd.json").read_text())
    assert meta["parameters"]["method"] == "patchwise" and isinstance(meta["clipped_pixels"], int)


def test_predict_end_to_end(workspace):
    root, model_path, inputs = workspace
    out = root / "maps"
    assert main(["predict", str(inputs / "a.tif"), "-o", str(out), "--model", str(model_path), "--stride", "42",
                 "--device", "cpu"]) == 0
    planes = read_image(out / "a.defocus.tif").data
    meta = json.loads((out / "a.defocus.json").read_text())
    assert planes.shape == (13, len(meta["window_rows"]), len(meta["window_cols"]))
    np.testing.assert_allclose(planes[1:].sum(axis=0), 1.0, rtol=1e-5)
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
    argv = [a.format(inputs=inputs, root=root, model=model_path) for a in args]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    if message is None:  # writing into the input folder is fine as long as no input is replaced
        assert code == 0
        return
    assert code == 1 and len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_outputs_never_replace_inputs(tmp_path):
    from awdvd.cli._outputs import plan_outputs

    source = tmp_path / "x.tif"
    source.write_bytes(b"")
    with pytest.raises(ValueError, match="replace an input"):
        plan_outputs([source], tmp_path, {"tiff": ".tif"}, overwrite=True)
    with pytest.raises(ValueError, match="same outputs"):
        plan_outputs([tmp_path / "a" / "s.tif", tmp_path / "b" / "s.tif"], tmp_path, {"tiff": ".awdvd.tif"},
                     overwrite=True)


def test_bad_stride_is_a_usage_error(workspace, capsys):
    root, model_path, inputs = workspace
    with pytest.raises(SystemExit) as exit_info:
        main(["deconvolve", str(inputs), "-o", str(root / "x"), "--stride", "85"])
    assert exit_info.value.code == 2
    assert "between 1 and the window size" in capsys.readouterr().err
