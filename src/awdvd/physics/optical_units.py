"""Optical units: one defocus model for every widefield objective (DESIGN section 7).

Eq. 2 depends on the lateral radius r only through u = k (NA/n) r and on the defocus z only through
v = (1/2) k z (NA/n)^2, with k = 2 pi n / lambda the wavenumber in the immersion medium. In (u, v) the defocus PSF family is the same for every objective,
so an image brought to the model's pixel size in u (its ``du`` per pixel) is read by a model trained at other
optics, and the model's depth levels carry over through v. This module holds the unit conversions and the
resampling that does it; the image's optics and the model's are both :class:`~awdvd.physics.optics.Optics`.

``Optics.wavelength_um`` is the vacuum emission wavelength; k is taken in the medium (2 pi n / lambda), as
:mod:`awdvd.physics.psf` takes it: with 2 pi / lambda, u and v of an immersion objective came out n times too
small (benchmarks/bench_high_na_psf.py: at 60x / 1.4 oil, in focus, 45% L2 from Gibson-Lanni, against 0.4% with
the medium's wavenumber). For air objectives (n = 1) both readings agree. Eq. 2 is paraxial and scalar: the same benchmark puts it 35-65% (L2) from the Gibson-Lanni
PSF at NA 0.75 and 1-4 um of defocus, and 80% or more at NA 0.95 and 1.4, so the (u, v) equivalence is a sound
basis up to about NA 0.5-0.6 and an approximation beyond.

Examples
--------
A 40x / 0.75 image at 0.1625 um pixels, read by the BBBC006 model (20x / 0.5, 0.65 um pixels, 2 um levels):

>>> import numpy as np
>>> from awdvd.physics.optics import Optics
>>> from awdvd.physics.optical_units import grid_factor, level_step_um, to_grid
>>> model = Optics()
>>> image_optics = Optics(wavelength_um=0.52, na=0.75, n=1.0, pixel_um=0.1625)
>>> factor = grid_factor(image_optics, model)
>>> round(factor, 3), round(level_step_um(image_optics, model), 2)
(0.325, 1.02)
>>> to_grid(np.ones((512, 512)), factor).shape
(167, 167)
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from .._checks import check_image
from .optics import Optics, UndersamplingWarning

__all__ = ["overlap_matrix", "axial_unit_per_um", "depth_between", "from_grid_boxes", "grid_factor", "grid_shape",
           "lateral_unit_per_um", "level_step_um", "model_pixel_um", "on_model_grid", "pixel_du", "to_grid"]


def _check_optics(optics, name: str) -> Optics:
    if not isinstance(optics, Optics):
        raise TypeError(f"{name} must be an awdvd Optics, got {type(optics).__name__}; build one with Optics(...)")
    return optics


def _wavenumber_per_um(optics: Optics) -> float:
    """k of Eq. 2 (rad/um), the wavenumber in the immersion medium, as :mod:`awdvd.physics.psf` takes it."""
    return 2 * math.pi * optics.n / optics.wavelength_um


def lateral_unit_per_um(optics: Optics) -> float:
    """Lateral optical unit of Eq. 2: u per micrometre of radius, ``k NA / n`` (rad/um), ``k = 2 pi / lambda``.

    Parameters
    ----------
    optics : the objective's optics.

    Returns
    -------
    float : radians of u per um in the specimen plane.

    Examples
    --------
    >>> from awdvd.physics.optics import Optics
    >>> round(lateral_unit_per_um(Optics()), 3)  # BBBC006: 2 pi / 0.451 um * 0.5
    6.966
    """
    optics = _check_optics(optics, "optics")
    return _wavenumber_per_um(optics) * optics.na / optics.n


def axial_unit_per_um(optics: Optics) -> float:
    """Axial optical unit of Eq. 2: v per micrometre of defocus, ``(1/2) k (NA / n)^2`` (rad/um).

    Parameters
    ----------
    optics : the objective's optics.

    Returns
    -------
    float : radians of defocus phase v (at the pupil's edge) per um of defocus.

    Examples
    --------
    >>> from awdvd.physics.optics import Optics
    >>> round(axial_unit_per_um(Optics()) * Optics().z_step_um, 2)  # one BBBC006 level in v
    3.48
    """
    optics = _check_optics(optics, "optics")
    return 0.5 * _wavenumber_per_um(optics) * (optics.na / optics.n) ** 2


def pixel_du(optics: Optics) -> float:
    """Size of one pixel in the lateral optical unit: ``du = k (NA / n) pixel_um`` (rad, dimensionless).

    Two images with the same ``du`` per pixel sample the Eq. 2 PSF family identically.

    Examples
    --------
    >>> from awdvd.physics.optics import Optics
    >>> round(pixel_du(Optics()), 2)
    4.53
    """
    optics = _check_optics(optics, "optics")
    return lateral_unit_per_um(optics) * optics.pixel_um


def depth_between(z_um, source: Optics, target: Optics):
    """Defocus in ``target`` optics with the same Eq. 2 defocus phase v as ``z_um`` in ``source`` optics.

    ``z_target = z_um * axial_unit_per_um(source) / axial_unit_per_um(target)``. The PSF of ``source`` at
    ``z_um`` and the PSF of ``target`` at the returned depth are the same function of u.

    Parameters
    ----------
    z_um : float or array_like
        Defocus in micrometres in the ``source`` optics (any shape; the sign is kept).
    source, target : Optics
        The optics ``z_um`` is measured in, and the optics to express it in.

    Returns
    -------
    float or ndarray
        Defocus in micrometres in ``target`` optics: a float for a scalar ``z_um``, otherwise a float64 array of
        ``z_um``'s shape.

    Examples
    --------
    >>> from awdvd.physics.optics import Optics
    >>> model = Optics()
    >>> oil = Optics(wavelength_um=0.52, na=1.4, n=1.518, pixel_um=0.108)
    >>> depth_between([2.0, 20.0], model, oil).round(2).tolist()
    [0.45, 4.46]
    """
    ratio = axial_unit_per_um(_check_optics(source, "source")) / axial_unit_per_um(_check_optics(target, "target"))
    z = np.asarray(z_um, dtype=float)
    out = z * ratio
    return float(out) if out.ndim == 0 else out


def grid_factor(image_optics: Optics, model_optics: Optics) -> float:
    """Scale that brings an image to the model's sampling: ``pixel_du(image_optics) / pixel_du(model_optics)``.

    The image's shape is multiplied by this factor (see :func:`to_grid`): below 1 the image is finer than the
    model's grid and is downsampled, above 1 it is coarser and is upsampled. (DESIGN section 7's table lists
    the inverse, the image pixels per model pixel.)

    Parameters
    ----------
    image_optics : the optics the image was taken with.
    model_optics : the optics the model was trained at.

    Returns
    -------
    float : output pixels per input pixel along each axis.

    Examples
    --------
    >>> from awdvd.physics.optics import Optics
    >>> ten_x = Optics(wavelength_um=0.46, na=0.3, n=1.0, pixel_um=0.65)
    >>> round(1 / grid_factor(ten_x, Optics()), 2)  # 1.70 image pixels per model pixel
    1.7
    """
    return pixel_du(image_optics) / pixel_du(model_optics)


def level_step_um(image_optics: Optics, model_optics: Optics) -> float:
    """The model's defocus step carried into the image's optics: one level-equivalent, in micrometres.

    ``depth_between(model_optics.z_step_um, model_optics, image_optics)``; the model's level ``l`` reads as
    ``l * level_step_um(...)`` um of defocus in the image.

    Examples
    --------
    >>> from awdvd.physics.optics import Optics
    >>> oil = Optics(wavelength_um=0.52, na=1.4, n=1.518, pixel_um=0.108)
    >>> round(level_step_um(oil, Optics()), 2)
    0.45
    """
    model_optics = _check_optics(model_optics, "model_optics")
    return depth_between(model_optics.z_step_um, model_optics, image_optics)


def model_pixel_um(image_optics: Optics, model_optics: Optics) -> float:
    """Size (um, in the image's specimen plane) of one pixel of the model's grid: ``pixel_um / grid_factor``.

    Examples
    --------
    >>> from awdvd.physics.optics import Optics
    >>> forty_x = Optics(wavelength_um=0.52, na=0.75, n=1.0, pixel_um=0.1625)
    >>> round(model_pixel_um(forty_x, Optics()), 2)
    0.5
    """
    image_optics = _check_optics(image_optics, "image_optics")
    return image_optics.pixel_um / grid_factor(image_optics, model_optics)


def on_model_grid(image_optics: Optics, model_optics: Optics) -> Optics:
    """The image's optics as the model sees them after :func:`to_grid`.

    Same wavelength, NA and n as ``image_optics``; pixel :func:`model_pixel_um`; levels :func:`level_step_um`
    apart, as many as the model's. Its :func:`~awdvd.physics.psf.psf_bank` equals the model's (same du per pixel,
    same v per level). The model's grid is usually coarser than Nyquist by design (BBBC006's is), so the
    :class:`~awdvd.physics.optics.UndersamplingWarning` is not raised here.

    Examples
    --------
    >>> from awdvd.physics.optics import Optics
    >>> grid = on_model_grid(Optics(wavelength_um=0.46, na=0.45, n=1.0, pixel_um=0.645), Optics())
    >>> round(grid.pixel_um, 3), round(grid.z_step_um, 2), grid.n_levels
    (0.737, 2.52, 11)
    """
    image_optics = _check_optics(image_optics, "image_optics")
    model_optics = _check_optics(model_optics, "model_optics")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndersamplingWarning)
        return Optics(wavelength_um=image_optics.wavelength_um, na=image_optics.na, n=image_optics.n,
                      pixel_um=model_pixel_um(image_optics, model_optics),
                      z_step_um=level_step_um(image_optics, model_optics), n_levels=model_optics.n_levels)


def _check_factor(factor) -> float:
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real):
        raise TypeError(f"factor must be a real number, got {type(factor).__name__}")
    factor = float(factor)
    if not math.isfinite(factor) or factor <= 0:
        raise ValueError(f"factor must be finite and positive, got {factor!r}; see grid_factor()")
    return factor


def grid_shape(image_shape, factor: float) -> tuple[int, int]:
    """Shape (rows, cols) of an image of ``image_shape`` resampled by ``factor``: ``round(image_shape * factor)``.

    Raises
    ------
    ValueError
        If an axis would have no pixel left.

    Examples
    --------
    >>> grid_shape((520, 696), 1 / 1.7)
    (306, 409)
    """
    factor = _check_factor(factor)
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"image_shape must be two positive sizes (rows, cols), got {image_shape!r}")
    out = tuple(round(s * factor) for s in shape)
    if min(out) < 1:
        raise ValueError(f"factor {factor:g} shrinks an image of shape {shape} to {out}; use a larger image")
    return out


def overlap_matrix(n_in: int, n_out: int):
    """(n_out, n_in) sparse CSR area weights: row j is output pixel j's footprint, ``n_in / n_out`` input pixels
    long, as fractions of that footprint covered by each input pixel (each row sums to 1)."""
    from scipy import sparse

    edges = np.arange(n_out + 1, dtype=float) * n_in / n_out  # output edges in input-pixel coordinates
    edges[-1] = n_in  # exact, so the footprints tile the input
    first = np.floor(edges[:-1]).astype(np.int64)
    touched = math.ceil(n_in / n_out) + 1  # most input pixels one footprint can touch
    cols = first[:, None] + np.arange(touched)[None, :]
    overlap = np.minimum(cols + 1, edges[1:, None]) - np.maximum(cols, edges[:-1, None])
    weights = np.clip(overlap, 0.0, None) / np.diff(edges)[:, None]
    keep = (weights > 0) & (cols < n_in)
    rows = np.broadcast_to(np.arange(n_out)[:, None], cols.shape)
    return sparse.csr_matrix((weights[keep], (rows[keep], cols[keep])), shape=(n_out, n_in))


def to_grid(image, factor: float) -> np.ndarray:
    """Resample pixel-integrated camera data by ``factor``, by exact area averaging (up and down).

    The image is taken as piecewise constant over its pixels; each output pixel is its average over the
    output pixel's footprint. This is what a camera with the larger (or smaller) pixels would have integrated,
    per pixel: intensities stay in ADU per pixel, a constant image stays constant and the mean is preserved
    exactly (up to float32 rounding of the output). Separable: one sparse overlap matrix per axis.

    The output shape is :func:`grid_shape` ``(image.shape, factor)``; the footprints tile the image exactly, so
    the scale used along an axis is ``out / in`` for that axis, which differs from ``factor`` by less than half a
    pixel over the image (0.1% for 512 pixels).

    Parameters
    ----------
    image : (rows, cols) array_like
        Real, finite camera data (any numeric dtype).
    factor : float
        Output pixels per input pixel, e.g. :func:`grid_factor`; < 1 downsamples.

    Returns
    -------
    (round(rows * factor), round(cols * factor)) float32 ndarray

    Examples
    --------
    >>> import numpy as np
    >>> to_grid(np.arange(16.0).reshape(4, 4), 0.5)  # 2 x 2 block means
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    >>> to_grid(np.array([[0.0, 3.0], [0.0, 3.0]]), 1.5)  # the middle column straddles both input columns
    array([[0. , 1.5, 3. ],
           [0. , 1.5, 3. ],
           [0. , 1.5, 3. ]], dtype=float32)
    """
    image = check_image(image, "image", ndim=2, min_shape=(1, 1))
    out_rows, out_cols = grid_shape(image.shape, factor)
    data = image.astype(np.float64, copy=False)
    if (out_rows, out_cols) == image.shape:
        return data.astype(np.float32)
    rows = overlap_matrix(image.shape[0], out_rows) @ data  # (out_rows, cols)
    return np.ascontiguousarray((overlap_matrix(image.shape[1], out_cols) @ rows.T).T, dtype=np.float32)


def from_grid_boxes(starts_px, sizes_px, *, image_shape, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Image pixel boxes covered by windows on the model's grid (the inverse map of :func:`to_grid`).

    A window starting at grid pixel ``starts_px`` with ``sizes_px`` pixels covers the image interval
    ``[start * s, (start + size) * s)`` per axis, with ``s = image_shape / grid_shape(image_shape, factor)``
    (the scale :func:`to_grid` used). Starts are rounded down and stops up, so the box holds every image pixel
    that contributed to the window (at most one pixel more than the exact footprint at each end), clipped to
    the image.

    Parameters
    ----------
    starts_px : (..., 2) array_like of int
        (row, col) of each window's first pixel on the model's grid.
    sizes_px : int or (..., 2) array_like of int
        Window sizes on the grid (rows, cols), broadcast against ``starts_px``.
    image_shape : (rows, cols) of the image that :func:`to_grid` resampled.
    factor : the factor passed to :func:`to_grid`.

    Returns
    -------
    starts_px, stops_px : int64 ndarrays of the broadcast shape (..., 2)
        Image pixel box of each window: ``image[r0:r1, c0:c1]`` with ``(r0, c0) = starts_px``,
        ``(r1, c1) = stops_px``.

    Examples
    --------
    >>> starts, stops = from_grid_boxes([[0, 0], [2, 3]], 2, image_shape=(8, 12), factor=0.5)
    >>> starts.tolist(), stops.tolist()
    ([[0, 0], [4, 6]], [[4, 4], [8, 10]])
    """
    in_shape = np.array(grid_shape(image_shape, 1.0), dtype=np.int64)
    scale = in_shape / np.array(grid_shape(image_shape, factor), dtype=float)
    starts = np.asarray(starts_px)
    sizes = np.asarray(sizes_px)
    for name, value in (("starts_px", starts), ("sizes_px", sizes)):
        if not np.issubdtype(value.dtype, np.integer):
            raise TypeError(f"{name} must hold integers (grid pixels), got dtype {value.dtype}")
    if starts.ndim == 0 or starts.shape[-1] != 2:
        raise ValueError(f"starts_px must have shape (..., 2) of (row, col), got {starts.shape}")
    starts, sizes = np.broadcast_arrays(starts, sizes)
    if (sizes < 1).any():
        raise ValueError("sizes_px must be at least 1 grid pixel")
    # a tiny tolerance so that float scale products that are integers in exact arithmetic are not pushed out
    lo = np.floor(starts * scale + 1e-9).astype(np.int64)
    hi = np.ceil((starts + sizes) * scale - 1e-9).astype(np.int64)
    return np.clip(lo, 0, in_shape), np.clip(hi, 0, in_shape)
