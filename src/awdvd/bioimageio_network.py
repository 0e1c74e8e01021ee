"""DelpNet taking raw intensities: the network of awdvd's bioimage.io package.

This file is copied into the package as the ``pytorch_state_dict`` weights' architecture source and is
scripted for the TorchScript weights, so it imports nothing but torch: bioimage.io tools run it without awdvd.
Its layers are those of :func:`awdvd.model.build_delpnet` (same module names, so a DelpNet state dict loads
into ``RawIntensityDelpNet(...).network`` with ``strict=True``); the model's input normalisation and the final
softmax sit inside it, so the package maps raw-intensity patches (N, 1, 84, 84) to class probabilities (N, C).

:func:`normalize` is the one place where the package's normalisation is computed; it must stay equal to the
normalisation the model was trained with (``awdvd.synth.normalize_patches``, named by the model file's
``normalization`` field; a test checks that they agree). When the model's normalisation changes, change it
here and add its name to :data:`NORMALIZATIONS`.
"""

from typing import List, Optional

import torch
from torch import nn

#: Normalisations this file implements, by the name awdvd model files give them.
NORMALIZATIONS = ("window-minmax", "minmax-per-patch")  # the second is the first's older name


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Per-patch min-max to [0, 1] over the last two axes (float32); a constant patch becomes 0."""
    x = x.to(torch.float32)
    lo = torch.amin(x, dim=(-2, -1), keepdim=True)
    span = torch.amax(x, dim=(-2, -1), keepdim=True) - lo
    return torch.where(span > 0, (x - lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(x))


class DelpNet(nn.Module):
    """The DelpNet of :func:`awdvd.model.build_delpnet`: conv blocks (3 x 3 conv, BatchNorm, ReLU, Dropout,
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

    The keyword arguments are DelpNet's (``awdvd.model.DelpNetConfig``) and ``normalization``, the name of the
    model's input normalisation (one of :data:`NORMALIZATIONS`).
    """

    def __init__(self, widths: List[int], pool_after: int = 3, dropout: float = 0.1, head_dropout: float = 0.5,
                 bn_momentum: float = 0.4, n_classes: int = 12, in_channels: int = 1,
                 normalization: str = "window-minmax", pool_at: Optional[List[int]] = None, padding: int = 1):
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization {normalization!r} is not implemented here; known: {NORMALIZATIONS}")
        self.network = DelpNet(list(widths), pool_after, dropout, head_dropout, bn_momentum, n_classes, in_channels,
                               None if pool_at is None else list(pool_at), padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(normalize(x)), dim=1)
