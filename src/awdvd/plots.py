"""Figures (matplotlib, Agg backend: no display needed). Functions take arrays and a path; they write PNGs
atomically and return the path."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .io import atomic_path
from .io.writers import software

__all__ = ["figure", "save_figure", "psf_montage", "defocus_overlay", "level_colours", "level_image", "scale_bar", "hatch_background",
           "training_curves", "stream_curves", "confusion_figure", "cmc_figure", "plot_patch_metrics", "plot_whole_image",
           "OVERLAY_ALPHA"]


def figure(*args, **kwargs):
    """A new matplotlib figure on the Agg backend (safe on machines without a display)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig, path, *, overwrite: bool = False, dpi: int = 120) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path, overwrite=overwrite) as tmp:  # the Software text says awdvd wrote it (io.made_by_awdvd)
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png", metadata={"Software": software()})
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


#: opacity of the level colours over the image (the image stays readable beneath)
OVERLAY_ALPHA = 0.45


def level_colours(n_levels: int) -> np.ndarray:
    """(n_levels, 4) RGBA: the colour of each defocus level in every awdvd figure (turbo, blue = in focus)."""
    return np.array([matplotlib_cmap("turbo")(v) for v in np.linspace(0.05, 0.95, n_levels)])


def _cells(starts: np.ndarray, patch_px: int, length: int) -> np.ndarray:
    """(n, 2) [first, end) pixel range each window owns along one axis when every pixel takes the window whose
    centre is nearest (DefocusMap.to_pixels(method="nearest"))."""
    centres = starts + (patch_px - 1) / 2
    edges = np.concatenate([[0.0], (centres[:-1] + centres[1:]) / 2 + 0.5, [float(length)]])
    edges = np.clip(np.floor(edges), 0, length)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def scale_bar(ax, pixel_um: float | None, *, width_px: float, colour: str = "white", fontsize: float = 7,
              outside: bool = False) -> None:
    """A scale bar of a round length (about a fifth of ``width_px``) at the lower right of an image axis, or
    just below the image with ``outside`` (where labels fill the image); nothing without ``pixel_um``."""
    if not pixel_um or width_px <= 0:
        return
    import matplotlib.transforms as mtransforms

    target_um = width_px * pixel_um / 5
    nice = [n * 10**e for e in range(-2, 5) for n in (1, 2, 5)]
    length_um = max([n for n in nice if n <= target_um] or [nice[0]])
    length_px = length_um / pixel_um
    x0, x1 = sorted(ax.get_xlim())
    right = x1 - 0.03 * (x1 - x0)
    label = f"{length_um:g} µm" if length_um >= 1 else f"{length_um * 1000:g} nm"
    # x in data (pixels), y in axes fractions: the bar's length is the image's scale wherever it is drawn
    blend = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    y, colour = (-0.035, "black") if outside else (0.05, colour)
    ax.plot([right - length_px, right], [y, y], color=colour, lw=3, solid_capstyle="butt", transform=blend,
            clip_on=False)
    ax.text(right - length_px - 0.01 * (x1 - x0), y, label, color=colour, ha="right", va="center",
            fontsize=fontsize, transform=blend, clip_on=False)


def level_image(image: np.ndarray, levels_px: np.ndarray, n_levels: int, *, alpha: float = OVERLAY_ALPHA):
    """(H, W, 3) float picture: the image in grey with each pixel's level colour laid over it at ``alpha``
    (background, -1, left grey), and the (n_levels, 3) colours those levels show over the image's background
    (its median grey), for a colour bar that matches what the eye sees."""
    grey = _stretch(image)
    colours = level_colours(n_levels)[:, :3]
    picture = np.repeat(grey[..., None], 3, axis=2)
    foreground = levels_px >= 0
    tint = colours[np.clip(levels_px, 0, n_levels - 1)]
    picture[foreground] = (1 - alpha) * picture[foreground] + alpha * tint[foreground]
    backdrop = float(np.median(grey))
    return picture, (1 - alpha) * backdrop + alpha * colours


def hatch_background(ax, mask: np.ndarray) -> None:
    """Background pixels hatched in translucent white, the image still visible beneath (no fill)."""
    if not mask.any():
        return
    hatched = ax.contourf(mask.astype(float), levels=[0.5, 1.5], colors="none", hatches=["///"])
    hatched.set_edgecolor((1.0, 1.0, 1.0, 0.55))
    hatched.set_linewidth(0.0)
    ax.contour(mask.astype(float), levels=[0.5], colors=[(1.0, 1.0, 1.0, 0.8)], linewidths=0.6)


def defocus_overlay(image: np.ndarray, dmap, path, *, depths_um: Sequence[float] | None = None, title: str | None = None,
                    pixel_um: float | None = None, overwrite: bool = False) -> Path:
    """The paper's Fig. 2(c): the image in grey with every window's level as a translucent colour (each pixel
    takes the window whose centre is nearest), background windows hatched over the image (never hidden), level
    numbers in the middle of each window's cell when there are few enough to read, a colour bar of the colours
    as they show over the image's background, and a scale bar where ``pixel_um`` is known."""
    import matplotlib.colors as mcolors

    n_levels = int(max(dmap.class_levels.max(), 0)) + 1
    pixels = dmap.to_pixels(method="nearest")
    height, width = pixels.shape
    fig, ax = figure(figsize=(8.0, 8.0 * height / width + 0.6))
    picture, shown_colours = level_image(image, pixels, n_levels)
    ax.imshow(picture, interpolation="nearest")
    hatch_background(ax, pixels < 0)
    if dmap.levels.size <= 300:
        rows = _cells(np.asarray(dmap.ys), dmap.patch_px, height)
        cols = _cells(np.asarray(dmap.xs), dmap.patch_px, width)
        for (j, i), level in np.ndenumerate(dmap.levels):
            (y0, y1), (x0, x1) = rows[j], cols[i]
            if min(y1 - y0, x1 - x0) < 14:  # too small a cell to hold a label without touching its neighbours
                continue
            ax.text((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2, "bg" if level < 0 else str(int(level)), ha="center",
                    va="center", fontsize=7, color="white", fontweight="bold")
    scale_bar(ax, pixel_um, width_px=width, outside=True)
    cmap = mcolors.ListedColormap(shown_colours)
    mappable = matplotlib_cmap_mappable(cmap, n_levels)
    bar = fig.colorbar(mappable, ax=ax, ticks=range(n_levels), fraction=0.035, pad=0.02)
    labels = [str(level) for level in range(n_levels)]
    if depths_um is not None:
        labels = [f"{level} ({z:g} um)" for level, z in zip(range(n_levels), depths_um)]
    bar.ax.set_yticklabels(labels, fontsize=7)
    bar.set_label("defocus level (hatched: background)", fontsize=8)
    ax.set_axis_off()
    ax.set_title(title or f"defocus map, {dmap.patch_px} px windows, stride {dmap.stride} px ({dmap.mode})", fontsize=9)
    return save_figure(fig, path, overwrite=overwrite)


def matplotlib_cmap_mappable(cmap, n_levels: int):
    """A ScalarMappable of ``cmap`` over the levels 0 .. n_levels - 1 (one colour per level), for colour bars."""
    import matplotlib.cm as cm
    import matplotlib.colors as mcolors

    return cm.ScalarMappable(norm=mcolors.Normalize(vmin=-0.5, vmax=n_levels - 0.5), cmap=cmap)


def matplotlib_cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def training_curves(histories: dict[str, Sequence[dict]], path, *, overwrite: bool = False) -> Path:
    """Loss and accuracy per epoch, train (dashed) and validation (solid), one colour per run.

    histories : {run label: the per-epoch entries of :func:`awdvd.learn.train.train_model`} (several runs overlay,
        e.g. the BatchNorm momenta of the paper's Fig. 4).
    """
    fig, (ax_loss, ax_acc) = figure(1, 2, figsize=(10, 3.8))
    for index, (label, history) in enumerate(histories.items()):
        colour = f"C{index}"
        epochs = [h["epoch"] for h in history]
        ax_loss.plot(epochs, [h["train_loss"] for h in history], "--", color=colour, alpha=0.7, label=f"{label} train")
        ax_loss.plot(epochs, [h["val_loss"] for h in history], "-", color=colour, label=f"{label} val")
        ax_acc.plot(epochs, [h["train_accuracy"] for h in history], "--", color=colour, alpha=0.7, label=f"{label} train")
        ax_acc.plot(epochs, [h["val_accuracy"] for h in history], "-", color=colour, label=f"{label} val")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.0))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path, overwrite=overwrite)


def stream_curves(history: Sequence[dict], path, *, overwrite: bool = False) -> Path:
    """Training on the stream: train loss (left) and validation accuracy / within +/-1 (right) per step."""
    fig, (ax_loss, ax_acc) = figure(1, 2, figsize=(10, 3.8))
    steps = [h["step"] for h in history]
    ax_loss.plot(steps, [h["train_loss"] for h in history], "-", color="C0")
    ax_acc.plot(steps, [h["val_accuracy"] for h in history], "-", color="C1", label="top-1")
    ax_acc.plot(steps, [h["val_within1"] for h in history], "--", color="C2", label="within +/-1 level")
    ax_loss.set(xlabel="step", ylabel="cross-entropy (training batches)", title="loss")
    ax_acc.set(xlabel="step", ylabel="accuracy", title="validation (fixed draw, randomized cameras)", ylim=(0, 1.0))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=8)
    return save_figure(fig, path, overwrite=overwrite)


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str], path, *, title: str = "",
                     overwrite: bool = False) -> Path:
    """The confusion matrix as in the paper's Fig. 3: rows true class, columns predicted, colour = fraction of
    the row, numbers = counts."""
    confusion = np.asarray(confusion)
    k = len(class_names)
    rows = confusion.sum(axis=1, keepdims=True)
    fraction = np.divide(confusion, rows, out=np.zeros(confusion.shape, float), where=rows > 0)
    fig, ax = figure(figsize=(0.55 * k + 2.5, 0.55 * k + 1.5))
    image = ax.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if confusion[i, j]:
                ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if fraction[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), class_names, fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class")
    return save_figure(fig, path, overwrite=overwrite)


def cmc_figure(curves: dict[str, Sequence[float]], path, *, title: str = "", overwrite: bool = False) -> Path:
    """Cumulative match curves (top-k accuracy against k) of one or more models, as the paper's Fig. 5 and 6."""
    fig, ax = figure(figsize=(5.5, 4))
    for label, curve in curves.items():
        ks = np.arange(1, len(curve) + 1)
        ax.plot(ks, curve, "o-", markersize=4, label=f"{label} (top-1 {curve[0]:.1%})")
    ax.set(xlabel="k", ylabel="top-k accuracy", title=title or "cumulative match curve")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path, overwrite=overwrite)


# --------------------------------------------------------------------------------------------- restoration (Fig. 8, 9)
def plot_patch_metrics(report: dict, path, *, ssim_range: str = "truth_range", overwrite: bool = False) -> Path:
    """Fig. 8: (a) PSNR gain over the noisy patch (the same for any data range), (b) SSIM and the SSIM ratio
    (depth-variant / noisy) per level, with SSIM's data range ``ssim_range`` ("truth_range" by default: at
    65535 SSIM's stabilising constants dwarf 12-bit signals and every SSIM is about 1)."""
    rows = [r for r in report["levels"] if r.get("n")]
    levels = [r["level"] for r in rows]
    names = [n for n in ("variant_true", "variant_predicted", "invariant") if n in rows[0]["psnr_gain_db"]]
    labels = {"variant_true": "depth-variant (true level)", "variant_predicted": "depth-variant (predicted level)",
              "invariant": "depth-invariant (level-0 PSF)", "noisy": "noisy defocused"}
    colours = {"variant_true": "tab:blue", "variant_predicted": "tab:green", "invariant": "tab:red", "noisy": "grey"}
    fig, (a, b) = figure(1, 2, figsize=(11, 4))
    for name in names:
        gains = [np.nan if r["psnr_gain_db"][name] is None else r["psnr_gain_db"][name] for r in rows]
        a.plot(levels, gains, marker="o", label=labels[name], color=colours[name])
    a.axhline(0, color="grey", lw=0.8)
    a.set_xlabel("defocus level")
    a.set_ylabel("PSNR gain over noisy (dB)")
    a.set_title("(a) PSNR improvement", fontsize=10)
    a.legend(fontsize=8)
    for name in ["noisy"] + names:
        values = [r["ssim"][name][ssim_range]["mean"] for r in rows]
        b.plot(levels, values, marker="o", label=labels[name], color=colours[name])
    b.set_xlabel("defocus level")
    b.set_ylabel(f"SSIM (data range: {'65535' if ssim_range == 'paper_65535' else 'in-focus patch max - min'})")
    b.set_title("(b) SSIM; ratio = depth-variant (true level) / noisy", fontsize=10)
    twin = b.twinx()
    ratio = [r["ssim_ratio"][ssim_range]["variant_true"] for r in rows]
    twin.plot(levels, ratio, color="tab:orange", ls="--", marker="s", label="SSIM ratio (true level)")
    for x, y in zip(levels, ratio):
        twin.annotate(f"{100 * (y - 1):+.1f}%", (x, y), fontsize=7, color="tab:orange", ha="center",
                      xytext=(0, 5), textcoords="offset points")
    twin.set_ylabel("SSIM ratio", color="tab:orange")
    b.legend(fontsize=8, loc="lower left")
    return save_figure(fig, path, overwrite=overwrite)


def plot_whole_image(report: dict, path, *, names: Sequence[str] = ("truth", "observed", "case_i_true",
                                                                      "case_ii_true", "fast_s8_true"), crop=None,
                     overwrite: bool = False) -> Path:
    """Fig. 9: crops of the truth and of restorations (from a report made with ``keep_images=True``), titled
    with PSNR (truth range) and the seam ratio."""
    images = report["images"]
    names = [n for n in names if n in images]
    by_name = {r["name"]: r for r in report["results"]}
    first = images[names[0]]
    crop = crop or (slice(0, min(260, first.shape[0])), slice(0, min(260, first.shape[1])))
    reference = np.concatenate([images[n][crop].ravel() for n in names])
    lo, hi = np.percentile(reference, [0.5, 99.8])
    fig, axes = figure(1, len(names), figsize=(3.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.imshow(np.clip((images[name][crop] - lo) / (hi - lo), 0, 1), cmap="gray", interpolation="nearest")
        r = by_name.get(name)
        ax.set_title(name if r is None else
                     f"{name}\nPSNR {r['psnr_truth_range']:.2f} dB, seam {r['seam_ratio_error']:.2f}", fontsize=8)
        ax.set_axis_off()
    return save_figure(fig, path, overwrite=overwrite)
