"""Richardson-Lucy deconvolution (paper Eq. 3) and AWDVD, the adaptive-weighting depth-variant deconvolution
(paper 2.3): patch-wise (the paper's algorithm, kept as the reference) and fast (regrouped by level, DESIGN 4).

Richardson-Lucy here:

    o_{t+1} = o_t * (h(-x) conv (i / max(h conv o_t, eps))),   o_0 = i

in float32, with every convolution taken over the image extended half-sample symmetrically (numpy's
``"symmetric"``, scipy.ndimage's ``"reflect"``) by the PSF radius and re-extended at every iteration. For a
sum-1 PSF that is even along each axis (every Eq. 2 PSF) this operator and its adjoint have unit row and column
sums, so RL conserves the flux of the image exactly (up to float32 rounding and pixels where the blurred
estimate falls below ``eps``). The OTF is computed once per call. No clipping of the result: it is
non-negative because the data are.

On a CPU the FFTs are scipy.fft's (pocketfft, about 10x faster here than torch's CPU FFT); with CUDA the same
algorithm runs in torch on the GPU.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from typing import Sequence

import numpy as np

from ._checks import check_image, check_positive_int

__all__ = [
    "richardson_lucy",
    "deconvolve",
    "deconvolve_levels",
    "deconvolve_invariant",
    "to_input_dtype",
    "METHODS",
]

METHODS = ("fast", "patchwise")
_EPS_RELATIVE = 1e-6
_CHUNK_PIXELS = 1 << 23  # padded pixels per batch of RL images (about 64 MB of float32 work arrays)


# --------------------------------------------------------------------------------------------- inputs
def _check_psfs(psf) -> tuple[np.ndarray, bool]:
    """(L, k, k) float64 sum-1 PSFs and whether one (2-D) PSF was given."""
    psfs = np.asarray(psf)
    if psfs.dtype == object or not np.issubdtype(psfs.dtype, np.number) or np.iscomplexobj(psfs):
        raise TypeError(f"psf must be a real numeric array, got dtype {psfs.dtype}")
    single = psfs.ndim == 2
    if single:
        psfs = psfs[None]
    if psfs.ndim != 3 or psfs.shape[1] != psfs.shape[2] or psfs.shape[1] % 2 == 0 or psfs.shape[0] == 0:
        raise ValueError(f"psf must be square with an odd side, (k, k) or (L, k, k); got shape {np.shape(psf)}")
    psfs = psfs.astype(np.float64)
    if not np.isfinite(psfs).all() or (psfs < 0).any():
        raise ValueError("psf values must be finite and non-negative")
    sums = psfs.sum(axis=(1, 2))
    if np.any(sums <= 0):
        raise ValueError("a psf sums to zero; it must hold some positive weight")
    return psfs / sums[:, None, None], single


def _check_offset(offset) -> float:
    if isinstance(offset, bool) or not isinstance(offset, (int, float, np.integer, np.floating)):
        raise TypeError(f"offset must be a number, got {type(offset).__name__}")
    offset = float(offset)
    if not math.isfinite(offset):
        raise ValueError(f"offset must be finite, got {offset}")
    return offset


def _is_delta(psf: np.ndarray) -> bool:
    c = psf.shape[-1] // 2
    return bool(psf[c, c] == psf.sum() and np.count_nonzero(psf) == 1)


def _resolve_device(device) -> str:
    """'cpu' (scipy.fft) or a torch CUDA device string. None: CUDA if torch is installed and sees a GPU."""
    if device is None:
        if "torch" not in sys.modules and importlib.util.find_spec("torch") is None:
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    device = str(device)
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for, but torch sees no CUDA GPU; use device='cpu'")
        return device
    raise ValueError(f"device must be None, 'cpu' or 'cuda[:N]', got {device!r}")


# --------------------------------------------------------------------------------------------- RL kernels
def _fft_shape(h: int, w: int, r: int) -> tuple[int, int]:
    from scipy import fft

    return fft.next_fast_len(h + 2 * r, real=True), fft.next_fast_len(w + 2 * r, real=True)


def _otfs(psfs: np.ndarray, fft_shape: tuple[int, int]) -> np.ndarray:
    """rfft2 of the PSFs centred on the origin of an ``fft_shape`` grid: (L, Fh, Fw // 2 + 1) complex64."""
    from scipy import fft

    k = psfs.shape[-1]
    grid = np.zeros((len(psfs),) + tuple(fft_shape), dtype=np.float64)
    grid[:, :k, :k] = psfs
    grid = np.roll(grid, (-(k // 2), -(k // 2)), axis=(1, 2))
    return fft.rfft2(grid, axes=(1, 2)).astype(np.complex64)


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


def _rl_numpy(images: np.ndarray, psfs: np.ndarray, iterations: int, eps: float) -> np.ndarray:
    """RL of every image (B, h, w) float32 >= 0 with its PSF (B or 1, k, k); scipy.fft on the CPU.

    The 2-D transforms are done axis by axis (pocketfft's multi-axis inverse real FFT is about 2.5x slower
    than its two 1-D passes here), skipping rows that are known to be zero or are cropped away. The estimate
    and the ratio live inside their padded buffers, so extending them only writes the borders.
    """
    from scipy import fft

    b, h, w = images.shape
    r = psfs.shape[-1] // 2
    fh, fw = _fft_shape(h, w, r)
    otf = _otfs(psfs, (fh, fw))
    otf_flipped = np.conj(otf)  # the OTF of h(-x) for a real PSF
    iy, ix = _symmetric_indices(h, r), _symmetric_indices(w, r)
    inside = (slice(None), slice(r, r + h), slice(r, r + w))
    estimate_buffer = np.zeros((b, h + 2 * r, fw), dtype=np.float32)
    ratio_buffer = np.zeros_like(estimate_buffer)
    estimate = estimate_buffer[inside]
    ratio = ratio_buffer[inside]
    estimate[...] = images

    def convolve(buffer, transfer):
        spectrum = fft.rfft(buffer, axis=2, workers=-1)
        spectrum = fft.fft(spectrum, n=fh, axis=1, workers=-1, overwrite_x=True)
        spectrum *= transfer
        spectrum = fft.ifft(spectrum, axis=1, workers=-1, overwrite_x=True)[:, r : r + h]
        return fft.irfft(spectrum, n=fw, axis=2, workers=-1)[:, :, r : r + w]

    for _ in range(iterations):
        _fill_symmetric(estimate_buffer, None, r, iy, ix, h, w)
        blurred = convolve(estimate_buffer, otf)
        np.maximum(blurred, eps, out=blurred)
        np.divide(images, blurred, out=ratio)
        _fill_symmetric(ratio_buffer, None, r, iy, ix, h, w)
        estimate *= convolve(ratio_buffer, otf_flipped)
    return estimate.copy()


def _rl_torch(images: np.ndarray, psfs: np.ndarray, iterations: int, eps: float, device: str) -> np.ndarray:
    """The same algorithm as :func:`_rl_numpy` in torch, on ``device`` ('cuda' normally; 'cpu' works)."""
    import torch

    b, h, w = images.shape
    r = psfs.shape[-1] // 2
    shape = _fft_shape(h, w, r)
    otf = torch.from_numpy(_otfs(psfs, shape)).to(device)
    otf_flipped = torch.conj(otf)
    iy = torch.from_numpy(_symmetric_indices(h, r)).to(device)
    ix = torch.from_numpy(_symmetric_indices(w, r)).to(device)
    data = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(device)
    estimate = data.clone()

    def convolve(x, transfer):
        extended = x.index_select(1, iy).index_select(2, ix)
        spectrum = torch.fft.rfft2(extended, s=shape) * transfer
        return torch.fft.irfft2(spectrum, s=shape)[:, r : r + h, r : r + w]

    with torch.inference_mode():
        for _ in range(iterations):
            ratio = data / convolve(estimate, otf).clamp_min(eps)
            estimate = estimate * convolve(ratio, otf_flipped)
        return estimate.cpu().numpy()


def _rl_batches(images: np.ndarray, psfs: np.ndarray, iterations: int, eps: float, device: str) -> np.ndarray:
    """RL of images (B, h, w) with PSFs (B or 1, k, k), in chunks that bound the work memory."""
    b, h, w = images.shape
    r = psfs.shape[-1] // 2
    per_image = (h + 2 * r) * (w + 2 * r)
    chunk = max(1, _CHUNK_PIXELS // per_image)
    out = np.empty_like(images)
    for start in range(0, b, chunk):
        part = slice(start, start + chunk)
        kernel = psfs if len(psfs) == 1 else psfs[part]
        if device == "cpu":
            out[part] = _rl_numpy(images[part], kernel, iterations, eps)
        else:
            out[part] = _rl_torch(images[part], kernel, iterations, eps, device)
    return out


def _default_eps(data: np.ndarray) -> float:
    return float(max(_EPS_RELATIVE * float(data.max(initial=0.0)), np.finfo(np.float32).tiny))


# --------------------------------------------------------------------------------------------- public RL
def richardson_lucy(
    image,
    psf,
    *,
    iterations: int = 30,
    offset: float = 0.0,
    eps: float | None = None,
    device: str | None = None,
) -> np.ndarray:
    """Richardson-Lucy deconvolution (paper Eq. 3), with half-sample symmetric boundaries.

    Parameters
    ----------
    image : (H, W) real array, intensities (e.g. ADU). Any size, also smaller than the PSF.
    psf : (k, k) PSF, or (L, k, k) several PSFs applied to the same image in one batch; k odd. Non-negative;
        each is normalised to sum 1.
    iterations : number of RL iterations (>= 0).
    offset : camera offset / background level (same units as ``image``), subtracted before deconvolving and
        added back after: RL assumes that a pixel's value is proportional to its photon count. Pixels below
        ``offset`` (read noise around the offset, or a negative input) count as zero photons: they are set to
        0 before the iterations, which is the only clipping.
    eps : floor of the blurred estimate in the ratio ``i / max(h conv o, eps)`` (units of ``image``); default
        ``1e-6 * max(image - offset)``.
    device : None (CUDA if torch sees a GPU, else the CPU), "cpu" (scipy.fft) or "cuda[:N]" (torch).

    Returns
    -------
    (H, W) float32, or (L, H, W) for L PSFs: ``offset`` + a non-negative estimate whose sum equals the sum of
    ``max(image - offset, 0)`` for PSFs even along each axis. Zero iterations or a delta PSF return the input
    unchanged (as float32).

    Raises
    ------
    ValueError for NaN/inf, a non-2-D image, a bad PSF shape, negative iterations; TypeError for non-numbers.
    """
    array = check_image(image, "image")
    if array.size == 0:
        raise ValueError(f"image is empty (shape {array.shape})")
    psfs, single = _check_psfs(psf)
    iterations = check_positive_int(iterations, "iterations", minimum=0)
    offset = _check_offset(offset)
    device = _resolve_device(device)
    original = array.astype(np.float32)
    out = np.empty((len(psfs),) + array.shape, dtype=np.float32)
    identity = [iterations == 0 or _is_delta(p) for p in psfs]
    out[identity] = original
    todo = [i for i, same in enumerate(identity) if not same]
    if todo:
        data = np.maximum(array.astype(np.float64) - offset, 0.0).astype(np.float32)
        eps = _default_eps(data) if eps is None else _check_eps(eps)
        images = np.broadcast_to(data, (len(todo),) + data.shape).copy()
        restored = _rl_batches(images, psfs[todo], iterations, eps, device)
        out[todo] = (restored.astype(np.float64) + offset).astype(np.float32)
    return out[0] if single else out


def _check_eps(eps) -> float:
    eps = float(eps)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive number, got {eps}")
    return eps
