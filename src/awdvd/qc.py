"""Plate focus QC: one table row per image from its defocus map, a CSV for a whole run, and a plate heat-map.

A screening lab asks of every well: is it in focus, can the restoration rescue it, or must it be imaged again?
:func:`focus_row` answers it for one image from its :class:`~awdvd.restore.windows.DefocusMap`: the depth of
its foreground in micrometres (in the image's own optics, ``dmap.z_step_um``) and a verdict, beside the fraction
of foreground windows at each defocus level, the median and mean level, the mean confidence, the background
fraction and a level flag. :func:`write_focus_csv` writes the rows of a run; :func:`parse_well` reads
BBBC-style plate wells and sites from file names (``..._a19_s2_...``) and :func:`plate_heatmap` draws the
median depth of each well on a 96- or 384-well plate, with the wells to re-image crossed.

Depth and verdict
-----------------
From the map's per-window depths (:attr:`~awdvd.restore.windows.DefocusMap.depth_um`, probability-weighted,
and their spread), over the foreground windows: ``median_depth_um``, ``depth_spread_um`` (median of the
windows' spreads) and ``out_of_focus_area`` (fraction of windows deeper than the in-focus threshold). The
verdict, the first rule that holds:

1. ``"no foreground"``: no foreground window (nothing to judge).
2. ``"beyond the range: re-image"``: at least :data:`BEYOND_RANGE_FRACTION` (50 %) of the foreground windows
   are at the model's deepest level. That level is the end of the model's range (20 um at the bundled optics:
   11 levels 2 um apart); a window there is at least that deep and the map cannot tell how much deeper, so no
   PSF bank can be trusted for it: image the field again.
3. ``"in focus"``: ``median_depth_um <= IN_FOCUS_STEPS * z_step_um``, the median within one
   level-equivalent of focus (:data:`IN_FOCUS_STEPS` = 1). The level-equivalent is the map's z step, so the
   threshold follows the objective: 2 um at the bundled optics (451 nm, NA 0.5), about the widefield depth of
   field lambda / NA^2 = 1.8 um.
4. ``"restorable"``: otherwise; the depth-variant deconvolution is made for these.

The verdict judges the median; ``out_of_focus_area`` says how much of a field in focus is not (a field whose
median is in focus may still hold a blurred corner). A map without a depth step (``z_step_um`` None: levels
only) gives NaN depths and no verdict (empty cell).

The level flag
--------------
``out_of_focus`` is kept from before the depths: an image is flagged when the median level of its foreground
windows is at least ``out_of_focus_level`` (default :data:`OUT_OF_FOCUS_LEVEL` = 2). With the bundled model's
optics level 2 is 4 um of defocus, about twice the depth of field: blur that a restoration can still undo but
that biases intensity and shape measurements. Background windows do not vote; an image with no foreground
window has no median and is not flagged (``out_of_focus`` empty).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data.patches import BACKGROUND
from .io import write_csv
from .plots import figure, save_figure

__all__ = [
    "BEYOND_RANGE",
    "BEYOND_RANGE_FRACTION",
    "IN_FOCUS",
    "IN_FOCUS_STEPS",
    "NO_FOREGROUND",
    "OUT_OF_FOCUS_LEVEL",
    "PLATE_LAYOUTS",
    "RESTORABLE",
    "VERDICTS",
    "Well",
    "focus_columns",
    "focus_row",
    "parse_well",
    "plate_heatmap",
    "plate_layout",
    "write_focus_csv",
    "write_focus_report",
]

#: Default flag threshold: an image whose median foreground level is at least this is "out of focus".
OUT_OF_FOCUS_LEVEL = 2

#: "in focus": the median foreground depth is at most this many level-equivalents (``z_step_um``) from focus.
IN_FOCUS_STEPS = 1.0

#: "beyond the range": at least this fraction of the foreground windows is at the model's deepest level.
BEYOND_RANGE_FRACTION = 0.5

#: The verdicts of :func:`focus_row`, in the order of the rules that give them (see the module docstring).
NO_FOREGROUND = "no foreground"
BEYOND_RANGE = "beyond the range: re-image"
IN_FOCUS = "in focus"
RESTORABLE = "restorable"
VERDICTS = (NO_FOREGROUND, BEYOND_RANGE, IN_FOCUS, RESTORABLE)

# relative slack on the in-focus threshold, so that a window exactly one level deep is in focus despite float noise
_DEPTH_RTOL = 1e-9

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
            + ["median_level", "mean_level", "mean_confidence", "out_of_focus"]
            + ["z_step_um", "median_depth_um", "depth_spread_um", "out_of_focus_area", "verdict"])


def focus_row(name: str, dmap, *, out_of_focus_level: int = OUT_OF_FOCUS_LEVEL) -> dict:
    """One QC row for the image ``name`` from its defocus map.

    Parameters
    ----------
    name : the image's name (file name or path; the well is parsed from it, see :func:`parse_well`).
    dmap : its :class:`~awdvd.restore.windows.DefocusMap` (any stride or mode); its ``z_step_um`` gives the
        depths (None: no depth columns).
    out_of_focus_level : level-flag threshold (see the module docstring).

    Returns
    -------
    dict with the keys of :func:`focus_columns`, in that order: ``n_windows`` and ``n_foreground_windows``
    (counts), ``background_fraction`` (background windows / windows), ``fraction_level_<l>`` (windows at level
    l / foreground windows; they sum to 1), ``median_level`` and ``mean_level`` over the foreground windows,
    ``mean_confidence`` (mean probability of the predicted class over the foreground windows),
    ``out_of_focus`` (True / False; None without foreground), ``well`` ("A01"-style or "") and ``site``
    (int or None); then, from the depths, ``z_step_um`` (the map's level-equivalent, um; None without one),
    ``median_depth_um`` and ``depth_spread_um`` (medians of the foreground windows' depth and its spread, um),
    ``out_of_focus_area`` (fraction of foreground windows deeper than ``IN_FOCUS_STEPS * z_step_um``) and
    ``verdict`` (one of :data:`VERDICTS`; None without ``z_step_um``). Statistics without foreground windows,
    and depths without ``z_step_um``, are NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from awdvd.restore.windows import DefocusMap
    >>> levels = np.array([[0, 1, 1], [2, 3, -1]])  # five foreground windows, one background
    >>> dmap = DefocusMap.from_levels(levels, (126, 168), stride=42, patch_px=84, n_levels=11, z_step_um=2.0)
    >>> row = focus_row("plate1_B03_s1.tif", dmap)
    >>> row["well"], row["median_depth_um"], row["out_of_focus_area"], row["verdict"]
    ('B03', 2.0, 0.4, 'in focus')
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
    row.update(_depth_columns(dmap, foreground, fg_levels, n_levels))
    return row


def _depth_columns(dmap, foreground: np.ndarray, fg_levels: np.ndarray, n_levels: int) -> dict:
    """The depth columns of :func:`focus_row` (see the module docstring for the verdict's rules)."""
    z_step_um = None if dmap.z_step_um is None else float(dmap.z_step_um)
    columns = {"z_step_um": z_step_um, "median_depth_um": math.nan, "depth_spread_um": math.nan,
               "out_of_focus_area": math.nan, "verdict": None}
    if z_step_um is None:
        return columns
    if not fg_levels.size:
        return {**columns, "verdict": NO_FOREGROUND}
    depth = np.asarray(dmap.depth_um, dtype=np.float64).ravel()[foreground]
    spread = np.asarray(dmap.depth_spread_um, dtype=np.float64).ravel()[foreground]
    in_focus_um = IN_FOCUS_STEPS * z_step_um * (1 + _DEPTH_RTOL)
    median_depth = float(np.median(depth))
    deepest = n_levels - 1
    # a one-level model has no range to fall off: its only level is focus
    if deepest > 0 and np.mean(fg_levels == deepest) >= BEYOND_RANGE_FRACTION:
        verdict = BEYOND_RANGE
    elif median_depth <= in_focus_um:
        verdict = IN_FOCUS
    else:
        verdict = RESTORABLE
    return {**columns, "median_depth_um": median_depth, "depth_spread_um": float(np.median(spread)),
            "out_of_focus_area": float(np.mean(depth > in_focus_um)), "verdict": verdict}


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


def _number(value) -> float | None:
    """A finite float from a row's cell, or None (None, NaN, empty)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def plate_heatmap(rows: Sequence[dict], path, *, plate: int | str = "auto", value: str = "median_depth_um",
                  n_levels: int | None = None, title: str | None = None, overwrite: bool = False) -> Path:
    """A PNG of the plate with each well coloured by ``value`` (default the median depth, um), atomically.

    A well with several sites (or images) shows the median over them; wells without an image are grey,
    wells whose images have no foreground are hatched grey ("no fg"; "n/a" where they have foreground but no
    ``value``); the number is printed in each well. Wells where any image's verdict is "beyond the range:
    re-image" are crossed in red, the text under the plate states the verdicts' thresholds and the colour bar
    marks the in-focus depth. With the default ``value``, rows without depths (maps without ``z_step_um``) are
    drawn by ``median_level`` instead. Rows whose names carry no well are left out; ValueError if none does.

    n_levels : top of the colour scale for level values (default: from the rows' ``fraction_level_*``); depths
        are scaled from 0 to the model's deepest level, ``(n_levels - 1) * z_step_um``.
    """

    placed = [(parse_well(row["image"]), row) for row in rows]
    placed = [(well, row) for well, row in placed if well is not None]
    if not placed:
        raise ValueError("no image name carries a plate well (e.g. '_B03_'); a plate heat-map needs them")
    if value == "median_depth_um" and not any(_number(row.get(value)) is not None for _, row in placed):
        value = "median_level"  # maps without a depth step: levels are all there is
    if value not in placed[0][1]:
        raise ValueError(f"rows have no column {value!r}; choose one of {', '.join(placed[0][1])}")
    n_rows, n_columns = plate_layout([well for well, _ in placed], plate)
    grid = np.full((n_rows, n_columns), np.nan)
    imaged = np.zeros((n_rows, n_columns), dtype=bool)
    beyond = np.zeros((n_rows, n_columns), dtype=bool)
    foreground = np.zeros((n_rows, n_columns), dtype=bool)  # some image of the well has foreground windows
    per_well: dict[tuple[int, int], list[float]] = {}
    for well, row in placed:
        cell = (well.row, well.column - 1)
        imaged[cell] = True
        beyond[cell] |= row.get("verdict") == BEYOND_RANGE
        foreground[cell] |= (_number(row.get("n_foreground_windows")) or 0) > 0
        try:
            number = _number(row[value])
        except (TypeError, ValueError):
            raise ValueError(f"column {value!r} is not a number ({row[value]!r}); choose a numeric column") from None
        if number is not None:
            per_well.setdefault(cell, []).append(number)
    for (r, c), numbers in per_well.items():
        grid[r, c] = float(np.median(numbers))
    if n_levels is None:
        n_levels = sum(1 for key in placed[0][1] if key.startswith("fraction_level_")) or None
    steps = sorted({step for _, row in placed if (step := _number(row.get("z_step_um"))) is not None})
    depth_scale = value == "median_depth_um" and steps and n_levels
    level_scale = value in ("median_level", "mean_level") and n_levels
    if depth_scale:
        vmin, vmax = 0.0, float((n_levels - 1) * steps[-1])
    elif level_scale:
        vmin, vmax = 0.0, float(n_levels - 1)
    else:
        vmin, vmax = (np.nanmin(grid), np.nanmax(grid)) if per_well else (0.0, 1.0)
    fig, ax = figure(figsize=(0.42 * n_columns + 2.2, 0.42 * n_rows + 1.2))
    ax.set_facecolor("#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=vmin, vmax=vmax, aspect="equal")
    for r in range(n_rows):
        for c in range(n_columns):
            if beyond[r, c]:
                ax.add_collection(_crossed(r, c))
            if np.isfinite(grid[r, c]):
                colour = "white" if (grid[r, c] - vmin) < 0.6 * (vmax - vmin or 1) else "black"
                # crossed wells: the number on a patch of the well's own colour, so the X does not strike it
                backing = ({"boxstyle": "square,pad=0.15", "fc": image.to_rgba(grid[r, c]), "ec": "none"}
                           if beyond[r, c] else None)
                # depths to 0.1 um (finer than any threshold means), other values to 3 significant figures
                text = f"{round(float(grid[r, c]), 1):g}" if value.endswith("_um") else f"{grid[r, c]:.3g}"
                ax.text(c, r, text, ha="center", va="center", fontsize=6, color=colour, bbox=backing)
            elif imaged[r, c]:  # "n/a": foreground, but no value (e.g. a row from a map without depths)
                ax.add_patch(_hatched(r, c))
                ax.text(c, r, "n/a" if foreground[r, c] else "no fg", ha="center", va="center", fontsize=5)
    ax.set_xticks(range(n_columns), [str(c + 1) for c in range(n_columns)], fontsize=7)
    ax.set_yticks(range(n_rows), [chr(ord("A") + r) for r in range(n_rows)], fontsize=7)
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    colorbar = fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    label = {"median_depth_um": "median defocus depth (um)", "median_level": "median defocus level"}
    colorbar.set_label(label.get(value, value.replace("_", " ")), fontsize=8)
    colorbar.ax.tick_params(labelsize=7)
    if depth_scale:
        if len(steps) == 1:  # one objective: a tick per level, so depths read as levels too
            colorbar.set_ticks(np.arange(n_levels) * steps[0])
        for step in steps:  # the in-focus threshold(s) on the colour bar
            colorbar.ax.axhline(IN_FOCUS_STEPS * step, color="white", lw=1.5)
    what = label.get(value, value.replace("_", " "))
    ax.set_title(title or f"{what} per well ({n_rows * n_columns}-well plate, {len(per_well)} wells with "
                 f"foreground)", fontsize=9, pad=18)
    ax.text(0.0, -0.03, _legend(steps, n_levels, int(beyond.sum())), transform=ax.transAxes, fontsize=7,
            ha="left", va="top", linespacing=1.5)
    return save_figure(fig, path, overwrite=overwrite)


def _legend(steps: list[float], n_levels: int | None, n_beyond: int) -> str:
    """The thresholds of the verdicts, in the plate's own um where the rows have depths, as figure text."""
    grey = "grey: not imaged; hatched grey: no foreground"
    if not steps or not n_levels:
        return f"{grey}; no depth step in these maps: levels only, no verdicts"
    um = (lambda x: f"{round(x, 1):g}")  # 0.1 um is finer than any threshold means
    span = (lambda f: um(f(steps[0])) if len(steps) == 1 else f"{um(f(steps[0]))}-{um(f(steps[-1]))}")
    in_focus = span(lambda s: IN_FOCUS_STEPS * s)
    deepest = span(lambda s: (n_levels - 1) * s)
    lines = ("the white line on the colour bar" if len(steps) == 1
             else "white lines on the colour bar, one per z step")
    return (f"in focus: median depth \u2264 {in_focus} um (one level step, {lines}); "
            f"restorable: deeper\n"
            f"red X: beyond the range, re-image ({n_beyond} wells): \u2265 {BEYOND_RANGE_FRACTION:.0%} of a field's "
            f"foreground at the model's deepest level ({deepest} um or more)\n{grey}")


def _hatched(r: int, c: int):
    from matplotlib.patches import Rectangle

    return Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="#bdbdbd", hatch="///", edgecolor="#8c8c8c", lw=0)


def _crossed(r: int, c: int):
    """A red X over a well, and a red frame (both visible on any viridis colour)."""
    from matplotlib.collections import LineCollection

    a, b = 0.36, 0.44  # inset, so the frames of neighbouring crossed wells stay apart
    return LineCollection([[(c - a, r - a), (c + a, r + a)], [(c - a, r + a), (c + a, r - a)],
                           [(c - b, r - b), (c + b, r - b), (c + b, r + b), (c - b, r + b), (c - b, r - b)]],
                          colors="#d62728", linewidths=[1.2, 1.2, 1.5])


def write_focus_report(rows: Sequence[dict], folder, *, csv_name: str = "focus_qc.csv",
                       heatmap_name: str = "focus_plate.png", plate: int | str = "auto",
                       overwrite: bool = False) -> dict[str, Path]:
    """The QC outputs of a run in ``folder``: the CSV always, the plate heat-map of the median depth (or level,
    for maps without depths) where image names carry wells. Returns {"csv": path[, "heatmap": path]}."""
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
