"""awdvd.restore.tiles: any local operation tile by tile equals it on the whole image; AWDVD in tiles equals whole-image
AWDVD (defocus maps exactly, restoration to a stated tolerance); lazy inputs and zarr outputs; tiles on Dask
equal tiles in this process.

Tolerance of tiled vs whole-image restoration: every pixel gets the whole image's windows and blend weights,
so with 0 iterations the two are bit-identical; with RL, each region's context differs beyond the halo, and
RL's reach grows with every iteration. On a 600 x 700 field with levels varying in patches (as a specimen's
depth does) the measured max |tiled - whole| is 1e-6 to 2e-6 of the image's max (10-30 iterations, 31-49 px
PSFs, 256 px tiles): the assert allows 1e-5. On a random level grid (every level everywhere, the worst case
for region shapes) it is 1e-4 to 4e-4 of the max: the slow test allows 1e-3. Accelerated RL measures its step
locally (rl_steps.ACCELERATION_WINDOW_PX), so it is as local as plain RL: 4.6e-5 of the max at 20 iterations on the
patchy field (with one step per region, as before, it was 5e-3: the step depended on the region's rectangle).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from _standins import blend_args, blend_plan, level_map, tiny_delpnet_model
from hypothesis import given, settings
from hypothesis import strategies as st

from awdvd import Optics, psf_bank
from awdvd.data.synth import blur
from awdvd.io import open_ome_zarr_output, read_image, write_ome_zarr
from awdvd.restore.blend import deconvolve_levels
from awdvd.restore.defocus_maps import compute_map
from awdvd.restore.options import AWDVDOptions
from awdvd.restore.pipeline import restore_image
from awdvd.restore.plan import RestorationPlan
from awdvd.restore.rl_schedule import RLSchedule
from awdvd.restore.tiles import restoration_halo_px, tiled_deconvolve_levels, tiled_defocus_map
from awdvd.restore.tiling import image_min_max, should_tile, tile_grid, tiled_map
from awdvd.restore.windows import window_starts

SHAPE = (600, 700)
TILE_PX = 256
STRIDE = 42
RELATIVE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def field() -> np.ndarray:
    from awdvd.data.synth import synthetic_nuclei

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
    dmap = level_map(patchy_levels, SHAPE, stride=STRIDE)
    whole = deconvolve_levels(field, dmap, bank, blend_plan(iterations=10))
    tiled = tiled_deconvolve_levels(field, dmap, bank, blend_plan(iterations=10), tile_px=TILE_PX)
    assert_close(tiled, whole)
    assert np.abs(tiled - field).max() > 100 * RELATIVE_TOLERANCE * field.max()  # and it did deconvolve


def test_tiled_accelerated_restoration_equals_whole_image(field, bank, patchy_levels):
    """The model's default kind of schedule (accelerated RL, level 0 left as it is) in tiles: the Biggs-Andrews
    step is measured around each pixel, so a tile's rectangle does not change it."""
    dmap = level_map(patchy_levels, SHAPE, stride=STRIDE)
    schedule = RLSchedule(iterations=(0,) + (20,) * 10, variant="accelerated")
    whole = deconvolve_levels(field, dmap, bank, blend_plan(iterations=schedule))
    tiled = tiled_deconvolve_levels(field, dmap, bank, blend_plan(iterations=schedule), tile_px=TILE_PX)
    assert_close(tiled, whole, relative=2e-4)
    assert np.abs(tiled - field).max() > field.max()  # it did deconvolve (measured: 12x the max, deep levels)


def test_tiled_patchwise_restoration_equals_whole_image(field, bank, patchy_levels):
    crop, levels = field[:300, :400], patchy_levels[: len(window_starts(300, stride=STRIDE)),
                                                    : len(window_starts(400, stride=STRIDE))]
    dmap = level_map(levels, crop.shape, stride=STRIDE)
    whole = deconvolve_levels(crop, dmap, bank, blend_plan(iterations=3, method="patchwise"))
    tiled = tiled_deconvolve_levels(crop, dmap, bank, blend_plan(iterations=3, method="patchwise"), tile_px=128)
    assert_close(tiled, whole)


def test_without_iterations_the_blend_is_the_whole_images_exactly(field, bank):
    """No RL: only the windows and weights matter, and they are the whole image's (odd tile size included)."""
    crop = field[:300, :410]
    rng = np.random.default_rng(0)
    levels = rng.integers(-1, 11, (len(window_starts(300, stride=21)), len(window_starts(410, stride=21))))
    dmap = level_map(levels, crop.shape, stride=21)
    for weighting in ("triangular", "rectangular"):
        whole = deconvolve_levels(crop, dmap, bank, blend_plan(iterations=0, weighting=weighting))
        tiled = tiled_deconvolve_levels(crop, dmap, bank, blend_plan(iterations=0, weighting=weighting), tile_px=137)
        assert_close(tiled, whole, relative=1e-7)


def test_halo_holds_the_windows_and_the_rl_context(bank):
    from awdvd.restore.rl import default_halo_px

    assert restoration_halo_px(bank, patch_px=84) == 83 + max(default_halo_px(p) for p in bank)
    assert restoration_halo_px(bank, halo_px=10, patch_px=84) == 93


def test_lazy_zarr_input_and_ome_zarr_output(field, bank, patchy_levels, tmp_path):
    crop, levels = field[:300, :400], patchy_levels[: len(window_starts(300, stride=STRIDE)),
                                                    : len(window_starts(400, stride=STRIDE))]
    source = read_image(write_ome_zarr(tmp_path / "in.ome.zarr", crop, pixel_um=0.65, chunks=128), lazy=True)
    assert hasattr(source.data, "dask")
    dmap = level_map(levels, crop.shape, stride=STRIDE)
    in_memory = tiled_deconvolve_levels(crop, dmap, bank, blend_plan(iterations=2), tile_px=128)
    with open_ome_zarr_output(tmp_path / "out.ome.zarr", shape=crop.shape, dtype=np.float32, pixel_um=0.65,
                              chunks=128) as out:
        tiled_deconvolve_levels(source.data, dmap, bank, blend_plan(iterations=2), tile_px=128, out=out)
    back = read_image(tmp_path / "out.ome.zarr")
    assert back.pixel_um == pytest.approx(0.65)
    assert np.array_equal(back.data, in_memory)
    assert image_min_max(source.data, tile_px=100) == (float(crop.min()), float(crop.max()))


def test_bad_calls(field, bank, patchy_levels):
    dmap = level_map(patchy_levels, SHAPE, stride=STRIDE)
    args = blend_args(iterations=30)
    with pytest.raises(ValueError, match="defocus map is of a 600 x 700 image"):
        tiled_deconvolve_levels(field[:-1], dmap, bank, RestorationPlan(**args))
    with pytest.raises(ValueError, match="2-D"):
        tiled_deconvolve_levels(np.zeros((2, 100, 100)), dmap, bank, RestorationPlan(**args))
    with pytest.raises(ValueError, match="levels must lie"):
        tiled_deconvolve_levels(field, dmap, bank[:5], RestorationPlan(**args))
    with pytest.raises(ValueError, match="at least one 84 x 84"):
        tiled_deconvolve_levels(np.zeros((50, 500)), dmap, bank, RestorationPlan(**args))
    with pytest.raises(ValueError, match="method"):
        tiled_deconvolve_levels(field, dmap, bank, RestorationPlan(**{**args, "method": "magic"}))
    nan = field.copy()
    nan[5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tiled_deconvolve_levels(nan, dmap, bank, RestorationPlan(**args))


@pytest.mark.slow
def test_tiled_restoration_on_a_random_level_grid(field):
    """Worst case for region shapes: every level everywhere, default PSF size, 30 iterations."""
    full_bank = psf_bank(Optics())
    rng = np.random.default_rng(0)
    levels = rng.integers(-1, 11, (len(window_starts(SHAPE[0], stride=STRIDE)), len(window_starts(SHAPE[1], stride=STRIDE))))
    dmap = level_map(levels, SHAPE, stride=STRIDE)
    whole = deconvolve_levels(field, dmap, full_bank, blend_plan(iterations=30))
    tiled = tiled_deconvolve_levels(field, dmap, full_bank, blend_plan(iterations=30), tile_px=TILE_PX)
    assert_close(tiled, whole, relative=1e-3)


# --------------------------------------------------------------------------------------------- defocus maps
@pytest.mark.parametrize("mode, normalization, stride", [("patch", "local", 42), ("dense", "local", 16),
                                                         ("dense", "global", 42)])
def test_tiled_defocus_map_equals_whole_image(field, model, mode, normalization, stride):
    whole = compute_map(field, model, stride=stride, mode=mode, normalization=normalization)
    tiled = tiled_defocus_map(field, model, stride=stride, mode=mode, normalization=normalization, tile_px=TILE_PX)
    assert np.array_equal(tiled.ys, whole.ys) and np.array_equal(tiled.xs, whole.xs)
    assert np.array_equal(tiled.levels, whole.levels)
    np.testing.assert_allclose(tiled.proba, whole.proba, rtol=0, atol=1e-6)  # float32 rounding of the convs
    assert (tiled.mode, tiled.normalization, tiled.image_shape) == (whole.mode, whole.normalization, whole.image_shape)


def test_dense_context_is_needed(field, model, monkeypatch):
    """Without the trunk's context the tiles' cells see zero padding at their edges: the probabilities change."""
    import awdvd.restore.defocus_maps

    whole = compute_map(field, model, stride=16, mode="dense")
    monkeypatch.setattr(awdvd.restore.defocus_maps, "dense_reach_px", lambda m: 0)
    tiled = tiled_defocus_map(field, model, stride=16, mode="dense", tile_px=TILE_PX)
    assert np.abs(tiled.proba - whole.proba).max() > 1e-4


# --------------------------------------------------------------------------------------------- both, and Dask
def test_tiled_deconvolve_equals_whole_image_deconvolve(field, model, bank):
    """The pipeline's tiled path (chosen for images over max_px) against its whole-image path."""
    args = dict(stride=STRIDE, iterations=5, psfs=bank, map_mode="dense", offset=0.0, device="cpu")
    whole = restore_image(field, model, **args)
    tiled = restore_image(field, model, max_px=SHAPE[0] * SHAPE[1] - 1, tile_px=TILE_PX, **args)
    assert tiled.tiled and not whole.tiled
    assert tiled.dmap.levels.shape == (len(window_starts(SHAPE[0], stride=STRIDE)),
                                       len(window_starts(SHAPE[1], stride=STRIDE)))
    np.testing.assert_array_equal(tiled.dmap.levels, whole.dmap.levels)
    assert_close(tiled.image, whole.image)


def load_model_once(path: str):
    """A model loader for tiles: picklable, loads the file once per process."""
    from awdvd._cluster import worker_resource
    from awdvd.learn.model_files import load_model

    return worker_resource(("test-model", path), lambda: load_model(path))


def test_tiles_on_dask_equal_tiles_here(field, bank, tiny_model_file, dask_cluster):
    loader = functools.partial(load_model_once, str(tiny_model_file))
    crop = field[:300, :400]
    args = dict(stride=STRIDE, iterations=2, psfs=bank, tile_px=TILE_PX, max_px=1000, device="cpu")
    here = restore_image(crop, loader, **args)
    there = restore_image(crop, loader, client=dask_cluster.scheduler_address, **args)
    assert here.tiled and there.tiled
    assert np.array_equal(here.dmap.levels, there.dmap.levels)
    np.testing.assert_array_equal(here.dmap.proba, there.dmap.proba)
    assert np.array_equal(here.image, there.image)
    # a model object (not a file) is sent to the workers once, and gives the same map
    sent = tiled_defocus_map(crop, loader(), stride=STRIDE, tile_px=TILE_PX, client=dask_cluster.scheduler_address,
                             smoothing_px=AWDVDOptions().smoothing_px)  # the options' default, as restore_image
    np.testing.assert_array_equal(sent.proba, here.dmap.proba)


# --------------------------------------------------------------------------------------------- tiled_map: any local operation
def gaussian_psf(size: int, sigma: float) -> np.ndarray:
    r = np.arange(size) - size // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def blur_fn(block: np.ndarray, origin_yx, psf: np.ndarray) -> np.ndarray:
    return blur(block, psf)


def coordinates_fn(block: np.ndarray, origin_yx) -> np.ndarray:
    y = np.arange(block.shape[0]) + origin_yx[0]
    x = np.arange(block.shape[1]) + origin_yx[1]
    return (y[:, None] * 10_000 + x[None, :]).astype(np.int64)


@pytest.fixture(scope="module")
def field_image() -> np.ndarray:
    from awdvd.data.synth import synthetic_nuclei

    return synthetic_nuclei((203, 331), n_nuclei=20, seed=5)


def assert_close_to_whole(tiled: np.ndarray, whole: np.ndarray) -> None:
    # FFT round-off on float32 output: relative to the image's scale
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=2e-6 * float(np.abs(whole).max()))


def test_tiles_cover_every_pixel_once():
    count = np.zeros((53, 71), int)
    for core, read in tile_grid(count.shape, (16, 20), 5):
        count[core] += 1
        assert read[0].start <= core[0].start and read[0].stop >= core[0].stop
    assert (count == 1).all()


def test_origin_is_global(field_image):
    tiled = tiled_map(field_image, coordinates_fn, tile_px=(37, 50), halo_px=6)
    np.testing.assert_array_equal(tiled, coordinates_fn(np.zeros(field_image.shape), (0, 0)))


def test_tiled_blur_equals_whole_image(field_image):
    from awdvd import Optics, defocus_psf

    psf = defocus_psf(6.0, optics=Optics(), size=15)  # radius 7 px
    fn = functools.partial(blur_fn, psf=psf)
    whole = fn(field_image, (0, 0))
    for tile in (48, (41, 67)):  # neither divides 203 x 331
        assert_close_to_whole(tiled_map(field_image, fn, tile_px=tile, halo_px=7), whole)
    short = tiled_map(field_image, fn, tile_px=48, halo_px=3)  # halo below the PSF's reach: seams appear
    assert np.abs(short - whole).max() > 100 * 2e-6 * np.abs(whole).max()


@settings(max_examples=20, deadline=None)
@given(
    h=st.integers(20, 90), w=st.integers(20, 90), tile=st.integers(5, 40), radius=st.integers(0, 5),
    extra=st.integers(0, 3), seed=st.integers(0, 2**16),
)
def test_tiled_equals_whole_for_any_local_operation(h, w, tile, radius, extra, seed):
    image = np.random.default_rng(seed).uniform(0, 1000, (h, w)).astype(np.float32)
    fn = functools.partial(blur_fn, psf=gaussian_psf(2 * radius + 1, 0.5 + radius / 2))
    assert_close_to_whole(tiled_map(image, fn, tile_px=tile, halo_px=radius + extra), fn(image, (0, 0)))


def test_lazy_input_and_zarr_output(field_image, tmp_path):
    import dask.array as da
    import zarr

    fn = functools.partial(blur_fn, psf=gaussian_psf(9, 2.0))
    whole = fn(field_image, (0, 0))
    memmap = np.lib.format.open_memmap(tmp_path / "in.npy", mode="w+", dtype=np.float32, shape=field_image.shape)
    memmap[:] = field_image
    memmap.flush()
    zarr_input = zarr.open_group(str(write_ome_zarr(tmp_path / "in.ome.zarr", field_image, pixel_um=0.65,
                                                    chunks=50)), mode="r")["0"]
    sources = (np.load(tmp_path / "in.npy", mmap_mode="r"), da.from_array(field_image, chunks=(50, 60)), zarr_input)
    for source in sources:
        with open_ome_zarr_output(tmp_path / "out.ome.zarr", shape=field_image.shape, dtype=np.float32,
                                  pixel_um=0.65, chunks=64, overwrite=True) as out:
            assert tiled_map(source, fn, tile_px=64, halo_px=4, out=out) is out
        back = read_image(tmp_path / "out.ome.zarr")
        assert back.pixel_um == pytest.approx(0.65)
        assert_close_to_whole(back.data, whole)


def test_tiles_on_dask_equal_serial_tiles_bitwise(field_image, dask_cluster):
    fn = functools.partial(blur_fn, psf=gaussian_psf(9, 2.0))
    serial = tiled_map(field_image, fn, tile_px=(41, 67), halo_px=4)
    on_dask = tiled_map(field_image, fn, tile_px=(41, 67), halo_px=4, client=dask_cluster.scheduler_address,
                        max_in_flight=3)
    assert on_dask.dtype == serial.dtype and np.array_equal(on_dask, serial)


def test_tiled_map_checks_its_arguments(field_image):
    with pytest.raises(ValueError, match="block's shape"):
        tiled_map(field_image, lambda block, origin: block[1:], tile_px=64, halo_px=2)
    with pytest.raises(ValueError, match="2-D"):
        tiled_map(np.zeros((2, 8, 8)), coordinates_fn, tile_px=4, halo_px=1)
    with pytest.raises(ValueError, match="must match"):
        tiled_map(field_image, coordinates_fn, tile_px=64, halo_px=2, out=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="halo_px"):
        tiled_map(field_image, coordinates_fn, tile_px=64, halo_px=-1)


def test_should_tile():
    assert not should_tile((520, 696)) and not should_tile((4096, 4096))
    assert should_tile((8192, 8192)) and should_tile((3, 4097, 4096))
    assert should_tile((100, 100), max_px=99 * 100)


