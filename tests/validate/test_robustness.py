"""The robustness matrix: windows of held-out fields x cameras x levels, and maps of tilted specimens."""

import json

import numpy as np
import pytest
from _standins import tiny_exact_model

from awdvd.data.patches import BACKGROUND
from awdvd.data.synth import synthetic_nuclei
from awdvd.data.training_stream import PAPER_CAMERAS, Camera
from awdvd.physics.optics import Optics
from awdvd.validate.robustness import (
    foreground_windows,
    level_matrix,
    map_matrix,
    robustness_markdown,
    summarise_levels,
    tilted_observation,
    worst_case,
)


@pytest.fixture(scope="module")
def field():
    return synthetic_nuclei((140, 180), n_nuclei=12, seed=5)


def test_summary_counts_background_calls_as_wrong():
    truth = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    predicted = np.array([0, 1, 1, BACKGROUND, 2, 4, 3, 1])
    s = summarise_levels(truth, predicted, 5)
    assert s["top1"] == pytest.approx(4 / 8)
    assert s["within1"] == pytest.approx(5 / 8)  # not bg and |error| <= 1: 2->4 and 3->1 are off by 2
    assert s["background_calls"] == pytest.approx(1 / 8)
    assert s["mean_abs_error"] == pytest.approx((0 + 1 + 0 + 0 + 2 + 0 + 2) / 7)
    assert s["per_level_top1"] == {"0": 0.5, "1": 0.5, "2": 0.5, "3": 0.5}


def test_foreground_windows_hold_cells(field):
    ys, xs = foreground_windows(field, 20, seed=1)
    assert len(ys) == 20
    for y, x in zip(ys, xs):
        window = field[y : y + 84, x : x + 84]
        assert window.max() >= 230 or np.ptp(window) >= 30
    with pytest.raises(ValueError, match="foreground windows"):
        foreground_windows(np.full((100, 100), 100.0), 3, max_tries=200)


def test_foreground_windows_skip_noise_and_hot_pixels():
    """An empty field 30 ADU above the offset with shot noise and hot pixels passes the paper's range rule
    (max - min >= 30) but holds no cells: no window of it is foreground; a nucleus makes its windows count."""
    rng = np.random.default_rng(0)
    empty = 96.0 + rng.poisson(30 / 0.33, (200, 200)) * 0.33
    empty[::17, ::23] += 60.0  # hot pixels
    assert np.ptp(empty[:84, :84]) >= 30
    with pytest.raises(ValueError, match="found only 0"):
        foreground_windows(empty, 1, max_tries=500)
    yy, xx = np.mgrid[:200, :200]
    cell = empty + 400.0 * (np.hypot(yy - 100, xx - 100) < 12)
    ys, xs = foreground_windows(cell, 5, seed=2)
    assert all(y <= 112 and y + 83 >= 88 and x <= 112 and x + 83 >= 88 for y, x in zip(ys, xs))


def test_tilted_observation_has_every_level_in_bands(field):
    observed, levels = tilted_observation(field, Camera(noiseless=True, offset_adu=96.0), optics=Optics(n_levels=4),
                                          psf_size=31)
    assert observed.shape == field.shape and levels.shape == field.shape
    assert list(np.unique(levels)) == [0, 1, 2, 3]
    assert np.all(np.diff(levels[0]) >= 0)  # rising left to right
    # level 0 is left as it is, away from the next band (by more than the 31 px PSF's radius)
    np.testing.assert_allclose(observed[:, :25], field[:, :25], atol=1e-3)


def test_level_matrix_shape_and_reproducibility(field):
    model = tiny_exact_model(0)
    cameras = {k: PAPER_CAMERAS[k] for k in ("bbbc006", "noiseless")}
    a = level_matrix(model, {"f": field}, cameras=cameras, per_level=4, psf_size=31)
    b = level_matrix(model, {"f": field}, cameras=cameras, per_level=4, psf_size=31)
    assert a["cameras"] == b["cameras"]
    assert set(a["cameras"]) == set(cameras) and set(a["fields"]) == {"f"}
    assert a["cameras"]["bbbc006"]["n"] == 4 * 11
    for s in a["cameras"].values():
        assert 0.0 <= s["top1"] <= s["within1"] + s["background_calls"] + 1e-9
    camera, value = worst_case(a)
    assert value == min(s["top1"] for s in a["cameras"].values())
    table = robustness_markdown({"tiny": a})
    assert table.count("\n") == 2 + len(cameras) and "| tiny | bbbc006 |" in table


def test_map_matrix_scores_maps_and_restorations(field):
    model = tiny_exact_model(0)
    result = map_matrix(model, {"f": field}, cameras={"bbbc006": PAPER_CAMERAS["bbbc006"]})
    row = result["cameras"]["bbbc006"]["fields"][0]
    assert 0.0 <= row["exact"] <= row["within1"] + row["background_calls"] + 1e-9 <= 1.0 + 1e-9
    for key in ("psnr_recorded", "psnr_awdvd_model_map", "psnr_awdvd_true_levels"):
        assert np.isfinite(row[key])
    assert result["settings"]["options"]["stride"] == 42


def test_cli_writes_the_matrix(tmp_path, field):
    from awdvd.cli import main
    from awdvd.io import write_tiff

    model_path = tmp_path / "tiny.pt"
    tiny_exact_model(0).save(model_path)
    write_tiff(tmp_path / "field.tif", field.astype(np.uint16))
    out = tmp_path / "out"
    args = ["evaluate-robustness", str(model_path), "--fields", str(tmp_path / "field.tif"), "-o", str(out),
            "--procedural", "0", "--per-level", "2", "--no-maps"]
    assert main(args) == 0
    text = (out / "robustness.md").read_text()
    assert "| tiny | paper-eq1 |" in text and "held-out in-focus fields" in text
    assert main(args) == 1  # the results exist: refused before any work
    assert main(args + ["--overwrite", "--cameras", "unseen"]) == 0
    text = (out / "robustness.md").read_text()
    assert "| tiny | gain8-dim |" in text and "| tiny | paper-eq1 |" not in text and "UNSEEN_CAMERAS" in text
    cameras = json.loads((out / "robustness.json").read_text())["tiny"]["fields"]["settings"]["cameras"]
    assert set(cameras) == {"offset1000-read12", "gain8-dim", "bright-x6"}
    assert main(["evaluate-robustness", str(model_path), "-o", str(tmp_path / "o2"), "--procedural", "0"]) == 1
