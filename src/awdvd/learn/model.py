"""DelpNet, the defocus-level classifier (paper 2.2), and the self-describing model file.

The network sees 84 x 84 windows normalised as the model file says (the paper's per-window min-max to [0, 1],
or by the window's image range, :mod:`awdvd.data.patches`) and outputs one score per class: the defocus levels
0 .. n_levels - 1 and, optionally, "bg". An exactly constant window holds nothing to classify: it is background
whatever the network says (:func:`constant_windows_are_background`). :class:`DefocusModel` wraps a trained network with what is
needed to use it (optics, class-to-level map, normalisation) and takes raw-intensity patches. Any
architecture of :data:`ARCHITECTURES` (DelpNet, :mod:`awdvd.learn.networks`, and the paper's comparison networks,
:mod:`awdvd.learn.comparison_networks`) can be wrapped, saved, loaded and evaluated; the dense defocus maps of
:mod:`awdvd.restore.defocus_maps` need DelpNet's ``features`` / ``classify``.

Model file (``torch.save`` of a dict of tensors and plain Python types; ``torch.load(weights_only=True)``
reads it), format version 2:

    format "awdvd-model", format_version 2, awdvd_version
    architecture        "delpnet" | "vgg16" | "inception_v3" | "resnet18" | "mobilenet_v2"
    architecture_args   the network's config (DelpNetConfig / ComparisonNetConfig as a dict)
    state_dict          the trained network's weights (BatchNorm unfolded: the training module's own)
    n_parameters        trainable parameters
    optics              Optics.to_dict(); level_depths_um: depth of each level (um)
    class_levels        level of each output (-1 = "bg"); class_names: "0", ..., "10", "bg"
    normalization       how windows are normalised (awdvd.data.patches.NORMALIZATIONS): "window-minmax" (the
                        paper; files before it was recorded say "minmax-per-patch") or "image-range"; patch_px: 84
    info                recipe, variant, seed, training summary, data provenance, test metrics (JSON-like)

Version 1 files (written before training existed: "config" instead of "architecture_args") still load.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import __version__
from ..data.patches import BACKGROUND, NORMALIZATIONS, PATCH_PX, normalize_windows
from ..io import atomic_path
from ..physics.optics import Optics, UndersamplingWarning
from .networks import (
    ARCHITECTURES,
    PAPER_PARAMETERS,
    DelpNetConfig,
    build_delpnet,
    build_network,
    count_parameters,
    network_config,
    network_cost,
)

if TYPE_CHECKING:  # torch is imported lazily: `import awdvd` stays light
    import torch

__all__ = ["DelpNetConfig", "build_delpnet", "DefocusModel", "MODEL_FORMAT_VERSION", "ModelFileError", "count_parameters", "ARCHITECTURES", "PAPER_PARAMETERS", "build_network",
           "network_config", "network_cost", "fold_batchnorm", "optimize_for_inference",
           "constant_windows_are_background", "json_info", "save_payload"]

MODEL_FORMAT = "awdvd-model"
MODEL_FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)

class ModelFileError(ValueError):
    """A model file is missing, corrupt, or not an awdvd model."""


# --------------------------------------------------------------------------------------------- inference
def fold_batchnorm(network) -> torch.nn.Module:
    """An inference copy of ``network`` (awdvd's one BatchNorm fold): every BatchNorm2d that directly follows a
    Conv2d in a Sequential is folded into the convolution (w' = w g / sqrt(v + eps), b' = (b - m) g /
    sqrt(v + eps) + beta) and replaced by Identity; Dropout becomes Identity; a ReLU followed (past those
    Identities) by a MaxPool2d is moved after the pooling (the same result, since ReLU is monotonic, on 4x
    fewer values). Module names and methods (``features``, ``classify``) are kept, so the copy is a drop-in
    replacement in eval mode. The input network is not changed."""

    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(network).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
        for name in names:
            if isinstance(module._modules[name], nn.Dropout):
                module._modules[name] = nn.Identity()
        for index, name in enumerate(names):
            if not isinstance(module._modules[name], nn.ReLU):
                continue
            later = next((n for n in names[index + 1 :] if not isinstance(module._modules[n], nn.Identity)), None)
            if later is not None and isinstance(module._modules[later], nn.MaxPool2d):
                module._modules[name], module._modules[later] = module._modules[later], module._modules[name]
    for parameter in folded.parameters():
        parameter.requires_grad_(False)
    return folded


def optimize_for_inference(network, *, backend: str = "auto", channels_last: bool = False):
    """A fast, eval-only copy of ``network`` for (N, C, H, W) -> logits; results equal the eval-mode network
    up to float rounding (about 1e-5 relative).

    backend : "eager" (BatchNorm folded, Dropout removed: :func:`fold_batchnorm`), "jit" (the folded network
        scripted, frozen and passed through ``torch.jit.optimize_for_inference``, which keeps the oneDNN
        blocked layout from layer to layer: about twice as fast on CPU, see benchmarks/bench_delpnet.py), or
        "auto" ("jit" on CPU, falling back to "eager" if scripting fails; "eager" on other devices).
    channels_last : eager copies on the CPU only: channels-last weights (for whole-image trunk passes, where
        they are 3-4x faster than the eager model; feed channels-last inputs).
    Returns the module and the backend used. The eager copy keeps ``features`` / ``classify``; the jit one
    only ``forward``.
    """

    import torch

    if backend not in ("auto", "eager", "jit"):
        raise ValueError(f"backend must be 'auto', 'eager' or 'jit', got {backend!r}")
    folded = fold_batchnorm(network)
    device = next(folded.parameters()).device
    if backend == "eager" or (backend == "auto" and device.type != "cpu"):
        if channels_last and device.type == "cpu":
            folded = folded.to(memory_format=torch.channels_last)
        return folded, "eager"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notices are not the user's business
            scripted = torch.jit.optimize_for_inference(torch.jit.script(folded))
    except Exception:
        if backend == "jit":
            raise
        return folded, "eager"
    return scripted, "jit"


def _state_version(network) -> tuple:
    """Changes whenever a parameter or buffer is modified in place (load_state_dict, optimiser steps) or
    moved: the cache key of the inference copy."""
    return tuple((t.data_ptr(), t._version, str(t.device)) for t in network.state_dict(keep_vars=True).values())


# --------------------------------------------------------------------------------------------- the model
class DefocusModel:
    """A trained defocus-level classifier ready for use.

    Attributes
    ----------
    network : the torch module as trained (in eval mode); its ``state_dict`` is what the model file holds.
    architecture : one of :data:`ARCHITECTURES`.
    optics : the optics its training data were synthesised with.
    class_levels : (n_classes,) int array, the level of each output class, -1 for "bg".
    patch_px : side of the square patches it reads (84).
    info : everything else the model file records (recipe, data provenance, metrics, ...).
    inference_backend : "auto", "jit" or "eager" (see :func:`optimize_for_inference`) for the predict
        methods, which run a BatchNorm-folded copy of ``network`` made on first use (and remade if the
        weights change); None runs ``network`` itself.
    normalization : how the network's input windows are normalised (:data:`awdvd.data.patches.NORMALIZATIONS`):
        "window-minmax" (the paper) or "image-range" (by the image's range; whole-image maps are then exact).
    """

    def __init__(self, network, *, optics: Optics, class_levels, patch_px: int = PATCH_PX, info: dict | None = None,
                 inference_backend: str | None = "auto", normalization: str = "window-minmax"):
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        self.normalization = normalization
        self.network = network.eval()
        self.architecture = str(getattr(network, "architecture", "delpnet"))
        self.optics = optics
        self.class_levels = np.asarray(class_levels, dtype=np.int64)
        self.patch_px = int(patch_px)
        self.info = dict(info or {})
        if inference_backend not in (None, "auto", "eager", "jit"):
            raise ValueError(f"inference_backend must be None, 'auto', 'eager' or 'jit', got {inference_backend!r}")
        self.inference_backend = inference_backend
        self._inference: dict = {}  # (backend, channels_last) -> (state version, module)
        if self.class_levels.ndim != 1 or len(self.class_levels) != network.config.n_classes:
            raise ValueError(f"{len(self.class_levels)} class levels for a network with {network.config.n_classes} outputs")
        levels = self.class_levels[self.class_levels != BACKGROUND]
        if np.any(levels < 0) or np.any(levels >= optics.n_levels) or len(np.unique(self.class_levels)) != len(self.class_levels):
            raise ValueError(f"class levels {self.class_levels.tolist()} must be distinct levels in 0..{optics.n_levels - 1} "
                             "or -1 (bg)")

    @property
    def config(self):
        """The network's config (a :class:`DelpNetConfig` for DelpNet)."""
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
        self._inference = {}
        return self

    def __reduce__(self):
        # Pickled (e.g. sent to Dask workers) as its model-file contents: tensors and plain types. The network
        # class is built inside a function and the TorchScript inference copy cannot be pickled at all.
        return (_model_from_file_dict, (self.to_file_dict(), self.inference_backend))

    def inference_network(self, *, backend: str | None | object = ..., channels_last: bool = False):
        """The module the predict methods run: a BatchNorm-folded (and on CPU, TorchScript-optimised) copy of
        ``network`` (:func:`optimize_for_inference`), made once and remade if the weights change; ``network``
        itself if the backend is None. The model's one inference cache: ``backend`` (default
        ``inference_backend``) and ``channels_last`` choose the copy (dense defocus maps use
        ``backend="eager", channels_last=True``, which keeps ``features`` / ``classify``)."""
        backend = self.inference_backend if backend is ... else backend
        if backend is None:
            return self.network.eval()
        version = _state_version(self.network)
        key = (backend, bool(channels_last))
        cached = self._inference.get(key)
        if cached is None or cached[0] != version:
            module, _ = optimize_for_inference(self.network, backend=backend, channels_last=channels_last)
            cached = self._inference[key] = (version, module)
        return cached[1]

    def predict_logits_normalized(self, x: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        """Logits (N, n_classes) float32 for already-normalised patches x (N, p, p) (see
        :func:`awdvd.data.synth.normalize_patches`). ``batch_size`` 32 is the fastest on a 2-core CPU."""
        import torch

        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3:
            raise ValueError(f"normalised patches must be (N, p, p), got shape {x.shape}")
        out = np.empty((len(x), len(self.class_levels)), dtype=np.float32)
        network = self.inference_network()
        device = self.device
        with torch.inference_mode():
            for start in range(0, len(x), batch_size):
                batch = torch.from_numpy(x[start : start + batch_size, None]).to(device)
                out[start : start + batch_size] = network(batch).float().cpu().numpy()
        return out

    def predict_proba_normalized(self, x: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        """Class probabilities (N, n_classes) float32 for already-normalised patches x (N, p, p)."""
        logits = self.predict_logits_normalized(x, batch_size=batch_size)
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict_patches(self, patches, *, return_proba: bool = False, batch_size: int = 32, value_range=None):
        """Defocus level of each raw-intensity patch.

        Parameters
        ----------
        patches : (N, p, p) or (p, p) array of raw intensities (any real dtype), p = ``patch_px``.
        return_proba : also return the class probabilities (N, n_classes), columns in ``class_levels`` order.
        batch_size : patches per forward pass.
        value_range : "image-range" models only: (low, high) of the patches' image (one pair, or one per patch;
            :func:`awdvd.data.patches.image_range`); None takes each patch as an image of its own. Windows of a whole
            image are best classified through :func:`awdvd.restore.defocus_maps.defocus_map`, which passes the image's range.

        Returns
        -------
        levels : (N,) int64, 0 .. n_levels - 1, or -1 for background (always for an exactly constant patch, when
        the model has a bg class); (and probabilities if asked).
        """

        x = np.asarray(patches)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != (self.patch_px, self.patch_px):
            raise ValueError(f"patches must be (N, {self.patch_px}, {self.patch_px}), got shape {np.shape(patches)}")
        if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise TypeError(f"patches must be real numbers, got dtype {x.dtype}")
        if x.size and not np.isfinite(x).all():
            raise ValueError("patches contain NaN or infinite values")
        proba = self.predict_proba_normalized(normalize_windows(x, self.normalization, value_range=value_range),
                                              batch_size=batch_size)
        proba = constant_windows_are_background(proba, x.max(axis=(1, 2)) == x.min(axis=(1, 2)), self.class_levels)
        levels = self.class_levels[np.argmax(proba, axis=1)] if len(x) else np.zeros(0, np.int64)
        return (levels, proba) if return_proba else levels

    # ----------------------------------------------------------------------------------------- file
    def to_file_dict(self) -> dict:
        """The model file's content (see the module docstring): tensors and plain Python types only."""

        info = json_info(self.info)
        state = {k: v.detach().cpu().clone() for k, v in self.network.state_dict().items()}
        return {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "awdvd_version": __version__,
            "architecture": self.architecture,
            "architecture_args": self.config.to_dict(),
            "state_dict": state,
            "n_parameters": count_parameters(self.network),
            "optics": self.optics.to_dict(),
            "level_depths_um": list(self.optics.depths_um),
            "class_levels": [int(v) for v in self.class_levels],
            "class_names": self.class_names,
            "normalization": self.normalization,
            "patch_px": self.patch_px,
            "info": info,
        }

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Write the model file (tensors and plain Python types only: ``torch.load(weights_only=True)`` reads it)."""
        return save_payload(self.to_file_dict(), path, overwrite=overwrite)

    @classmethod
    def from_file_dict(cls, payload: dict, *, source: str = "model file", inference_backend: str | None = "auto") -> DefocusModel:
        """Rebuild a model from :meth:`to_file_dict` output; raises :class:`ModelFileError` if it is not one."""
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
            raise ModelFileError(f"{source} is not an awdvd model file")
        version = payload.get("format_version")
        if version not in _READABLE_VERSIONS:
            raise ModelFileError(f"{source} has model format {version}; this awdvd reads {', '.join(map(str, _READABLE_VERSIONS))}")
        architecture = payload.get("architecture")
        if architecture not in ARCHITECTURES:
            raise ModelFileError(f"{source} holds an unknown network {architecture!r}; known: {', '.join(ARCHITECTURES)}")
        args_key = "config" if version == 1 else "architecture_args"
        try:
            missing = [key for key in (args_key, "state_dict", "optics", "class_levels", "patch_px") if key not in payload]
            if missing:
                raise KeyError(f"missing {', '.join(missing)}")
            network = build_network(architecture, network_config(architecture, payload[args_key]))
            network.load_state_dict(payload["state_dict"])
            optics = Optics.from_dict(payload["optics"])
            normalization = _LEGACY_NORMALIZATIONS.get(payload.get("normalization"), payload.get("normalization"))
            return cls(network, optics=optics, class_levels=payload["class_levels"], patch_px=payload["patch_px"],
                       info=payload.get("info", {}), inference_backend=inference_backend,
                       normalization=normalization or "window-minmax")
        except (KeyError, TypeError, RuntimeError, ValueError, AttributeError) as error:
            raise ModelFileError(f"{source} is damaged or inconsistent ({type(error).__name__}: {error})") from error


def json_info(info: dict) -> dict:
    """A copy of a model's ``info`` in JSON types; ValueError if it holds anything else."""
    try:
        return json.loads(json.dumps(info))
    except (TypeError, ValueError) as error:
        raise ValueError(f"model info must hold only JSON types (dict, list, str, numbers, bool, None): {error}") from error


def save_payload(payload: dict, path, *, overwrite: bool = False) -> Path:
    """``torch.save`` of a model file's content to ``path``, atomically (never replaced without ``overwrite``)."""
    import torch

    with atomic_path(path, overwrite=overwrite) as tmp:
        torch.save(payload, tmp)
    return Path(path)


_LEGACY_NORMALIZATIONS = {"minmax-per-patch": "window-minmax"}  # what model files wrote before "image-range"


def constant_windows_are_background(proba: np.ndarray, constant: np.ndarray, class_levels) -> np.ndarray:
    """``proba`` (N, C) with the rows of exactly constant windows (``constant``, (N,) bool) set to certain
    background, when ``class_levels`` has a bg class: a constant window (zeros, a flat field, a saturated
    plateau) shows no structure whose blur could be read, whatever the network makes of its normalised zeros."""
    class_levels = np.asarray(class_levels)
    constant = np.asarray(constant, dtype=bool)
    if not constant.any() or not np.any(class_levels == BACKGROUND):
        return proba
    proba = np.array(proba, copy=True)
    proba[constant] = (class_levels == BACKGROUND).astype(proba.dtype)
    return proba


def _model_from_file_dict(payload: dict, inference_backend) -> DefocusModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndersamplingWarning)
        return DefocusModel.from_file_dict(payload, source="pickled model", inference_backend=inference_backend)
