"""bioimage.io model packages (format 0.5) of awdvd's DelpNet models: export, and load back.

:func:`export_bioimageio` writes a zip that bioimage.io tools (``bioimageio test``, deepImageJ, ilastik, the
bioimage.io model zoo) understand: ``rdf.yaml``; TorchScript weights and ``pytorch_state_dict`` weights with
their architecture source (:mod:`awdvd.learn.bioimageio_network`, which imports only torch); test input and output
tensors computed by the model itself; a cover image; a README; the licence; and the citations. The exported
network takes raw-intensity 84 x 84 patches, (N, 1, 84, 84) float32, axes typed in micrometres at the model's
pixel size, and returns the class probabilities (N, 12): levels 0 .. 10 and background. The normalisation the
model was trained with sits inside the network, so no pre-processing is declared:

- "window-minmax" models: one input ``raw``; each window is min-max normalised on its own.
- "image-range" models: a second input ``range``, (N, 2) float32, row i the (low, high) of the whole image
  window i was cut from (:func:`awdvd.data.patches.image_range`), which one window cannot tell; the network
  normalises each window by its row exactly as :func:`awdvd.data.patches.normalize_windows` does.

:func:`load_bioimageio_model` (and ``awdvd.load_model("delpnet.zip")``) rebuilds the awdvd
:class:`~awdvd.learn.model.DefocusModel` from such a package: the awdvd model file's metadata stored under
``config.awdvd`` of the rdf and the state-dict weights. Loading needs neither bioimageio.spec nor network
access; exporting needs ``pip install awdvd[bioimageio]``.
"""

from __future__ import annotations

import shutil
import tempfile
import textwrap
import warnings
from pathlib import Path

import numpy as np
import tifffile

from .. import __version__
from ..data.patches import BACKGROUND, RANGE_PERCENTILES, RANGE_SMOOTHING_PX, image_range
from ..data.synth import synthetic_nuclei, tilted_specimen
from ..io import atomic_path
from ..plots import figure, save_figure
from .model import DefocusModel
from .model_files import load_model

__all__ = ["export_bioimageio", "raw_intensity_network", "package_test_patches",
           "CITATIONS", "BIOIMAGEIO_FORMAT_VERSION"]

BIOIMAGEIO_FORMAT_VERSION = "0.5"
#: (text, doi or None, url or None) of the works the package cites.
CITATIONS = (
    ("He D., Cai D., Zhou J., Luo J., Chen S.-L. Adaptive Weighting Depth-variant Deconvolution of Fluorescence "
     "Microscopy Images with Convolutional Neural Network (2019): DelpNet and AWDVD", None,
     "https://arxiv.org/abs/1907.03217"),
    ("Ljosa V., Sokolnicki K. L., Carpenter A. E. Annotated high-throughput microscopy image sets for validation. "
     "Nature Methods 9, 637 (2012): BBBC006, the training images", "10.1038/nmeth.2083", None),
    ("Yang S. J. et al. Assessing microscope image focus quality with deep learning. BMC Bioinformatics 19, 77 "
     "(2018): the 11 absolute defocus levels of BBBC006", "10.1186/s12859-018-2087-4", None),
)


def _check_exportable(model) -> dict:
    from .bioimageio_network import NORMALIZATIONS  # the network file imports torch at its top
    if model.architecture != "delpnet":
        raise ValueError(f"only DelpNet models can be exported to bioimage.io (this one is {model.architecture!r})")
    payload = model.to_file_dict()
    if payload["normalization"] not in NORMALIZATIONS:
        raise ValueError(f"the model's normalisation {payload['normalization']!r} is not implemented in "
                         f"awdvd.learn.bioimageio_network ({', '.join(NORMALIZATIONS)}); add it there first")
    return payload


def _uses_range(payload: dict) -> bool:
    from .bioimageio_network import RANGE_NORMALIZATIONS
    return payload["normalization"] in RANGE_NORMALIZATIONS


def _network_class_name(payload: dict) -> str:
    return "ImageRangeDelpNet" if _uses_range(payload) else "RawIntensityDelpNet"


def raw_intensity_network(model):
    """The model's network wrapped to take raw intensities (eval mode, CPU, the model's weights), mapping
    (N, 1, p, p) raw patches to (N, n_classes) class probabilities: a
    :class:`~awdvd.learn.bioimageio_network.RawIntensityDelpNet` for "window-minmax" models, an
    :class:`~awdvd.learn.bioimageio_network.ImageRangeDelpNet` (called with the patches and their images' ranges
    (N, 2), :func:`awdvd.data.patches.image_range`) for "image-range" models."""
    from . import bioimageio_network

    payload = _check_exportable(model)
    wrapper = getattr(bioimageio_network, _network_class_name(payload))(**_architecture_kwargs(payload))
    wrapper.network.load_state_dict(payload["state_dict"], strict=True)
    return wrapper.eval()


def _architecture_kwargs(payload: dict) -> dict:
    args = dict(payload["architecture_args"])
    args["widths"] = [int(w) for w in args["widths"]]
    args["normalization"] = payload["normalization"]
    if _uses_range(payload):  # DefocusModel.predict_patches' rule: an exactly constant window is background
        levels = [int(v) for v in payload["class_levels"]]
        args["background_class"] = levels.index(BACKGROUND) if BACKGROUND in levels else -1
    return args


def package_test_patches(model, *, seed: int = 0, return_range: bool = False):
    """One raw-intensity patch per defocus level: a procedural nuclei strip tilted through every level (the
    demo's specimen, :func:`awdvd.data.synth.tilted_specimen`), cut into ``model.patch_px`` squares.

    Returns (patches (n_levels, p, p) float32 in ADU, true levels (n_levels,) int64), and with
    ``return_range`` also the strip's (low, high) (2,) float32 (:func:`awdvd.data.patches.image_range` of the whole
    strip the patches were cut from: what an "image-range" model normalises them by).
    """

    p, n_levels = int(model.patch_px), int(model.optics.n_levels)
    strip = synthetic_nuclei((p, p * n_levels), n_nuclei=3 * n_levels, seed=seed)
    specimen = tilted_specimen(strip, optics=model.optics, seed=seed)
    patches = np.stack([specimen.observed[:, i * p:(i + 1) * p] for i in range(n_levels)]).astype(np.float32)
    levels = np.array([specimen.levels[0, i * p + p // 2] for i in range(n_levels)], dtype=np.int64)
    if return_range:
        return patches, levels, np.asarray(image_range(specimen.observed), dtype=np.float32)
    return patches, levels


def _cover(patches: np.ndarray, true_levels, predicted, class_names, path: Path, z_step_um: float) -> Path:
    n = len(patches)
    columns = (n + 1) // 2
    fig, axes = figure(2, columns, figsize=(2 * columns, columns), squeeze=False)  # a 2:1 cover
    for index, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if index < n:
            lo, hi = np.percentile(patches[index], [0.5, 99.8])
            ax.imshow(patches[index], cmap="gray", vmin=lo, vmax=hi)
            ax.set_title(f"true {true_levels[index]}, DelpNet {class_names[predicted[index]]}", fontsize=8)
    p = patches.shape[-1]
    fig.suptitle(f"DelpNet defocus levels ({z_step_um:g} um apart) of raw {p} x {p} patches", fontsize=10)
    return save_figure(fig, path, overwrite=True, dpi=80)


def _range_text() -> str:
    """What the ``range`` input of an image-range package holds, for its README and the input's description."""

    low, high = RANGE_PERCENTILES
    return (f"row i = (low, high) of the WHOLE image window i was cut from, in the same raw units: the {low:g} "
            f"and {high:g} percentiles of that image smoothed by a Gaussian of sigma {RANGE_SMOOTHING_PX:g} px "
            "(reflecting borders; an image over about 4 M pixels is sampled on a regular grid after smoothing) - "
            "awdvd.data.patches.image_range(image) computes it. Every window of one image gets the same row. "
            "The network computes (raw - low) / (high - low), not clipped, and 0 where high <= low")


def _range_description() -> str:
    """The ``range`` input's description (bioimage.io allows 128 characters; the README says it all)."""

    low, high = RANGE_PERCENTILES
    return (f"(low, high) ADU of the WHOLE image each window is from: awdvd.data.patches.image_range, p{low:g}/p{high:g} "
            f"after Gaussian sigma {RANGE_SMOOTHING_PX:g} px")


def _inputs_readme(model, payload: dict) -> str:
    p, pixel = model.patch_px, model.optics.pixel_um
    raw = f"- input `raw`: (batch, 1, {p}, {p}) float32 raw camera intensities (ADU), pixel {pixel:g} um."
    if not _uses_range(payload):
        return raw + """ The
  network normalises each patch itself (per-patch min-max to [0, 1], as in training): give raw values."""
    return raw + f""" Give raw
  values: the network normalises them by the second input, as in training. An exactly constant window is
  reported as certain background (as awdvd does).
{textwrap.fill(f"- input `range`: (batch, 2) float32, {_range_text()}.", width=110, subsequent_indent="  ")}
  This model was trained on windows normalised by their image's range, so one window alone cannot be read
  right: compute the range once per image, then cut the windows. (Giving each window its own
  image_range reads it as an image of its own; awdvd does that only for lone patches.)"""


def _readme(model, payload: dict, accuracy: float) -> str:
    optics = model.optics
    info = payload.get("info", {})
    training = info.get("training", {})
    names = ", ".join(payload["class_names"])
    return f"""# DelpNet defocus levels (awdvd)

DelpNet (He et al. 2019) reads one {model.patch_px} x {model.patch_px} patch of a widefield fluorescence image of nuclei and says how far
out of focus it is: one of {optics.n_levels} defocus levels {optics.z_step_um:g} um apart (level 0 in focus,
level {optics.n_levels - 1} = {optics.depths_um[-1]:g} um), or background. awdvd uses these levels to
deconvolve each region with its own point spread function (adaptive weighting depth-variant deconvolution).

## Input and output
{_inputs_readme(model, payload)}
- output `probabilities`: (batch, {len(payload['class_names'])}) class probabilities, in the order {names}.

## Optics the model was made for
Emission {optics.wavelength_um * 1000:g} nm, NA {optics.na:g}, refractive index {optics.n:g}, pixel
{optics.pixel_um:g} um (the bundled model's are BBBC006's: 20x objective, 2 x 2 binning). Images taken with
other optics or pixel sizes get wrong levels: resample them, or train a model for them (`awdvd train`).

## Training
Synthetic defocus of in-focus fields (`awdvd simulate`: the Born-Wolf PSF of these optics and a camera noise
model; the bundled model's fields are BBBC006 U2OS nuclei, Hoechst); awdvd recipe
`{info.get('recipe', {}).get('name', '?')}`. The full training record is in the rdf's `config.awdvd.info`.

## Validation
Best validation accuracy {training.get('best_val_accuracy', float('nan')):.3f} on {training.get('n_val', '?')}
synthetic patches (the level exactly). The test tensors of this package are one procedural patch per level (a
tilted specimen of synthetic nuclei); on them this model gets {accuracy * 100:.0f}% of the levels exactly.
awdvd's MODEL_CARD.md gives its measured limits: accuracy drops under other camera noise models, and on real
fields of unseen images.

## Use
With awdvd: `awdvd.load_model("this.zip")` gives the model back (state-dict weights), for `awdvd deconvolve`,
`awdvd predict` and the napari plugin. Any bioimage.io consumer can run the TorchScript or state-dict weights{
"" if not _uses_range(payload) else ", given both inputs: the windows and, per window, its image's range (above)"}.

## Licence
BSD-3-Clause (the awdvd project). Training images: BBBC006v1 (Ljosa et al. 2012).
"""


def export_bioimageio(model=None, path="delpnet.zip", *, name: str | None = None, seed: int = 0,
                      overwrite: bool = False) -> Path:
    """Write ``model`` as a bioimage.io model package (a zip, format 0.5).

    Parameters
    ----------
    model : a :class:`~awdvd.learn.model.DefocusModel`, a model file path, or None for the bundled model. DelpNet only.
        Of a range-extended model (the bundled one) the near network is exported, with a warning.
    path : the zip to write.
    name : the package's name (default "awdvd DelpNet defocus levels").
    seed : seed of the procedural test patches.
    overwrite : replace an existing ``path`` (otherwise FileExistsError before anything is computed).

    Returns
    -------
    The path written (atomically: built in a temporary folder, renamed when complete).

    Raises
    ------
    ImportError (with the install command) without bioimageio.spec; ValueError for a model that cannot be
    exported (not DelpNet, or a normalisation the package network does not implement).

    Notes
    -----
    A "window-minmax" model's package has one input, ``raw`` (N, 1, p, p). An "image-range" model's has a second,
    ``range`` (N, 2) float32: each window's image's (low, high), :func:`awdvd.data.patches.image_range` (its test
    tensor: the range of the strip the test patches were cut from); the package's README says how to compute it.
    """
    import torch

    from . import bioimageio_network

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another output or pass overwrite=True (--overwrite)")
    if path.suffix.lower() != ".zip":
        raise ValueError(f"{path.name}: a bioimage.io package is a .zip file")
    try:
        from bioimageio.spec import save_bioimageio_package
        from bioimageio.spec.model import v0_5 as bio
    except ImportError as error:
        raise ImportError("exporting a bioimage.io package needs bioimageio.spec: pip install 'awdvd[bioimageio]'") from error
    model = model if isinstance(model, DefocusModel) or hasattr(model, "range_parts") else load_model(model)
    if hasattr(model, "range_parts"):  # a range-extended model: a package holds one network
        near = model.range_parts[0]
        warnings.warn(f"the package holds the model's near network ({near.optics.n_levels} levels, 0-"
                      f"{near.optics.depths_um[-1]:g} um); its range extension to {model.optics.depths_um[-1]:g} um "
                      "runs in awdvd only", UserWarning, stacklevel=2)
        model = near
    payload = _check_exportable(model)
    wrapper = raw_intensity_network(model)
    patches, true_levels, strip_range = package_test_patches(model, seed=seed, return_range=True)
    ranges = np.tile(strip_range, (len(patches), 1)) if _uses_range(payload) else None  # (n, 2) float32
    with torch.inference_mode():
        network_inputs = [torch.from_numpy(patches[:, None])] + ([] if ranges is None else [torch.from_numpy(ranges)])
        proba = wrapper(*network_inputs).numpy()
    predicted = np.argmax(proba, axis=1)
    accuracy = float(np.mean(model.class_levels[predicted] == true_levels))
    with tempfile.TemporaryDirectory(prefix="awdvd-bioimageio-") as tmp:
        work = Path(tmp)
        np.save(work / "test_input.npy", patches[:, None])
        np.save(work / "test_output.npy", proba.astype(np.float32))

        tifffile.imwrite(work / "sample_input.tif", patches[:, None])
        if ranges is not None:
            np.save(work / "test_range.npy", ranges)
            tifffile.imwrite(work / "sample_range.tif", ranges)
        tifffile.imwrite(work / "sample_output.tif", proba.astype(np.float32))
        torch.save({k: v.detach().cpu().clone() for k, v in wrapper.state_dict().items()}, work / "weights.pt")

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notices are not the user's business
            torch.jit.script(wrapper).save(str(work / "weights_torchscript.pt"))

        shutil.copyfile(bioimageio_network.__file__, work / "raw_intensity_delpnet.py")
        _cover(patches, true_levels, predicted, payload["class_names"], work / "cover.png", model.optics.z_step_um)
        (work / "README.md").write_text(_readme(model, payload, accuracy))
        licence = Path(__file__).resolve().parents[3] / "LICENSE"
        attachments = []
        if licence.is_file():  # a source checkout; an installed wheel carries it in its metadata instead
            shutil.copyfile(licence, work / "LICENSE")
            attachments.append(bio.FileDescr(source=work / "LICENSE"))
        p = int(model.patch_px)
        pixel_um = float(model.optics.pixel_um)
        space = dict(size=p, unit="micrometer", scale=pixel_um)
        normalised_by = "" if ranges is None else " by input `range`"
        inputs = [bio.InputTensorDescr(
            id=bio.TensorId("raw"),
            description=f"raw camera intensities (ADU) of {p} x {p} patches; normalised inside the network{normalised_by}",
            axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier("intensity")]),
                  bio.SpaceInputAxis(id=bio.AxisId("y"), **space), bio.SpaceInputAxis(id=bio.AxisId("x"), **space)],
            test_tensor=bio.FileDescr(source=work / "test_input.npy"),
            sample_tensor=bio.FileDescr(source=work / "sample_input.tif"),
            data=bio.IntervalOrRatioDataDescr(type="float32"),
        )]
        if ranges is not None:
            inputs.append(bio.InputTensorDescr(
                id=bio.TensorId("range"),
                description=_range_description(),
                axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier("low"), bio.Identifier("high")])],
                test_tensor=bio.FileDescr(source=work / "test_range.npy"),
                sample_tensor=bio.FileDescr(source=work / "sample_range.tif"),
                data=bio.IntervalOrRatioDataDescr(type="float32"),
            ))
        channel_names = [bio.Identifier("background" if n == "bg" else f"level_{n}") for n in payload["class_names"]]
        outputs = [bio.OutputTensorDescr(
            id=bio.TensorId("probabilities"),
            description=f"class probabilities: defocus levels 0-{model.optics.n_levels - 1} "
                        f"({model.optics.z_step_um:g} um apart) and background",
            axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=channel_names)],
            test_tensor=bio.FileDescr(source=work / "test_output.npy"),
            sample_tensor=bio.FileDescr(source=work / "sample_output.tif"),
            data=bio.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
        )]
        pytorch_version = bio.Version(torch.__version__.split("+")[0])
        weights = bio.WeightsDescr(
            pytorch_state_dict=bio.PytorchStateDictWeightsDescr(
                source=work / "weights.pt", pytorch_version=pytorch_version,
                architecture=bio.ArchitectureFromFileDescr(source=work / "raw_intensity_delpnet.py",
                                                           callable=bio.Identifier(_network_class_name(payload)),
                                                           kwargs=_architecture_kwargs(payload))),
            torchscript=bio.TorchscriptWeightsDescr(source=work / "weights_torchscript.pt",
                                                    pytorch_version=pytorch_version, parent="pytorch_state_dict"),
        )
        awdvd_config = {k: v for k, v in payload.items() if k != "state_dict"}
        descr = bio.ModelDescr(
            name=name or "awdvd DelpNet defocus levels",
            description=f"Defocus level (0-{model.optics.n_levels - 1}, {model.optics.z_step_um:g} um apart, or "
                        f"background) of {p} x {p} widefield fluorescence patches of nuclei: DelpNet (He et al. 2019) "
                        "as trained by awdvd",
            authors=[bio.Author(name="awdvd contributors")],
            cite=[bio.CiteEntry(text=text, doi=bio.Doi(doi) if doi else None, url=url) for text, doi, url in CITATIONS],
            license=bio.LicenseId("BSD-3-Clause"),
            documentation=bio.FileDescr(source=work / "README.md"),
            covers=[bio.FileDescr(source=work / "cover.png")],
            attachments=attachments,
            tags=["defocus", "focus-quality", "classification", "deconvolution", "fluorescence-light-microscopy",
                  "widefield", "nuclei", "2d", "pytorch", "bbbc006", "awdvd"],
            version=bio.Version(str(__version__)),
            inputs=inputs,
            outputs=outputs,
            weights=weights,
            config=bio.Config(**{"awdvd": awdvd_config}),
        )
        with atomic_path(path, overwrite=overwrite) as target:
            save_bioimageio_package(descr, output_path=target)
    return path


