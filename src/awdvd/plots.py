"""Figures (matplotlib, Agg backend: no display needed). Functions take arrays and a path; they write PNGs
atomically and return the path."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["figure", "save_figure", "psf_montage"]


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
