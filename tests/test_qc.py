"""Plate focus QC: rows from defocus maps, the CSV, well parsing and the plate heat-map."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from awdvd import qc
from awdvd.qc import (
    BEYOND_RANGE,
    BEYOND_RANGE_FRACTION,
    IN_FOCUS,
    IN_FOCUS_STEPS,
    NO_FOREGROUND,
    OUT_OF_FOCUS_LEVEL,
    RESTORABLE,
    VERDICTS,
    Well,
    focus_columns,
    focus_row,
    parse_well,
    plate_heatmap,
    plate_layout,
    write_focus_csv,
    write_focus_report,
)
from awdvd.restore.defocus_maps import DefocusMap

CLASS_LEVELS = np.array(list(range(11)) + [-1])


def make_map(levels, confidence: float = 0.8) -> DefocusMap:
    """A DefocusMap whose windows have ``levels`` (-1 = background) and the predicted class at ``confidence``."""
    levels = np.asarray(levels, dtype=np.int64)
    proba = np.full(levels.shape + (12,), (1 - confidence) / 11, dtype=np.float32)
    column = np.where(levels == -1, 11, levels)
    np.put_along_axis(proba, column[..., None], confidence, axis=-1)
    ny, nx = levels.shape
    return DefocusMap(levels=levels, proba=proba, class_levels=CLASS_LEVELS, ys=np.arange(ny) * 42,
                      xs=np.arange(nx) * 42, image_shape=(42 * ny + 42, 42 * nx + 42), patch_px=84, stride=42)


def depth_map(levels, z_step_um: float | None = 2.0) -> DefocusMap:
    """A map of certain ``levels`` (-1 = background) of an 11-level model whose levels are ``z_step_um`` apart."""
    levels = np.asarray(levels, dtype=np.int64)
    ny, nx = levels.shape
    return DefocusMap.from_levels(levels, (42 * ny + 42, 42 * nx + 42), stride=42, patch_px=84, n_levels=11,
                                  z_step_um=z_step_um)


BBBC_NAME = "00_mcf-z-stacks-03212011_a19_s2_w12703a47b-7574-461a-85e2-afc38bc0adae.tif"


def test_parse_well_bbbc_names():
    assert parse_well(BBBC_NAME) == Well(row=0, column=19, site=2)
    assert parse_well("/data/plate1/x_B01_s12_w1.tif") == Well(row=1, column=1, site=12)
    assert parse_well("p-c06.tif") == Well(row=2, column=6, site=None)
    assert parse_well("P24_s1.tif").name == "P24"
    # no well: letters beyond P, three-digit columns, columns > 24, hex inside a uuid
    for name in ("image.tif", "z12_s1.tif", "a123_s1.tif", "a25_s1.tif", "w12703a47b-7574-461a.tif"):
        assert parse_well(name) is None, name


def test_focus_row_statistics():
    levels = [[0, 0, 1, -1], [2, 4, -1, -1]]  # 5 foreground windows, 3 background
    row = focus_row(BBBC_NAME, make_map(levels, confidence=0.9))
    assert list(row) == focus_columns(11)
    assert row["well"] == "A19" and row["site"] == 2
    assert row["n_windows"] == 8 and row["n_foreground_windows"] == 5
    assert row["background_fraction"] == pytest.approx(3 / 8, abs=1e-12)
    assert row["fraction_level_0"] == pytest.approx(2 / 5, abs=1e-12)
    assert row["fraction_level_4"] == pytest.approx(1 / 5, abs=1e-12)
    assert sum(row[f"fraction_level_{l}"] for l in range(11)) == pytest.approx(1.0, abs=1e-12)
    assert row["median_level"] == 1.0
    assert row["mean_level"] == pytest.approx(7 / 5, abs=1e-12)
    assert row["mean_confidence"] == pytest.approx(0.9, abs=1e-6)
    assert row["out_of_focus"] is False  # median 1 < 2


def test_out_of_focus_flag_threshold():
    assert OUT_OF_FOCUS_LEVEL == 2
    assert focus_row("x", make_map([[2, 2, 3]]))["out_of_focus"] is True
    assert focus_row("x", make_map([[1, 1, 3]]))["out_of_focus"] is False
    assert focus_row("x", make_map([[1, 1, 3]]), out_of_focus_level=1)["out_of_focus"] is True
    with pytest.raises(ValueError, match="out_of_focus_level"):
        focus_row("x", make_map([[1]]), out_of_focus_level=11)


def test_focus_row_all_background():
    row = focus_row("empty.tif", make_map([[-1, -1]]))
    assert row["n_foreground_windows"] == 0 and row["background_fraction"] == 1.0
    assert math.isnan(row["median_level"]) and math.isnan(row["fraction_level_0"])
    assert row["out_of_focus"] is None and row["well"] == "" and row["site"] is None


def test_write_focus_csv_round_trip(tmp_path):
    rows = [focus_row(BBBC_NAME, make_map([[0, 1]])), focus_row("empty.tif", make_map([[-1]]))]
    path = write_focus_csv(tmp_path / "qc.csv", rows)
    with open(path, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["image"] for r in table] == [BBBC_NAME, "empty.tif"]
    assert float(table[0]["median_level"]) == 0.5 and table[0]["out_of_focus"] == "false"
    assert table[1]["out_of_focus"] == "" and table[1]["site"] == "" and table[1]["median_level"] == "nan"
    with pytest.raises(FileExistsError):
        write_focus_csv(tmp_path / "qc.csv", rows)
    with pytest.raises(ValueError, match="at least one"):
        write_focus_csv(tmp_path / "none.csv", [])


def test_plate_layout():
    assert plate_layout([Well(7, 12)]) == (8, 12)
    assert plate_layout([Well(0, 19)]) == (16, 24)
    assert plate_layout([Well(0, 1)], 384) == (16, 24)
    with pytest.raises(ValueError, match="do not fit a 96-well"):
        plate_layout([Well(0, 19)], 96)


@pytest.mark.parametrize("names, shape", [(["x_a19_s1.tif", "x_a19_s2.tif", "x_p01_s1.tif"], (16, 24)),
                                          (["x_b03_s1.tif", "x_h12_s1.tif"], (8, 12))])
def test_plate_heatmap_writes_png(tmp_path, names, shape):
    import imageio.v3 as iio

    rows = [focus_row(name, make_map([[i, i + 1]])) for i, name in enumerate(names)]
    rows.append(focus_row("x_c05_s1.tif", make_map([[-1]])))  # a well with no foreground
    path = plate_heatmap(rows, tmp_path / "plate.png")
    picture = iio.imread(path)
    assert picture.ndim == 3 and picture.shape[0] > 100 and picture.shape[1] > 100
    assert plate_layout([parse_well(n) for n in names]) == shape


def test_plate_heatmap_needs_wells(tmp_path):
    with pytest.raises(ValueError, match="plate well"):
        plate_heatmap([focus_row("plain.tif", make_map([[0]]))], tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()


def test_write_focus_report(tmp_path):
    rows = [focus_row("x_b02_s1.tif", make_map([[3, 3]]))]
    paths = write_focus_report(rows, tmp_path)
    assert set(paths) == {"csv", "heatmap"} and all(p.is_file() for p in paths.values())
    with pytest.raises(FileExistsError):
        write_focus_report(rows, tmp_path)
    plain = write_focus_report([focus_row("plain.tif", make_map([[0]]))], tmp_path / "plain")
    assert set(plain) == {"csv"}


# ------------------------------------------------------------------------------------------- depths and verdicts
# Certain maps (probability 1 on one level) have depth_um = level x z_step_um exactly and spread 0, so every
# expected value below is worked by hand from the levels.
@pytest.mark.parametrize("levels, median_um, area, verdict", [
    ([[0, 0, 1, -1]], 0.0, 0 / 3, IN_FOCUS),            # depths 0, 0, 2 um: median 0 <= 2
    ([[0, 3, 4, -1]], 6.0, 2 / 3, RESTORABLE),          # depths 0, 6, 8: median 6 > 2; 6 and 8 deeper than 2
    ([[10, 10, 2, -1]], 20.0, 3 / 3, BEYOND_RANGE),     # 2 of 3 windows at level 10 (20 um, the end of the range)
])
def test_depth_columns_and_verdicts(levels, median_um, area, verdict):
    row = focus_row("x_b03_s1.tif", depth_map(levels))
    assert list(row) == focus_columns(11)
    assert row["z_step_um"] == 2.0
    assert row["median_depth_um"] == pytest.approx(median_um, abs=1e-12)
    assert row["depth_spread_um"] == pytest.approx(0.0, abs=1e-12)
    assert row["out_of_focus_area"] == pytest.approx(area, abs=1e-12)
    assert row["verdict"] == verdict and verdict in VERDICTS


def test_no_foreground_verdict():
    row = focus_row("x_b03_s1.tif", depth_map([[-1, -1], [-1, -1]]))
    assert row["verdict"] == NO_FOREGROUND and row["z_step_um"] == 2.0
    assert all(math.isnan(row[k]) for k in ("median_depth_um", "depth_spread_um", "out_of_focus_area"))
    assert row["out_of_focus"] is None and math.isnan(row["median_level"])


def test_in_focus_threshold_is_one_level_step_inclusive():
    assert IN_FOCUS_STEPS == 1
    on = focus_row("x", depth_map([[0, 1, 1, 2]]))  # depths 0, 2, 2, 4: median exactly 2.0 um = one step
    assert on["median_depth_um"] == 2.0 and on["verdict"] == IN_FOCUS
    assert on["out_of_focus_area"] == pytest.approx(1 / 4, abs=1e-12)  # only the 4 um window is deeper than 2
    past = focus_row("x", depth_map([[1, 1, 2, 2]]))  # median (2 + 4) / 2 = 3 um
    assert past["median_depth_um"] == 3.0 and past["verdict"] == RESTORABLE
    # the threshold follows the objective's level-equivalent: the same levels 0.9 um apart
    assert focus_row("x", depth_map([[1, 1, 2]], z_step_um=0.9))["verdict"] == IN_FOCUS  # median 0.9
    thin = focus_row("x", depth_map([[2, 2, 1]], z_step_um=0.9))  # median 1.8 um: in focus at 2 um steps, not here
    assert thin["median_depth_um"] == pytest.approx(1.8, abs=1e-12) and thin["verdict"] == RESTORABLE
    assert thin["z_step_um"] == 0.9


def test_beyond_the_range_threshold_is_half_the_foreground_at_the_deepest_level():
    assert BEYOND_RANGE_FRACTION == 0.5
    half = focus_row("x", depth_map([[10, 10, 0, 0, -1]]))  # 2 of 4 at level 10: exactly 50 %
    assert half["fraction_level_10"] == 0.5 and half["verdict"] == BEYOND_RANGE
    # 2 of 5 at level 10 (40 %): not beyond; the median (0 um) is in focus and the area says 40 % is not
    less = focus_row("x", depth_map([[10, 10, 0, 0, 0]]))
    assert less["verdict"] == IN_FOCUS and less["out_of_focus_area"] == pytest.approx(0.4, abs=1e-12)
    # deep but inside the range (levels 9, 9, 10: one third at the deepest level) is restorable
    deep = focus_row("x", depth_map([[9, 9, 10]]))
    assert deep["median_depth_um"] == 18.0 and deep["verdict"] == RESTORABLE


def test_depths_come_from_the_probabilities_not_the_levels():
    """Windows split between two levels lie between them: their depth is the probability-weighted mean and the
    spread its standard deviation. Levels 1, 0, 2 would give a median of 2 um (in focus); the depths say 4 um."""
    proba = np.zeros((1, 3, 12), dtype=np.float32)
    proba[0, 0, [1, 3]] = 0.5  # 2 and 6 um: depth 4, spread 2
    proba[0, 1, 0] = 1.0       # 0 um: depth 0, spread 0
    proba[0, 2, [2, 4]] = 0.5  # 4 and 8 um: depth 6, spread 2
    dmap = DefocusMap(levels=np.array([[1, 0, 2]]), proba=proba, class_levels=CLASS_LEVELS, ys=np.array([0]),
                      xs=np.arange(3) * 42, image_shape=(84, 168), patch_px=84, stride=42, z_step_um=2.0)
    row = focus_row("x", dmap)
    assert row["median_level"] == 1.0
    assert row["median_depth_um"] == pytest.approx(4.0, abs=1e-6)
    assert row["depth_spread_um"] == pytest.approx(2.0, abs=1e-6)  # median of 2, 0, 2
    assert row["out_of_focus_area"] == pytest.approx(2 / 3, abs=1e-12)  # 4 and 6 um are deeper than 2
    assert row["verdict"] == RESTORABLE


def test_maps_without_a_depth_step_keep_the_level_columns():
    levels = [[0, 0, 1, -1], [2, 4, -1, -1]]
    row = focus_row(BBBC_NAME, depth_map(levels, z_step_um=None))
    assert list(row) == focus_columns(11)
    assert row["z_step_um"] is None and row["verdict"] is None
    assert all(math.isnan(row[k]) for k in ("median_depth_um", "depth_spread_um", "out_of_focus_area"))
    # the level columns as test_focus_row_statistics works them out (5 foreground windows: 0, 0, 1, 2, 4)
    assert row["n_foreground_windows"] == 5 and row["median_level"] == 1.0
    assert row["mean_level"] == pytest.approx(7 / 5, abs=1e-12)
    assert row["fraction_level_0"] == pytest.approx(2 / 5, abs=1e-12) and row["out_of_focus"] is False
    assert focus_row("x", depth_map([[-1]], z_step_um=None))["verdict"] is None


def test_depth_columns_csv_round_trip(tmp_path):
    rows = [focus_row("x_a01_s1.tif", depth_map([[0, 1, 3]])),        # depths 0, 2, 6: median 2, in focus
            focus_row("x_a02_s1.tif", depth_map([[10, 10, 1]])),      # beyond the range
            focus_row("x_a03_s1.tif", depth_map([[-1, -1]])),         # no foreground
            focus_row("x_a04_s1.tif", depth_map([[2, 3]], z_step_um=None))]  # no depth step
    path = write_focus_csv(tmp_path / "qc.csv", rows)
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        table = list(reader)
    assert reader.fieldnames == focus_columns(11)
    assert [r["verdict"] for r in table] == [IN_FOCUS, BEYOND_RANGE, NO_FOREGROUND, ""]
    assert float(table[0]["median_depth_um"]) == 2.0 and float(table[0]["out_of_focus_area"]) == pytest.approx(1 / 3)
    assert float(table[1]["median_depth_um"]) == 20.0 and float(table[1]["z_step_um"]) == 2.0
    assert table[2]["median_depth_um"] == "nan" and table[2]["z_step_um"] == "2.0"
    assert table[3]["median_depth_um"] == "nan" and table[3]["z_step_um"] == "" and table[3]["median_level"] == "2.5"
    # the table read back draws the same plate (cells are text there)
    assert plate_heatmap(table, tmp_path / "plate.png").is_file()


@pytest.fixture()
def drawn(monkeypatch):
    """plate_heatmap's figure, inspected before it is saved: texts, colour-bar label and crossed wells."""
    seen = {}
    save = qc.save_figure

    def keep(fig, path, **kwargs):
        plate, bar = fig.axes
        seen.update(texts="\n".join(t.get_text() for t in plate.texts), title=plate.get_title(),
                    label=bar.get_ylabel(), crossed=len(plate.collections))
        return save(fig, path, **kwargs)

    monkeypatch.setattr(qc, "save_figure", keep)
    return seen


def test_plate_heatmap_shows_depths_and_crosses_wells_beyond_the_range(tmp_path, drawn):
    rows = [focus_row("x_a01_s1.tif", depth_map([[0, 0, 1]])), focus_row("x_a02_s1.tif", depth_map([[3, 4]])),
            focus_row("x_b01_s1.tif", depth_map([[10, 10, 10]])), focus_row("x_b01_s2.tif", depth_map([[0]])),
            focus_row("x_c01_s1.tif", depth_map([[-1]]))]
    plate_heatmap(rows, tmp_path / "plate.png")
    assert drawn["label"] == "median defocus depth (um)" and drawn["title"].startswith("median defocus depth (um)")
    assert drawn["crossed"] == 1  # B01: one of its two sites is beyond the range
    # well values: A01 median 0 um; A02 (6 + 8) / 2 = 7 um; B01 the median of its sites, (20 + 0) / 2 = 10 um
    assert {"0", "7", "10", "no fg"} <= set(drawn["texts"].split("\n"))
    assert "\u2264 2 um" in drawn["texts"] and "20 um or more" in drawn["texts"] and "50%" in drawn["texts"]


def test_plate_heatmap_falls_back_to_levels_without_depths(tmp_path, drawn):
    rows = [focus_row("x_a01_s1.tif", depth_map([[0, 1, 3]], z_step_um=None))]
    plate_heatmap(rows, tmp_path / "plate.png")
    assert drawn["label"] == "median defocus level" and drawn["crossed"] == 0
    assert "1" in drawn["texts"].split("\n") and "no verdicts" in drawn["texts"]
    with pytest.raises(ValueError, match="not a number"):
        plate_heatmap([focus_row("x_a01_s1.tif", depth_map([[0]]))], tmp_path / "verdict.png", value="verdict")
