"""Networks (shapes, parameter counts, costs), fast inference equal to the trained module, and the model file."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from awdvd.learn.comparison_networks import ComparisonNetConfig
from awdvd.learn.model import (
    ARCHITECTURES,
    PAPER_PARAMETERS,
    DefocusModel,
    DelpNetConfig,
    ModelFileError,
    build_delpnet,
    build_network,
    count_parameters,
    fold_batchnorm,
    network_cost,
    optimize_for_inference,
)
from awdvd.learn.model_files import load_model
from awdvd.physics.optics import Optics

TINY = DelpNetConfig(widths=(4, 8, 8, 8, 8, 8, 16), pool_after=3, dropout=0.1, head_dropout=0.5, n_classes=4)


@pytest.fixture(scope="module")
def optics3():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Optics(n_levels=3)


def _randomise_batchnorm(network, seed=0):
    """Non-trivial BatchNorm statistics and affine parameters, so that folding has something to fold."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    return network


def _tiny_model(optics, seed=0, **kwargs):
    torch.manual_seed(seed)
    network = _randomise_batchnorm(build_delpnet(TINY), seed)
    return DefocusModel(network, optics=optics, class_levels=[0, 1, 2, -1], patch_px=32, **kwargs)


# --------------------------------------------------------------------------------------------- networks
def test_delpnet_shapes_and_parameter_count():
    network = build_delpnet().eval()
    assert count_parameters(network) == 2_313_196  # 7 conv 3 x 3 (no bias) + BN + dense 512 -> 12
    assert abs(count_parameters(network) / PAPER_PARAMETERS["delpnet"] - 1) < 0.01
    x = torch.rand(2, 1, 84, 84)
    with torch.no_grad():
        features = network.features(x)
        assert features.shape == (2, 512, 10, 10)  # three 2 x 2 poolings: trunk stride 8
        pooled = features.amax(dim=(2, 3))
        np.testing.assert_array_equal(network.classify(pooled).numpy(), network(x).numpy())
    assert network(x).shape == (2, 12)


@pytest.mark.parametrize("name, expected", [("vgg16", 39_936_716), ("inception_v3", 21_809_580),
                                            ("resnet18", 11_176_396), ("mobilenet_v2", 2_238_668)])
def test_comparison_parameter_counts(name, expected):
    with torch.device("meta"):  # no memory, no compute
        network = build_network(name)
        assert network(torch.zeros(2, 1, 84, 84)).shape == (2, 12)
    assert count_parameters(network) == expected
    # the paper's Keras counts (BN moving statistics included); its ResNet18 implementation is unspecified
    tolerance = 0.15 if name == "resnet18" else 0.03
    assert abs(expected / PAPER_PARAMETERS[name] - 1) < tolerance


# Inception v3 runs only on the meta device above: oneDNN's first call on its 94 conv shapes costs seconds,
# and its conv-BN blocks are the same `_conv_bn` Sequential as ResNet18's and MobileNet v2's.
@pytest.mark.parametrize("name, batch_norm", [("vgg16", False), ("vgg16", True), ("resnet18", False),
                                              ("mobilenet_v2", False)])
def test_comparison_networks_run_and_fold(name, batch_norm):
    torch.manual_seed(0)
    config = ComparisonNetConfig(width_mult=0.125, n_classes=5, batch_norm=batch_norm)
    network = _randomise_batchnorm(build_network(name, config).eval())
    if name == "vgg16":  # 13 convs, each with BatchNorm or none
        assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in network.modules()) == (13 if batch_norm else 0)
    x = torch.rand(2, 1, 84, 84)
    with torch.no_grad():
        reference = network(x)
        folded = fold_batchnorm(network)(x)
    assert reference.shape == (2, 5)
    np.testing.assert_allclose(folded.numpy(), reference.numpy(), rtol=1e-4, atol=1e-5)


def test_network_cost_by_hand():
    network = build_delpnet(DelpNetConfig(widths=(2, 3), pool_after=1, n_classes=2, dropout=0.0))
    cost = network_cost(network, input_px=8)
    # conv1 1 -> 2 at 8 x 8: 64 * 2 * 9; pool to 4 x 4; conv2 2 -> 3: 16 * 3 * 2 * 9; dense 3 -> 2
    assert cost["macs"] == 64 * 2 * 9 + 16 * 3 * 2 * 9 + 3 * 2
    assert cost["flops"] == 2 * cost["macs"]
    assert cost["parameters"] == 2 * 9 + 3 * 2 * 9 + 2 * (2 + 3) + 3 * 2 + 2
    assert network_cost(build_delpnet())["macs"] == pytest.approx(288.3e6, rel=1e-3)


def test_config_validation():
    with pytest.raises(ValueError, match="pool_after"):
        DelpNetConfig(widths=(8, 8), pool_after=3)
    with pytest.raises(ValueError, match="bn_momentum"):
        DelpNetConfig(bn_momentum=0.0)
    with pytest.raises(ValueError, match="width_mult"):
        ComparisonNetConfig(width_mult=0)
    with pytest.raises(TypeError, match="batch_norm"):
        ComparisonNetConfig(batch_norm=1)
    with pytest.raises(ValueError, match="VGG16 only"):
        build_network("resnet18", {"batch_norm": True})
    with pytest.raises(ValueError, match="unknown architecture"):
        build_network("alexnet")
    with pytest.raises(ValueError, match="unknown DelpNet argument"):
        build_network("delpnet", {"depth": 3})


# --------------------------------------------------------------------------------------------- inference
@pytest.mark.parametrize("backend", ["eager", "jit"])
def test_optimized_inference_equals_eval_module(backend):
    torch.manual_seed(1)
    network = _randomise_batchnorm(build_delpnet(TINY)).eval()
    fast, used = optimize_for_inference(network, backend=backend)
    assert used == backend
    x = torch.rand(5, 1, 32, 32)
    with torch.inference_mode():
        np.testing.assert_allclose(fast(x).numpy(), network(x).numpy(), rtol=1e-4, atol=1e-5)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in network.modules())  # the original is untouched
    folded = fold_batchnorm(network)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout)) for m in folded.modules())
    with torch.inference_mode():  # features / classify survive folding (dense defocus maps use them)
        np.testing.assert_allclose(folded.features(x).numpy(), network.features(x).numpy(), rtol=1e-4, atol=1e-5)


def test_predict_patches_fast_equals_plain(optics3):
    fast = _tiny_model(optics3)
    plain = DefocusModel(fast.network, optics=optics3, class_levels=[0, 1, 2, -1], patch_px=32, inference_backend=None)
    raw = np.random.default_rng(0).poisson(300, size=(7, 32, 32)).astype(np.uint16)
    levels_fast, proba_fast = fast.predict_patches(raw, return_proba=True, batch_size=3)
    levels_plain, proba_plain = plain.predict_patches(raw, return_proba=True)
    np.testing.assert_allclose(proba_fast, proba_plain, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(levels_fast, levels_plain)
    np.testing.assert_allclose(proba_fast.sum(axis=1), 1.0, atol=1e-5)
    assert set(levels_fast.tolist()) <= {0, 1, 2, -1}
    assert fast.predict_patches(raw[0]).shape == (1,)
    with pytest.raises(ValueError, match=r"\(N, 32, 32\)"):
        fast.predict_patches(np.zeros((2, 16, 16)))
    with pytest.raises(ValueError, match="NaN"):
        fast.predict_patches(np.full((1, 32, 32), np.nan))


def test_inference_copy_follows_weight_changes(optics3):
    model = _tiny_model(optics3, seed=0)
    other = _tiny_model(optics3, seed=5)
    x = np.random.default_rng(1).random((4, 32, 32)).astype(np.float32)
    before = model.predict_logits_normalized(x)
    model.network.load_state_dict(other.network.state_dict())
    np.testing.assert_allclose(model.predict_logits_normalized(x), other.predict_logits_normalized(x), rtol=1e-5, atol=1e-6)
    assert not np.allclose(before, model.predict_logits_normalized(x))


def test_class_levels_checked(optics3):
    network = build_delpnet(TINY)
    with pytest.raises(ValueError, match="4 outputs"):
        DefocusModel(network, optics=optics3, class_levels=[0, 1, 2])
    with pytest.raises(ValueError, match="distinct levels"):
        DefocusModel(network, optics=optics3, class_levels=[0, 1, 5, -1])


# --------------------------------------------------------------------------------------------- model file
def test_save_load_identical_outputs(optics3, tmp_path):
    model = _tiny_model(optics3)
    model.info = {"recipe": {"name": "fast"}, "data": {"path": "/x"}, "test_metrics": {"accuracy": 0.5}}
    path = model.save(tmp_path / "m.pt")
    with pytest.raises(FileExistsError, match="--overwrite"):
        model.save(path)
    payload = torch.load(path, weights_only=True)  # tensors and plain types only
    for key in ("format_version", "architecture", "architecture_args", "state_dict", "optics", "level_depths_um",
                "class_levels", "class_names", "normalization", "patch_px", "n_parameters", "info"):
        assert key in payload
    assert payload["class_names"] == ["0", "1", "2", "bg"] and payload["level_depths_um"] == [0.0, 2.0, 4.0]
    loaded = load_model(path)
    assert loaded.info == model.info and loaded.architecture == "delpnet" and loaded.config == TINY
    x = np.random.default_rng(2).random((6, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_logits_normalized(x), model.predict_logits_normalized(x))
    for key, value in model.network.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[key], value)


def test_comparison_model_round_trip(optics3, tmp_path):
    torch.manual_seed(0)
    network = build_network("mobilenet_v2", ComparisonNetConfig(width_mult=0.25, n_classes=3, input_px=32)).eval()
    model = DefocusModel(network, optics=optics3, class_levels=[0, 1, 2], patch_px=32, inference_backend="eager")
    loaded = load_model(model.save(tmp_path / "mobile.pt"), inference_backend="eager")
    assert loaded.architecture == "mobilenet_v2" and not loaded.has_background_class
    x = np.random.default_rng(3).random((3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_logits_normalized(x), model.predict_logits_normalized(x))


def test_info_must_be_plain(optics3, tmp_path):
    model = _tiny_model(optics3)
    model.info = {"bad": object()}
    with pytest.raises(ValueError, match="JSON types"):
        model.save(tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def _payload(optics3):
    return _tiny_model(optics3).to_file_dict()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.update(format="something-else"), "not an awdvd model"),
        (lambda p: p.update(format_version=99), "model format 99"),
        (lambda p: p.update(architecture="alexnet"), "unknown network 'alexnet'"),
        (lambda p: p.pop("state_dict"), "missing state_dict"),
        (lambda p: p["state_dict"].pop("head.1.weight"), "damaged or inconsistent"),
        (lambda p: p.update(class_levels=[0, 1]), "damaged or inconsistent"),
        (lambda p: p["architecture_args"].update(widths=[4, 4]), "damaged or inconsistent"),
    ],
)
def test_bad_model_files(optics3, tmp_path, damage, message):
    payload = _payload(optics3)
    damage(payload)
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match=message):
        load_model(tmp_path / "bad.pt")


def test_unreadable_model_files(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"\x00\x01 not a torch file at all")
    with pytest.raises(ModelFileError, match="could not be read"):
        load_model(tmp_path / "garbage.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(ModelFileError, match="not an awdvd model"):
        load_model(tmp_path / "tensor.pt")
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load_model(tmp_path / "missing.pt")


def test_version_1_files_still_load(optics3, tmp_path):
    payload = _payload(optics3)
    payload["format_version"] = 1
    payload["config"] = payload.pop("architecture_args")
    torch.save(payload, tmp_path / "v1.pt")
    assert load_model(tmp_path / "v1.pt").config == TINY


def test_import_awdvd_stays_light():
    code = ("import sys, awdvd, awdvd.learn.model, awdvd.learn.networks, awdvd.learn.train, awdvd.metrics, awdvd.cli; awdvd.cli.build_parser(); "
            "sys.exit(int(any(m in sys.modules for m in ('torch', 'matplotlib'))))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_architecture_registry_is_complete():
    assert set(ARCHITECTURES) == set(PAPER_PARAMETERS)


def test_model_pickles_as_its_file_contents():
    """Dask ships models to workers by pickling: the result must predict exactly as the original."""
    import pickle

    import numpy as np
    import torch

    from awdvd import Optics
    from awdvd.learn.model import DefocusModel, DelpNetConfig, build_delpnet

    torch.manual_seed(0)
    model = DefocusModel(build_delpnet(DelpNetConfig(widths=(4, 4, 8, 8, 8, 8, 8))), optics=Optics(),
                         class_levels=list(range(11)) + [-1])
    patches = np.random.default_rng(0).uniform(100, 900, (5, 84, 84))
    before = model.predict_patches(patches, return_proba=True)[1]  # builds the (unpicklable) inference copy
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict_patches(patches, return_proba=True)[1], before)
