import numpy as np
import pytest
from _standins import RuleModel

from awdvd.validate.real_data import level_census, real_data_checks


def test_census_counts_foreground_tiles_only():
    model = RuleModel(step=100.0)
    image = np.full((200, 300), 120.0, np.float32)  # background by the dataset rule (max < 230, range < 30)
    image[:84, :84] = np.linspace(160, 460, 84)[None, :]  # one foreground tile, mean 310 -> level 3
    image[84:168, 84:168] = np.linspace(950, 1250, 84)[:, None]  # mean 1100 -> level 10 (capped)
    census = level_census(model, [image])
    assert census["n_tiles"] == 2 * 3 and census["n_foreground"] == 2
    assert census["histogram"]["3"] == 1 and census["histogram"]["10"] == 1
    assert sum(census["histogram"].values()) == 2
    assert census["mean_level"] == pytest.approx(6.5)


def test_the_cells_rule_drops_noise_only_tiles_the_paper_rule_admits():
    model = RuleModel(step=100.0)
    rng = np.random.default_rng(0)
    # a background 60 ADU above BBBC006's offset with its shot noise (gain 0.33): every tile's max - min >= 30 ADU,
    # so the paper's rule calls them all foreground; one tile holds a nucleus
    image = (96 + 0.33 * rng.poisson(60 / 0.33, size=(168, 252))).astype(np.float32)
    yy, xx = np.mgrid[:84, :84]
    image[:84, :84] += 600 * np.exp(-((yy - 42) ** 2 + (xx - 42) ** 2) / (2 * 12.0**2))
    paper = level_census(model, [image])
    cells = level_census(model, [image], rule="cells")
    assert paper["n_foreground"] == 6 and paper["foreground_rule"] == "paper"
    assert cells["n_foreground"] == 1 and cells["foreground_rule"] == "cells"
    with pytest.raises(ValueError, match="rule must be"):
        level_census(model, [image], rule="otsu")


def test_checks_report_expected_fractions():
    model = RuleModel(step=100.0)
    sharp = np.full((84, 168), 120.0, np.float32)
    sharp[:, :84] = np.linspace(0, 150, 84)[None, :]  # mean 75 -> level 0
    deep = np.linspace(900, 1300, 84 * 84, dtype=np.float32).reshape(84, 84)  # mean 1100 -> level 10
    result = real_data_checks(model, in_focus=[sharp], defocused=[deep, deep])
    assert result["in_focus"]["fraction_expected"] == 1.0 and result["in_focus"]["n_foreground"] == 1
    assert result["defocused"]["fraction_expected"] == 1.0 and result["defocused"]["levels_expected"] == [8, 9, 10]
    assert real_data_checks(model, in_focus=[sharp])["defocused"] is None


def test_images_smaller_than_a_patch_are_rejected():
    with pytest.raises(ValueError, match="no 84 x 84 tile"):
        level_census(RuleModel(), [np.zeros((50, 50), np.float32)])
