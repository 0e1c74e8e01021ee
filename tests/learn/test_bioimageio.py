"""bioimage.io packages: the raw-intensity network equals the model, export passes `bioimageio test` offline,
and load_model reads the package back to the same predictions."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from awdvd.learn.model import ModelFileError
from awdvd.learn.model_files import bundled_model_path

torch = pytest.importorskip("torch")

needs_bundled = pytest.mark.skipif(not bundled_model_path().is_file(), reason="no bundled model in this installation")


def _small_model(normalization: str, seed: int, *, sensitive: bool = False):
    """A seeded, untrained small DelpNet (randomised BatchNorm statistics so that they matter; ``sensitive``:
    also randomised BatchNorm scales and shifts and a 10x head, so that its probabilities move by about 1e-2
    with the input's normalisation, 1000 times the tolerances below; without, by about 1e-5)."""
    from awdvd.learn.model import DefocusModel, DelpNetConfig, build_delpnet
    from awdvd.physics.optics import Optics

    torch.manual_seed(seed)
    network = build_delpnet(DelpNetConfig(widths=(8, 8, 16, 16, 16, 16, 16)))
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            if sensitive:
                module.weight.data.uniform_(0.5, 3.0)
                module.bias.data.uniform_(-1.0, 0.5)
    if sensitive:
        network.head[-1].weight.data.mul_(10.0)
    return DefocusModel(network, optics=Optics(), class_levels=list(range(11)) + [-1], info={"name": "small"},
                        normalization=normalization)


@pytest.fixture(scope="module")
def small_model():
    return _small_model("window-minmax", seed=0)


@pytest.fixture(scope="module")
def range_model():
    """An "image-range" model: its package takes each window's image range as a second input."""
    return _small_model("image-range", seed=3, sensitive=True)


def test_normalize_equals_the_models_normalisation():
    from awdvd.data.patches import normalize_patches
    from awdvd.learn.bioimageio_network import normalize

    rng = np.random.default_rng(0)
    patches = rng.gamma(2.0, 300.0, size=(5, 84, 84)).astype(np.float32) + 100
    patches[2] = 7.0  # a constant patch normalises to 0
    expected = normalize_patches(patches)
    got = normalize(torch.from_numpy(patches)).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert np.all(got[2] == 0)


def test_normalize_by_range_equals_the_models_normalisation():
    from awdvd.data.patches import image_range, normalize_windows
    from awdvd.learn.bioimageio_network import normalize_by_range

    rng = np.random.default_rng(4)
    windows = rng.gamma(2.0, 300.0, size=(5, 84, 84)).astype(np.float32) + 100
    windows[3] = 7.0  # a constant window inside a non-constant range: (7 - low) / span, not 0
    image = rng.gamma(2.0, 300.0, size=(300, 400)) + 100
    ranges = np.array([image_range(image), (800.0, 1200.0), (250.0, 250.0), (100.0, 2000.0), (900.0, 100.0)],
                      np.float32)  # [1]: pixels on both sides, not clipped; [2] constant image, [4] high < low: 0
    expected = normalize_windows(windows, "image-range", value_range=ranges)
    got = normalize_by_range(torch.from_numpy(windows), torch.from_numpy(ranges)).numpy()
    np.testing.assert_array_equal(got, expected)  # the same float32 operations: bit for bit
    assert got[1].min() < 0 and got[1].max() > 1 and np.all(got[2] == 0) and np.all(got[4] == 0)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        normalize_by_range(torch.from_numpy(windows), torch.from_numpy(ranges[:3]))


def test_image_range_network_equals_model(range_model):
    from awdvd.learn.bioimageio import raw_intensity_network
    from awdvd.learn.bioimageio_network import ImageRangeDelpNet

    wrapper = raw_intensity_network(range_model)
    assert isinstance(wrapper, ImageRangeDelpNet) and wrapper.background_class == 11
    rng = np.random.default_rng(5)
    windows = rng.gamma(2.0, 300.0, size=(6, 84, 84)).astype(np.float32) + 100
    windows[2] = 400.0  # exactly constant: certain background in awdvd, and in the package
    ranges = np.array([[120.0, 2500.0]] * 3 + [[90.0, 4000.0]] * 3, np.float32)  # two images
    _, expected = range_model.predict_patches(windows, return_proba=True, value_range=ranges)
    with torch.inference_mode():
        got = wrapper(torch.from_numpy(windows[:, None]), torch.from_numpy(ranges)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert got[2].tolist() == [0.0] * 11 + [1.0]
    # the range matters: the same windows read under another image's range give other probabilities
    with torch.inference_mode():
        other = wrapper(torch.from_numpy(windows[:, None]), torch.from_numpy(ranges[::-1].copy())).numpy()
    assert np.abs(other[[0, 1, 3, 4, 5]] - got[[0, 1, 3, 4, 5]]).max() > 1e-3  # 100 times the tolerance


def test_export_refuses_unimplemented_normalisations(small_model):
    import copy

    from awdvd.learn.bioimageio import raw_intensity_network

    model = copy.copy(small_model)
    model.normalization = "global-zscore"  # a normalisation bioimageio_network does not implement
    with pytest.raises(ValueError, match="not implemented in awdvd.learn.bioimageio_network"):
        raw_intensity_network(model)


def test_raw_intensity_network_equals_model(small_model):
    from awdvd.learn.bioimageio import raw_intensity_network

    wrapper = raw_intensity_network(small_model)
    # the architecture file's DelpNet has awdvd's module names: the state dict loads strictly both ways
    wrapper.network.load_state_dict(small_model.network.state_dict(), strict=True)
    rng = np.random.default_rng(1)
    patches = rng.gamma(2.0, 300.0, size=(6, 84, 84)).astype(np.float32)
    _, expected = small_model.predict_patches(patches, return_proba=True)
    with torch.inference_mode():
        got = wrapper(torch.from_numpy(patches[:, None])).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_export_refuses_other_networks(tmp_path):
    from awdvd.learn.bioimageio import raw_intensity_network
    from awdvd.learn.model import DefocusModel, build_network
    from awdvd.physics.optics import Optics

    network = build_network("resnet18", {"width_mult": 0.125})
    model = DefocusModel(network, optics=Optics(), class_levels=list(range(11)) + [-1])
    with pytest.raises(ValueError, match="only DelpNet"):
        raw_intensity_network(model)


def test_load_model_rejects_foreign_zips(tmp_path):
    from awdvd import load_model

    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(ModelFileError, match="not a bioimage.io package"):
        load_model(plain)
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("rdf.yaml", "type: model\nformat_version: 0.5.4\nweights: {}\n")
    with pytest.raises(ModelFileError, match="not one exported by awdvd"):
        load_model(foreign)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK not a zip")
    with pytest.raises(ModelFileError):
        load_model(broken)


@pytest.fixture(scope="module")
def package(tmp_path_factory, small_model):
    pytest.importorskip("bioimageio.spec", reason="bioimageio.spec not installed (pip install 'awdvd[bioimageio]')")
    from awdvd.learn.bioimageio import export_bioimageio

    path = tmp_path_factory.mktemp("bioimageio") / "delpnet.zip"
    return export_bioimageio(small_model, path)


def test_package_contents(package):
    import yaml

    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
    assert {"rdf.yaml", "weights.pt", "weights_torchscript.pt", "raw_intensity_delpnet.py", "test_input.npy",
            "test_output.npy", "cover.png", "README.md"} <= names
    assert rdf["format_version"].startswith("0.5")
    assert set(rdf["weights"]) == {"pytorch_state_dict", "torchscript"}
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["callable"] == "RawIntensityDelpNet"
    y_axis = rdf["inputs"][0]["axes"][2]
    assert y_axis["unit"] == "micrometer" and y_axis["scale"] == pytest.approx(0.65) and y_axis["size"] == 84
    assert rdf["outputs"][0]["axes"][1]["channel_names"][-1] == "background"
    assert {c.get("doi") for c in rdf["cite"]} >= {"10.1038/nmeth.2083", "10.1186/s12859-018-2087-4"}
    assert rdf["license"] == "BSD-3-Clause"
    assert rdf["config"]["awdvd"]["architecture"] == "delpnet"


def test_package_round_trip_predicts_the_same(package, small_model):
    from awdvd import load_model
    from awdvd.learn.bioimageio import package_test_patches

    loaded = load_model(package)
    assert loaded.class_levels.tolist() == small_model.class_levels.tolist()
    assert loaded.optics == small_model.optics and loaded.info["name"] == "small"
    patches, _ = package_test_patches(small_model)
    levels_a, proba_a = small_model.predict_patches(patches, return_proba=True)
    levels_b, proba_b = loaded.predict_patches(patches, return_proba=True)
    np.testing.assert_array_equal(levels_a, levels_b)
    np.testing.assert_allclose(proba_b, proba_a, rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")  # inside bioimageio.core
@pytest.mark.parametrize("fixture", ["package", "range_package"])
def test_package_passes_bioimageio_test(fixture, request):
    """The patch-normalised and the image-range packages both pass bioimage.io's own test."""
    pytest.importorskip("bioimageio.core", reason="bioimageio.core not installed (pip install 'awdvd[bioimageio]')")
    from bioimageio.core import test_model

    summary = test_model(str(request.getfixturevalue(fixture)))
    failed = [d.name for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed


@pytest.fixture(scope="module")
def range_package(tmp_path_factory, range_model):
    pytest.importorskip("bioimageio.spec", reason="bioimageio.spec not installed (pip install 'awdvd[bioimageio]')")
    from awdvd.learn.bioimageio import export_bioimageio

    path = tmp_path_factory.mktemp("bioimageio-range") / "delpnet-range.zip"
    return export_bioimageio(range_model, path)


def test_range_package_declares_the_range_input(range_package, package):
    import yaml

    with zipfile.ZipFile(range_package) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        readme = archive.read("README.md").decode()
    with zipfile.ZipFile(package) as archive:
        single = yaml.safe_load(archive.read("rdf.yaml"))
    assert [t["id"] for t in rdf["inputs"]] == ["raw", "range"]
    assert [t["id"] for t in single["inputs"]] == ["raw"]  # window-minmax packages keep one input
    assert single["weights"]["pytorch_state_dict"]["architecture"]["callable"] == "RawIntensityDelpNet"
    architecture = rdf["weights"]["pytorch_state_dict"]["architecture"]
    assert architecture["callable"] == "ImageRangeDelpNet"
    assert architecture["kwargs"]["normalization"] == "image-range" and architecture["kwargs"]["background_class"] == 11
    range_input = rdf["inputs"][1]
    assert [a["type"] for a in range_input["axes"]] == ["batch", "channel"]
    assert range_input["axes"][1]["channel_names"] == ["low", "high"]
    assert "image_range" in range_input["description"] and "WHOLE image" in range_input["description"]
    assert "input `range`" in readme and "1 and 99.9 percentiles" in readme and "sigma 1.5 px" in readme
    assert rdf["config"]["awdvd"]["normalization"] == "image-range"


def test_range_package_outputs_equal_predict_patches(range_package, range_model):
    """The package's test outputs, and its state-dict and TorchScript weights run on its test inputs, equal
    awdvd's predict_patches with the strip's image range (atol 1e-5: awdvd runs a BatchNorm-folded copy)."""
    import io
    import warnings

    import yaml

    from awdvd.learn.bioimageio import package_test_patches
    from awdvd.learn.bioimageio_network import ImageRangeDelpNet

    with zipfile.ZipFile(range_package) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        test_raw = np.load(io.BytesIO(archive.read("test_input.npy")))
        test_range = np.load(io.BytesIO(archive.read("test_range.npy")))
        test_output = np.load(io.BytesIO(archive.read("test_output.npy")))
        state = torch.load(io.BytesIO(archive.read("weights.pt")), map_location="cpu", weights_only=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load's deprecation notice
            scripted = torch.jit.load(io.BytesIO(archive.read("weights_torchscript.pt")), map_location="cpu")
    patches, _, strip_range = package_test_patches(range_model, return_range=True)
    assert test_raw.shape == (11, 1, 84, 84) and test_range.shape == (11, 2) and test_range.dtype == np.float32
    np.testing.assert_array_equal(test_raw[:, 0], patches)
    np.testing.assert_array_equal(test_range, np.tile(strip_range, (11, 1)))
    _, expected = range_model.predict_patches(patches, return_proba=True, value_range=tuple(strip_range))
    np.testing.assert_allclose(test_output, expected, rtol=0, atol=1e-5)
    network = ImageRangeDelpNet(**rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"])  # as consumers do
    network.load_state_dict(state, strict=True)
    inputs = (torch.from_numpy(test_raw), torch.from_numpy(test_range))
    with torch.inference_mode():
        np.testing.assert_allclose(network.eval()(*inputs).numpy(), expected, rtol=0, atol=1e-5)
        np.testing.assert_allclose(scripted(*inputs).numpy(), expected, rtol=0, atol=1e-5)


def test_range_package_round_trip(range_package, range_model):
    from awdvd import load_model

    loaded = load_model(range_package)
    assert loaded.normalization == "image-range"
    rng = np.random.default_rng(6)
    windows = rng.gamma(2.0, 300.0, size=(4, 84, 84)).astype(np.float32) + 100
    _, proba_a = range_model.predict_patches(windows, return_proba=True, value_range=(100.0, 3000.0))
    _, proba_b = loaded.predict_patches(windows, return_proba=True, value_range=(100.0, 3000.0))
    np.testing.assert_allclose(proba_b, proba_a, rtol=0, atol=1e-6)


@needs_bundled
def test_export_bundled_model_with_cli(tmp_path):
    pytest.importorskip("bioimageio.spec", reason="bioimageio.spec not installed (pip install 'awdvd[bioimageio]')")
    from awdvd import load_model
    from awdvd.cli import main

    out = tmp_path / "delpnet.zip"
    with pytest.warns(UserWarning, match="near network .* runs in awdvd only"):
        assert main(["export-bioimageio", "-o", str(out)]) == 0
    assert main(["export-bioimageio", "-o", str(out)]) == 1  # exists: refused, not overwritten
    original, loaded = load_model().range_parts[0], load_model(out)  # the package holds the near network
    rng = np.random.default_rng(2)
    patches = rng.gamma(2.0, 300.0, size=(8, 84, 84)).astype(np.float32) + 100
    np.testing.assert_array_equal(loaded.predict_patches(patches), original.predict_patches(patches))
