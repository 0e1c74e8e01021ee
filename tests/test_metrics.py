"""PSNR / SSIM helpers: the data range is always explicit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from awdvd.metrics import PAPER_DATA_RANGE, psnr, ssim, truth_data_range


def test_psnr_known_value_and_identity():
    ref = np.zeros((8, 8))
    img = np.full((8, 8), 10.0)
    assert math.isclose(psnr(ref, img, data_range=1000.0), 20 * math.log10(1000 / 10))
    assert psnr(ref, ref, data_range=1.0) == math.inf
    # the paper's absolute range makes every number larger by the same amount
    delta = psnr(ref, img, data_range=PAPER_DATA_RANGE) - psnr(ref, img, data_range=1000.0)
    assert math.isclose(delta, 20 * math.log10(PAPER_DATA_RANGE / 1000))


def test_ssim_is_one_for_identical_images_and_lower_otherwise():
    rng = np.random.default_rng(0)
    ref = rng.uniform(100, 200, (32, 32))
    assert math.isclose(ssim(ref, ref, data_range=100.0), 1.0)
    noise = rng.normal(0, 1, ref.shape)
    small, large = (ssim(ref, ref + sd * noise, data_range=100.0) for sd in (10, 30))
    assert 1.0 > small > large


def test_data_range_is_required_and_checked():
    a = np.ones((8, 8))
    with pytest.raises(TypeError):
        psnr(a, a)  # no default on purpose
    with pytest.raises(TypeError):
        ssim(a, a)
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError):
            psnr(a, a, data_range=bad)
    with pytest.raises(ValueError):
        psnr(a, np.ones((8, 9)), data_range=1.0)
    with pytest.raises(ValueError):
        ssim(np.ones((5, 5)), np.ones((5, 5)), data_range=1.0)
    with pytest.raises(ValueError):
        psnr(a, a * np.nan, data_range=1.0)


def test_truth_data_range():
    assert truth_data_range(np.array([[3.0, 7.0]])) == 4.0
    assert truth_data_range(np.ones((3, 3))) == 1.0
