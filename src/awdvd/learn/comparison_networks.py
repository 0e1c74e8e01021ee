"""The comparison networks of the paper's Table 2 (Keras' VGG16, Inception_v3, ResNet18 and MobileNet_v2), written
out in torch and adapted to 1 x 84 x 84 patches and 12 classes: :class:`ComparisonNetConfig` holds their arguments,
and :func:`build_comparison_network` builds one (its Notes say how each follows the published network); every
network exposes ``config`` (with ``n_classes``) and ``forward(x)``: (N, in_channels, H, W) -> (N, n_classes) logits.
DelpNet and the builder of any architecture are :mod:`awdvd.learn.networks`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._config import FrozenConfig

__all__ = ["ComparisonNetConfig", "COMPARISON_ARCHITECTURES", "build_comparison_network", "KERAS_BN_MOMENTUM"]

#: BatchNorm momentum (PyTorch convention) of the Keras applications: Keras' default 0.99; MobileNetV2 0.999.
KERAS_BN_MOMENTUM = {"vgg16": None, "inception_v3": 0.01, "resnet18": 0.01, "mobilenet_v2": 0.001}

COMPARISON_ARCHITECTURES = ("vgg16", "inception_v3", "resnet18", "mobilenet_v2")


@dataclass(frozen=True)
class ComparisonNetConfig(FrozenConfig):
    """Arguments of a comparison network.

    Parameters
    ----------
    n_classes : outputs (12: 11 levels and "bg").
    in_channels : input channels (1).
    input_px : side of the square input; only VGG16's dense top depends on it (it flattens the last map).
    width_mult : multiplies every channel count (1.0 = the published network; small values for tests).
    bn_momentum : BatchNorm momentum in PyTorch's convention (``1 - keras_momentum``); None = the Keras
        default of the architecture (:data:`KERAS_BN_MOMENTUM`; for VGG16 with BatchNorm, Keras' default 0.99).
    batch_norm : VGG16 only: BatchNorm after every conv (torchvision's ``vgg16_bn``). False = the paper's Keras
        VGG16. The other networks always have BatchNorm.
    """

    n_classes: int = 12
    in_channels: int = 1
    input_px: int = 84
    width_mult: float = 1.0
    bn_momentum: float | None = None
    batch_norm: bool = False

    def __post_init__(self) -> None:
        for name in ("n_classes", "in_channels", "input_px"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"ComparisonNetConfig.{name} must be an integer, got {value!r}")
        if self.n_classes < 2 or self.in_channels < 1 or self.input_px < 32:
            raise ValueError("ComparisonNetConfig needs n_classes >= 2, in_channels >= 1 and input_px >= 32")
        if not (isinstance(self.width_mult, (int, float)) and math.isfinite(self.width_mult) and 0 < self.width_mult <= 4):
            raise ValueError(f"width_mult must be in (0, 4], got {self.width_mult!r}")
        if self.bn_momentum is not None and not 0.0 < self.bn_momentum <= 1.0:
            raise ValueError(f"bn_momentum must be in (0, 1] (PyTorch convention) or None, got {self.bn_momentum}")
        if not isinstance(self.batch_norm, bool):
            raise TypeError(f"ComparisonNetConfig.batch_norm must be True or False, got {self.batch_norm!r}")

    def channels(self, c: int, divisor: int = 1) -> int:
        """``c`` scaled by ``width_mult``, at least ``divisor``, rounded to a multiple of ``divisor``."""
        return max(divisor, int(round(c * self.width_mult / divisor)) * divisor)


def build_comparison_network(architecture: str, config: ComparisonNetConfig | None = None):
    """A fresh (randomly initialised) comparison network: one of :data:`COMPARISON_ARCHITECTURES`.

    Notes
    -----
    The paper compared DelpNet with Keras' VGG16, Inception_v3, MobileNet_v2 and a ResNet18, "only adjusting the
    input and output formats". torchvision cannot be loaded with the CPU build of torch used here, so the four
    networks are written out in this module, following the Keras applications (and torchvision, which has the
    same layers):

    - ``vgg16``: 13 conv (3 x 3, bias, ReLU; no BatchNorm) in 5 blocks with max pooling, then Keras' top
      (flatten, dense 4096, dense 4096, dense n_classes). At 84 x 84 the flattened map is 2 x 2 x 512, which is
      what makes the paper's 39.9 M parameters. ``batch_norm=True`` puts BatchNorm after every conv (torchvision's
      ``vgg16_bn``; the conv then has no bias): not the paper's network, but one that learns within a CPU budget
      (the plain one stays at the majority class for the ``cpu`` reproduction's 20 epochs).
    - ``inception_v3``: the stem and the Mixed 5b-7c blocks of Szegedy et al. 2016 (no auxiliary head), global
      average pooling, dense. 84 x 84 is above Keras' 75 x 75 minimum; the last blocks run on 1 x 1 maps.
    - ``resnet18``: He et al. 2016, BasicBlocks [2, 2, 2, 2], 7 x 7 stem, global average pooling, dense.
    - ``mobilenet_v2``: Sandler et al. 2018, inverted residuals with ReLU6, last conv 1280, global average
      pooling, dense.

    BatchNorm momenta default to the Keras values these networks ship with (0.99, 0.999 for MobileNet_v2),
    written in PyTorch's convention (``1 - keras``). Parameter counts are PyTorch's trainable parameters; the
    paper's Keras counts also include BatchNorm moving statistics, so small differences are expected (ResNet18
    comes out at 11.2 M against the paper's 12.6 M: the paper's ResNet18 implementation is not specified).
    """
    config = ComparisonNetConfig() if config is None else config
    builders = {"vgg16": _vgg16, "inception_v3": _inception_v3, "resnet18": _resnet18, "mobilenet_v2": _mobilenet_v2}
    if architecture not in builders:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(builders)}")
    if config.batch_norm and architecture != "vgg16":
        raise ValueError(f"batch_norm is an option of VGG16 only; {architecture} always has BatchNorm")
    network = builders[architecture](config)
    network.config = config
    network.architecture = architecture
    return network


def _momentum(config: ComparisonNetConfig, architecture: str) -> float:
    if config.bn_momentum is not None:
        return config.bn_momentum
    return KERAS_BN_MOMENTUM[architecture] or 0.01  # VGG16 with BatchNorm: Keras' default


def _conv_bn(c_in, c_out, kernel, *, stride=1, padding=0, groups=1, momentum=0.1, act="relu", eps=1e-3):
    """Conv (no bias) + BatchNorm + activation as one Sequential, so that BatchNorm folding finds the pair."""
    from torch import nn

    layers = [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, groups=groups, bias=False),
              nn.BatchNorm2d(c_out, eps=eps, momentum=momentum)]
    if act == "relu":
        layers.append(nn.ReLU(inplace=True))
    elif act == "relu6":
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


# ------------------------------------------------------------------------------------------------- VGG16
def _vgg16(config: ComparisonNetConfig):
    from torch import nn

    plan = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    layers: list = []
    c_in = config.in_channels
    for item in plan:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            c_out = config.channels(item)
            if config.batch_norm:
                layers.append(_conv_bn(c_in, c_out, 3, padding=1, momentum=_momentum(config, "vgg16")))
            else:
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True)]
            c_in = c_out
    side = config.input_px // 32
    hidden = config.channels(4096)

    class VGG16(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_in * side * side, hidden), nn.ReLU(inplace=True),
                                      nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, config.n_classes))

        def forward(self, x):
            return self.head(self.trunk(x))

    return VGG16()


# ------------------------------------------------------------------------------------------ Inception v3
def _inception_v3(config: ComparisonNetConfig):
    import torch
    from torch import nn

    m = _momentum(config, "inception_v3")
    ch = config.channels

    def cbr(c_in, c_out, kernel, stride=1, padding=0):
        return _conv_bn(c_in, c_out, kernel, stride=stride, padding=padding, momentum=m)

    def avg_pool():  # Keras' AveragePooling2D(padding="same") averages over the valid pixels only
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    class Concat(nn.Module):
        def __init__(self, *branches):
            super().__init__()
            self.branches = nn.ModuleList(branches)

        def forward(self, x):
            return torch.cat([branch(x) for branch in self.branches], dim=1)

    class Split(nn.Module):  # the 1 x 3 / 3 x 1 fork of the E blocks
        def __init__(self, stem, c_in, c_out):
            super().__init__()
            self.stem = stem
            self.a = cbr(c_in, c_out, (1, 3), padding=(0, 1))
            self.b = cbr(c_in, c_out, (3, 1), padding=(1, 0))

        def forward(self, x):
            y = self.stem(x)
            return torch.cat([self.a(y), self.b(y)], dim=1)

    def block_a(c_in, pool_features):
        return Concat(cbr(c_in, ch(64), 1),
                      nn.Sequential(cbr(c_in, ch(48), 1), cbr(ch(48), ch(64), 5, padding=2)),
                      nn.Sequential(cbr(c_in, ch(64), 1), cbr(ch(64), ch(96), 3, padding=1), cbr(ch(96), ch(96), 3, padding=1)),
                      nn.Sequential(avg_pool(), cbr(c_in, ch(pool_features), 1))), ch(64) + ch(64) + ch(96) + ch(pool_features)

    def block_b(c_in):
        return Concat(cbr(c_in, ch(384), 3, stride=2),
                      nn.Sequential(cbr(c_in, ch(64), 1), cbr(ch(64), ch(96), 3, padding=1), cbr(ch(96), ch(96), 3, stride=2)),
                      nn.MaxPool2d(3, stride=2)), ch(384) + ch(96) + c_in

    def block_c(c_in, c7):
        c7 = ch(c7)
        return Concat(cbr(c_in, ch(192), 1),
                      nn.Sequential(cbr(c_in, c7, 1), cbr(c7, c7, (1, 7), padding=(0, 3)), cbr(c7, ch(192), (7, 1), padding=(3, 0))),
                      nn.Sequential(cbr(c_in, c7, 1), cbr(c7, c7, (7, 1), padding=(3, 0)), cbr(c7, c7, (1, 7), padding=(0, 3)),
                                    cbr(c7, c7, (7, 1), padding=(3, 0)), cbr(c7, ch(192), (1, 7), padding=(0, 3))),
                      nn.Sequential(avg_pool(), cbr(c_in, ch(192), 1))), 4 * ch(192)

    def block_d(c_in):
        return Concat(nn.Sequential(cbr(c_in, ch(192), 1), cbr(ch(192), ch(320), 3, stride=2)),
                      nn.Sequential(cbr(c_in, ch(192), 1), cbr(ch(192), ch(192), (1, 7), padding=(0, 3)),
                                    cbr(ch(192), ch(192), (7, 1), padding=(3, 0)), cbr(ch(192), ch(192), 3, stride=2)),
                      nn.MaxPool2d(3, stride=2)), ch(320) + ch(192) + c_in

    def block_e(c_in):
        return Concat(cbr(c_in, ch(320), 1),
                      Split(cbr(c_in, ch(384), 1), ch(384), ch(384)),
                      Split(nn.Sequential(cbr(c_in, ch(448), 1), cbr(ch(448), ch(384), 3, padding=1)), ch(384), ch(384)),
                      nn.Sequential(avg_pool(), cbr(c_in, ch(192), 1))), ch(320) + 4 * ch(384) + ch(192)

    stem = [cbr(config.in_channels, ch(32), 3, stride=2), cbr(ch(32), ch(32), 3), cbr(ch(32), ch(64), 3, padding=1),
            nn.MaxPool2d(3, stride=2), cbr(ch(64), ch(80), 1), cbr(ch(80), ch(192), 3), nn.MaxPool2d(3, stride=2)]
    blocks = []
    c = ch(192)
    for make in (lambda c: block_a(c, 32), lambda c: block_a(c, 64), lambda c: block_a(c, 64), block_b,
                 lambda c: block_c(c, 128), lambda c: block_c(c, 160), lambda c: block_c(c, 160), lambda c: block_c(c, 192),
                 block_d, block_e, block_e):
        block, c = make(c)
        blocks.append(block)

    class InceptionV3(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(*stem, *blocks)
            self.head = nn.Linear(c, config.n_classes)

        def forward(self, x):
            return self.head(torch.mean(self.trunk(x), dim=(2, 3)))

    return InceptionV3()


# ---------------------------------------------------------------------------------------------- ResNet18
def _resnet18(config: ComparisonNetConfig):
    import torch
    from torch import nn

    m = _momentum(config, "resnet18")

    class BasicBlock(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.body = nn.Sequential(_conv_bn(c_in, c_out, 3, stride=stride, padding=1, momentum=m, eps=1e-5),
                                      _conv_bn(c_out, c_out, 3, padding=1, momentum=m, eps=1e-5, act=None))
            self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out
                             else _conv_bn(c_in, c_out, 1, stride=stride, momentum=m, eps=1e-5, act=None))

        def forward(self, x):
            return torch.relu(self.body(x) + self.shortcut(x))

    widths = [config.channels(w) for w in (64, 128, 256, 512)]
    layers = [_conv_bn(config.in_channels, widths[0], 7, stride=2, padding=3, momentum=m, eps=1e-5),
              nn.MaxPool2d(3, stride=2, padding=1)]
    c_in = widths[0]
    for index, width in enumerate(widths):
        for block in range(2):
            layers.append(BasicBlock(c_in, width, 2 if (block == 0 and index > 0) else 1))
            c_in = width

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(*layers)
            self.head = nn.Linear(c_in, config.n_classes)

        def forward(self, x):
            return self.head(torch.mean(self.trunk(x), dim=(2, 3)))

    return ResNet18()


# ------------------------------------------------------------------------------------------ MobileNet v2
def _mobilenet_v2(config: ComparisonNetConfig):
    import torch
    from torch import nn

    m = _momentum(config, "mobilenet_v2")

    class InvertedResidual(nn.Module):
        def __init__(self, c_in, c_out, stride, expand):
            super().__init__()
            hidden = c_in * expand
            layers = [] if expand == 1 else [_conv_bn(c_in, hidden, 1, momentum=m, act="relu6")]
            layers += [_conv_bn(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, momentum=m, act="relu6"),
                       _conv_bn(hidden, c_out, 1, momentum=m, act=None)]
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and c_in == c_out

        def forward(self, x):
            y = self.body(x)
            return x + y if self.residual else y

    def width(c):  # Keras/torchvision's _make_divisible(c * alpha, 8)
        value = max(8, int(c * config.width_mult + 4) // 8 * 8)
        return value + 8 if value < 0.9 * c * config.width_mult else value

    c_in = width(32)
    layers = [_conv_bn(config.in_channels, c_in, 3, stride=2, padding=1, momentum=m, act="relu6")]
    for expand, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                            (6, 320, 1, 1)]:
        for index in range(n):
            layers.append(InvertedResidual(c_in, width(c), s if index == 0 else 1, expand))
            c_in = width(c)
    last = width(1280) if config.width_mult > 1.0 else 1280  # Keras keeps 1280 for alpha <= 1
    layers.append(_conv_bn(c_in, last, 1, momentum=m, act="relu6"))

    class MobileNetV2(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(*layers)
            self.head = nn.Linear(last, config.n_classes)

        def forward(self, x):
            return self.head(torch.mean(self.trunk(x), dim=(2, 3)))

    return MobileNetV2()
