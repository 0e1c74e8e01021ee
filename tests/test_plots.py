"""awdvd.plots: the figures are written (atomically, never over an existing file unless asked), as PNGs of the
expected size, from the reports and maps the library makes."""

from __future__ import annotations

import numpy as np
import pytest

from awdvd.plots import defocus_overlay, plot_patch_metrics, plot_whole_image, psf_montage
from awdvd.restore.windows import DefocusMap, window_starts


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


# --------------------------------------------------------------------------------------------- issue 15, item 12
@pytest.fixture
def drawn(monkeypatch):
    """Figures drawn but not saved: [(figure, RGBA canvas)] of every figure awdvd.plots would have written."""
    import awdvd.plots

    figures = []

    def keep(fig, path, *, overwrite=False, dpi=120):
        fig.set_dpi(dpi)
        fig.canvas.draw()
        figures.append((fig, np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float) / 255))
        return path

    monkeypatch.setattr(awdvd.plots, "save_figure", keep)
    return figures


def _pixel(fig, canvas, ax, x, y):
    """The canvas colour at data point (x, y) of ``ax``."""
    px, py = ax.transData.transform((x, y))
    return canvas[int(round(canvas.shape[0] - py)), int(round(px))]


def test_background_is_hatched_over_the_image_not_hidden(drawn, tmp_path):
    """Background windows looked opaque black: black hatching, invisible on a dark field, and no tint."""
    levels = np.zeros((3, 5), np.int64)
    levels[0, 0] = -1
    dmap = DefocusMap.from_levels(levels, (168, 252), stride=42, patch_px=84, n_levels=11)
    cell = [(x, y) for x in range(4, 38, 1) for y in range(4, 38, 1)]  # inside the background window's cell
    # a bright patch where the background window is: the image shows through
    bright = np.full((168, 252), 100.0)
    bright[:84, :84] = 5000.0
    bright[0, 0] = 0.0
    defocus_overlay(bright, dmap, tmp_path / "bright.png")
    fig, canvas = drawn[-1]
    assert np.median([_pixel(fig, canvas, fig.axes[0], x, y).mean() for x, y in cell]) > 0.6
    # a dark field (most background is): the hatching shows as light lines over the dark image
    defocus_overlay(np.full((168, 252), 100.0), dmap, tmp_path / "dark.png")
    fig, canvas = drawn[-1]
    values = np.array([_pixel(fig, canvas, fig.axes[0], x, y).mean() for x, y in cell])
    assert np.median(values) < 0.2 and np.mean(values > 0.35) > 0.05  # mostly the dark image, lines on it


def test_labels_never_overlap(drawn, tmp_path):
    """The last row and column of windows start flush with the image edge, so their centres sit close to the
    previous ones' (a BBBC006 field, 520 x 696: 16 and 24 px): their labels overlapped."""
    shape = (520, 696)
    ys, xs = window_starts(shape[0], stride=42), window_starts(shape[1], stride=42)
    assert ys[-1] - ys[-2] == 16 and xs[-1] - xs[-2] == 24
    dmap = DefocusMap.from_levels(np.full((len(ys), len(xs)), 10), shape, stride=42, patch_px=84, n_levels=11)
    defocus_overlay(np.ones(shape), dmap, tmp_path / "map.png")
    fig, _ = drawn[0]
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in fig.axes[0].texts]
    assert len(boxes) >= 12
    # readable: labels in one column (row) at least two label heights (widths) apart, so they never touch
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            dx, dy = abs(a.x0 + a.x1 - b.x0 - b.x1) / 2, abs(a.y0 + a.y1 - b.y0 - b.y1) / 2
            assert dx >= 2 * a.width or dy >= 2 * a.height, (a, b)


def test_colour_bar_shows_the_overlay_colours(drawn, tmp_path):
    image = np.full((168, 252), 100.0)  # a uniform field: every window shows its colour over the same grey
    levels = np.arange(15).reshape(3, 5) % 11
    dmap = DefocusMap.from_levels(levels, (168, 252), stride=42, patch_px=84, n_levels=11)
    defocus_overlay(image, dmap, tmp_path / "map.png")
    fig, canvas = drawn[0]
    ax, bar = fig.axes[0], fig.axes[1]
    x0, x1 = bar.get_xlim()
    for (j, i), level in np.ndenumerate(dmap.levels):
        cy, cx = dmap.centres[j, i]
        on_image = _pixel(fig, canvas, ax, cx + 12, cy + 12)  # beside the label
        on_bar = _pixel(fig, canvas, bar, (x0 + x1) / 2, level)
        np.testing.assert_allclose(on_image, on_bar, atol=3 / 255)


def test_scale_bar_length(drawn, tmp_path, dmap):
    defocus_overlay(np.ones((168, 252)), dmap, tmp_path / "map.png", pixel_um=0.65)
    fig, _ = drawn[0]
    ax = fig.axes[0]
    (label,) = [t for t in ax.texts if "µm" in t.get_text()]
    assert label.get_text() == "20 µm"  # the round length below a fifth of the width (252 px x 0.65 um / 5 = 33 um)
    (line,) = ax.lines
    xs = line.get_xdata()
    assert xs[1] - xs[0] == pytest.approx(20 / 0.65)
