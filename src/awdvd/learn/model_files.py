"""Loading a model: an awdvd model file (``torch.load(weights_only=True)``), a bioimage.io package written by
``awdvd export-bioimageio``, or the model bundled with awdvd."""

from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path

import yaml

from ..physics.optics import UndersamplingWarning
from .model import DefocusModel, ModelFileError
from .range_extension import RangeExtendedModel, is_range_extended


def bundled_model_path() -> Path:
    """Where the default model ships inside the package."""
    return Path(__file__).resolve().parents[1] / "models" / "delpnet_default.pt"


def load_model(path=None, *, device: str = "cpu", inference_backend: str | None = "auto"):
    """Load a model file; without ``path``, the model bundled with awdvd. A ``.zip`` is read as a bioimage.io
    package written by ``awdvd export-bioimageio`` (:func:`awdvd.learn.model_files.load_bioimageio_model`).

    Raises
    ------
    FileNotFoundError if the file does not exist; ModelFileError if it is not a valid awdvd model.
    """

    import torch

    path = bundled_model_path() if path is None else Path(path)
    if not path.is_file():
        if path == bundled_model_path():
            raise FileNotFoundError(f"no bundled model in this installation ({path}); pass a model file from `awdvd train`")
        raise FileNotFoundError(f"no such model file: {path}")
    if path.suffix.lower() == ".zip":  # a bioimage.io package from `awdvd export-bioimageio`

        return load_bioimageio_model(path, device=device, inference_backend=inference_backend)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise ModelFileError(f"{path} could not be read as a model file ({type(error).__name__})") from error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndersamplingWarning)  # the optics were checked when the model was made
        kind = RangeExtendedModel if is_range_extended(payload) else DefocusModel
        model = kind.from_file_dict(payload, source=str(path), inference_backend=inference_backend)
    return model.to(device)


STATE_PREFIX = "network."  # RawIntensityDelpNet keeps DelpNet under .network


RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")


def read_rdf(archive: zipfile.ZipFile, source: str) -> dict:
    names = set(archive.namelist())
    rdf_name = next((n for n in RDF_NAMES if n in names), None)
    if rdf_name is None:
        raise ValueError(f"{source} is a zip without rdf.yaml: not a bioimage.io package")
    return yaml.safe_load(archive.read(rdf_name))


def load_bioimageio_model(path, *, device: str = "cpu", inference_backend: str | None = "auto"):
    """The awdvd :class:`~awdvd.learn.model.DefocusModel` of a package written by :func:`export_bioimageio` (its
    ``pytorch_state_dict`` weights loaded into awdvd's DelpNet). Needs neither bioimageio.spec nor a network.

    Raises
    ------
    FileNotFoundError; :class:`~awdvd.learn.model.ModelFileError` for a zip that is not such a package.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such model package: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            rdf = read_rdf(archive, str(path))
            config = (rdf.get("config") or {}).get("awdvd")
            if not isinstance(config, dict):
                raise ValueError(f"{path} is a bioimage.io package but not one exported by awdvd (no config.awdvd); "
                                 "awdvd loads only its own packages")
            source = rdf["weights"]["pytorch_state_dict"]["source"]
            state = torch.load(io.BytesIO(archive.read(source)), map_location="cpu", weights_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, RuntimeError) as error:
        raise ModelFileError(f"{path} could not be read as an awdvd bioimage.io package "
                             f"({type(error).__name__}: {error})") from error
    stripped = {k[len(STATE_PREFIX):]: v for k, v in state.items() if k.startswith(STATE_PREFIX)}
    if len(stripped) != len(state):
        raise ModelFileError(f"{path}: the state-dict weights are not those of awdvd's RawIntensityDelpNet")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndersamplingWarning)  # checked when the model was made
        model = DefocusModel.from_file_dict({**config, "state_dict": stripped}, source=str(path),
                                            inference_backend=inference_backend)
    return model.to(device)
