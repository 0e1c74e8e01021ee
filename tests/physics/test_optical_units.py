import doctest
import math

import numpy as np
import pytest

from awdvd.physics import optical_units
from awdvd.physics.optical_units import (
    axial_unit_per_um,
    depth_between,
    from_grid_boxes,
    grid_factor,
    grid_shape,
    lateral_unit_per_um,
    level_step_um,
    model_pixel_um,
    on_model_grid,
    pixel_du,
    to_grid,
)
from awdvd.physics.optics import Optics
from awdvd.physics.psf import psf_amplitude_integral, psf_bank

MODEL = Optics()  # BBBC006, the model's optics

# DESIGN section 7's table: optics, du per pixel, image pixels per model pixel, one level (um), model pixel (um)
TABLE = [
    (Optics(), 4.53, 1.0, 2.0, 0.65),
    (Optics(wavelength_um=0.46, na=0.45, n=1.0, pixel_um=0.645), 3.97, 1.14, 2.5, 0.74),
    (Optics(wavelength_um=0.46, na=0.3, n=1.0, pixel_um=0.65), 2.66, 1.70, 5.7, 1.11),
    (Optics(wavelength_um=0.52, na=0.75, n=1.0, pixel_um=0.1625), 1.47, 3.07, 1.0, 0.50),
    # DESIGN's row (1.20, 3.76, 0.68 um, 0.41 um) took k = 2 pi / lambda with the vacuum wavelength; k is the
    # medium's wavenumber (2 pi n / lambda), which makes Eq. 2 the paraxial PSF of an immersion objective
    (Optics(wavelength_um=0.52, na=1.4, n=1.518, pixel_um=0.108), 1.83, 2.48, 0.45, 0.27),
]
IDS = ["bbbc006", "20x-0.45", "10x-0.3", "40x-0.75", "60x-1.4-oil"]


@pytest.mark.parametrize("optics, du, pixels_per_model_pixel, level_um, model_px_um", TABLE, ids=IDS)
def test_design_table(optics, du, pixels_per_model_pixel, level_um, model_px_um):
    # to the table's last digit (it rounds 3.965 to 3.97 and 1.105 to 1.11); levels have 2 significant figures
    assert pixel_du(optics) == pytest.approx(du, abs=0.01)
    assert 1 / grid_factor(optics, MODEL) == pytest.approx(pixels_per_model_pixel, abs=0.01)
    assert level_step_um(optics, MODEL) == pytest.approx(level_um, rel=0.03)
    assert model_pixel_um(optics, MODEL) == pytest.approx(model_px_um, abs=0.01)


def test_units_of_the_papers_optics():
    k = 2 * math.pi / 0.451
    assert lateral_unit_per_um(MODEL) == pytest.approx(k * 0.5, rel=1e-12)
    assert axial_unit_per_um(MODEL) == pytest.approx(0.5 * k * 0.25, rel=1e-12)
    assert axial_unit_per_um(MODEL) * MODEL.z_step_um == pytest.approx(3.48, abs=0.005)  # one level in v
    assert grid_factor(MODEL, MODEL) == 1.0
    assert level_step_um(MODEL, MODEL) == pytest.approx(2.0, rel=1e-12)


def test_depth_between_arrays_and_round_trip():
    a, b = TABLE[0][0], TABLE[4][0]
    z = np.array([[-4.0, 0.0], [2.0, 20.0]])
    there = depth_between(z, a, b)
    assert isinstance(there, np.ndarray) and there.shape == z.shape
    np.testing.assert_allclose(depth_between(there, b, a), z, rtol=1e-12)
    assert np.all(np.sign(there) == np.sign(z))
    assert isinstance(depth_between(2.0, a, b), float)
    assert depth_between(2.0, a, b) == pytest.approx(level_step_um(b, a), rel=1e-12)


@pytest.mark.parametrize("source, target", [(TABLE[0][0], TABLE[4][0]), (TABLE[3][0], TABLE[2][0])],
                         ids=["bbbc006-to-oil", "40x-to-10x"])
@pytest.mark.parametrize("z_um", [0.0, 1.3, 6.0])
def test_eq2_invariance(source, target, z_um):
    # h_A(r, z) == h_B(r * uA / uB, depth_between(z, A, B)): Eq. 2 sees only u and v
    r = np.linspace(0.0, 8.0, 161)
    h_source = psf_amplitude_integral(z_um, r, source)
    h_target = psf_amplitude_integral(
        depth_between(z_um, source, target), r * lateral_unit_per_um(source) / lateral_unit_per_um(target), target
    )
    np.testing.assert_allclose(h_target / h_target[0], h_source / h_source[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("optics", [row[0] for row in TABLE[1:]], ids=IDS[1:])
def test_on_model_grid_has_the_models_psf_bank(optics):
    # brought to the model's du per pixel and v per level, any optics has the model's pixel-integrated bank
    grid = on_model_grid(optics, MODEL)
    assert grid.n_levels == MODEL.n_levels
    assert pixel_du(grid) == pytest.approx(pixel_du(MODEL), rel=1e-12)
    np.testing.assert_allclose(psf_bank(grid, size=21), psf_bank(MODEL, size=21), atol=1e-6)


def test_optics_type_checked():
    with pytest.raises(TypeError, match="must be an awdvd Optics"):
        grid_factor({"na": 0.5}, MODEL)


# ---------------------------------------------------------------- to_grid


@pytest.fixture
def image():
    return np.random.default_rng(0).gamma(2.0, 100.0, size=(37, 52))


def test_factor_one_is_identity(image):
    out = to_grid(image, 1.0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, image.astype(np.float32))


@pytest.mark.parametrize("block", [2, 3, 4])
def test_integer_downsample_is_block_mean(block):
    image = np.random.default_rng(block).random((6 * block, 5 * block))
    expected = image.reshape(6, block, 5, block).mean(axis=(1, 3))
    np.testing.assert_allclose(to_grid(image, 1 / block), expected, rtol=1e-6)


@pytest.mark.parametrize("factor", [0.37, 1.7, 3.07, 1 / 1.14, 1 / 3.76])
def test_mean_preserved(image, factor):
    out = to_grid(image, factor)
    assert out.shape == (round(37 * factor), round(52 * factor))
    assert float(out.astype(np.float64).mean()) == pytest.approx(image.mean(), rel=1e-6)
    assert out.min() >= image.min() * (1 - 1e-6) and out.max() <= image.max() * (1 + 1e-6)  # averages


@pytest.mark.parametrize("factor", [0.37, 1.0, 1.7, 3.07])
def test_constant_stays_constant(factor):
    np.testing.assert_allclose(to_grid(np.full((23, 31), 417.0), factor), 417.0, rtol=1e-6)


@pytest.mark.parametrize("up", [2, 3, 5])
def test_upsample_then_downsample_returns_image(image, up):
    big = to_grid(image, up)
    assert big.shape == (37 * up, 52 * up)
    np.testing.assert_array_equal(big[::up, ::up], image.astype(np.float32))  # replication
    np.testing.assert_allclose(to_grid(big, 1 / up), image, rtol=1e-6)


def test_non_integer_upsample_is_exact_area_average():
    # 2 input pixels -> 3 output pixels of 2/3: the middle one is half of each input pixel
    out = to_grid(np.array([[0.0, 6.0], [0.0, 6.0]]), 1.5)
    np.testing.assert_allclose(out, [[0.0, 3.0, 6.0]] * 3)


def test_integer_and_bool_input():
    np.testing.assert_array_equal(to_grid(np.ones((4, 4), dtype=np.uint16), 0.5), np.ones((2, 2), np.float32))
    np.testing.assert_array_equal(to_grid(np.ones((4, 4), dtype=bool), 0.5), np.ones((2, 2), np.float32))


@pytest.mark.parametrize("factor, error, message", [
    (0.0, ValueError, "finite and positive"),
    (-1.0, ValueError, "finite and positive"),
    (math.nan, ValueError, "finite and positive"),
    (0.001, ValueError, "shrinks an image"),
    ("0.5", TypeError, "real number"),
])
def test_bad_factor(image, factor, error, message):
    with pytest.raises(error, match=message):
        to_grid(image, factor)


def test_bad_image():
    with pytest.raises(ValueError, match="2-D"):
        to_grid(np.ones((2, 3, 4)), 0.5)
    with pytest.raises(ValueError, match="NaN"):
        to_grid(np.array([[np.nan, 1.0]]), 0.5)


def test_grid_shape():
    assert grid_shape((520, 696), 1.0) == (520, 696)
    assert grid_shape((512, 512), 0.3252) == (167, 167)


# ---------------------------------------------------------------- from_grid_boxes


def test_boxes_exact_for_integer_factor():
    starts, stops = from_grid_boxes(np.array([[0, 0], [1, 2]]), np.array([2, 3]), image_shape=(12, 18), factor=1 / 3)
    assert starts.tolist() == [[0, 0], [3, 6]]
    assert stops.tolist() == [[6, 9], [9, 15]]


@pytest.mark.parametrize("factor", [0.37, 1 / 1.14, 1.7])
def test_boxes_hold_every_contributing_pixel(factor):
    # a window's pixels on the grid depend only on the image pixels inside its box
    image_shape = (41, 57)
    rng = np.random.default_rng(1)
    image = rng.random(image_shape)
    grid = to_grid(image, factor)
    start, size = np.array([3, 4]), np.array([5, 6])
    (r0, c0), (r1, c1) = from_grid_boxes(start, size, image_shape=image_shape, factor=factor)
    outside = np.full(image_shape, 7.0)  # change everything outside the box ...
    outside[r0:r1, c0:c1] = image[r0:r1, c0:c1]
    window = (slice(start[0], start[0] + size[0]), slice(start[1], start[1] + size[1]))
    np.testing.assert_allclose(to_grid(outside, factor)[window], grid[window], rtol=1e-6)  # ... changes nothing
    # and the box is tight: at most one pixel more than the exact footprint at each end
    scale = np.array(image_shape) / np.array(grid.shape)
    assert np.all(np.array([r1 - r0, c1 - c0]) <= size * scale + 2)


def test_boxes_clip_to_image_and_check_input():
    starts, stops = from_grid_boxes([[0, 0]], 100, image_shape=(10, 10), factor=0.5)
    assert starts.tolist() == [[0, 0]] and stops.tolist() == [[10, 10]]
    with pytest.raises(TypeError, match="integers"):
        from_grid_boxes([[0.5, 0]], 2, image_shape=(10, 10), factor=0.5)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        from_grid_boxes([0, 0, 0], 2, image_shape=(10, 10), factor=0.5)
    with pytest.raises(ValueError, match="at least 1"):
        from_grid_boxes([0, 0], 0, image_shape=(10, 10), factor=0.5)


def test_docstring_examples_run():
    result = doctest.testmod(optical_units, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 10 and result.failed == 0
