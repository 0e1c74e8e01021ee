"""Plate focus QC: one table row per image from its defocus map, a CSV for a whole run, and a plate heat-map.

A screening lab asks first "which fields are out of focus?". :func:`focus_row` answers it for one image from
its :class:`~awdvd.restore.defocus_maps.DefocusMap`: the fraction of foreground windows at each defocus level, the median
and mean level, the mean confidence, the background fraction and a flag. :func:`write_focus_csv` writes the
rows of a run; :func:`parse_well` reads BBBC-style plate wells and sites from file names (``..._a19_s2_...``)
and :func:`plate_heatmap` draws the median level of each well on a 96- or 384-well plate.

The out-of-focus flag
---------------------
An image is flagged when the median level of its foreground windows is at least ``out_of_focus_level``
(default :data:`OUT_OF_FOCUS_LEVEL` = 2). With the bundled model's optics (2 um between levels, 451 nm,
NA 0.5) level 2 is 4 um of defocus, about twice the widefield depth of field lambda / NA^2 = 1.8 um: blur
that a restoration can still undo but that biases intensity and shape measurements. Background windows do
not vote; an image with no foreground window has no median and is not flagged (``out_of_focus`` empty).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .data.patches import BACKGROUND
from .io import write_csv
from .plots import figure, save_figure

__all__ = ["OUT_OF_FOCUS_LEVEL", "Well", "focus_row", "focus_columns", "write_focus_csv", "parse_well",
           "plate_layout", "plate_heatmap", "write_focus_report", "PLATE_LAYOUTS"]

#: Default flag threshold: an image whose median foreground level is at least this is "out of focus".
OUT_OF_FOCUS_LEVEL = 2

#: (rows, columns) of the plate formats the heat-map draws.
PLATE_LAYOUTS = {96: (8, 12), 384: (16, 24)}

# A BBBC-style well: one row letter (A-P) and a 1-2 digit column, as its own part of the name between
# "_", "-", "." or the ends (``_a19_``, ``-B01.``); a site: ``s`` and digits as such a part (``_s2_``).
_WELL = re.compile(r"(?:^|[_\-.])([A-Pa-p])(\d{1,2})(?=[_\-.]|$)")
_SITE = re.compile(r"(?:^|[_\-.])[sS](\d{1,3})(?=[_\-.]|$)")


@dataclass(frozen=True)
class Well:
    """A plate well: ``row`` 0-based (A = 0), ``column`` 1-based as printed on plates; ``site`` or None."""

    row: int
    column: int
    site: int | None = None

    @property
    def name(self) -> str:
        """"A01"-style name."""
        return f"{chr(ord('A') + self.row)}{self.column:02d}"


def parse_well(name: str) -> Well | None:
    """The plate well (and site) a BBBC-style file name carries, or None.

    ``"mcf-z-stacks-03212011_a19_s2_w1...tif"`` gives ``Well(row=0, column=19, site=2)`` (A19, site 2). The
    first part of the name that is a row letter A-P followed by a column 1-24 counts; a site is an ``s`` and a
    number standing as a part of its own. Folders in ``name`` are ignored.
    """
    stem = Path(str(name)).name
    for match in _WELL.finditer(stem):
        column = int(match.group(2))
        if 1 <= column <= 24:
            site = _SITE.search(stem)
            return Well(row=ord(match.group(1).upper()) - ord("A"), column=column,
                        site=int(site.group(1)) if site else None)
    return None


def focus_columns(n_levels: int) -> list[str]:
    """The columns of a focus row (and of the CSV), in order, for models with ``n_levels`` levels."""
    return (["image", "well", "site", "n_windows", "n_foreground_windows", "background_fraction"]
            + [f"fraction_level_{level}" for level in range(n_levels)]
            + ["median_level", "mean_level", "mean_confidence", "out_of_focus"])


def focus_row(name: str, dmap, *, out_of_focus_level: int = OUT_OF_FOCUS_LEVEL) -> dict:
    """One QC row for the image ``name`` from its defocus map.

    Parameters
    ----------
    name : the image's name (file name or path; the well is parsed from it, see :func:`parse_well`).
    dmap : its :class:`~awdvd.restore.defocus_maps.DefocusMap` (any stride or mode).
    out_of_focus_level : flag threshold (see the module docstring).

    Returns
    -------
    dict with the keys of :func:`focus_columns`, in that order: ``n_windows`` and ``n_foreground_windows``
    (counts), ``background_fraction`` (background windows / windows), ``fraction_level_<l>`` (windows at level
    l / foreground windows; they sum to 1), ``median_level`` and ``mean_level`` over the foreground windows,
    ``mean_confidence`` (mean probability of the predicted class over the foreground windows),
    ``out_of_focus`` (True / False; None without foreground), ``well`` ("A01"-style or "") and ``site``
    (int or None). Statistics without foreground windows are NaN.
    """
    if isinstance(out_of_focus_level, bool) or not isinstance(out_of_focus_level, (int, np.integer)):
        raise TypeError(f"out_of_focus_level must be an integer level, got {out_of_focus_level!r}")
    levels = np.asarray(dmap.levels).ravel()
    confidence = np.asarray(dmap.confidence).ravel()
    class_levels = np.asarray(dmap.class_levels)
    n_levels = int(class_levels[class_levels != BACKGROUND].max()) + 1 if np.any(class_levels != BACKGROUND) else 0
    if not 0 <= out_of_focus_level < max(n_levels, 1):
        raise ValueError(f"out_of_focus_level must be a level in 0..{n_levels - 1}, got {out_of_focus_level}")
    foreground = levels != BACKGROUND
    n_fg = int(foreground.sum())
    fg_levels = levels[foreground]
    well = parse_well(name)
    row: dict = {
        "image": str(name),
        "well": well.name if well else "",
        "site": well.site if well else None,
        "n_windows": int(levels.size),
        "n_foreground_windows": n_fg,
        "background_fraction": float(1.0 - n_fg / levels.size) if levels.size else math.nan,
    }
    counts = np.bincount(fg_levels, minlength=n_levels) if n_fg else np.zeros(n_levels, dtype=np.int64)
    for level in range(n_levels):
        row[f"fraction_level_{level}"] = float(counts[level] / n_fg) if n_fg else math.nan
    median = float(np.median(fg_levels)) if n_fg else math.nan
    row["median_level"] = median
    row["mean_level"] = float(fg_levels.mean()) if n_fg else math.nan
    row["mean_confidence"] = float(confidence[foreground].mean()) if n_fg else math.nan
    row["out_of_focus"] = bool(median >= out_of_focus_level) if n_fg else None
    return row


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return value


def write_focus_csv(path, rows: Sequence[dict], *, overwrite: bool = False) -> Path:
    """Write the focus rows of a run (from :func:`focus_row`) as one CSV, atomically.

    Columns are those of the first row (all rows must have the same); booleans are written ``true`` /
    ``false``, missing values (no well, no site, no foreground) as empty cells or ``nan``.
    """

    rows = list(rows)
    if not rows:
        raise ValueError("no focus rows to write; give at least one image's row")
    header = list(rows[0])
    for row in rows[1:]:
        if list(row) != header:
            raise ValueError(f"focus rows differ in their columns ({row.get('image')!r}); make them with one model")
    return write_csv(path, header, ([_cell(row[key]) for key in header] for row in rows), overwrite=overwrite)


def plate_layout(wells: Iterable[Well], plate: int | str = "auto") -> tuple[int, int]:
    """(rows, columns) of the plate: ``plate`` 96 or 384, or "auto" (96 if every well fits, else 384)."""
    wells = list(wells)
    if plate == "auto":
        plate = 96 if all(w.row < 8 and w.column <= 12 for w in wells) else 384
    if plate not in PLATE_LAYOUTS:
        raise ValueError(f"plate must be 96, 384 or 'auto', got {plate!r}")
    rows, columns = PLATE_LAYOUTS[plate]
    outside = [w.name for w in wells if w.row >= rows or w.column > columns]
    if outside:
        raise ValueError(f"wells {', '.join(sorted(set(outside)))} do not fit a {plate}-well plate; use plate=384")
    return rows, columns


def plate_heatmap(rows: Sequence[dict], path, *, plate: int | str = "auto", value: str = "median_level",
                  n_levels: int | None = None, title: str | None = None, overwrite: bool = False) -> Path:
    """A PNG of the plate with each well coloured by ``value`` (default the median level), atomically.

    A well with several sites (or images) shows the median over them; wells without an image are grey,
    wells whose images have no foreground are hatched grey ("no fg"); the number is printed in each well.
    Rows whose names carry no well are left out; ValueError if none does.

    n_levels : top of the colour scale for level values (default: from the rows' ``fraction_level_*``).
    """

    placed = [(parse_well(row["image"]), row) for row in rows]
    placed = [(well, row) for well, row in placed if well is not None]
    if not placed:
        raise ValueError("no image name carries a plate well (e.g. '_B03_'); a plate heat-map needs them")
    if value not in placed[0][1]:
        raise ValueError(f"rows have no column {value!r}; choose one of {', '.join(placed[0][1])}")
    n_rows, n_columns = plate_layout([well for well, _ in placed], plate)
    grid = np.full((n_rows, n_columns), np.nan)
    imaged = np.zeros((n_rows, n_columns), dtype=bool)
    per_well: dict[tuple[int, int], list[float]] = {}
    for well, row in placed:
        imaged[well.row, well.column - 1] = True
        number = row[value]
        if number is not None and not (isinstance(number, float) and math.isnan(number)):
            per_well.setdefault((well.row, well.column - 1), []).append(float(number))
    for (r, c), numbers in per_well.items():
        grid[r, c] = float(np.median(numbers))
    if n_levels is None:
        n_levels = sum(1 for key in placed[0][1] if key.startswith("fraction_level_")) or None
    level_scale = value in ("median_level", "mean_level") and n_levels
    vmin, vmax = (0.0, float(n_levels - 1)) if level_scale else (np.nanmin(grid) if per_well else 0.0,
                                                                    np.nanmax(grid) if per_well else 1.0)
    fig, ax = figure(figsize=(0.42 * n_columns + 2.2, 0.42 * n_rows + 1.2))
    ax.set_facecolor("#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=vmin, vmax=vmax, aspect="equal")
    for r in range(n_rows):
        for c in range(n_columns):
            if np.isfinite(grid[r, c]):
                colour = "white" if (grid[r, c] - vmin) < 0.6 * (vmax - vmin or 1) else "black"
                ax.text(c, r, f"{grid[r, c]:.3g}", ha="center", va="center", fontsize=6, color=colour)
            elif imaged[r, c]:
                ax.add_patch(_hatched(r, c))
                ax.text(c, r, "no fg", ha="center", va="center", fontsize=5, color="black")
    ax.set_xticks(range(n_columns), [str(c + 1) for c in range(n_columns)], fontsize=7)
    ax.set_yticks(range(n_rows), [chr(ord("A") + r) for r in range(n_rows)], fontsize=7)
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    colorbar = fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    colorbar.set_label(value.replace("_", " "), fontsize=8)
    ax.set_title(title or f"{value.replace('_', ' ')} per well ({n_rows * n_columns}-well plate, "
                 f"{len(per_well)} wells with foreground, grey: not imaged)", fontsize=9, pad=18)
    return save_figure(fig, path, overwrite=overwrite)


def _hatched(r: int, c: int):
    from matplotlib.patches import Rectangle

    return Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="#bdbdbd", hatch="///", edgecolor="#8c8c8c", lw=0)


def write_focus_report(rows: Sequence[dict], folder, *, csv_name: str = "focus_qc.csv",
                       heatmap_name: str = "focus_plate.png", plate: int | str = "auto",
                       overwrite: bool = False) -> dict[str, Path]:
    """The QC outputs of a run in ``folder``: the CSV always, the plate heat-map of the median level where
    image names carry wells. Returns {"csv": path[, "heatmap": path]}."""
    folder = Path(folder)
    rows = list(rows)
    targets = [folder / csv_name] + ([folder / heatmap_name] if any(parse_well(r["image"]) for r in rows) else [])
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist(s); choose another folder or pass overwrite=True (--overwrite)")
    paths = {"csv": write_focus_csv(folder / csv_name, rows, overwrite=overwrite)}
    if len(targets) > 1:
        paths["heatmap"] = plate_heatmap(rows, folder / heatmap_name, plate=plate, overwrite=overwrite)
    return paths
