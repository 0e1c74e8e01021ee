"""awdvd.plots: the figures are written (atomically, never over an existing file unless asked), as PNGs of the
expected size, from the reports and maps the library makes."""

from __future__ import annotations

import numpy as np
import pytest

from awdvd.plots import defocus_overlay, plot_patch_metrics, plot_whole_image, psf_montage
from awdvd.windows import DefocusMap, window_starts


def png_shape(path) -> tuple[int, ...]:
    import imageio.v3 as iio

    image = iio.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4) and image.std() > 0  # a colour figure, not blank
    return image.shape


@pytest.fixture(scope="module")
def dmap() -> DefocusMap:
    ys, xs = window_starts(168, stride=42), window_starts(252, stride=42)
    levels = (np.arange(len(ys))[:, None] + np.arange(len(xs))[None, :]) % 11
    levels[0, 0] = -1
    return DefocusMap.from_levels(levels, (168, 252), stride=42, patch_px=84, n_levels=11)


def test_defocus_overlay(tmp_path, dmap):
    image = np.random.default_rng(0).poisson(300, (168, 252)).astype(np.float32)
    path = defocus_overlay(image, dmap, tmp_path / "map.png", depths_um=[2.0 * i for i in range(11)])
    h, w = png_shape(path)[:2]
    assert w > 600 and 0.4 < h / w < 1.0  # an 8 in wide figure at 120 dpi, the image's aspect plus a colourbar
    with pytest.raises(FileExistsError):
        defocus_overlay(image, dmap, path)
    assert defocus_overlay(image, dmap, path, overwrite=True, title="again") == path


def test_whole_image_figure(tmp_path):
    rng = np.random.default_rng(1)
    images = {name: rng.random((120, 150)).astype(np.float32) for name in ("truth", "observed", "case_i_true")}
    report = {"images": images,
              "results": [{"name": "observed", "psnr_truth_range": 20.0, "seam_ratio_error": 1.0},
                          {"name": "case_i_true", "psnr_truth_range": 25.5, "seam_ratio_error": 1.4}]}
    path = plot_whole_image(report, tmp_path / "whole.png", names=("truth", "observed", "case_i_true", "absent"))
    h, w = png_shape(path)[:2]
    assert w > 2.5 * h > 300  # three panels side by side (the absent name is skipped)


def test_patch_metrics_figure(tmp_path):
    def summary(value):
        return {"paper_65535": {"mean": value}, "truth_range": {"mean": value}}

    rows = [{"level": level, "n": 3,
             "psnr_gain_db": {"variant_true": 0.5 * level, "invariant": 0.1 * level},
             "ssim": {"noisy": summary(0.5), "variant_true": summary(0.6), "invariant": summary(0.55)},
             "ssim_ratio": {"truth_range": {"variant_true": 1.2, "invariant": 1.1},
                            "paper_65535": {"variant_true": 1.0, "invariant": 1.0}}}
            for level in range(1, 4)]
    path = plot_patch_metrics({"levels": [{"level": 0, "n": 0}] + rows}, tmp_path / "patches.png")
    h, w = png_shape(path)[:2]
    assert w > 2 * h > 300


def test_psf_montage(tmp_path):
    from awdvd import Optics, psf_bank

    path = psf_montage(psf_bank(Optics(n_levels=3), size=15), [0.0, 2.0, 4.0], tmp_path / "psfs.png")
    h, w = png_shape(path)[:2]
    assert w > h > 100
