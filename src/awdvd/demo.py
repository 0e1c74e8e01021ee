"""The bundled example: a procedural, tilted specimen of nuclei with known defocus at every pixel.

Everything is made from code (no download): a field of nuclei-like objects, tilted so that every defocus
level 0-10 appears, blurred with the depth-variant forward model and given camera noise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .optics import Optics
from .synth import CameraNoise, depth_variant_blur, forward_bank, synthetic_nuclei, tilted_levels

__all__ = ["TiltedSpecimen", "tilted_specimen", "run_demo"]


@dataclass
class TiltedSpecimen:
    """truth: in-focus object (ADU); levels: per-pixel defocus level; image: what the camera records."""

    truth: np.ndarray
    levels: np.ndarray
    image: np.ndarray
    optics: Optics


def tilted_specimen(shape=(520, 696), *, optics: Optics | None = None, noise: CameraNoise | None = None,
                    psf_size: int | None = None, seed: int = 0, truth: np.ndarray | None = None) -> TiltedSpecimen:
    """A tilted specimen: ``truth`` (default: procedural nuclei) with levels rising 0 -> n_levels - 1 from
    left to right, blurred by the depth-variant forward model and recorded with camera noise."""
    optics = Optics() if optics is None else optics
    noise = CameraNoise() if noise is None else noise
    truth = synthetic_nuclei(shape, seed=seed) if truth is None else np.asarray(truth, dtype=np.float32)
    levels = tilted_levels(truth.shape, optics.n_levels)
    # the camera offset is electronic, not light: only the fluorescence above it is blurred
    offset = min(noise.offset_adu, float(truth.min()))
    blurred = depth_variant_blur(truth - offset, levels, forward_bank(optics, size=psf_size)) + offset
    image = noise.apply(blurred, np.random.default_rng([seed, 99]))
    return TiltedSpecimen(truth=truth.astype(np.float32), levels=levels, image=image, optics=optics)


def run_demo(output, *, overwrite: bool = False, seed: int = 0) -> dict:
    """Write the example and its pictures into ``output``; return a summary (paths and timings)."""
    from .io import write_tiff
    from .plots import figure, psf_montage, save_figure
    from .psf import psf_bank

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    optics = Optics()
    bank = psf_bank(optics)
    specimen = tilted_specimen(optics=optics, seed=seed)
    paths = {
        "psf_bank": write_tiff(output / "psf_bank.tif", bank.astype(np.float32), pixel_um=optics.pixel_um, overwrite=overwrite),
        "psf_montage": psf_montage(bank, optics.depths_um, output / "psf_bank.png", overwrite=overwrite),
        "truth": write_tiff(output / "specimen_truth.tif", specimen.truth, pixel_um=optics.pixel_um, overwrite=overwrite),
        "image": write_tiff(output / "specimen_defocused.tif", specimen.image, pixel_um=optics.pixel_um, overwrite=overwrite),
        "levels": write_tiff(output / "specimen_levels.tif", specimen.levels.astype(np.uint8), pixel_um=optics.pixel_um,
                             overwrite=overwrite),
    }
    fig, axes = figure(1, 3, figsize=(15, 4.2))
    hi = float(np.percentile(specimen.truth, 99.5))
    for ax, data, title in ((axes[0], specimen.truth, "in focus (truth)"), (axes[1], specimen.image, "recorded: tilted, 0 -> 20 um")):
        ax.imshow(data, cmap="gray", vmin=float(np.percentile(data, 1)), vmax=hi)
        ax.set_title(title)
        ax.axis("off")
    im = axes[2].imshow(specimen.levels, cmap="viridis", vmin=0, vmax=optics.n_levels - 1)
    axes[2].set_title("true defocus level")
    axes[2].axis("off")
    fig.colorbar(im, ax=axes[2], fraction=0.035, label="level (x 2 um)")
    paths["figure"] = save_figure(fig, output / "specimen.png", overwrite=overwrite)
    return {"outputs": {k: str(v) for k, v in paths.items()}, "seconds": time.perf_counter() - start}
