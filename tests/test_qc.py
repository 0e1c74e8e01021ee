"""Plate focus QC: rows from defocus maps, the CSV, well parsing and the plate heat-map."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from awdvd.qc import (
    OUT_OF_FOCUS_LEVEL,
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
