"""DelpNet taking raw intensities: the network of awdvd's bioimage.io package.

This file is copied into the package as the ``pytorch_state_dict`` weights' architecture source and is
scripted for the TorchScript weights, so it imports nothing but torch: bioimage.io tools run it without awdvd.
Its layers are those of :func:`awdvd.learn.model.build_delpnet` (same module names, so a DelpNet state dict loads
into ``RawIntensityDelpNet(...).network`` with ``strict=True``); the model's input normalisation and the final
softmax sit inside it, so the package maps raw-intensity patches (N, 1, 84, 84) to class probabilities (N, C).

Two normalisations, two networks (the model file's ``normalization`` field says which):

- "window-minmax" (older name "minmax-per-patch"): :class:`RawIntensityDelpNet`, one input, each window
  min-max on its own (:func:`normalize`, equal to ``awdvd.data.patches.normalize_patches``).
- "image-range": :class:`ImageRangeDelpNet`, two inputs: the windows and, per window, the (low, high) range of
  the whole image it was cut from (``awdvd.data.patches.image_range``; one window cannot tell it), normalised by
  :func:`normalize_by_range` (equal to ``awdvd.data.patches.normalize_windows(..., "image-range", value_range=...)``).
  Exactly constant windows come out as certain background, as in ``DefocusModel.predict_patches``.

:func:`normalize` and :func:`normalize_by_range` are the one place where the package's normalisation is
computed; they must stay equal to awdvd's (tests check that they agree). When a model's normalisation changes,
change it here and add its name to :data:`NORMALIZATIONS`.
"""

from typing import List, Optional

import torch
from torch import nn

#: Normalisations of :class:`RawIntensityDelpNet` (the second is the first's older name).
WINDOW_NORMALIZATIONS = ("window-minmax", "minmax-per-patch")
#: Normalisations of :class:`ImageRangeDelpNet`.
RANGE_NORMALIZATIONS = ("image-range",)
#: Normalisations this file implements, by the name awdvd model files give them.
NORMALIZATIONS = WINDOW_NORMALIZATIONS + RANGE_NORMALIZATIONS


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Per-patch min-max to [0, 1] over the last two axes (float32); a constant patch becomes 0."""
    x = x.to(torch.float32)
    lo = torch.amin(x, dim=(-2, -1), keepdim=True)
    span = torch.amax(x, dim=(-2, -1), keepdim=True) - lo
    return torch.where(span > 0, (x - lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(x))


def normalize_by_range(x: torch.Tensor, value_range: torch.Tensor) -> torch.Tensor:
    """Windows x (N, ..., h, w) normalised by their images' ranges ``value_range`` (N, 2) = (low, high) per
    window: (x - low) / (high - low) in float32, not clipped (pixels outside [low, high] fall below 0 or above
    1, as in training); 0 for a window whose high <= low. low is taken in float32 and high - low in float64,
    then float32, as ``awdvd.data.patches.normalize_windows`` does."""
    if value_range.dim() != 2 or value_range.shape[1] != 2 or value_range.shape[0] != x.shape[0]:
        raise ValueError("the image range must be (N, 2): one (low, high) row per window")
    x = x.to(torch.float32)
    bounds = value_range.to(torch.float64)
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    lo = bounds[:, 0].to(torch.float32).reshape(shape)
    span = (bounds[:, 1] - bounds[:, 0]).to(torch.float32).reshape(shape)
    positive = span > 0
    return torch.where(positive, (x - lo) / torch.where(positive, span, torch.ones_like(span)), torch.zeros_like(x))


class DelpNet(nn.Module):
    """The DelpNet of :func:`awdvd.learn.model.build_delpnet`: conv blocks (3 x 3 conv, BatchNorm, ReLU, Dropout,
    max pooling after the blocks ``pool_at``, or the first ``pool_after``), global max pooling, dropout and one dense layer."""

    def __init__(self, widths: List[int], pool_after: int, dropout: float, head_dropout: float, bn_momentum: float,
                 n_classes: int, in_channels: int, pool_at: Optional[List[int]] = None, padding: int = 1):
        super().__init__()
        layers: List[nn.Module] = []
        channels = in_channels
        pooled = list(range(pool_after)) if pool_at is None else list(pool_at)
        for index, width in enumerate(widths):
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=padding, bias=False),
                       nn.BatchNorm2d(width, momentum=bn_momentum), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            if index in pooled:
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(channels, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.amax(self.trunk(x), dim=(2, 3)))


class RawIntensityDelpNet(nn.Module):
    """(N, 1, H, W) raw intensities -> (N, n_classes) class probabilities: :func:`normalize`, DelpNet, softmax.

    The keyword arguments are DelpNet's (``awdvd.learn.model.DelpNetConfig``) and ``normalization``, the name of the
    model's input normalisation (one of :data:`NORMALIZATIONS`).
    """

    def __init__(self, widths: List[int], pool_after: int = 3, dropout: float = 0.1, head_dropout: float = 0.5,
                 bn_momentum: float = 0.4, n_classes: int = 12, in_channels: int = 1,
                 normalization: str = "window-minmax", pool_at: Optional[List[int]] = None, padding: int = 1):
        super().__init__()
        if normalization not in WINDOW_NORMALIZATIONS:
            raise ValueError(f"normalization {normalization!r} is not that of RawIntensityDelpNet "
                             f"({WINDOW_NORMALIZATIONS}); image-range models take ImageRangeDelpNet")
        self.network = DelpNet(list(widths), pool_after, dropout, head_dropout, bn_momentum, n_classes, in_channels,
                               None if pool_at is None else list(pool_at), padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(normalize(x)), dim=1)


class ImageRangeDelpNet(nn.Module):
    """(N, 1, H, W) raw intensities and (N, 2) image ranges -> (N, n_classes) class probabilities:
    :func:`normalize_by_range`, DelpNet, softmax; an exactly constant window gets probability 1 for the class
    ``background_class`` (its index in the outputs; -1: the model has none, no such rule).

    ``value_range`` row i is (low, high) of the whole image window i was cut from, in the windows' raw units:
    ``awdvd.data.patches.image_range(image)``, the (1, 99.9) percentiles of the image smoothed by a Gaussian of
    sigma 1.5 px. The keyword arguments are DelpNet's (``awdvd.learn.model.DelpNetConfig``), ``normalization`` (one
    of :data:`RANGE_NORMALIZATIONS`) and ``background_class``.
    """

    def __init__(self, widths: List[int], pool_after: int = 3, dropout: float = 0.1, head_dropout: float = 0.5,
                 bn_momentum: float = 0.4, n_classes: int = 12, in_channels: int = 1,
                 normalization: str = "image-range", pool_at: Optional[List[int]] = None, padding: int = 1,
                 background_class: int = -1):
        super().__init__()
        if normalization not in RANGE_NORMALIZATIONS:
            raise ValueError(f"normalization {normalization!r} is not that of ImageRangeDelpNet "
                             f"({RANGE_NORMALIZATIONS}); window-minmax models take RawIntensityDelpNet")
        if not -1 <= background_class < n_classes:
            raise ValueError(f"background_class must be -1 (none) or a class index below {n_classes}, "
                             f"got {background_class}")
        self.background_class = int(background_class)
        self.network = DelpNet(list(widths), pool_after, dropout, head_dropout, bn_momentum, n_classes, in_channels,
                               None if pool_at is None else list(pool_at), padding)

    def forward(self, x: torch.Tensor, value_range: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        proba = torch.softmax(self.network(normalize_by_range(x, value_range)), dim=1)
        if self.background_class >= 0:
            flat = x.reshape(x.shape[0], -1)
            constant = torch.amax(flat, dim=1) == torch.amin(flat, dim=1)
            certain = (torch.arange(proba.shape[1], device=proba.device) == self.background_class).to(proba.dtype)
            proba = torch.where(constant[:, None], certain[None, :], proba)
        return proba
