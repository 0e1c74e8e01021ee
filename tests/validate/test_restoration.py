"""Restoration evaluation: specimens with known levels, the seam measure, patch and whole-image reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _standins import RuleModel

from awdvd.data.synth import tilted_specimen
from awdvd.physics.optics import Optics
from awdvd.physics.psf import psf_bank
from awdvd.restore.windows import window_levels_from_pixels
from awdvd.validate.restoration import case_i_boundaries, evaluate_patches, evaluate_whole_image, seam_ratio


def cells(shape, seed=0):
    """Nucleus-like blobs on a 120 ADU background, in ADU."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.full(shape, 120.0)
    for _ in range(shape[0] * shape[1] // 900):
        cy, cx, r = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(4, 9)
        out += rng.uniform(300, 1500) / (1 + np.exp(np.hypot(yy - cy, xx - cx) - r))
    return out.astype(np.float32)


@pytest.fixture(scope="module")
def bank():
    return psf_bank(Optics(), size=15)


def test_tilted_specimen_levels_rise_across_the_field():
    spec = tilted_specimen(cells((90, 121)), psf_size=15, seed=1)
    assert spec.observed.shape == spec.truth.shape == spec.levels.shape == (90, 121)
    assert spec.observed.dtype == np.float32
    assert spec.levels[:, 0].max() == 0 and spec.levels[:, -1].min() == 10
    assert np.all(np.diff(spec.levels[0]) >= 0) and np.all(spec.levels == spec.levels[:1])
    assert set(np.unique(spec.levels)) == set(range(11))
    again = tilted_specimen(cells((90, 121)), psf_size=15, seed=1)
    np.testing.assert_array_equal(again.observed, spec.observed)  # seeded
    grid = window_levels_from_pixels(spec.levels, stride=21)
    assert grid.shape == (2, 3) and list(grid[0]) == [spec.levels[0, 42], spec.levels[0, 63], spec.levels[0, 79]]
    with pytest.raises(ValueError):
        tilted_specimen(cells((90, 121)), first_level=5, last_level=2)


def test_seam_ratio_sees_steps_at_window_boundaries():
    np.testing.assert_array_equal(case_i_boundaries(696), [84, 168, 252, 336, 420, 504, 588, 612, 672])
    np.testing.assert_array_equal(case_i_boundaries(168), [84])
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, (168, 252))
    by, bx = case_i_boundaries(168), case_i_boundaries(252)
    assert 0.8 < seam_ratio(noise, boundaries_y=by, boundaries_x=bx) < 1.2
    blocks = noise + np.kron(rng.normal(0, 3, (2, 3)), np.ones((84, 84)))  # per-block offsets: seams
    assert seam_ratio(blocks, boundaries_y=by, boundaries_x=bx) > 3
    with pytest.raises(ValueError):
        seam_ratio(np.ones((1, 5)), boundaries_y=[], boundaries_x=[1])


def test_patch_evaluation_report(bank, tmp_path):
    from awdvd.data.synth import DatasetSpec, make_patch_dataset

    splits, _ = make_patch_dataset([cells((100, 120), seed=s) for s in (1, 2)],
                                   spec=DatasetSpec(crops_per_image=2, psf_size=15, fractions=(0.0, 0.0, 1.0)))
    report = evaluate_patches(splits["test"], bank, model=RuleModel(step=150.0), per_level=3, iterations=3,
                              include_background=True)
    rows = report["levels"]
    assert [r["level"] for r in rows] == list(range(11)) and all(r["n"] == 3 for r in rows)
    assert rows[0]["psnr"]["noisy"]["paper_65535"]["n_infinite"] == 3  # level 0 is the in-focus patch itself
    for row in rows[1:]:
        assert set(row["psnr_gain_db"]) == {"variant_true", "invariant", "variant_predicted"}
        for name, gain in row["psnr_gain_db"].items():
            noisy = row["psnr"]["noisy"]["truth_range"]["mean"]
            # the gain does not depend on the data range
            assert gain == pytest.approx(row["psnr"][name]["truth_range"]["mean"] - noisy, abs=1e-9)
        assert 0 < row["ssim"]["variant_true"]["truth_range"]["mean"] <= 1
    # three patches that gain differently at level 10 give an interval that is not zero
    assert rows[10]["psnr_gain_ci95_db"]["variant_true"] > 0
    from awdvd.validate.restoration import _paired_ci95

    # 1.96 x sample std / sqrt(n) of the per-patch differences; infinite pairs (copies) are left out
    assert _paired_ci95(np.array([11.0, 12.0, 13.0, np.inf]), np.array([10.0, 10.0, 10.0, 5.0])) == \
        pytest.approx(1.96 / np.sqrt(3))
    assert _paired_ci95(np.array([1.0]), np.array([0.0])) is None
    json.dumps(report, allow_nan=False)


def test_whole_image_report(bank, tmp_path):
    spec = tilted_specimen(cells((100, 180), seed=3), psf_size=15, seed=2)
    report = evaluate_whole_image(spec, bank, strides=(42,), iterations=4, keep_images=True)
    by_name = {r["name"]: r for r in report["results"]}
    assert set(by_name) == {"observed", "invariant_level0", "case_i_true", "case_ii_true", "fast_s42_true"}
    # fast's RLs take the outside of the image as unknown (the plan's default boundary), patchwise mirrors it, as
    # this specimen's forward model does: they differ near the edges, by up to 0.1 dB over the whole image
    assert abs(by_name["fast_s42_true"]["psnr_truth_range"] - by_name["case_ii_true"]["psnr_truth_range"]) < 0.15
    assert by_name["case_ii_true"]["psnr_truth_range"] > by_name["observed"]["psnr_truth_range"]
    del report["images"]
    json.dumps(report, allow_nan=False)


def test_whole_image_report_uses_the_models_windows(bank):
    """A 32 px model: case (i) at stride 32, case (ii) at 16, windows of 32 px for the true levels too."""
    small = RuleModel(step=150.0)
    small.patch_px = 32
    spec = tilted_specimen(cells((64, 96), seed=6), psf_size=15, seed=3)
    report = evaluate_whole_image(spec, bank, model=small, iterations=2)
    by_name = {r["name"]: r for r in report["results"]}
    assert report["settings"]["patch_px"] == 32 and report["settings"]["strides"] == [16, 8, 8]
    assert by_name["case_i_true"]["stride"] == 32 and by_name["case_ii_model"]["stride"] == 16
    assert report["settings"]["offset"] == pytest.approx(np.percentile(spec.observed, 1))  # "auto", resolved once
    with pytest.raises(ValueError, match="larger than the model's 32 px windows"):
        evaluate_whole_image(spec, bank, model=small, strides=(42,), iterations=1)


def test_cli_evaluate_restoration(tmp_path, capsys):
    from awdvd.cli import main
    from awdvd.data.datasets import write_dataset
    from awdvd.data.synth import DatasetSpec, make_patch_dataset
    from awdvd.io import write_tiff

    splits, meta = make_patch_dataset([cells((100, 120), seed=4)],
                                      spec=DatasetSpec(crops_per_image=1, psf_size=15, fractions=(0.0, 0.0, 1.0)))
    write_dataset(tmp_path / "ds", splits, meta)
    write_tiff(tmp_path / "focus.tif", (cells((90, 130), seed=5)).astype(np.uint16))
    out = tmp_path / "eval"
    args = ["evaluate-restoration", "-o", str(out), "--dataset", str(tmp_path / "ds"), "--in-focus",
            str(tmp_path / "focus.tif"), "--iterations", "2", "--psf-size", "15", "--per-level", "1", "--strides", "42"]
    assert main(args) == 0
    for name in ("patches.json", "patches.png", "whole.json", "whole.png"):
        assert (out / name).is_file()
    whole = json.loads((out / "whole.json").read_text())["images"][0]["settings"]
    assert whole["iterations"] == 2 and whole["offset"] > 0  # the default offset is "auto", as everywhere
    patches = json.loads((out / "patches.json").read_text())["settings"]
    assert patches["offset"].startswith("auto") and patches["iterations"] == [2] * 11
    assert patches["dataset"].endswith("(test split)")
    assert main(args) == 1 and "exists" in capsys.readouterr().err
    assert main(["evaluate-restoration", "-o", str(out)]) == 1
    assert main(args + ["--overwrite", "--offset", "0"]) == 0
    assert json.loads((out / "whole.json").read_text())["images"][0]["settings"]["offset"] == 0
    # another split is scored when asked; this dataset's val split holds no patch: one line, nothing written
    before = (out / "patches.json").read_bytes()
    capsys.readouterr()
    assert main(args + ["--overwrite", "--split", "val"]) == 1
    assert "the val split of" in capsys.readouterr().err and (out / "patches.json").read_bytes() == before


DATA = __import__("pathlib").Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bbbc006"
needs_data = pytest.mark.skipif(not (DATA / "in_focus").is_dir(),
                                reason=f"BBBC006 sample not found at {DATA} (../shared/data/bbbc006)")


@needs_data
def test_real_image_restoration_beats_the_observation_and_the_baseline():
    """A 200 x 260 crop of a real in-focus image, tilted 3 -> 8: depth-variant RL with the true levels gains
    PSNR over the observation and over the depth-invariant (level-0 PSF) baseline."""
    from awdvd.data.datasets import load_in_focus_images

    images, _ = load_in_focus_images(DATA / "in_focus")
    crop = images[0][150:350, 200:460]
    spec = tilted_specimen(crop, psf_size=31, seed=0, first_level=3, last_level=8)
    bank = psf_bank(Optics(), size=31)
    report = evaluate_whole_image(spec, bank, strides=(42,), iterations=15)
    by_name = {r["name"]: r for r in report["results"]}
    assert by_name["fast_s42_true"]["psnr_truth_range"] > by_name["observed"]["psnr_truth_range"] + 1.0
    assert by_name["fast_s42_true"]["psnr_truth_range"] > by_name["invariant_level0"]["psnr_truth_range"] + 1.0
    # fast's RLs take the outside of the image as unknown (the plan's default boundary), patchwise mirrors it, as
    # this specimen's forward model does: they differ near the edges, by up to 0.1 dB over the whole image
    assert abs(by_name["fast_s42_true"]["psnr_truth_range"] - by_name["case_ii_true"]["psnr_truth_range"]) < 0.15
    assert by_name["case_i_true"]["seam_ratio_error"] > by_name["case_ii_true"]["seam_ratio_error"]


@needs_data
@pytest.mark.slow
def test_full_size_tilted_specimen_fast_equals_patchwise():
    """The benchmark's setting (696 x 520, 61 px PSFs, 30 iterations) at stride 42."""
    from awdvd.data.datasets import load_in_focus_images

    images, _ = load_in_focus_images(DATA / "in_focus")
    spec = tilted_specimen(images[0], psf_size=61, seed=0)
    report = evaluate_whole_image(spec, psf_bank(Optics(), size=61), strides=(42,), iterations=30)
    by_name = {r["name"]: r for r in report["results"]}
    # fast's RLs take the outside of the image as unknown (the plan's default boundary), patchwise mirrors it, as
    # this specimen's forward model does: they differ near the edges, by up to 0.1 dB over the whole image
    assert abs(by_name["fast_s42_true"]["psnr_truth_range"] - by_name["case_ii_true"]["psnr_truth_range"]) < 0.15
    assert by_name["case_i_true"]["seam_ratio_error"] > 1.3 > by_name["case_ii_true"]["seam_ratio_error"]


def test_image_range_models_read_patches_with_their_images_range(bank):
    """An image-range model classifies a test patch with its synthetic image's range (PatchSet.image_range), as
    `awdvd evaluate` does: without it every patch would be normalised on its own (the bundled model then called
    a sixth of the level-0 patches level 10)."""
    from awdvd.data.synth import DatasetSpec, make_patch_dataset

    splits, _ = make_patch_dataset([cells((100, 120), seed=s) for s in (1, 2)],
                                   spec=DatasetSpec(crops_per_image=2, psf_size=15, fractions=(0.0, 0.0, 1.0)))
    test = splits["test"]
    seen = []

    class RangeModel(RuleModel):
        normalization = "image-range"

        def predict_patches(self, patches, *, return_proba=False, batch_size=256, value_range=None):
            seen.append(value_range)
            return super().predict_patches(patches, return_proba=return_proba, batch_size=batch_size)

    evaluate_patches(test, bank, model=RangeModel(step=150.0), per_level=2, iterations=1)
    assert seen and all(r is not None and np.ndim(r) == 2 and np.shape(r)[1] == 2 for r in seen)
    known = {tuple(np.round(row, 3)) for row in np.asarray(test.image_range)}
    assert all(tuple(np.round(row, 3)) in known for r in seen for row in np.asarray(r))
