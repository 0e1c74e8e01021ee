"""The shared input checks (awdvd._checks), here the camera offset checked against the image it is removed from."""

import numpy as np
import pytest

from awdvd._checks import OFFSET_MAX_FRACTION_BELOW, check_offset_in_range


def _field(seed=0, shape=(168, 200), background=100.0, dtype=np.float32):
    """A sparse fluorescence field: a camera dark level plus background with Poisson noise, a few bright blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    lam = np.full(shape, background)
    for _ in range(6):
        y, x = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        lam += 600 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 4.0**2))
    return rng.poisson(lam).astype(dtype)


@pytest.mark.parametrize("case", ["uint8 offset 100", "above the maximum", "far below"])
def test_an_offset_that_would_destroy_the_image_is_refused_by_deconvolve(case):
    """Issue 15 item 1: these came back with exit 0 and a destroyed image (98% exactly the offset; 3.2x the
    flux; values from -6976 to 7424)."""
    from _standins import RuleModel

    from awdvd.restore.pipeline import deconvolve

    image = _field()
    if case == "uint8 offset 100":
        image = np.clip(image * 0.6, 0, 255).astype(np.uint8)  # background ~60 ADU, a few bright nuclei
        offset, says = 100.0, "above 9\\d% of the image's pixels"
    elif case == "above the maximum":
        offset, says = float(image.max()) + 150, "above 100% of the image's pixels"
    else:
        offset, says = -1e9, "far below the image's darkest pixel"
    with pytest.raises(ValueError, match=says) as caught:
        deconvolve(image, RuleModel(), offset=offset, iterations=2, device="cpu")
    message = str(caught.value)
    assert "spans" in message and "auto" in message and "\n" not in message


def test_offsets_a_camera_can_have_pass():
    image = _field()  # background 100 ADU
    for offset in (0.0, 96.0, 100.0, float(np.median(image)), -50.0):  # dark level, background level, none, below
        check_offset_in_range(offset, image)
    check_offset_in_range("auto", np.zeros((8, 8)))  # resolved from the image itself: nothing to check
    # a background-subtracted float image (noise around 0) with offset 0: half its pixels are below, allowed
    rng = np.random.default_rng(1)
    check_offset_in_range(0.0, rng.normal(0, 3, (64, 64)))
    # a constant image and its own level: every pixel equal, none below
    check_offset_in_range(500.0, np.full((32, 32), 500.0))


def test_threshold_is_the_fraction_below():
    image = np.arange(1000, dtype=np.float64).reshape(20, 50)
    limit = OFFSET_MAX_FRACTION_BELOW * image.size
    check_offset_in_range(limit, image)  # exactly 75% below
    with pytest.raises(ValueError, match="above 76% of the image's pixels"):
        check_offset_in_range(limit + 10, image)


def test_large_images_are_judged_from_a_subsample():
    image = np.zeros((400, 400), np.float32)
    image[:, 1::2] = 1000.0  # every second column bright
    # a subsample of every 2nd column sees only dark pixels: 100% below 500, refused; every pixel: 50%, allowed
    check_offset_in_range(500.0, image)
    with pytest.raises(ValueError, match="above 100%"):
        check_offset_in_range(500.0, image, max_samples=40_000)
