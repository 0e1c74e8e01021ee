"""napari sample data: the demo's tilted specimen (every defocus level 0-10, left to right) with its truth."""

from __future__ import annotations

import warnings

from ..data.synth import synthetic_nuclei, tilted_specimen
from ..physics.optics import Optics, UndersamplingWarning
from .layers import layer_scale, levels_layer

__all__ = ["tilted_specimen_sample"]


def tilted_specimen_sample(*, seed: int = 0, shape: tuple[int, int] = (520, 696)) -> list[tuple]:
    """Three layers, as ``awdvd demo`` makes them: the recorded image (defocused, camera noise; what to restore),
    the in-focus truth, and the true defocus levels (Labels, same legend as the widgets' maps). Pixel 0.65 um."""

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndersamplingWarning)  # the paper's optics are undersampled by design
        optics = Optics()
    specimen = tilted_specimen(synthetic_nuclei(shape, seed=seed), optics=optics, seed=seed)
    scale = layer_scale(optics.pixel_um)
    meta = {"pixel_um": optics.pixel_um, "optics": optics.to_dict()}
    units = ("um", "um")
    levels = levels_layer(specimen.levels, depths_um=optics.depths_um, name="tilted specimen: true levels", scale=scale,
                          units=units)
    levels[1]["visible"] = False
    # the truth first and hidden, the recorded image last: napari selects the layer added last, and the widgets'
    # image menu follows the selection, so Restore restores the recorded image, never the truth
    return [
        (specimen.truth, {"name": "tilted specimen: truth (in focus)", "scale": scale, "metadata": meta,
                          "units": units, "visible": False}, "image"),
        levels,
        (specimen.observed, {"name": "tilted specimen: recorded", "scale": scale, "metadata": meta, "units": units},
         "image"),
    ]
