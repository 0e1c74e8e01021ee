"""In-focus training sources from other microscopes and at other object scales, brought to the model's grid.

The scalar defocus model (Eq. 2) depends on the lateral distance only through k (NA / n) r, so an in-focus field
recorded with other optics is, once resampled to the model's sampling in those optical units
(:func:`awdvd.physics.optical_units.grid_factor`), a field the model's own optics could have recorded: blurring it
there with the model's PSFs is blurring it with its own optics at the level-equivalent depths (the in-focus Airy
pattern is the same in optical units). This is how BBBC039's 20x / NA 0.45 fields at 0.645 um train a model of
BBBC006's 20x / NA 0.5 at 0.65 um without pretending they share its optics.

Other objectives also record other object scales on the model's grid (a 60x / 1.4 oil objective's nuclei are 2.4
times larger in model pixels than a 20x / 0.5's; a 10x / 0.3's 0.6 times): :func:`object_scale_copies` adds
copies of real fields downsampled by a random factor (area averaging keeps them sharp; upsampling a real field would
blur it and is not done: larger objects come from procedural fields with larger nuclei instead).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .._checks import check_image
from ..physics.optical_units import grid_factor, to_grid
from ..physics.optics import Optics

__all__ = ["sources_on_model_grid", "object_scale_copies"]


def sources_on_model_grid(images: Sequence[np.ndarray], source_optics: Sequence[Optics | None],
                          model_optics: Optics, *, min_px: int = 84) -> list[np.ndarray]:
    """Each in-focus image resampled from its own optics to the model's sampling (None: already at it).

    Parameters
    ----------
    images : 2-D in-focus images (raw camera units: area averaging keeps the camera offset and intensities).
    source_optics : one :class:`~awdvd.physics.optics.Optics` (or None) per image: the optics it was recorded with.
    model_optics : the optics the model is trained at.
    min_px : the smallest side an image may have on the model's grid (a window's side).

    Returns
    -------
    list of float32 images on the model's grid.

    Examples
    --------
    >>> import numpy as np
    >>> from awdvd.physics.optics import Optics
    >>> bbbc039 = Optics(wavelength_um=0.46, na=0.45, n=1.0, pixel_um=0.645)
    >>> [image.shape for image in sources_on_model_grid([np.ones((520, 696))], [bbbc039], Optics())]
    [(455, 609)]
    """
    images, source_optics = list(images), list(source_optics)
    if len(images) != len(source_optics):
        raise ValueError(f"{len(source_optics)} source optics for {len(images)} sources")
    out = []
    for i, (image, optics) in enumerate(zip(images, source_optics)):
        image = check_image(image, f"sources[{i}]", ndim=2)
        grid = image.astype(np.float32) if optics is None else to_grid(image, grid_factor(optics, model_optics))
        if min(grid.shape) < min_px:
            raise ValueError(f"sources[{i}] is {grid.shape[0]} x {grid.shape[1]} px on the model's grid, smaller "
                             f"than a {min_px} px window")
        out.append(grid)
    return out


def object_scale_copies(images: Sequence[np.ndarray], scale_range: tuple[float, float], *, copies: int = 1,
                        seed=0, min_px: int = 84) -> tuple[list[np.ndarray], list[float]]:
    """``copies`` downsampled copies of every image, each at a scale drawn log-uniformly in ``scale_range``.

    Parameters
    ----------
    images : 2-D in-focus images on the model's grid.
    scale_range : (low, high) with 0 < low <= high <= 1: output pixels per input pixel.
    copies : copies per image (0: none).
    seed : the generator of the scales.
    min_px : a copy smaller than this on a side is scaled to it instead.

    Returns
    -------
    (copies, scales): the copies in order (image 0's first) and the scale of each.

    Examples
    --------
    >>> import numpy as np
    >>> out, scales = object_scale_copies([np.ones((200, 300))], (0.5, 0.5))
    >>> out[0].shape, scales
    ((100, 150), [0.5])
    """
    low, high = (float(v) for v in scale_range)
    if not (0 < low <= high <= 1) or not math.isfinite(low):
        raise ValueError(f"scale_range must be (low, high) with 0 < low <= high <= 1, got {scale_range!r}")
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 0:
        raise ValueError(f"copies must be an integer >= 0, got {copies!r}")
    rng = np.random.default_rng(seed)
    out, scales = [], []
    for i, image in enumerate(images):
        image = check_image(image, f"images[{i}]", ndim=2)
        for _ in range(copies):
            scale = float(np.exp(rng.uniform(math.log(low), math.log(high))))
            scale = max(scale, min_px / min(image.shape))
            out.append(to_grid(image, min(1.0, scale)))
            scales.append(round(min(1.0, scale), 4))
    return out, scales
