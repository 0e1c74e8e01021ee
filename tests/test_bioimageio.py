"""bioimage.io packages: the raw-intensity network equals the model, export passes `bioimageio test` offline,
and load_model reads the package back to the same predictions."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from awdvd.model import ModelFileError, bundled_model_path

torch = pytest.importorskip("torch")

needs_bundled = pytest.mark.skipif(not bundled_model_path().is_file(), reason="no bundled model in this installation")


@pytest.fixture(scope="module")
def small_model():
    """A seeded, untrained small DelpNet (randomised BatchNorm statistics so that they matter)."""
    from awdvd.model import DefocusModel, DelpNetConfig, build_delpnet
    from awdvd.optics import Optics

    torch.manual_seed(0)
    network = build_delpnet(DelpNetConfig(widths=(8, 8, 16, 16, 16, 16, 16)))
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return DefocusModel(network, optics=Optics(), class_levels=list(range(11)) + [-1], info={"name": "small"})


def test_normalize_equals_the_models_normalisation():
    from awdvd.bioimageio_network import normalize
    from awdvd.patches import normalize_patches

    rng = np.random.default_rng(0)
    patches = rng.gamma(2.0, 300.0, size=(5, 84, 84)).astype(np.float32) + 100
    patches[2] = 7.0  # a constant patch normalises to 0
    expected = normalize_patches(patches)
    got = normalize(torch.from_numpy(patches)).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert np.all(got[2] == 0)


def test_raw_intensity_network_equals_model(small_model):
    from awdvd.bioimageio import raw_intensity_network

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
    from awdvd.bioimageio import raw_intensity_network
    from awdvd.model import DefocusModel, build_network
    from awdvd.optics import Optics

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
    from awdvd.bioimageio import export_bioimageio

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
    from awdvd.bioimageio import package_test_patches

    loaded = load_model(package)
    assert loaded.class_levels.tolist() == small_model.class_levels.tolist()
    assert loaded.optics == small_model.optics and loaded.info["name"] == "small"
    patches, _ = package_test_patches(small_model)
    levels_a, proba_a = small_model.predict_patches(patches, return_proba=True)
    levels_b, proba_b = loaded.predict_patches(patches, return_proba=True)
    np.testing.assert_array_equal(levels_a, levels_b)
    np.testing.assert_allclose(proba_b, proba_a, rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")  # inside bioimageio.core
def test_package_passes_bioimageio_test(package):
    pytest.importorskip("bioimageio.core", reason="bioimageio.core not installed (pip install 'awdvd[bioimageio]')")
    from bioimageio.core import test_model

    summary = test_model(str(package))
    failed = [d.name for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed


@needs_bundled
def test_export_bundled_model_with_cli(tmp_path):
    pytest.importorskip("bioimageio.spec", reason="bioimageio.spec not installed (pip install 'awdvd[bioimageio]')")
    from awdvd import load_model
    from awdvd.cli import main

    out = tmp_path / "delpnet.zip"
    assert main(["export-bioimageio", "-o", str(out)]) == 0
    assert main(["export-bioimageio", "-o", str(out)]) == 1  # exists: refused, not overwritten
    original, loaded = load_model(), load_model(out)
    rng = np.random.default_rng(2)
    patches = rng.gamma(2.0, 300.0, size=(8, 84, 84)).astype(np.float32) + 100
    np.testing.assert_array_equal(loaded.predict_patches(patches), original.predict_patches(patches))
