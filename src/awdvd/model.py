"""DelpNet, the defocus-level classifier (paper 2.2), and the self-describing model file.

The network sees 84 x 84 patches min-max normalised to [0, 1] and outputs one score per class: the defocus
levels 0 .. n_levels - 1 and, optionally, "bg". :class:`DefocusModel` wraps a trained network with what is
needed to use it (optics, class-to-level map, normalisation) and takes raw-intensity patches.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .optics import Optics

if TYPE_CHECKING:  # torch is imported lazily: `import awdvd` stays light
    import torch

__all__ = ["DelpNetConfig", "build_delpnet", "DefocusModel", "load_model", "MODEL_FORMAT_VERSION", "ModelFileError",
           "bundled_model_path", "count_parameters"]

MODEL_FORMAT = "awdvd-model"
MODEL_FORMAT_VERSION = 1
BACKGROUND = -1


class ModelFileError(ValueError):
    """A model file is missing, corrupt, or not an awdvd model."""


@dataclass(frozen=True)
class DelpNetConfig:
    """Architecture of DelpNet: a plain CNN of 7 conv blocks (3 x 3 conv, BatchNorm, ReLU, Dropout), max
    pooling after the first ``pool_after`` blocks, global max pooling and one dense layer.

    ``bn_momentum`` uses PyTorch's convention: the paper's Keras momentum 0.6 is PyTorch 0.4
    (Keras keeps m * old + (1 - m) * new; PyTorch keeps (1 - m) * old + m * new).
    """

    widths: tuple[int, ...] = (32, 64, 128, 128, 256, 256, 512)
    pool_after: int = 3
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
        return d

    @classmethod
    def from_dict(cls, data: dict) -> DelpNetConfig:
        data = dict(data)
        data["widths"] = tuple(data.get("widths", cls.widths))
        return cls(**data)


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
                    nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(width, momentum=cfg.bn_momentum),
                    nn.ReLU(inplace=True),
                ]
                if cfg.dropout > 0:
                    layers.append(nn.Dropout(cfg.dropout))
                if index < cfg.pool_after:
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

    return DelpNet(config)


def bundled_model_path() -> Path:
    """Where the default model ships inside the package."""
    return Path(__file__).parent / "models" / "delpnet_default.pt"


class DefocusModel:
    """A trained defocus-level classifier ready for use.

    Attributes
    ----------
    network : the torch module (in eval mode).
    optics : the optics its training data were synthesised with.
    class_levels : (n_classes,) int array, the level of each output class, -1 for "bg".
    patch_px : side of the square patches it reads (84).
    info : everything else the model file records (recipe, data provenance, metrics, ...).
    """

    def __init__(self, network, *, optics: Optics, class_levels, patch_px: int = 84, info: dict | None = None):
        self.network = network.eval()
        self.optics = optics
        self.class_levels = np.asarray(class_levels, dtype=np.int64)
        self.patch_px = int(patch_px)
        self.info = dict(info or {})
        if len(self.class_levels) != network.config.n_classes:
            raise ValueError(f"{len(self.class_levels)} class levels for a network with {network.config.n_classes} outputs")

    @property
    def config(self) -> DelpNetConfig:
        return self.network.config

    @property
    def has_background_class(self) -> bool:
        return bool(np.any(self.class_levels == BACKGROUND))

    @property
    def class_names(self) -> list[str]:
        return ["bg" if level == BACKGROUND else str(int(level)) for level in self.class_levels]

    @property
    def device(self):
        return next(self.network.parameters()).device

    def to(self, device) -> DefocusModel:
        self.network.to(device)
        return self

    def predict_proba_normalized(self, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, n_classes) float32 for already-normalised patches x (N, p, p)."""
        import torch

        x = np.asarray(x, dtype=np.float32)
        out = np.empty((len(x), len(self.class_levels)), dtype=np.float32)
        self.network.eval()
        with torch.inference_mode():
            for start in range(0, len(x), batch_size):
                batch = torch.from_numpy(x[start : start + batch_size, None]).to(self.device)
                out[start : start + batch_size] = torch.softmax(self.network(batch), dim=1).float().cpu().numpy()
        return out

    def predict_patches(self, patches, *, return_proba: bool = False, batch_size: int = 256):
        """Defocus level of each raw-intensity patch.

        Parameters
        ----------
        patches : (N, p, p) or (p, p) array of raw intensities (any real dtype), p = ``patch_px``.
        return_proba : also return the class probabilities (N, n_classes), columns in ``class_levels`` order.

        Returns
        -------
        levels : (N,) int64, 0 .. n_levels - 1, or -1 for background; (and probabilities if asked).
        """
        from .synth import normalize_patches

        x = np.asarray(patches)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != (self.patch_px, self.patch_px):
            raise ValueError(f"patches must be (N, {self.patch_px}, {self.patch_px}), got shape {np.shape(patches)}")
        if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise TypeError(f"patches must be real numbers, got dtype {x.dtype}")
        if x.size and not np.isfinite(x).all():
            raise ValueError("patches contain NaN or infinite values")
        proba = self.predict_proba_normalized(normalize_patches(x), batch_size=batch_size)
        levels = self.class_levels[np.argmax(proba, axis=1)] if len(x) else np.zeros(0, np.int64)
        return (levels, proba) if return_proba else levels

    # ----------------------------------------------------------------------------------------- file
    def to_file_dict(self) -> dict:
        state = {k: v.detach().cpu().clone() for k, v in self.network.state_dict().items()}
        return {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "architecture": "delpnet",
            "config": self.config.to_dict(),
            "state_dict": state,
            "optics": self.optics.to_dict(),
            "level_depths_um": list(self.optics.depths_um),
            "class_levels": [int(v) for v in self.class_levels],
            "class_names": self.class_names,
            "normalization": "minmax-per-patch",
            "patch_px": self.patch_px,
            "info": self.info,
        }

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Write the model file (tensors and plain Python types only: ``torch.load(weights_only=True)`` reads it)."""
        import torch

        from .io import atomic_path

        with atomic_path(path, overwrite=overwrite) as tmp:
            torch.save(self.to_file_dict(), tmp)
        return Path(path)

    @classmethod
    def from_file_dict(cls, payload: dict, *, source: str = "model file") -> DefocusModel:
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
            raise ModelFileError(f"{source} is not an awdvd model file")
        if payload.get("format_version") != MODEL_FORMAT_VERSION:
            raise ModelFileError(f"{source} has model format {payload.get('format_version')}; this awdvd reads {MODEL_FORMAT_VERSION}")
        if payload.get("architecture") != "delpnet":
            raise ModelFileError(f"{source} holds a {payload.get('architecture')!r} network; only DelpNet models can be used for prediction")
        try:
            network = build_delpnet(DelpNetConfig.from_dict(payload["config"]))
            network.load_state_dict(payload["state_dict"])
            optics = Optics.from_dict(payload["optics"])
            return cls(network, optics=optics, class_levels=payload["class_levels"], patch_px=payload["patch_px"],
                       info=payload.get("info", {}))
        except (KeyError, TypeError, RuntimeError, ValueError) as error:
            raise ModelFileError(f"{source} is damaged or inconsistent ({type(error).__name__}: {error})") from error


def load_model(path=None, *, device: str = "cpu") -> DefocusModel:
    """Load a model file; without ``path``, the model bundled with awdvd.

    Raises
    ------
    FileNotFoundError if the file does not exist; ModelFileError if it is not a valid awdvd model.
    """
    import torch
    import warnings

    from .optics import UndersamplingWarning

    path = bundled_model_path() if path is None else Path(path)
    if not path.is_file():
        if path == bundled_model_path():
            raise FileNotFoundError(f"no bundled model in this installation ({path}); pass a model file from `awdvd train`")
        raise FileNotFoundError(f"no such model file: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise ModelFileError(f"{path} could not be read as a model file ({type(error).__name__})") from error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndersamplingWarning)  # the optics were checked when the model was made
        model = DefocusModel.from_file_dict(payload, source=str(path))
    return model.to(device)


def count_parameters(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


