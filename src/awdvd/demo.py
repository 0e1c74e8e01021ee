"""The bundled example: a procedural, tilted specimen of nuclei with known defocus at every pixel, restored
by awdvd end to end (defocus map with the bundled model, fast AWDVD, and the depth-invariant baseline).

Everything is made from code (no download): a field of nuclei-like objects, tilted so that every defocus
level 0-10 appears, blurred with the depth-variant forward model and given camera noise. With ``image=`` the
same runs on a real image, which has no ground truth: map, restoration and figure only.
"""

from __future__ import annotations

import json
import time

import numpy as np
from tqdm.auto import tqdm

from .data.patches import PATCH_PX
from .data.synth import synthetic_nuclei, tilted_specimen
from .io import check_output_folder, read_image, write_json, write_tiff
from .learn.model import DefocusModel
from .learn.model_files import bundled_model_path, load_model
from .learn.range_extension import near_optics
from .metrics import psnr, ssim
from .physics.optics import Optics
from .physics.psf import psf_bank
from .plots import (
    OVERLAY_ALPHA,
    defocus_overlay,
    figure,
    hatch_background,
    level_image,
    matplotlib_cmap_mappable,
    save_figure,
    scale_bar,
)
from .restore.options import options_with
from .restore.pipeline import deconvolve_invariant, iterations_per_level, restore_image
from .restore.windows import DefocusMap, window_levels_from_pixels

__all__ = ["run_demo", "true_level_map", "demo_figure"]


def _observed_and_truth(image, seed: int, optics):
    if image is None:
        specimen = tilted_specimen(synthetic_nuclei((520, 696), seed=seed), optics=optics, seed=seed)
        return specimen.observed, specimen.truth, specimen.levels, None
    data = read_image(image)
    if data.data.ndim != 2:
        raise ValueError(f"{image} is a stack of shape {data.data.shape}; the demo takes one 2-D image")
    return np.asarray(data.data), None, None, data.pixel_um


def true_level_map(levels, *, stride: int, patch_px: int, n_levels: int):
    """A :class:`~awdvd.restore.windows.DefocusMap` holding the true level at each window centre (certain)."""

    grid = window_levels_from_pixels(levels, stride=stride, patch_px=patch_px)
    return DefocusMap.from_levels(grid, levels.shape, stride=stride, patch_px=patch_px, n_levels=n_levels, mode="truth")


def run_demo(output, *, model=None, image=None, overwrite: bool = False, seed: int = 0, progress: bool = True,
             options=None) -> dict:
    """Run the example and write its outputs into the folder ``output``.

    Parameters
    ----------
    model : a :class:`~awdvd.learn.model.DefocusModel`, a model file path, or None for the bundled model. Where
        this installation has no bundled model, the procedural specimen is restored with its true levels
        (reported as such in the summary and on screen); a real image then needs a model.
    image : None for the procedural tilted specimen (with ground truth), or the path of a real 2-D image.
    options : :class:`awdvd.restore.options.AWDVDOptions` of the restoration (default ``AWDVDOptions()``, what
        ``awdvd deconvolve`` uses); the baseline uses the same iterations and offset.

    Returns
    -------
    A summary dict (also written as ``metrics.json``): output paths, timings, and for the procedural
    specimen PSNR/SSIM of the recorded, depth-invariant and AWDVD images against the truth (data range of the
    truth) and the accuracy of the predicted window levels.
    """

    options = options_with(options, {})
    output = check_output_folder(output)  # before any work
    names = ["recorded.tif", "awdvd.tif", "invariant.tif", "defocus_map.png", "demo.png", "metrics.json"]
    if image is None:
        names += ["truth.tif", "true_levels.tif"]
    existing = [n for n in names if (output / n).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{output} already holds demo outputs ({', '.join(existing)}); pass --overwrite")
    start = time.perf_counter()
    steps = tqdm(total=5, desc="demo", unit="step", disable=not progress)
    try:  # the bar is closed (its line ended) also when a step fails, so an error is not glued onto it
        if model is None and not bundled_model_path().is_file():
            if image is not None:
                raise FileNotFoundError("no bundled model in this installation; pass --model for a real image")
            model = None  # the procedural specimen knows its true levels: AWDVD runs with those, and says so
        else:
            model = model if isinstance(model, DefocusModel) else load_model(model)
        optics = model.optics if model is not None else Optics()
        # the procedural specimen tilts over the range the model reads level by level (0-20 um for the bundled one)
        specimen_optics = near_optics(model) if model is not None else optics
        bank = psf_bank(specimen_optics, size=options.psf_size)
        steps.update()
        observed, truth, true_levels, file_pixel_um = _observed_and_truth(image, seed, specimen_optics)
        pixel_um = file_pixel_um or optics.pixel_um
        timings = {}
        dmap = None
        if model is None:
            dmap = true_level_map(true_levels, stride=options.stride, patch_px=PATCH_PX, n_levels=bank.shape[0])
        steps.update()
        result = restore_image(observed, model, options, dmap=dmap, psfs=None if model is not None else bank,
                               pixel_um=file_pixel_um)  # a model's own levels: its PSFs, as deep as its map reads
        dmap, restored, offset = result.dmap, result.image, result.offset
        timings["defocus_map_s"] = result.timings_s["defocus_map"]
        timings["awdvd_fast_s"] = result.timings_s["deconvolution"]
        steps.update()
        t = time.perf_counter()
        in_focus_iterations = iterations_per_level(options, n_levels=len(bank))[0]
        invariant = deconvolve_invariant(observed, bank[0], options.replace(offset=offset, iterations=in_focus_iterations))
        timings["invariant_s"] = time.perf_counter() - t
        steps.update()

        paths = {
            "recorded": write_tiff(output / "recorded.tif", observed.astype(np.float32), pixel_um=pixel_um, overwrite=overwrite),
            "awdvd": write_tiff(output / "awdvd.tif", restored, pixel_um=pixel_um, overwrite=overwrite),
            "invariant": write_tiff(output / "invariant.tif", invariant, pixel_um=pixel_um, overwrite=overwrite),
            "defocus_map": defocus_overlay(observed, dmap, output / "defocus_map.png", depths_um=optics.depths_um,
                                           pixel_um=pixel_um, overwrite=overwrite),
        }
        summary: dict = {
            "input": "procedural tilted specimen (levels 0-10 left to right)" if image is None else str(image),
            "levels_from": model.info.get("name", "model file") if model is not None else
            "the specimen's true levels (no bundled model in this installation)",
            "stride_px": options.stride, "iterations": list(result.iterations), "background_offset_adu": offset,
            "options": options.to_dict(),
            "predicted_window_levels": dmap.level_counts(),
        }
        if truth is not None:
            paths["truth"] = write_tiff(output / "truth.tif", truth, pixel_um=pixel_um, overwrite=overwrite)
            paths["true_levels"] = write_tiff(output / "true_levels.tif", true_levels.astype(np.uint8), pixel_um=pixel_um,
                                              overwrite=overwrite)
            data_range = float(truth.max() - truth.min())
            summary["quality_vs_truth"] = {
                name: {"psnr_db": psnr(truth, img, data_range=data_range), "ssim": ssim(truth, img, data_range=data_range)}
                for name, img in (("recorded", observed), ("depth_invariant", invariant), ("awdvd", restored))
            }
            summary["quality_vs_truth"]["data_range"] = data_range
        if truth is not None and model is not None:
            expected = window_levels_from_pixels(true_levels, stride=dmap.stride, patch_px=dmap.patch_px)
            foreground = dmap.levels >= 0
            error = np.abs(dmap.levels - expected)[foreground]
            summary["window_levels"] = {
                "foreground_windows": int(foreground.sum()),
                "background_windows": int((~foreground).sum()),
                "accuracy": float(np.mean(error == 0)) if error.size else None,
                "within_1_level": float(np.mean(error <= 1)) if error.size else None,
                "mean_abs_error_levels": float(error.mean()) if error.size else None,
            }
        panels = [("recorded", "recorded", observed),
                  ("depth-invariant RL (level-0 PSF)", "depth_invariant", invariant),
                  (f"AWDVD ({options.method}, stride {options.stride})", "awdvd", restored)]
        if truth is not None:
            panels.append(("in-focus truth", None, truth))
        paths["figure"] = demo_figure(panels, summary, dmap, true_levels, observed=observed, truth=truth,
                                      pixel_um=pixel_um, n_levels=len(bank), path=output / "demo.png",
                                      overwrite=overwrite)
        steps.update()
    finally:
        steps.close()
    summary["timings"] = timings
    summary["seconds"] = time.perf_counter() - start
    summary["outputs"] = {k: str(v) for k, v in paths.items()}
    write_json(output / "metrics.json", summary, overwrite=overwrite)
    summary["outputs"]["metrics"] = str(output / "metrics.json")
    return json.loads(json.dumps(summary))


def demo_figure(panels, summary: dict, dmap, true_levels, *, observed, truth, pixel_um: float, n_levels: int, path,
                overwrite: bool = False):
    """``demo.png``: the images side by side (recorded, baseline, AWDVD, truth) with PSNR/SSIM and a scale bar;
    below, the zoom into the yellow box (captioned: where it is, its true level); below that, the predicted
    level map beside the true one (where known), in the overlay's colours. ``panels``: (title, quality key,
    image). Returns the path."""
    import matplotlib.colors as mcolors
    from matplotlib.patches import Rectangle

    columns = len(panels)
    fig, axes = figure(3, columns, figsize=(4.2 * columns, 8.6), gridspec_kw={"hspace": 0.32})
    lo, hi = np.percentile(truth if truth is not None else observed, [0.5, 99.8])
    height, width = observed.shape
    ys = slice(max(0, height // 2 - 60), min(height, height // 2 + 60))  # a zoom into the deep (right-hand) half
    xs = slice(max(0, width - 200), min(width, max(0, width - 200) + 160))
    for column, (title, key, data) in enumerate(panels):
        quality = summary.get("quality_vs_truth", {}).get(key)
        label = title + (f"\nPSNR {quality['psnr_db']:.1f} dB, SSIM {quality['ssim']:.3f}" if quality else "")
        axes[0, column].imshow(data, cmap="gray", vmin=lo, vmax=hi)
        axes[0, column].add_patch(Rectangle((xs.start, ys.start), xs.stop - xs.start, ys.stop - ys.start,
                                            fill=False, edgecolor="yellow", lw=1))
        axes[0, column].set_title(label, fontsize=9)
        axes[1, column].imshow(data[ys, xs], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        scale_bar(axes[0, column], pixel_um, width_px=width)
        scale_bar(axes[1, column], pixel_um, width_px=xs.stop - xs.start)
        for ax in axes[:2, column]:
            ax.set_axis_off()
    where = f"rows {ys.start}-{ys.stop}, columns {xs.start}-{xs.stop}"
    if true_levels is not None:
        zoom_levels = np.asarray(true_levels)[ys, xs]
        where += f", true levels {int(zoom_levels.min())}-{int(zoom_levels.max())}"
    box = axes[1, 0].get_position()
    fig.text(box.x0, box.y1 + 0.01, f"zoom into the yellow box ({where}), same contrast as above", fontsize=9,
             ha="left", va="bottom")
    maps = [("predicted levels" + (f" ({summary['levels_from']})" if summary.get("levels_from") else ""),
             dmap.to_pixels(method="nearest"))]
    if true_levels is not None:
        maps.append(("true levels", np.asarray(true_levels)))
    for column, (title, levels_px) in enumerate(maps):
        ax = axes[2, column]
        picture, shown = level_image(observed, levels_px, n_levels, alpha=OVERLAY_ALPHA)
        ax.imshow(picture, interpolation="nearest")
        hatch_background(ax, levels_px < 0)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
        scale_bar(ax, pixel_um, width_px=width)
    levels = summary.get("window_levels")
    if levels and levels.get("accuracy") is not None:
        axes[2, 0].set_title(maps[0][0] + f"\n{levels['accuracy']:.0%} of windows exact, "
                             f"{levels['within_1_level']:.0%} within 1 level", fontsize=9)
    for ax in axes[2, len(maps):]:
        ax.set_axis_off()
    bar = fig.colorbar(matplotlib_cmap_mappable(mcolors.ListedColormap(shown), n_levels), ax=list(axes[2, :len(maps)]),
                       ticks=range(n_levels), fraction=0.03, pad=0.02)
    bar.set_label("defocus level (hatched: background)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    fig.suptitle("awdvd demo: " + summary["input"], fontsize=10)
    return save_figure(fig, path, overwrite=overwrite)
