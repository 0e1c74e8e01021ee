"""Properties of the one pipeline (awdvd.restore.pipeline.deconvolve) over random valid images and options (hypothesis):
the input's shape back, finite values, nothing below the offset where the input is not, and the flux kept: exactly
where one level holds the map, and within what Richardson-Lucy guarantees where levels change (flux_change_bound),
with the symmetric boundary (the default, "extended", lets the estimate hold light beyond the image's edges).

A rule stands in for the network (tests/_standins.RuleModel: background where a window is flat, else a level
from its mean brightness), so that maps mix levels and background and each example takes a fraction of a second.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from _standins import RuleModel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from awdvd.restore.options import AWDVDOptions
from awdvd.restore.pipeline import restore_image

#: float32 rounding of a sum of up to 150 x 150 restored values (relative)
FLUX_RTOL = 1e-5


def flux_change_bound(image: np.ndarray, result) -> tuple[float, float]:
    """(expected flux change, bound on the rest) of an AWDVD restoration, from what RL guarantees.

    One RL step u' = u K^T(d / K u) with a normalised PSF K moves light by at most the PSF's reach. For any
    weights a >= 0, sum_p a(p) u'(p) = sum_q d(q) a^(q), where a^(q) is a weighted mean of a over the PSF's
    support around q; so sum_p a (u' - d) = sum_q d(q) (a^(q) - a(q)), bounded by sum_q d(q) osc_a(q), osc_a(q)
    the largest change of a within the PSF's support of q. The blend gives every pixel sum_L a_L RL_L with
    a_L = (label L's blend weight) / (all labels' weights): a_L per level for the "fast" method (one RL per
    level region), per window and level for "patchwise". Where a level map is one restored level throughout,
    every osc is 0 and the flux is kept exactly. RL restores d = max(image - offset, 0) and adds the offset back,
    so pixels below the offset gain (offset - image) x their restored share: the expected change.
    """
    from scipy import ndimage

    from awdvd.physics.psf import psf_bank
    from awdvd.restore.blend import label_shares
    from awdvd.restore.rl import is_delta_psf
    from awdvd.restore.windows import axis_weight_matrix, window_profile

    dmap, options, image = result.dmap, result.options, image.astype(np.float64)
    n_levels = len(result.iterations)
    psfs = psf_bank(RuleModel().optics, size=result.psf_size)
    restored = {level for level in range(n_levels) if result.iterations[level] > 0 and not is_delta_psf(psfs[level])}
    shares = {label: share for label, share in
              label_shares(dmap.levels, dmap.proba, dmap.class_levels, n_levels, options.level_blend).items()
              if label in restored}
    profile = window_profile(options.weighting, patch_px=dmap.patch_px, stride=dmap.stride)
    ty = axis_weight_matrix(image.shape[0], dmap.ys, profile)
    tx = axis_weight_matrix(image.shape[1], dmap.xs, profile)
    total_weight = ty.T @ np.ones(dmap.levels.shape) @ tx
    size = result.psf_size

    def oscillation(a):
        return np.maximum(ndimage.maximum_filter(a, size, mode="nearest") - a,
                          a - ndimage.minimum_filter(a, size, mode="nearest"))

    share_restored, osc = np.zeros(image.shape), np.zeros(image.shape)
    for share in shares.values():
        a = ty.T @ share @ tx / total_weight
        share_restored += a
        if options.method == "fast":
            osc += oscillation(a)
        else:
            for j, i in zip(*np.nonzero(share)):
                osc += oscillation(np.outer(ty[j], tx[i]) * share[j, i] / total_weight)
    data = np.maximum(image - result.offset, 0.0)
    expected = float((share_restored * np.maximum(result.offset - image, 0.0)).sum())
    return expected, float((data * osc).sum())


@st.composite
def specimens(draw):
    """(image, step of the rule model): a field of blobs on a background that rises across it (so windows
    fall into several levels), Poisson noise, sometimes a flat (noise-free) band that reads as background."""
    h, w = draw(st.integers(84, 150)), draw(st.integers(84, 150))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    background = draw(st.floats(0.0, 400.0))
    rise = draw(st.floats(0.0, 800.0))
    yy, xx = np.mgrid[:h, :w]
    lam = background + rise * xx / w
    for _ in range(draw(st.integers(0, 8))):
        y, x, sigma = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1.5, 6.0)
        lam = lam + rng.uniform(100, 4000) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
    image = rng.poisson(lam).astype(np.float64)
    if draw(st.booleans()):  # a flat band of the background level: flat windows, i.e. background
        image[:, : w // 3] = np.round(background)
    dtype = draw(st.sampled_from([np.uint16, np.float32, np.float64]))
    return image.astype(dtype), draw(st.floats(50.0, 600.0))


@st.composite
def options(draw, image):
    weighting = draw(st.sampled_from(["triangular", "rectangular"]))
    stride = 84 if weighting == "rectangular" else draw(st.sampled_from([12, 21, 42, 84]))
    p1 = float(np.percentile(image, 1))
    offset = draw(st.one_of(st.just("auto"), st.floats(min(0.0, p1), p1)))  # a camera offset, or "auto"
    return AWDVDOptions(stride=stride, weighting=weighting, method=draw(st.sampled_from(["fast", "patchwise"])),
                        iterations=draw(st.integers(0, 6)), psf_size=draw(st.sampled_from([3, 7, 11, 15, 21])),
                        offset=offset, device="cpu", boundary="symmetric")  # the flux-keeping boundary


#: examples per run (about 0.4 s each); AWDVD_PROPERTY_EXAMPLES=300 for a longer search
EXAMPLES = int(os.environ.get("AWDVD_PROPERTY_EXAMPLES", "25"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_deconvolve_keeps_shape_finiteness_positivity_and_flux(data):
    image, step = data.draw(specimens())
    opts = data.draw(options(image))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = restore_image(image, RuleModel(step=step), opts)
    assert np.asarray(result.image).dtype == np.float32 and np.asarray(result.image).shape == image.shape
    out = np.asarray(result.image, dtype=np.float64)
    assert np.isfinite(out).all()
    offset = result.offset
    above = image.astype(np.float64) - offset >= 0
    tolerance = 1e-4 * max(1.0, float(np.abs(image).max()))  # float32 rounding of values near the maximum
    assert (out[above] - offset >= -tolerance).all()
    flux_in, flux_out = float(image.astype(np.float64).sum()), float(out.sum())
    expected, bound = flux_change_bound(image, result)
    assert abs(flux_out - flux_in - expected) <= bound + FLUX_RTOL * abs(flux_in), \
        (flux_out / flux_in, expected, bound, opts, result.dmap.level_counts())


def test_flux_is_kept_exactly_where_one_level_holds_the_whole_map_and_moves_only_by_the_bound_where_it_changes():
    from awdvd.restore.windows import DefocusMap, window_starts

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:126, :168]
    lam = 20.0 + sum(3000 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 18.0) for y, x in rng.uniform(0, 126, (12, 2)))
    image = rng.poisson(lam).astype(np.float32)
    ny, nx = (len(window_starts(n, patch_px=84, stride=42)) for n in image.shape)
    opts = AWDVDOptions(stride=42, iterations=5, psf_size=15, offset=0.0, method="fast", device="cpu",
                        boundary="symmetric")
    flux_in = float(image.astype(np.float64).sum())
    changes = {}
    for name, grid in {"uniform": np.full((ny, nx), 4), "split": np.where(np.arange(nx)[None, :] < nx // 2, 2, 7)
                       * np.ones((ny, 1), dtype=np.int64)}.items():
        dmap = DefocusMap.from_levels(grid, image.shape, stride=42, patch_px=84, n_levels=11)
        result = restore_image(image, RuleModel(), opts, dmap=dmap)
        expected, bound = flux_change_bound(image, result)
        changes[name] = (float(np.asarray(result.image, dtype=np.float64).sum()) - flux_in - expected, bound)
    assert changes["uniform"][1] == 0.0 and abs(changes["uniform"][0]) <= FLUX_RTOL * flux_in
    change, bound = changes["split"]
    assert 0.0 < bound and abs(change) <= bound + FLUX_RTOL * flux_in
    assert abs(change) > FLUX_RTOL * flux_in  # the split map does move light across its border
