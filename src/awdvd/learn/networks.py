"""The networks: DelpNet (paper 2.2: :class:`DelpNetConfig`, :func:`build_delpnet`), and the builder of any
architecture a model file may hold (:data:`ARCHITECTURES`: DelpNet and the comparison networks of the paper's
Table 2, :mod:`awdvd.learn.comparison_networks`), :func:`build_network`, with their size and cost
(:func:`count_parameters`, :func:`network_cost`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..data.patches import PATCH_PX
from .comparison_networks import COMPARISON_ARCHITECTURES, ComparisonNetConfig, build_comparison_network

if TYPE_CHECKING:  # torch is imported lazily: `import awdvd` stays light
    import torch

__all__ = ["DelpNetConfig", "build_delpnet", "network_config", "build_network", "count_parameters", "network_cost",
           "ARCHITECTURES", "PAPER_PARAMETERS"]

#: Architectures a model file may hold (DelpNet and the comparison networks of the paper's Table 2).
ARCHITECTURES = ("delpnet", "vgg16", "inception_v3", "resnet18", "mobilenet_v2")

#: Parameter counts the paper reports (Table 2; Keras counts, BatchNorm moving statistics included).
PAPER_PARAMETERS = {"delpnet": 2.3e6, "vgg16": 39.9e6, "inception_v3": 21.8e6, "resnet18": 12.6e6, "mobilenet_v2": 2.3e6}


# --------------------------------------------------------------------------------------------- DelpNet
@dataclass(frozen=True)
class DelpNetConfig:
    """Architecture of DelpNet: a plain CNN of 7 conv blocks (3 x 3 conv, BatchNorm, ReLU, Dropout), max
    pooling after the first ``pool_after`` blocks, global max pooling and one dense layer.

    ``bn_momentum`` uses PyTorch's convention: the paper's Keras momentum 0.6 is PyTorch 0.4
    (Keras keeps m * old + (1 - m) * new; PyTorch keeps (1 - m) * old + m * new).
    """

    widths: tuple[int, ...] = (32, 64, 128, 128, 256, 256, 512)
    pool_after: int = 3
    pool_at: tuple[int, ...] | None = None
    padding: int = 1
    dropout: float = 0.1
    head_dropout: float = 0.5
    bn_momentum: float = 0.4
    n_classes: int = 12
    in_channels: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if not self.widths or any(w < 1 for w in self.widths):
            raise ValueError(f"widths must be positive integers, got {self.widths}")
        if not 0 <= self.pool_after <= len(self.widths):
            raise ValueError(f"pool_after must be in 0..{len(self.widths)}, got {self.pool_after}")
        if self.pool_at is not None:
            object.__setattr__(self, "pool_at", tuple(sorted(int(i) for i in self.pool_at)))
            if any(not 0 <= i < len(self.widths) for i in self.pool_at) or len(set(self.pool_at)) != len(self.pool_at):
                raise ValueError(f"pool_at must hold distinct block indices in 0..{len(self.widths) - 1}, got {self.pool_at}")
        if self.padding not in (0, 1):
            raise ValueError(f"padding must be 1 (the paper's 'same' convolutions) or 0 ('valid': every window "
                             f"feature sees only pixels inside the window), got {self.padding!r}")
        for name in ("dropout", "head_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 < self.bn_momentum <= 1.0:
            raise ValueError(f"bn_momentum must be in (0, 1], got {self.bn_momentum}")
        if self.n_classes < 2 or self.in_channels < 1:
            raise ValueError("n_classes must be >= 2 and in_channels >= 1")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["widths"] = list(self.widths)
        if self.pool_at is None:
            del d["pool_at"]  # files written before pool_at existed stay byte-identical in their config
        else:
            d["pool_at"] = list(self.pool_at)
        if self.padding == 1:
            del d["padding"]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> DelpNetConfig:
        data = dict(data)
        data["widths"] = tuple(data.get("widths", cls.widths))
        if data.get("pool_at") is not None:
            data["pool_at"] = tuple(data["pool_at"])
        return cls(**data)

    @property
    def pooled_blocks(self) -> tuple[int, ...]:
        """Indices of the conv blocks followed by a 2 x 2 max pool."""
        return tuple(range(self.pool_after)) if self.pool_at is None else self.pool_at


def build_delpnet(config: DelpNetConfig | None = None) -> torch.nn.Module:
    """A fresh (randomly initialised) DelpNet. The module has ``features(x)`` -> (N, C, h, w) conv-trunk
    maps, ``classify(pooled)`` -> (N, n_classes) logits from (N, C) pooled features, and ``forward(x)`` =
    ``classify(features(x).amax((2, 3)))`` for x of shape (N, in_channels, H, W)."""
    import torch
    from torch import nn

    config = DelpNetConfig() if config is None else config

    class DelpNet(nn.Module):
        def __init__(self, cfg: DelpNetConfig):
            super().__init__()
            self.config = cfg
            layers: list[nn.Module] = []
            channels = cfg.in_channels
            for index, width in enumerate(cfg.widths):
                layers += [
                    nn.Conv2d(channels, width, kernel_size=3, padding=cfg.padding, bias=False),
                    nn.BatchNorm2d(width, momentum=cfg.bn_momentum),
                    nn.ReLU(inplace=True),
                ]
                if cfg.dropout > 0:
                    layers.append(nn.Dropout(cfg.dropout))
                if index in cfg.pooled_blocks:
                    layers.append(nn.MaxPool2d(2))
                channels = width
            self.trunk = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Dropout(cfg.head_dropout), nn.Linear(channels, cfg.n_classes))

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return self.trunk(x)

        def classify(self, pooled: torch.Tensor) -> torch.Tensor:
            return self.head(pooled)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classify(torch.amax(self.features(x), dim=(2, 3)))

    network = DelpNet(config)
    network.architecture = "delpnet"
    return network


def network_config(architecture: str, args: dict | None = None):
    """The config object of ``architecture`` built from ``args`` (a dict of its fields; missing = defaults)."""
    args = {} if args is None else dict(args)
    if architecture == "delpnet":
        known = {f.name for f in dataclasses.fields(DelpNetConfig)}
        unknown = sorted(set(args) - known)
        if unknown:
            raise ValueError(f"unknown DelpNet argument(s) {unknown}; known: {sorted(known)}")
        return DelpNetConfig.from_dict(args)
    if architecture in COMPARISON_ARCHITECTURES:
        return ComparisonNetConfig.from_dict(args)
    raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")


def build_network(architecture: str, config=None) -> torch.nn.Module:
    """A fresh network of ``architecture`` (one of :data:`ARCHITECTURES`); ``config`` is its config object
    or a dict of its fields (None: the published network with 12 outputs)."""
    if config is None or isinstance(config, dict):
        config = network_config(architecture, config)
    if architecture == "delpnet":
        if not isinstance(config, DelpNetConfig):
            raise TypeError(f"DelpNet needs a DelpNetConfig, got {type(config).__name__}")
        return build_delpnet(config)
    return build_comparison_network(architecture, config)


def count_parameters(module) -> int:
    """Number of trainable parameters of a torch module (BatchNorm running statistics not included)."""
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


def network_cost(network, *, input_px: int = PATCH_PX) -> dict:
    """Size and arithmetic cost of one forward pass on one (in_channels, input_px, input_px) patch.

    Returns {"parameters": trainable parameters, "macs": multiply-accumulates of the convolutions and dense
    layers, "flops": 2 * macs}. BatchNorm, activations and pooling (a few % of the total) are not counted.
    A network built on the "meta" device (``with torch.device("meta"): ...``) costs no memory and no compute
    (but the first meta run in a process imports torch's meta kernels, about a second); otherwise one patch
    of zeros is run in eval mode (the training flag is restored).
    """
    import torch
    from torch import nn

    macs = [0]

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs[0] += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            macs[0] += output.numel() * module.in_features

    parameter = next(network.parameters())
    handles = [m.register_forward_hook(hook) for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = network.training
    try:
        network.eval()
        with torch.no_grad():
            network(torch.zeros((1, network.config.in_channels, input_px, input_px), device=parameter.device,
                                dtype=parameter.dtype))
    finally:
        network.train(was_training)
        for handle in handles:
            handle.remove()
    return {"parameters": count_parameters(network), "macs": int(macs[0]), "flops": int(2 * macs[0])}
