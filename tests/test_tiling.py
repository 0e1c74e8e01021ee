"""awdvd.tiling: chunked equals whole (defocus maps exactly, restoration to a stated tolerance), lazy inputs and
zarr outputs, tiles on Dask equal tiles in this process.

Tolerance of tiled vs whole-image restoration: every pixel gets the whole image's windows and blend weights,
so with 0 iterations the two are bit-identical; with RL, each region's context differs beyond the halo, and
RL's reach grows with every iteration. On a 600 x 700 field with levels varying in patches (as a specimen's
depth does) the measured max |tiled - whole| is 1e-6 to 2e-6 of the image's max (10-30 iterations, 31-49 px
PSFs, 256 px tiles): the assert allows 1e-5. On a random level grid (every level everywhere, the worst case
for region shapes) it is 1e-4 to 4e-4 of the max: the slow test allows 1e-3.
"""

from __future__ import annotations

import numpy as np
import pytest

from awdvd import Optics, psf_bank
from awdvd.deconv import deconvolve, deconvolve_levels
from awdvd.predict import defocus_map
from awdvd.tiling import (
    image_range,
    restoration_halo_px,
    tiled_deconvolve,
    tiled_deconvolve_levels,
    tiled_defocus_map,
)
from awdvd.windows import window_starts

from _standins import tiny_delpnet_model

pytest.importorskip("torch")

SHAPE = (600, 700)
TILE_PX = 256
STRIDE = 42
RELATIVE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def field() -> np.ndarray:
    from awdvd.synth import synthetic_nuclei

    return synthetic_nuclei(SHAPE, n_nuclei=60, seed=1)


@pytest.fixture(scope="module")
def bank() -> np.ndarray:
    return psf_bank(Optics(), size=31)


@pytest.fixture(scope="module")
def patchy_levels() -> np.ndarray:
    """Levels that change in patches across the field, background in one corner."""
    ys = window_starts(SHAPE[0], stride=STRIDE)
    xs = window_starts(SHAPE[1], stride=STRIDE)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    grid = np.minimum((xx // 160) * 3 + yy // 300, 10)
    grid[:3, :3] = -1
    return grid


@pytest.fixture(scope="module")
def model():
    return tiny_delpnet_model(seed=3)


def assert_close(tiled, whole, relative=RELATIVE_TOLERANCE):
    tiled, whole = np.asarray(tiled), np.asarray(whole)
    assert tiled.shape == whole.shape and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=relative * float(np.abs(whole).max()))


# --------------------------------------------------------------------------------------------- restoration
def test_tiled_restoration_equals_whole_image(field, bank, patchy_levels):
    whole = deconvolve_levels(field, patchy_levels, bank, stride=STRIDE, iterations=10)
    tiled = tiled_deconvolve_levels(field, patchy_levels, bank, stride=STRIDE, iterations=10, tile_px=TILE_PX)
    assert_close(tiled, whole)
    assert np.abs(tiled - field).max() > 100 * RELATIVE_TOLERANCE * field.max()  # and it did deconvolve


def test_tiled_patchwise_restoration_equals_whole_image(field, bank, patchy_levels):
    crop, levels = field[:300, :400], patchy_levels[: len(window_starts(300, stride=STRIDE)),
                                                    : len(window_starts(400, stride=STRIDE))]
    whole = deconvolve_levels(crop, levels, bank, stride=STRIDE, iterations=3, method="patchwise")
    tiled = tiled_deconvolve_levels(crop, levels, bank, stride=STRIDE, iterations=3, method="patchwise", tile_px=128)
    assert_close(tiled, whole)


def test_without_iterations_the_blend_is_the_whole_images_exactly(field, bank):
    """No RL: only the windows and weights matter, and they are the whole image's (odd tile size included)."""
    crop = field[:300, :410]
    rng = np.random.default_rng(0)
    levels = rng.integers(-1, 11, (len(window_starts(300, stride=21)), len(window_starts(410, stride=21))))
    for weighting in ("triangular", "rectangular"):
        whole = deconvolve_levels(crop, levels, bank, stride=21, iterations=0, weighting=weighting)
        tiled = tiled_deconvolve_levels(crop, levels, bank, stride=21, iterations=0, weighting=weighting,
                                        tile_px=137)
        assert_close(tiled, whole, relative=1e-7)


def test_halo_holds_the_windows_and_the_rl_context(bank):
    from awdvd.deconv import default_halo_px

    assert restoration_halo_px(bank) == 83 + max(default_halo_px(p) for p in bank)
    assert restoration_halo_px(bank, halo_px=10, patch_px=84) == 93


def test_lazy_zarr_input_and_ome_zarr_output(field, bank, patchy_levels, tmp_path):
    from awdvd.io import open_ome_zarr_output, read_image, write_ome_zarr

    crop, levels = field[:300, :400], patchy_levels[: len(window_starts(300, stride=STRIDE)),
                                                    : len(window_starts(400, stride=STRIDE))]
    source = read_image(write_ome_zarr(tmp_path / "in.ome.zarr", crop, pixel_um=0.65, chunks=128), lazy=True)
    assert hasattr(source.data, "dask")
    in_memory = tiled_deconvolve_levels(crop, levels, bank, stride=STRIDE, iterations=2, tile_px=128)
    with open_ome_zarr_output(tmp_path / "out.ome.zarr", shape=crop.shape, dtype=np.float32, pixel_um=0.65,
                              chunks=128) as out:
        tiled_deconvolve_levels(source.data, levels, bank, stride=STRIDE, iterations=2, tile_px=128, out=out)
    back = read_image(tmp_path / "out.ome.zarr")
    assert back.pixel_um == pytest.approx(0.65)
    assert np.array_equal(back.data, in_memory)
    assert image_range(source.data, tile_px=100) == (float(crop.min()), float(crop.max()))


def test_bad_calls(field, bank, patchy_levels):
    with pytest.raises(ValueError, match="levels has shape"):
        tiled_deconvolve_levels(field, patchy_levels[1:], bank, stride=STRIDE)
    with pytest.raises(ValueError, match="2-D"):
        tiled_deconvolve_levels(np.zeros((2, 100, 100)), patchy_levels, bank, stride=STRIDE)
    with pytest.raises(ValueError, match="levels must lie"):
        tiled_deconvolve_levels(field, patchy_levels + 20, bank, stride=STRIDE)
    with pytest.raises(ValueError, match="at least one 84 x 84"):
        tiled_deconvolve_levels(np.zeros((50, 500)), np.zeros((1, 11), int), bank, stride=STRIDE)
    nan = field.copy()
    nan[5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tiled_deconvolve_levels(nan, patchy_levels, bank, stride=STRIDE)


@pytest.mark.slow
def test_tiled_restoration_on_a_random_level_grid(field):
    """Worst case for region shapes: every level everywhere, default PSF size, 30 iterations."""
    full_bank = psf_bank(Optics())
    rng = np.random.default_rng(0)
    levels = rng.integers(-1, 11, (len(window_starts(SHAPE[0], stride=STRIDE)), len(window_starts(SHAPE[1], stride=STRIDE))))
    whole = deconvolve_levels(field, levels, full_bank, stride=STRIDE, iterations=30)
    tiled = tiled_deconvolve_levels(field, levels, full_bank, stride=STRIDE, iterations=30, tile_px=TILE_PX)
    assert_close(tiled, whole, relative=1e-3)


# --------------------------------------------------------------------------------------------- defocus maps
@pytest.mark.parametrize("mode, normalization, stride", [("patch", "local", 42), ("dense", "local", 16),
                                                         ("dense", "global", 42)])
def test_tiled_defocus_map_equals_whole_image(field, model, mode, normalization, stride):
    whole = defocus_map(field, model, stride=stride, mode=mode, normalization=normalization)
    tiled = tiled_defocus_map(field, model, stride=stride, mode=mode, normalization=normalization, tile_px=TILE_PX)
    assert np.array_equal(tiled.ys, whole.ys) and np.array_equal(tiled.xs, whole.xs)
    assert np.array_equal(tiled.levels, whole.levels)
    np.testing.assert_allclose(tiled.proba, whole.proba, rtol=0, atol=1e-6)  # float32 rounding of the convs
    assert (tiled.mode, tiled.normalization, tiled.image_shape) == (whole.mode, whole.normalization, whole.image_shape)


def test_dense_context_is_needed(field, model, monkeypatch):
    """Without the trunk's context the tiles' cells see zero padding at their edges: the probabilities change."""
    import awdvd.predict

    whole = defocus_map(field, model, stride=16, mode="dense")
    monkeypatch.setattr(awdvd.predict, "dense_reach_px", lambda m: 0)
    tiled = tiled_defocus_map(field, model, stride=16, mode="dense", tile_px=TILE_PX)
    assert np.abs(tiled.proba - whole.proba).max() > 1e-4


# --------------------------------------------------------------------------------------------- both, and Dask
def test_tiled_deconvolve_equals_whole_image_deconvolve(field, model, bank):
    whole = deconvolve(field, model, stride=STRIDE, iterations=5, psfs=bank, map_mode="dense")
    tiled, dmap = tiled_deconvolve(field, model, stride=STRIDE, iterations=5, psfs=bank, map_mode="dense",
                                   tile_px=TILE_PX)
    assert dmap.levels.shape == (len(window_starts(SHAPE[0], stride=STRIDE)), len(window_starts(SHAPE[1], stride=STRIDE)))
    assert_close(tiled, whole)


def load_model_once(path: str):
    """A model loader for tiles: picklable, loads the file once per process."""
    from awdvd.batch import worker_resource
    from awdvd.model import load_model

    return worker_resource(("test-model", path), lambda: load_model(path))


def test_tiles_on_dask_equal_tiles_here(field, bank, tiny_model_file, dask_cluster):
    import functools

    loader = functools.partial(load_model_once, str(tiny_model_file))
    crop = field[:300, :400]
    here, here_map = tiled_deconvolve(crop, loader, stride=STRIDE, iterations=2, psfs=bank, tile_px=TILE_PX)
    there, there_map = tiled_deconvolve(crop, loader, stride=STRIDE, iterations=2, psfs=bank, tile_px=TILE_PX,
                                        client=dask_cluster.scheduler_address)
    assert np.array_equal(here_map.levels, there_map.levels)
    np.testing.assert_array_equal(here_map.proba, there_map.proba)
    assert np.array_equal(here, there)
    # a model object (not a file) is sent to the workers once, and gives the same map
    sent = tiled_defocus_map(crop, loader(), stride=STRIDE, tile_px=TILE_PX, client=dask_cluster.scheduler_address)
    np.testing.assert_array_equal(sent.proba, here_map.proba)
