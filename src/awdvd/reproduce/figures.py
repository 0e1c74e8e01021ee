"""The figures of the reproduction (PNG, one per item of Fig. 3-9): the paper's layouts of Fig. 7 and 9 drawn
here, the others through :mod:`awdvd.plots`. Arrays and dicts in, a PNG out; each function returns its path (:func:`plot_fig9`: its zoom box).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..plots import cmc_figure, confusion_figure, figure, save_figure, training_curves

__all__ = ["DPI", "confusion_png", "curves_png", "cmc_png", "placeholder_figure", "plot_fig7", "plot_fig9"]

DPI = 100


def confusion_png(summary: dict, path: Path, *, title: str) -> Path:
    """Fig. 3: the confusion matrix of an :func:`awdvd.learn.evaluate.evaluate_model` summary."""

    return confusion_figure(summary["confusion"], summary["class_names"], path, title=title)


def curves_png(histories: dict[str, list], path: Path) -> Path:
    """Fig. 4: training and validation curves, {label: per-epoch history}."""

    return training_curves(histories, path)


def cmc_png(curves: dict[str, list], path: Path, *, title: str) -> Path:
    """Fig. 5 and 6: cumulative match curves, {label: top-k accuracy for k = 1..K}."""

    return cmc_figure(curves, path, title=title)


def placeholder_figure(path: Path, text: str) -> Path:
    """A figure that only says ``text``: stands in for a figure that has nothing to show (no data)."""

    fig, ax = figure(figsize=(6, 1.5))
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10)
    ax.set_axis_off()
    return save_figure(fig, path, dpi=DPI)


def plot_fig7(panels: dict, metrics: dict, row: int, path: Path, *, level: int, predicted: int) -> Path:
    """The paper's Fig. 7: (a)-(e) the patches with PSNR (65535) and SSIM (in-focus range) in the titles, (f) the
    intensity profile along one row."""

    titles = {"in_focus": "(a) in focus", "defocused": f"(b) defocused (level {level})", "noisy": "(c) noisy defocused",
              "variant": f"(d) depth-variant RL\n(predicted level {'bg' if predicted < 0 else predicted})",
              "invariant": "(e) depth-invariant RL\n(level-0 PSF)"}
    truth = panels["in_focus"]
    lo, hi = np.percentile(np.concatenate([p.ravel() for p in panels.values()]), [0.5, 99.8])
    fig, axes = figure(2, 5, figsize=(14, 6.6), gridspec_kw={"height_ratios": [1.15, 1]})
    for ax, (name, image) in zip(axes[0], panels.items()):
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        m = metrics[name]
        psnr_text = "inf" if not math.isfinite(m["psnr_65535"]) else f"{m['psnr_65535']:.1f}"
        ax.set_title(f"{titles[name]}\nPSNR {psnr_text} dB, SSIM {m['ssim_truth_range']:.2f}", fontsize=9)
        ax.set_axis_off()
    axes[0][0].annotate("", xy=(truth.shape[1] - 1, row), xytext=(0, row),
                        arrowprops={"arrowstyle": "->", "color": "red", "lw": 1.2})
    grid = axes[1][0].get_gridspec()
    for ax in axes[1]:
        ax.remove()
    profile = fig.add_subplot(grid[1, :])
    colours = {"in_focus": "black", "defocused": "tab:grey", "noisy": "tab:purple", "variant": "tab:blue",
               "invariant": "tab:red"}
    for name, image in panels.items():
        profile.plot(np.asarray(image)[row], color=colours[name], label=titles[name].split("\n")[0], lw=1.2)
    profile.set(xlabel="x (px) along the red arrow", ylabel="intensity (ADU)",
                title="(f) profile; PSNR at data range 65535 (the paper's), SSIM at the in-focus patch's max - min")
    profile.legend(fontsize=8, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    profile.grid(alpha=0.3)
    return save_figure(fig, path, dpi=DPI)


def plot_fig9(images: dict, by_name: dict, path: Path) -> list[int]:
    """The paper's Fig. 9: observed, case (i), case (ii) (model levels; true levels where there is no model) and
    the truth, whole and zoomed into a box that straddles case (i)'s window boundaries."""
    from matplotlib.patches import Rectangle

    source = "model" if "case_i_model" in by_name else "true"
    names = [("observed", "(a) observed (tilted specimen)"), (f"case_i_{source}", "(b) case (i): stride 84, rectangular"),
             (f"case_ii_{source}", "(c) case (ii): stride 42, triangular"), ("truth", "in-focus truth")]
    truth = images["truth"]
    height, width = truth.shape
    side = min(168, height, width)
    # a box in the deep (right) half whose middle holds a window corner at (168, 84 k)
    y0 = int(np.clip(168 - side // 2, 0, height - side))
    x0 = int(np.clip(84 * round(0.7 * width / 84) - side // 2, 0, width - side))
    lo, hi = np.percentile(truth, [0.5, 99.8])
    fig, axes = figure(2, len(names), figsize=(3.6 * len(names), 2.8 * (height / width + 1.0) + 1.3),
                       gridspec_kw={"height_ratios": [height / width, 1.0]})
    for column, (name, title) in enumerate(names):
        image = images[name]
        r = by_name.get(name)
        label = title if r is None else (f"{title}\nPSNR {r['psnr_truth_range']:.2f} dB, SSIM {r['ssim_truth_range']:.3f},"
                                         f" seam {r['seam_ratio_error']:.2f}")
        axes[0, column].imshow(image, cmap="gray", vmin=lo, vmax=hi)
        axes[0, column].add_patch(Rectangle((x0, y0), side, side, fill=False, edgecolor="red", ls="--", lw=1))
        axes[0, column].set_title(label, fontsize=8)
        axes[1, column].imshow(image[y0 : y0 + side, x0 : x0 + side], cmap="gray", vmin=lo, vmax=hi,
                               interpolation="nearest")
        axes[1, column].set_title(f"({'def'[column]}) zoom" if column < 3 else "zoom", fontsize=8)
        for ax in axes[:, column]:
            ax.set_axis_off()
    fig.suptitle(f"levels from {'the main DelpNet' if source == 'model' else 'the truth'}; seam = gradient energy "
                 "across case (i) window boundaries over elsewhere, on the error image (1 = no seams)", fontsize=9)
    save_figure(fig, path, dpi=DPI)
    return [y0, x0, side, side]
