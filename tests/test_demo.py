"""The bundled example end to end, with a randomly initialised model (the pipeline, not the model's skill)."""

import json

import numpy as np
import pytest
import tifffile

from awdvd.cli import main
from awdvd.demo import run_demo
from awdvd.io import read_image


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import torch

    from awdvd import Optics
    from awdvd.learn.model import DefocusModel, DelpNetConfig, build_delpnet

    torch.manual_seed(0)
    network = build_delpnet(DelpNetConfig(widths=(4, 8, 8, 8, 8, 8, 8)))
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    DefocusModel(network, optics=Optics(), class_levels=list(range(11)) + [-1], info={"name": "tiny"}).save(path)
    return path


def test_demo_writes_everything(tmp_path, model_file):
    summary = run_demo(tmp_path, model=model_file, progress=False)
    for name in ("recorded", "awdvd", "invariant", "truth", "true_levels"):
        image = read_image(tmp_path / f"{name}.tif")
        assert image.data.shape == (520, 696) and image.pixel_um == pytest.approx(0.65)
    assert (tmp_path / "demo.png").stat().st_size > 10_000 and (tmp_path / "defocus_map.png").exists()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["quality_vs_truth"]) >= {"recorded", "depth_invariant", "awdvd"}
    assert 0 <= metrics["window_levels"]["foreground_windows"] <= 12 * 16
    levels = read_image(tmp_path / "true_levels.tif").data
    assert levels[:, 0].max() == 0 and levels[:, -1].min() == 10  # every level, rising left to right
    assert summary["outputs"]["figure"].endswith("demo.png")
    restored = read_image(tmp_path / "awdvd.tif").data
    assert np.isfinite(restored).all() and restored.min() >= 0
    with pytest.raises(FileExistsError, match="overwrite"):
        run_demo(tmp_path, model=model_file, progress=False)


def test_demo_with_a_deeper_model_still_tilts_over_the_papers_levels(tmp_path):
    """A range-extended model (the bundled one reads 0-40 um) restores the same 0-20 um specimen, with its own
    21-level PSFs and map."""
    from _standins import tiny_range_extended_model

    path = tiny_range_extended_model().save(tmp_path / "extended.pt")
    run_demo(tmp_path / "out", model=path, progress=False)
    levels = read_image(tmp_path / "out" / "true_levels.tif").data
    assert levels[:, 0].max() == 0 and levels[:, -1].min() == 10 and levels.max() == 10
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["quality_vs_truth"]["recorded"]["psnr_db"] > 0


def test_demo_on_a_real_image(tmp_path, model_file):
    path = tmp_path / "real.tif"
    tifffile.imwrite(path, (np.random.default_rng(0).poisson(200, (100, 130)) + 100).astype(np.uint16))
    assert main(["demo", "-o", str(tmp_path / "out"), "--model", str(model_file), "--image", str(path)]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert "quality_vs_truth" not in metrics and not (tmp_path / "out" / "truth.tif").exists()


def test_demo_without_a_model_file_is_one_clear_error(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--model", str(tmp_path / "missing.pt")]) == 1
    assert "no such model file" in capsys.readouterr().err


def test_demo_without_a_bundled_model_uses_the_true_levels_and_says_so(tmp_path, monkeypatch, capsys):
    import awdvd.demo

    monkeypatch.setattr(awdvd.demo, "bundled_model_path", lambda: tmp_path / "none.pt")
    assert main(["demo", "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "true levels" in out and "no bundled model" in out
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert "window_levels" not in metrics  # no prediction was made, so no level accuracy is claimed
    quality = metrics["quality_vs_truth"]
    assert quality["awdvd"]["psnr_db"] > quality["recorded"]["psnr_db"] + 3  # true levels: a clear gain


def test_demo_figure_has_a_scale_bar_a_zoom_caption_and_both_level_maps(tmp_path, model_file, monkeypatch):
    """Issue 15 item 12: demo.png had no scale bar, no caption for its zoom row, no true level map."""
    import awdvd.demo
    import awdvd.plots

    figures = {}

    def keep(fig, path, *, overwrite=False, dpi=120):
        figures[str(path).rsplit("/", 1)[-1]] = fig
        return path

    monkeypatch.setattr(awdvd.demo, "save_figure", keep)  # demo.png
    monkeypatch.setattr(awdvd.plots, "save_figure", keep)  # the figures awdvd.plots saves itself
    run_demo(tmp_path, model=model_file, progress=False)
    fig = figures["demo.png"]
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("predicted levels") for t in titles) and "true levels" in titles
    captions = [t.get_text() for t in fig.texts]
    assert any(c.startswith("zoom into the yellow box") and "true levels" in c for c in captions)
    bars = [t.get_text() for ax in fig.axes for t in ax.texts if "µm" in t.get_text()]
    assert "50 µm" in bars and "20 µm" in bars  # 696 px x 0.65 um / 5 = 90 um: 50 um bars; the 160 px zooms: 20 um
    assert any("µm" in t.get_text() for t in figures["defocus_map.png"].axes[0].texts)
