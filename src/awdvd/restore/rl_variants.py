"""The per-iteration pieces of the Richardson-Lucy variants of :mod:`awdvd.restore.rl`: Dey et al.'s total-variation
factor ("tv"), Biggs-Andrews' extrapolation measured around every pixel ("accelerated") and the discrepancy of
the stopping rule. The iteration itself (FFT convolutions, boundaries) is in :mod:`awdvd.restore.rl_kernels`, its
batches in :mod:`awdvd.restore.rl`."""

from __future__ import annotations

import numpy as np

__all__ = ["tv_factor", "Acceleration", "stop_discrepancy", "ACCELERATION_WINDOW_PX", "MAX_ACCELERATION",
           "TV_SMOOTHING"]

#: largest Biggs-Andrews step (MATLAB's deconvlucy clips it to [0, 1] too)
MAX_ACCELERATION = 1.0
#: side (px, odd) of the square over which the Biggs-Andrews step is measured around every pixel. A local step
#: keeps RL local: a pixel's result depends only on its neighbourhood, so a tile or a region restored with a
#: halo gives the whole image's result (one step per image would depend on everything else in the rectangle).
ACCELERATION_WINDOW_PX = 31
#: |grad o| is smoothed by this fraction of the image's max in the TV term
TV_SMOOTHING = 1e-3


def tv_factor(estimate: np.ndarray, weight: float, scale: np.ndarray) -> np.ndarray:
    """Dey et al.'s total-variation factor ``1 / (1 - weight * div(grad o / |grad o|))`` of a batch of estimates
    (B, h, w), with zero-flux (Neumann) boundaries; ``scale`` (B, 1, 1) smooths |grad o| near 0 (1e-3 of each
    image's max, so the factor does not depend on the units). Kept in [1/2, 2] (a step never moves a pixel by more
    than a factor of 2 because of the prior; with the weights used here it stays well inside)."""
    gy = np.zeros_like(estimate)
    gx = np.zeros_like(estimate)
    gy[:, :-1] = estimate[:, 1:] - estimate[:, :-1]
    gx[:, :, :-1] = estimate[:, :, 1:] - estimate[:, :, :-1]
    norm = np.sqrt(gy * gy + gx * gx + scale * scale)
    gy /= norm
    gx /= norm
    divergence = gy.copy()
    divergence[:, 1:] -= gy[:, :-1]
    divergence += gx
    divergence[:, :, 1:] -= gx[:, :, :-1]
    return 1.0 / np.clip(1.0 - weight * divergence, 0.5, 2.0)


class Acceleration:
    """Biggs-Andrews' extrapolation with work arrays allocated once: :meth:`extrapolate` turns the estimate x_k
    into y_k = x_k + alpha (x_k - x_{k-1}), alpha (B, h, w) the correlation sum(g_k g_{k-1}) / sum(g_{k-1}^2) of
    the last two changes g (g_k = x_k - y_{k-1}) over the :data:`ACCELERATION_WINDOW_PX` square around every
    pixel (mirrored at the borders), clipped to [0, 1]: 0 where the last change is 0 throughout the square."""

    def __init__(self, estimate: np.ndarray):
        self.previous = estimate.copy()  # x_{k-1} while the iteration runs, then x_k (see current)
        self.change, self.last_change = np.zeros_like(estimate), np.zeros_like(estimate)
        self.num, self.den, self.work = (np.empty_like(estimate) for _ in range(3))
        self.steps = 0  # changes seen

    def _box(self, values: np.ndarray) -> np.ndarray:
        from scipy.ndimage import uniform_filter1d

        uniform_filter1d(values, ACCELERATION_WINDOW_PX, axis=2, mode="mirror", output=self.work)
        return uniform_filter1d(self.work, ACCELERATION_WINDOW_PX, axis=1, mode="mirror", output=values)

    def extrapolate(self, estimate: np.ndarray) -> None:
        """``estimate`` (x_k, in place) becomes y_k; :attr:`previous` keeps x_k."""
        if self.steps < 2:
            np.copyto(self.previous, estimate)
            return
        num = self._box(np.multiply(self.change, self.last_change, out=self.num))
        den = self._box(np.multiply(self.last_change, self.last_change, out=self.den))
        np.maximum(den, np.finfo(np.float32).tiny, out=den)
        alpha = np.clip(np.divide(num, den, out=num), 0.0, MAX_ACCELERATION, out=num)
        step = np.subtract(estimate, self.previous, out=self.den)
        np.copyto(self.previous, estimate)
        step *= alpha
        estimate += step
        np.maximum(estimate, 0.0, out=estimate)

    def start(self, estimate: np.ndarray) -> None:
        """Before the RL update of y_k: remember y_k (in the buffer that becomes g_{k+1})."""
        self.last_change, self.change = self.change, self.last_change
        np.copyto(self.change, estimate)

    def finish(self, estimate: np.ndarray) -> None:
        """After the RL update: g_{k+1} = x_{k+1} - y_k."""
        np.subtract(estimate, self.change, out=self.change)
        self.steps += 1


def stop_discrepancy(residual: np.ndarray, stop: tuple) -> np.ndarray:
    """(B,) weighted mean of residual^2 / variance, the stopping rule's discrepancy (1: residuals at noise level)."""
    variance, weights, _ = stop
    return np.einsum("bij,bij->b", residual * residual / variance, weights, dtype=np.float64) / np.maximum(
        np.einsum("bij->b", weights, dtype=np.float64), 1e-300)
