"""Figures (matplotlib, Agg backend: no display needed). Functions take arrays and a path; they write PNGs
atomically and return the path."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["figure", "save_figure", "psf_montage", "defocus_overlay"]


def figure(*args, **kwargs):
    """A new matplotlib figure on the Agg backend (safe on machines without a display)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig, path, *, overwrite: bool = False, dpi: int = 120) -> Path:
    import matplotlib.pyplot as plt

    from .io import atomic_path

    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


def psf_montage(psfs: np.ndarray, depths_um: Sequence[float], path, *, overwrite: bool = False) -> Path:
    """One panel per PSF (square-root intensity, so rings and the defocus disc show), titled with its depth."""
    psfs = np.asarray(psfs)
    n = len(psfs)
    cols = min(n, 6)
    rows = int(np.ceil(n / cols))
    fig, axes = figure(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    for index, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if index < n:
            ax.imshow(np.sqrt(psfs[index] / psfs[index].max()), cmap="magma", interpolation="nearest")
            ax.set_title(f"z = {depths_um[index]:g} um", fontsize=9)
    fig.suptitle(f"defocus PSFs, {psfs.shape[-1]} x {psfs.shape[-1]} px (sqrt intensity)", fontsize=10)
    return save_figure(fig, path, overwrite=overwrite)


def _stretch(image: np.ndarray, low: float = 0.5, high: float = 99.8) -> np.ndarray:
    """Percentile contrast stretch to [0, 1] for display."""
    x = np.asarray(image, dtype=np.float64)
    lo, hi = np.percentile(x, [low, high])
    return np.clip((x - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(x)


def defocus_overlay(image: np.ndarray, dmap, path, *, depths_um: Sequence[float] | None = None, title: str | None = None,
                    overwrite: bool = False) -> Path:
    """The paper's Fig. 2(c): the image in grey with every window's level as a colour (each pixel takes the
    window whose centre is nearest), background windows hatched, level numbers written on the windows when
    there are few enough of them to read."""
    import matplotlib.colors as mcolors

    n_levels = int(max(dmap.class_levels.max(), 0)) + 1
    pixels = dmap.to_pixels(method="nearest")
    height, width = pixels.shape
    fig, ax = figure(figsize=(8.0, 8.0 * height / width + 0.6))
    ax.imshow(_stretch(image), cmap="gray", interpolation="nearest")
    cmap = mcolors.ListedColormap([matplotlib_cmap("turbo")(v) for v in np.linspace(0.05, 0.95, n_levels)])
    shown = ax.imshow(np.ma.masked_less(pixels, 0), cmap=cmap, vmin=-0.5, vmax=n_levels - 0.5, alpha=0.45,
                      interpolation="nearest")
    if np.any(pixels < 0):
        ax.contourf((pixels < 0).astype(float), levels=[0.5, 1.5], colors="none", hatches=["///"])
    if dmap.levels.size <= 300:
        for (j, i), level in np.ndenumerate(dmap.levels):
            cy, cx = dmap.centres[j, i]
            ax.text(cx, cy, "bg" if level < 0 else str(int(level)), ha="center", va="center", fontsize=7,
                    color="white", fontweight="bold")
    bar = fig.colorbar(shown, ax=ax, ticks=range(n_levels), fraction=0.035, pad=0.02)
    labels = [str(level) for level in range(n_levels)]
    if depths_um is not None:
        labels = [f"{level} ({z:g} um)" for level, z in zip(range(n_levels), depths_um)]
    bar.ax.set_yticklabels(labels, fontsize=7)
    bar.set_label("defocus level (hatched: background)", fontsize=8)
    ax.set_axis_off()
    ax.set_title(title or f"defocus map, {dmap.patch_px} px windows, stride {dmap.stride} px ({dmap.mode})", fontsize=9)
    return save_figure(fig, path, overwrite=overwrite)


def matplotlib_cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]
