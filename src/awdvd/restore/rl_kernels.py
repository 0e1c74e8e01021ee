"""The two Richardson-Lucy loops behind :func:`awdvd.restore.rl.richardson_lucy_batches`: :func:`rl_numpy` on the
CPU (scipy.fft, axis by axis, with the estimate and the ratio kept inside their padded buffers so that re-extending
them half-sample symmetrically writes only the borders) and :func:`rl_torch`, the same algorithm in torch for CUDA;
both run every variant (plain, accelerated, TV) and the discrepancy stopping rule on a batch of offset-free images
(B, h, w) float32, without input checks (the public functions of :mod:`awdvd.restore.rl` check)."""

from __future__ import annotations

import numpy as np

from .._threads import allowed_threads
from ..physics.psf import psf_otfs
from .rl_variants import (
    ACCELERATION_WINDOW_PX,
    MAX_ACCELERATION,
    TV_SMOOTHING,
    Acceleration,
    stop_discrepancy,
    tv_factor,
)

__all__ = ["rl_numpy", "rl_torch"]


#: the extended boundary's outside pixels whose light reaches the image's pixels with less than this weight in all
#: (h(-x) conv M) keep their start value: their correction would be a ratio of two FFT round-off sized sums (at
#: 1e-6 the numpy and torch loops drifted 1e-4 apart under acceleration; at 1e-3, 4e-6)
UNSEEN_BELOW = 1e-3


def _fft_shape(h: int, w: int, r: int) -> tuple[int, int]:
    from scipy import fft

    return fft.next_fast_len(h + 2 * r, real=True), fft.next_fast_len(w + 2 * r, real=True)


def _symmetric_indices(n: int, r: int) -> np.ndarray:
    """Indices of the half-sample symmetric extension of ``range(n)`` by ``r`` on both sides (any r)."""
    return np.pad(np.arange(n), r, mode="symmetric")


def _fill_symmetric(buffer: np.ndarray, data: np.ndarray | None, r: int, iy: np.ndarray, ix: np.ndarray, h: int,
                    w: int) -> None:
    """Extend the (B, h, w) interior ``buffer[:, r:r + h, r:r + w]`` half-sample symmetrically into
    ``buffer[:, :h + 2r, :w + 2r]``; ``data``, when given, is first copied into the interior."""
    if r == 0:
        if data is not None:
            buffer[:, :h, :w] = data
    elif r <= h and r <= w:
        if data is not None:
            buffer[:, r : r + h, r : r + w] = data
        rows = slice(r, r + h)
        buffer[:, rows, :r] = buffer[:, rows, 2 * r - 1 : r - 1 : -1]
        buffer[:, rows, r + w : w + 2 * r] = buffer[:, rows, r + w - 1 : w - 1 : -1]
        buffer[:, :r, : w + 2 * r] = buffer[:, 2 * r - 1 : r - 1 : -1, : w + 2 * r]
        buffer[:, r + h : h + 2 * r, : w + 2 * r] = buffer[:, r + h - 1 : h - 1 : -1, : w + 2 * r]
    else:  # the PSF is larger than the image: several reflections
        if data is None:
            data = buffer[:, r : r + h, r : r + w].copy()
        buffer[:, : h + 2 * r, : w + 2 * r] = data[:, iy[:, None], ix[None, :]]


def _keep_stopped(current: np.ndarray, discrepancy: np.ndarray, tau, active: np.ndarray, final):
    """The stopping rule's step: the still active images whose discrepancy fell to their threshold keep their
    ``current`` estimate in ``final`` (made on the first stop) and leave ``active`` (updated in place)."""
    stopping = active & (discrepancy <= tau)
    if stopping.any():
        final = current.copy() if final is None else final
        final[stopping] = current[stopping]
        active &= ~stopping
    return final


def _update(estimate: np.ndarray, correction: np.ndarray, factor, acceleration) -> None:
    """The RL step of the numpy loops, in place: x_{k+1} = y_k * correction (times the TV ``factor`` where one is
    given), remembered by the ``acceleration`` (None: plain RL) for the next extrapolation."""
    if factor is not None:
        correction *= factor
    if acceleration is not None:
        acceleration.start(estimate)
    estimate *= correction
    if acceleration is not None:
        acceleration.finish(estimate)


def rl_numpy(images: np.ndarray, psfs: np.ndarray, iterations: int, eps: float, workers: int | None = None, *,
              variant: str = "plain", tv_weight: float = 0.0, stop: tuple | None = None, observe=None,
              iterations_run: np.ndarray | None = None) -> np.ndarray:
    """RL of every image (B, h, w) float32 >= 0 with its PSF (B or 1, k, k); scipy.fft on the CPU.

    ``variant``: "plain" (Eq. 3), "accelerated" (Biggs-Andrews vector extrapolation: each RL step starts from
    ``y_k = x_k + alpha (x_k - x_{k-1})``, alpha the correlation of the last two steps' changes around each
    pixel (:class:`awdvd.restore.rl_variants.Acceleration`), in [0, 1]) or
    "tv" (Eq. 3 times Dey et al.'s total-variation factor of weight ``tv_weight``; weight 0 is plain RL).

    ``stop``: None (``iterations`` iterations), or (variance, weights, tau): (B, h, w) float32 noise variance of
    every pixel (ADU^2), (B, h, w) float32 weights >= 0 of the pixels the result is used for and (B,) thresholds:
    image b stops at the first iteration k whose discrepancy D_k = sum w (i - h conv y_k)^2 / variance / sum w
    is <= tau[b] (y_k = x_k for plain RL), and keeps x_k; ``iterations`` is then the most it runs.
    ``observe(k, x_k, D_k)``, when given, is called at every iteration k = 0 .. iterations - 1 with the (B, h, w)
    estimate before that iteration (a view: copy what you keep) and its (B,) discrepancy (None without
    ``stop``), so that a calibration scores every count and every threshold in one run. ``iterations_run``:
    (B,) int array that receives the iterations each image ran.

    The 2-D transforms are done axis by axis (pocketfft's multi-axis inverse real FFT is about 2.5x slower
    than its two 1-D passes here), skipping rows that are known to be zero or are cropped away. The estimate
    and the ratio live inside their padded buffers, so extending them only writes the borders.
    """
    from scipy import fft

    workers = allowed_threads() if workers is None else workers
    b, h, w = images.shape
    r = psfs.shape[-1] // 2
    fh, fw = _fft_shape(h, w, r)
    otf = psf_otfs(psfs, (fh, fw))
    otf_flipped = np.conj(otf)  # the OTF of h(-x) for a real PSF
    iy, ix = _symmetric_indices(h, r), _symmetric_indices(w, r)
    inside = (slice(None), slice(r, r + h), slice(r, r + w))
    estimate_buffer = np.zeros((b, h + 2 * r, fw), dtype=np.float32)
    ratio_buffer = np.zeros_like(estimate_buffer)
    estimate = estimate_buffer[inside]
    ratio = ratio_buffer[inside]
    estimate[...] = images
    accelerated = variant == "accelerated"
    tv = variant == "tv" and tv_weight > 0
    if tv:
        scale = (TV_SMOOTHING * np.max(images, axis=(1, 2), keepdims=True, initial=0.0)).astype(np.float32)
        scale = np.maximum(scale, np.finfo(np.float32).tiny)
    acceleration = Acceleration(estimate) if accelerated else None
    active = np.ones(b, dtype=bool)
    ran = np.zeros(b, dtype=np.int64)
    final = None  # the kept estimates of images that stopped

    def convolve(buffer, transfer):
        spectrum = fft.rfft(buffer, axis=2, workers=workers)
        spectrum = fft.fft(spectrum, n=fh, axis=1, workers=workers, overwrite_x=True)
        spectrum *= transfer
        spectrum = fft.ifft(spectrum, axis=1, workers=workers, overwrite_x=True)[:, r : r + h]
        return fft.irfft(spectrum, n=fw, axis=2, workers=workers)[:, :, r : r + w]

    for k in range(iterations):
        if accelerated:
            acceleration.extrapolate(estimate)
        current = acceleration.previous if accelerated else estimate  # x_k (the estimate is y_k)
        factor = tv_factor(estimate, tv_weight, scale) if tv else None
        _fill_symmetric(estimate_buffer, None, r, iy, ix, h, w)
        blurred = convolve(estimate_buffer, otf)
        discrepancy = stop_discrepancy(images - blurred, stop) if stop is not None else None
        if observe is not None:
            observe(k, current, discrepancy)
        if stop is not None:
            final = _keep_stopped(current, discrepancy, stop[2], active, final)
            if not active.any():
                break
        ran[active] += 1
        np.maximum(blurred, eps, out=blurred)
        np.divide(images, blurred, out=ratio)
        _fill_symmetric(ratio_buffer, None, r, iy, ix, h, w)
        _update(estimate, convolve(ratio_buffer, otf_flipped), factor, acceleration)
    if iterations_run is not None:
        iterations_run[...] = ran
    out = estimate.copy()
    if final is not None:
        out[~active] = final[~active]
    return out


def rl_torch(images: np.ndarray, psfs: np.ndarray, iterations: int, eps: float, device: str, *,
              variant: str = "plain", tv_weight: float = 0.0, stop: tuple | None = None, observe=None,
              iterations_run: np.ndarray | None = None, boundary: str = "symmetric") -> np.ndarray:
    """The same algorithms as :func:`rl_numpy` (``boundary="symmetric"``) and :func:`rl_numpy_extended`
    (``boundary="extended"``) in torch, on ``device`` ('cuda' normally; 'cpu' works)."""
    import torch

    b, h, w = images.shape
    r = psfs.shape[-1] // 2
    extended = boundary == "extended"
    # the estimate's domain: the image, or the image extended by r whose outside is unknown
    big_h, big_w = (h + 2 * r, w + 2 * r) if extended else (h, w)
    shape = _fft_shape(big_h, big_w, r)
    otf = torch.from_numpy(psf_otfs(psfs, shape)).to(device)
    otf_flipped = torch.conj(otf)
    iy = torch.from_numpy(_symmetric_indices(h, r)).to(device)
    ix = torch.from_numpy(_symmetric_indices(w, r)).to(device)
    data = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(device)
    inside = (slice(None), slice(r, r + h), slice(r, r + w)) if extended else (slice(None),) * 3
    estimate = data.index_select(1, iy).index_select(2, ix) if extended else data.clone()
    accelerated = variant == "accelerated"
    tv = variant == "tv" and tv_weight > 0
    if tv:
        scale = (TV_SMOOTHING * data.amax(dim=(1, 2), keepdim=True)).clamp_min(float(np.finfo(np.float32).tiny))
    if stop is not None:
        inverse_variance = torch.from_numpy(np.ascontiguousarray(1.0 / stop[0], dtype=np.float32)).to(device)
        weights = torch.from_numpy(np.ascontiguousarray(stop[1], dtype=np.float32)).to(device)
        tau = torch.from_numpy(np.asarray(stop[2], dtype=np.float64)).to(device)
        total_weight = weights.sum(dim=(1, 2), dtype=torch.float64).clamp_min(1e-300)
    previous = change = last_change = None
    active = torch.ones(b, dtype=torch.bool, device=device)
    ran = torch.zeros(b, dtype=torch.int64, device=device)
    final = None

    def convolve(x, transfer):
        if extended:  # linear convolution on the extended domain: zero outside it, no wrap-around
            spectrum = torch.fft.rfft2(x, s=shape) * transfer
            return torch.fft.irfft2(spectrum, s=shape)[:, :big_h, :big_w]
        spectrum = torch.fft.rfft2(x.index_select(1, iy).index_select(2, ix), s=shape) * transfer
        return torch.fft.irfft2(spectrum, s=shape)[:, r : r + h, r : r + w]

    if extended:  # the image's pixels are the data: h(-x) conv M normalises the correction
        mask = torch.zeros((len(otf), big_h, big_w), dtype=torch.float32, device=device)
        mask[inside] = 1.0
        normaliser = convolve(mask, otf_flipped)
        unseen = normaliser < UNSEEN_BELOW  # outside pixels the image barely sees: kept as they start
        normaliser = torch.where(unseen, torch.ones_like(normaliser), normaliser)
        ratio = torch.zeros((b, big_h, big_w), dtype=torch.float32, device=device)

    half = ACCELERATION_WINDOW_PX // 2
    my = torch.from_numpy(np.pad(np.arange(big_h), half, mode="reflect")).to(device)  # scipy's mode="mirror"
    mx = torch.from_numpy(np.pad(np.arange(big_w), half, mode="reflect")).to(device)

    def local_mean(x):
        padded = x.index_select(1, my).index_select(2, mx)[:, None]
        return torch.nn.functional.avg_pool2d(padded, ACCELERATION_WINDOW_PX, stride=1)[:, 0]

    def tv_factor(o):
        gy = torch.zeros_like(o)
        gx = torch.zeros_like(o)
        gy[:, :-1] = o[:, 1:] - o[:, :-1]
        gx[:, :, :-1] = o[:, :, 1:] - o[:, :, :-1]
        norm = torch.sqrt(gy * gy + gx * gx + scale * scale)
        gy, gx = gy / norm, gx / norm
        divergence = gy + gx
        divergence[:, 1:] -= gy[:, :-1]
        divergence[:, :, 1:] -= gx[:, :, :-1]
        return 1.0 / (1.0 - tv_weight * divergence).clamp(0.5, 2.0)

    with torch.inference_mode():
        for k in range(iterations):
            if accelerated:
                if last_change is not None:
                    num, den = local_mean(change * last_change), local_mean(last_change * last_change)
                    tiny = float(np.finfo(np.float32).tiny)
                    alpha = torch.where(den > tiny, num / den.clamp_min(tiny), torch.zeros_like(num))
                    alpha = alpha.clamp(0.0, MAX_ACCELERATION)
                    estimate, previous = (estimate + alpha * (estimate - previous)).clamp_min(0.0), estimate
                else:
                    previous = estimate
            current = (previous if accelerated else estimate)[inside]
            blurred = convolve(estimate, otf)[inside]
            discrepancy = None
            if stop is not None:
                residual = data - blurred
                discrepancy = (residual * residual * inverse_variance * weights).sum(dim=(1, 2), dtype=torch.float64)
                discrepancy = discrepancy / total_weight
            if observe is not None:
                observe(k, current.cpu().numpy(), None if discrepancy is None else discrepancy.cpu().numpy())
            if stop is not None:
                stopping = active & (discrepancy <= tau)
                if bool(stopping.any()):
                    final = current.clone() if final is None else final
                    final[stopping] = current[stopping]
                    active = active & ~stopping
                    if not bool(active.any()):
                        break
            ran += active.long()
            if extended:
                ratio[inside] = data / blurred.clamp_min(eps)
                correction = torch.where(unseen, 1.0, convolve(ratio, otf_flipped) / normaliser)
            else:
                correction = convolve(data / blurred.clamp_min(eps), otf_flipped)
            if tv:
                correction = correction * tv_factor(estimate)
            start = estimate
            estimate = estimate * correction
            if accelerated:
                last_change, change = change, estimate - start
        if iterations_run is not None:
            iterations_run[...] = ran.cpu().numpy()
        estimate = estimate[inside]
        if final is not None:
            estimate = torch.where(active[:, None, None], estimate, final)
        return estimate.contiguous().cpu().numpy()


def rl_numpy_extended(images: np.ndarray, psfs: np.ndarray, iterations: int, eps: float, workers: int | None = None,
                      *, variant: str = "plain", tv_weight: float = 0.0, stop: tuple | None = None, observe=None,
                      iterations_run: np.ndarray | None = None) -> np.ndarray:
    """:func:`rl_numpy` with the image's outside unknown instead of mirrored: the estimate lives on the image
    extended by the PSF radius r, and only the pixels of the image are data (Bertero & Boccacci 2005; deconwolf's
    boundary). With M = 1 inside the image and 0 outside,

        o_{k+1} = o_k / (h(-x) conv M) * (h(-x) conv (M i / max(h conv o_k, eps))),   o_0 = i extended symmetrically,

    so the estimate outside the image is free to hold what blurs light into it (nuclei beyond the field of view),
    and the image's border pixels are restored like its interior instead of against their mirror image. Same
    arguments and variants as :func:`rl_numpy`; returns the (B, h, w) estimate inside the image."""
    from scipy import fft

    workers = allowed_threads() if workers is None else workers
    b, h, w = images.shape
    r = psfs.shape[-1] // 2
    big_h, big_w = h + 2 * r, w + 2 * r
    fh, fw = fft.next_fast_len(big_h + 2 * r, real=True), fft.next_fast_len(big_w + 2 * r, real=True)
    otf = psf_otfs(psfs, (fh, fw))
    otf_flipped = np.conj(otf)
    domain = (slice(None), slice(r, r + big_h), slice(r, r + big_w))  # the extended image inside the FFT buffer
    inside = (slice(None), slice(r, r + h), slice(r, r + w))  # the image inside the extended domain

    def convolve(values, transfer):  # (B, H, W) on the extended domain -> the same, linear (no wrap-around)
        buffer = np.zeros((values.shape[0], fh, fw), dtype=np.float32)
        buffer[domain] = values
        spectrum = fft.rfft2(buffer, workers=workers) * transfer
        return fft.irfft2(spectrum, s=(fh, fw), workers=workers)[domain].astype(np.float32)

    mask = np.zeros((1, big_h, big_w), dtype=np.float32)
    mask[inside] = 1.0
    normaliser = convolve(np.broadcast_to(mask, (len(otf), big_h, big_w)), otf_flipped)
    unseen = normaliser < UNSEEN_BELOW  # outside pixels the image barely sees: kept as they start
    normaliser = np.where(unseen, 1.0, normaliser)
    estimate = np.pad(images, ((0, 0), (r, r), (r, r)), mode="symmetric").astype(np.float32)
    ratio = np.zeros_like(estimate)
    accelerated = variant == "accelerated"
    tv = variant == "tv" and tv_weight > 0
    if tv:
        scale = (TV_SMOOTHING * np.max(images, axis=(1, 2), keepdims=True, initial=0.0)).astype(np.float32)
        scale = np.maximum(scale, np.finfo(np.float32).tiny)
    acceleration = Acceleration(estimate) if accelerated else None
    active = np.ones(b, dtype=bool)
    ran = np.zeros(b, dtype=np.int64)
    final = None
    for k in range(iterations):
        if accelerated:
            acceleration.extrapolate(estimate)
        current = acceleration.previous if accelerated else estimate
        factor = tv_factor(estimate, tv_weight, scale) if tv else None
        blurred = convolve(estimate, otf)[inside]
        discrepancy = stop_discrepancy(images - blurred, stop) if stop is not None else None
        if observe is not None:
            observe(k, current[inside], discrepancy)
        if stop is not None:
            final = _keep_stopped(current[inside], discrepancy, stop[2], active, final)
            if not active.any():
                break
        ran[active] += 1
        np.maximum(blurred, eps, out=blurred)
        ratio[inside] = images / blurred
        correction = convolve(ratio, otf_flipped) / normaliser
        correction[np.broadcast_to(unseen, correction.shape)] = 1.0
        _update(estimate, correction, factor, acceleration)
    if iterations_run is not None:
        iterations_run[...] = ran
    out = estimate[inside].astype(np.float32)
    if final is not None:
        out[~active] = final[~active]
    return out
