"""The napari plugin's plain functions (no viewer, no Qt): manifest, reader, writer, sample data, layer tuples,
and the one pipeline function with its options. The widgets in a real viewer: tests/napari/test_napari_viewer.py."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from _standins import ome_xml, write_czi

from awdvd.batch.file_optics import OpticsAssumedWarning
from awdvd.io import read_image, write_ome_tiff, write_ome_zarr, write_tiff
from awdvd.napari.layers import (
    depth_layer,
    depth_spread_layer,
    is_map_layer,
    level_colours,
    level_depths_um,
    level_legend,
    levels_layer,
    pixel_confidence,
    restored_layer,
)
from awdvd.napari.pipeline import ImageOptics, WidgetOptions, layer_optics
from awdvd.napari.reader import get_reader, read_layers
from awdvd.napari.writer import layer_pixel_um, write_image
from awdvd.physics.optics import Optics
from awdvd.restore.windows import DefocusMap

DEPTHS = tuple(2.0 * level for level in range(11))


def test_manifest_validates_and_names_the_contributions():
    npe2 = pytest.importorskip("npe2", reason="npe2 not installed (pip install 'awdvd[napari]')")
    import awdvd.napari

    manifest = npe2.PluginManifest.from_file(Path(awdvd.napari.__file__).with_name("napari.yaml"))
    assert manifest.name == "awdvd"
    assert {w.display_name for w in manifest.contributions.widgets} == {"Defocus map", "Restore (AWDVD)"}
    assert manifest.contributions.readers[0].accepts_directories
    assert manifest.contributions.sample_data[0].key == "tilted_specimen"
    for command in manifest.contributions.commands:  # every python_name points at something importable
        module, name = command.python_name.split(":")
        assert hasattr(__import__(module, fromlist=[name]), name), command.python_name


def test_manifest_is_declared_by_the_package():
    """napari finds the plugin through the package's napari.manifest entry point (what `npe2 validate awdvd` reads)."""
    npe2 = pytest.importorskip("npe2", reason="npe2 not installed (pip install 'awdvd[napari]')")

    manifest = npe2.PluginManifest.from_distribution("awdvd")
    assert manifest.name == "awdvd" and len(manifest.contributions.commands) == 5


def test_import_awdvd_napari_is_light():
    import subprocess
    import sys

    code = ("import sys, awdvd, awdvd.napari, awdvd.napari.reader, awdvd.napari.layers; "
            "print(sorted(m for m in ('napari', 'torch', 'magicgui', 'qtpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture
def pixels():
    return (np.arange(96 * 128, dtype=np.uint16).reshape(96, 128) % 4000) + 100


@pytest.mark.parametrize("kind", ["tiff", "ome-tiff", "ome-zarr"])
def test_reader_sets_scale_from_pixel_size(tmp_path, pixels, kind):
    path = {"tiff": lambda: write_tiff(tmp_path / "a.tif", pixels, pixel_um=0.65),
            "ome-tiff": lambda: write_ome_tiff(tmp_path / "a.ome.tif", pixels, pixel_um=0.65),
            "ome-zarr": lambda: write_ome_zarr(tmp_path / "a.ome.zarr", pixels, pixel_um=0.65)}[kind]()
    reader = get_reader(str(path))
    assert reader is read_layers
    [(data, kwargs, layer_type)] = reader(str(path))
    assert layer_type == "image" and kwargs["name"] == "a"
    assert np.asarray(data).dtype == np.uint16  # as stored: never rescaled
    np.testing.assert_array_equal(np.asarray(data), pixels)
    assert kwargs["scale"] == pytest.approx((0.65, 0.65), rel=1e-6)
    assert kwargs["metadata"]["pixel_um"] == pytest.approx(0.65, rel=1e-6)
    # what the widgets' optics fields show for this layer: the pixel size, nothing else recorded
    recorded = layer_optics(kwargs["metadata"], kwargs["scale"])
    assert recorded.pop("pixel_um") == pytest.approx(0.65, rel=1e-6)
    assert recorded == {"na": None, "n": None, "wavelength_um": None}




def test_reader_puts_the_files_optics_in_the_layer(tmp_path, pixels):
    """An OME-TIFF that records its objective and emission: the layer carries them to the widgets' fields."""
    import tifffile

    path = tmp_path / "field.ome.tif"
    description = ome_xml(shape=(96, 128), pixel_um=0.325, na=0.75, emission_nm=520)
    tifffile.imwrite(path, pixels, description=description, metadata=None)
    [(_, kwargs, _)] = read_layers(str(path))
    assert kwargs["scale"] == pytest.approx((0.325, 0.325))
    assert layer_optics(kwargs["metadata"], kwargs["scale"]) == pytest.approx(
        {"pixel_um": 0.325, "na": 0.75, "n": 1.0, "wavelength_um": 0.52})


def test_a_multi_channel_file_opens_as_a_layer_per_channel(make_napari_viewer, tmp_path, pixels):
    """Issue 26 item 6: names, colours near each emission, each channel's own wavelength for the widgets."""
    import tifffile

    path = tmp_path / "two.ome.tif"
    data = np.stack([pixels, pixels[::-1]])
    xml = ome_xml(shape=(96, 128), pixel_um=0.325, na=0.75, emission_nm=None,
                  channels=[("Hoechst", 461), ("mCherry", 610)])
    tifffile.imwrite(path, data, description=xml, metadata=None)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="awdvd")
    assert [layer.name for layer in layers] == ["two [Hoechst]", "two [mCherry]"]
    assert [layer.colormap.name for layer in layers] == ["blue", "magenta"]
    np.testing.assert_array_equal(np.asarray(layers[1].data), pixels[::-1])
    assert layers[0].scale == pytest.approx((0.325, 0.325))
    assert layer_optics(layers[1].metadata, layers[1].scale) == pytest.approx(
        {"pixel_um": 0.325, "na": 0.75, "n": 1.0, "wavelength_um": 0.61})
    assert layers[0].metadata["optics"]["wavelength_um"] == pytest.approx(0.461)


def test_a_czi_opens_in_a_real_viewer_as_a_layer_per_channel(make_napari_viewer, tmp_path, pixels):
    """Issue 26 item 1: a vendor's file (Zeiss CZI, read through bioio) opens like an OME-TIFF."""
    pytest.importorskip("bioio_czi", reason="the CZI reader (bioio-czi, awdvd[formats]) is not installed")
    path = write_czi(tmp_path / "two.czi", np.stack([pixels, pixels[::-1]])[None, :, None], names=["DAPI", "GFP"],
                     emission_nm=[461, 520], na=0.75, n=1.0, pixel_um=0.1625)
    assert get_reader(str(path)) is read_layers
    layers = make_napari_viewer().open(str(path), plugin="awdvd")
    assert [layer.name for layer in layers] == ["two [DAPI]", "two [GFP]"]
    np.testing.assert_array_equal(np.asarray(layers[1].data), pixels[::-1])
    assert layer_optics(layers[1].metadata, layers[1].scale) == pytest.approx(
        {"pixel_um": 0.1625, "na": 0.75, "n": 1.0, "wavelength_um": 0.52})


def test_a_czi_of_several_scenes_opens_as_layers_per_scene(make_napari_viewer, tmp_path, pixels):
    """Each scene (position, well) of a vendor file: its own layers, named after it, with its optics."""
    pytest.importorskip("bioio_czi", reason="the CZI reader (bioio-czi, awdvd[formats]) is not installed")
    scenes = np.stack([np.stack([pixels, pixels[::-1]]), np.stack([pixels[:, ::-1], pixels])])[:, None, :, None]
    path = write_czi(tmp_path / "plate.czi", scenes, names=["DAPI", "GFP"], emission_nm=[461, 520], na=0.75, n=1.0,
                     pixel_um=0.1625, scenes=["A1", "B2"])
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="awdvd")
    assert [layer.name for layer in layers] == ["plate [A1] DAPI", "plate [A1] GFP", "plate [B2] DAPI",
                                                "plate [B2] GFP"]
    np.testing.assert_array_equal(np.asarray(layers[2].data), pixels[:, ::-1])
    assert layers[3].metadata["scene"] == "B2" and tuple(layers[3].scale) == pytest.approx((0.1625, 0.1625))
    assert layer_optics(layers[3].metadata, layers[3].scale) == pytest.approx(
        {"pixel_um": 0.1625, "na": 0.75, "n": 1.0, "wavelength_um": 0.52})
    from awdvd.napari.widgets import RestoreWidget

    # restoring A1's DAPI with all channels takes A1's GFP along, never another scene's channels
    assert RestoreWidget(viewer)._channel_siblings(layers[0]) == [layers[1]]


def test_reader_without_pixel_size_and_declines_other_files(tmp_path, pixels):
    import tifffile

    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, pixels)
    [(_, kwargs, _)] = read_layers(str(path))
    assert kwargs["scale"] == (1.0, 1.0) and kwargs["metadata"]["pixel_um"] is None
    assert get_reader(str(tmp_path / "x.png")) is None
    assert get_reader(str(tmp_path)) is None  # a folder that is not *.zarr
    assert get_reader([str(path), str(path)]) is None


@pytest.mark.parametrize("name", ["out.tif", "out.ome.tif", "out.ome.zarr"])
def test_writer_float32_with_pixel_size(tmp_path, name):
    data = np.linspace(-5.0, 70000.5, 64 * 80).reshape(64, 80)  # beyond uint16 both ways: kept as is
    [written] = write_image(str(tmp_path / name), data, {"scale": (0.65, 0.65), "metadata": {}})
    back = read_image(written)
    assert back.data.dtype == np.float32
    np.testing.assert_allclose(np.asarray(back.data), data.astype(np.float32), rtol=0, atol=0)
    assert back.pixel_um == pytest.approx(0.65, rel=1e-6)


def test_layer_pixel_um():
    assert layer_pixel_um({"metadata": {"pixel_um": 0.5}, "scale": (1.0, 1.0)}) == 0.5
    assert layer_pixel_um({"metadata": {}, "scale": (0.65, 0.65)}) == 0.65
    assert layer_pixel_um({"metadata": {}, "scale": (1.0, 1.0)}) is None  # napari's default: unknown
    assert layer_pixel_um({"metadata": {}, "scale": (0.5, 0.7)}) is None


def test_levels_layer_background_transparent_and_legend():
    levels = np.array([[-1, 0, 5], [10, 10, -1]])
    data, kwargs, layer_type = levels_layer(levels, depths_um=DEPTHS, name="m", scale=(0.65, 0.65))
    assert layer_type == "labels" and data.dtype == np.uint8
    np.testing.assert_array_equal(data, levels + 1)
    colours = kwargs["colormap"]
    assert colours[0][3] == 0.0 and colours[None][3] == 0.0  # background: transparent, the image shows
    assert all(colours[level + 1][3] == 1.0 for level in range(11))
    assert len({colours[level + 1] for level in range(11)}) == 11
    assert kwargs["features"]["level"][0] == "background" and kwargs["features"]["defocus_um"][4] == 6.0
    legend = level_legend(11, DEPTHS)
    assert "10: 20 um" in legend and "background" in legend
    with pytest.raises(ValueError, match="levels must be"):
        levels_layer(np.array([[11]]), depths_um=DEPTHS, name="m")
    assert level_colours(3)[1] != level_colours(3)[3]


def test_depth_layers_in_the_images_optics():
    """The depth map: float32 um per pixel, NaN (transparent) where only background windows lie, on viridis from 0
    to the deepest level's depth in the image's optics (here 1.5 um per level), as the legend; its spread hidden."""
    levels = np.array([[-1, 0, 5], [10, 10, -1]])
    dmap = DefocusMap.from_levels(levels, (126, 168), stride=42, patch_px=84, n_levels=11, z_step_um=1.5)
    depths = level_depths_um(dmap)
    assert depths == pytest.approx(tuple(1.5 * level for level in range(11)), rel=1e-12)
    depth_px, spread_px = dmap.depth_pixels()
    data, kwargs, layer_type = depth_layer(depth_px, depths_um=depths, name="d", scale=(0.325, 0.325),
                                           units=("um", "um"))
    assert layer_type == "image" and data.dtype == np.float32 and data.shape == (126, 168)
    assert np.isnan(data[0, 0])  # only the background window (0, 0) covers the top-left corner
    assert data[-1, 0] == pytest.approx(15.0, abs=1e-5)  # only window (1, 0), level 10, covers the bottom-left
    np.testing.assert_allclose(data[np.isfinite(data)], depth_px[np.isfinite(depth_px)], rtol=1e-6)
    assert kwargs["colormap"] == "viridis" and kwargs["contrast_limits"] == (0.0, 15.0)
    assert kwargs["scale"] == (0.325, 0.325) and kwargs["units"] == ("um", "um")
    assert is_map_layer(kwargs["metadata"]) and not is_map_layer({"pixel_um": 0.65, "awdvd": {"stride": 42}})
    spread, spread_kwargs, _ = depth_spread_layer(spread_px, name="s")
    assert spread.dtype == np.float32 and np.isnan(spread[0, 0]) and not spread_kwargs["visible"]
    assert float(np.nanmin(spread)) >= 0.0
    legend = level_legend(11, depths)
    assert "10: 15 um" in legend and "5: 7.5 um" in legend
    assert "1: 1.02 um" in level_legend(11, [1.0248829761 * level for level in range(11)])


def test_pixel_confidence_takes_the_nearest_window():
    from awdvd.restore.defocus_maps import DefocusMap

    proba = np.zeros((1, 2, 12), dtype=np.float32)
    proba[0, 0, 0], proba[0, 1, 3] = 0.9, 0.6
    dmap = DefocusMap(levels=np.array([[0, 3]]), proba=proba, class_levels=np.array(list(range(11)) + [-1]),
                      ys=np.array([0]), xs=np.array([0, 42]), image_shape=(84, 126), patch_px=84, stride=42)
    confidence = pixel_confidence(dmap)
    assert confidence.shape == (84, 126) and confidence.dtype == np.float32
    # centres at x = 41.5 and 83.5: x <= 62 is nearer (or as near) the first window
    assert np.all(confidence[:, :63] == np.float32(0.9)) and np.all(confidence[:, 63:] == np.float32(0.6))


def test_restored_layer_keeps_values():
    restored = np.array([[-3.0, 1e5], [2.0, 4.0]])
    data, kwargs, layer_type = restored_layer(restored, name="r", scale=(0.65, 0.65), pixel_um=0.65)
    assert layer_type == "image" and data.dtype == np.float32
    np.testing.assert_array_equal(data, restored.astype(np.float32))
    assert kwargs["metadata"]["pixel_um"] == 0.65 and kwargs["scale"] == (0.65, 0.65)


def test_sample_data_is_the_demo_specimen():
    from awdvd.napari.sample_data import tilted_specimen_sample

    layers = tilted_specimen_sample(shape=(84, 231))
    names = [kwargs["name"] for _, kwargs, _ in layers]
    assert names == ["tilted specimen: truth (in focus)", "tilted specimen: true levels", "tilted specimen: recorded"]
    truth, levels, recorded = (data for data, _, _ in layers)
    assert truth.shape == levels.shape == recorded.shape == (84, 231)
    assert levels[0, 0] == 1 and levels[0, -1] == 11  # level 0 on the left, level 10 on the right (label + 1)
    assert all(kwargs["scale"] == (0.65, 0.65) for _, kwargs, _ in layers)


def test_image_optics_known_values_and_the_assumed_line():
    """What the widget knows of the image's optics, completed with the model's; what was assumed is said in one
    line; contradictions are refused with a sentence."""
    model = Optics()
    known = ImageOptics(pixel_um=0.325, na=0.75)
    assert known.assumed == ("n", "wavelength_um")
    assert known.resolve(model) == Optics(wavelength_um=0.451, na=0.75, n=1.0, pixel_um=0.325)
    message = known.assumed_message(model)
    assert "\n" not in message and "immersion index, emission wavelength" in message
    assert "immersion index 1, emission wavelength 0.451 um" in message
    assert ImageOptics(pixel_um=0.65, na=0.5, n=1.0, wavelength_um=0.451).assumed_message(model) is None
    assert ImageOptics().resolve(model) == model
    with pytest.raises(ValueError, match="below the immersion index"):
        ImageOptics(na=1.2, n=1.0)
    with pytest.raises(ValueError, match="positive"):
        ImageOptics(pixel_um=0.0)
    with pytest.raises(ValueError, match="contradict.*immersion index 1 \\(the model's\\)"):
        ImageOptics(na=1.2).resolve(model)
    assert WidgetOptions.from_dict(WidgetOptions(optics=known).to_dict()).optics == known


def test_layer_optics_reads_the_scale_and_the_files_record():
    sample = {"pixel_um": 0.65, "optics": Optics().to_dict()}
    assert layer_optics(sample, (1.0, 1.0)) == {"pixel_um": 0.65, "na": 0.5, "n": 1.0, "wavelength_um": 0.451}
    assert layer_optics({}, (1.0, 0.325, 0.325))["pixel_um"] == 0.325  # a stack: the y/x scale
    assert layer_optics({"pixel_um": 0.65}, (0.325, 0.325))["pixel_um"] == 0.325  # the scale, where set
    assert layer_optics({}, (0.5, 0.7))["pixel_um"] is None  # not square: not a pixel size
    assert layer_optics({"optics": {"na": "oil"}}, (1.0, 1.0)) == dict.fromkeys(("pixel_um", "na", "n",
                                                                                 "wavelength_um"))


def test_widget_options_carry_the_pipeline_options():
    from awdvd.restore.options import AWDVDOptions

    options = WidgetOptions()
    assert options.awdvd == AWDVDOptions() and options.optics == ImageOptics() and options.model_path is None
    assert WidgetOptions.from_dict(WidgetOptions(awdvd=AWDVDOptions(stride=21)).to_dict()).awdvd.stride == 21
    with pytest.raises(TypeError, match="AWDVDOptions"):
        WidgetOptions(awdvd=42)
    with pytest.raises(TypeError, match="ImageOptics"):
        WidgetOptions(optics=Optics())
    for bad in ({"stride": 0}, {"iterations": -1}, {"offset": "median"}, {"map_mode": "fast"},
                {"offset": float("nan")}):
        with pytest.raises(ValueError):
            AWDVDOptions(**bad)


def test_run_steps_restores_from_the_map_it_yields(monkeypatch):
    """The one function runs the pipeline with the widget's options and the image's optics (what is known,
    completed with the model's), and restores from the very map it showed, with the same optics."""
    from types import SimpleNamespace

    import awdvd.restore.pipeline
    from awdvd.napari import pipeline
    from awdvd.restore.options import AWDVDOptions

    calls = {}
    model, dmap = SimpleNamespace(optics=Optics()), object()
    monkeypatch.setattr(pipeline, "load_widget_model", lambda path: model)
    monkeypatch.setattr(awdvd.restore.pipeline, "defocus_map",
                        lambda image, m, o, optics: calls.setdefault("map", (m, o, optics)) and dmap)
    monkeypatch.setattr(awdvd.restore.pipeline, "deconvolve",
                        lambda image, m, o, dmap, optics: calls.setdefault("restore", (m, o, dmap, optics)))
    awdvd_options = AWDVDOptions(stride=21, iterations=7, offset=100.0, map_mode="dense")
    options = WidgetOptions(awdvd=awdvd_options, optics=ImageOptics(pixel_um=0.325, na=0.75, wavelength_um=0.52))
    image_optics = Optics(wavelength_um=0.52, na=0.75, n=1.0, pixel_um=0.325)
    with pytest.warns(OpticsAssumedWarning, match="does not record its immersion index; assumed the model's"):
        steps = [step for step, _ in pipeline.run_steps(np.zeros((90, 90)), options, restore=True)]
    assert steps == ["model", "defocus map", "restore"]
    assert calls["map"] == (model, awdvd_options, image_optics)
    assert calls["restore"] == (model, awdvd_options, dmap, image_optics)
    calls.clear()
    with pytest.warns(OpticsAssumedWarning):
        steps = [step for step, _ in pipeline.run_steps(np.zeros((90, 90)), options, restore=False)]
    assert steps == ["model", "defocus map"]
    assert "restore" not in calls
    with pytest.raises(ValueError, match="2-D"):
        next(pipeline.run_steps(np.zeros((2, 90, 90)), options, restore=False))


@pytest.mark.parametrize("which", ["tiny random DelpNet", "bundled model"])
def test_run_steps_gives_the_library_defocus_map(tmp_path, which):
    """One set of defaults: the widgets' default options through run_steps give the very map the library gives
    with AWDVDOptions(). A tiny random DelpNet loaded from its file (as the widget's "model file" does; its map
    is one level, so its probabilities carry the comparison) and the bundled model (a map of several levels)."""
    pytest.importorskip("torch", reason="torch not installed")
    from _standins import tiny_delpnet_model

    from awdvd.data.synth import synthetic_nuclei, tilted_specimen
    from awdvd.learn.model_files import bundled_model_path
    from awdvd.napari.pipeline import run_steps
    from awdvd.restore.options import AWDVDOptions
    from awdvd.restore.pipeline import defocus_map

    if which == "bundled model":
        if not bundled_model_path().is_file():
            pytest.skip("no bundled model in this installation")
        options = WidgetOptions()
    else:
        options = WidgetOptions(model_path=str(tiny_delpnet_model(seed=3).save(tmp_path / "tiny.pt")))
    image = tilted_specimen(synthetic_nuclei((168, 252), n_nuclei=12, seed=2), seed=2).observed
    with pytest.warns(OpticsAssumedWarning, match="pixel size, NA, immersion index, emission wavelength"):
        steps = dict(run_steps(image, options, restore=False))  # nothing known: all the model's, said once
    napari_map = steps["defocus map"]
    library_map = defocus_map(image, steps["model"], AWDVDOptions())
    assert napari_map.levels.shape == library_map.levels.shape == (3, 5)
    np.testing.assert_array_equal(napari_map.levels, library_map.levels)
    np.testing.assert_allclose(napari_map.proba, library_map.proba, rtol=1e-6, atol=1e-9)
    assert napari_map.proba.std(axis=(0, 1)).max() > 1e-7  # the windows' probabilities differ: a real comparison
    if which == "bundled model":
        assert len(np.unique(napari_map.levels)) > 2


@pytest.mark.parametrize("which", ["tiny random DelpNet", "bundled model"])
def test_run_steps_with_the_image_optics_gives_the_library_map(tmp_path, which):
    """The image's optics reach the library: run_steps with typed optics gives the very map the library's
    defocus_map gives with the same Optics (levels exact), on the image's pixels (an image at 0.325 um, half the
    model's pixel, NA 0.75 and 520 nm against the model's 0.5 and 451 nm), with depths in these optics."""
    pytest.importorskip("torch", reason="torch not installed")
    from _standins import tiny_delpnet_model

    from awdvd.data.synth import synthetic_nuclei, tilted_specimen
    from awdvd.learn.model_files import bundled_model_path
    from awdvd.napari.pipeline import run_steps
    from awdvd.physics.optical_units import level_step_um
    from awdvd.restore.image_optics import sampling_factor
    from awdvd.restore.options import AWDVDOptions
    from awdvd.restore.pipeline import defocus_map

    if which == "bundled model":
        if not bundled_model_path().is_file():
            pytest.skip("no bundled model in this installation")
        model_path = None
    else:
        model_path = str(tiny_delpnet_model(seed=3).save(tmp_path / "tiny.pt"))
    known = ImageOptics(pixel_um=0.325, na=0.75, n=1.0, wavelength_um=0.52)
    field = tilted_specimen(synthetic_nuclei((168, 252), n_nuclei=12, seed=2), seed=2).observed
    image = np.kron(field, np.ones((2, 2), dtype=np.float32))  # the field seen with pixels half as wide
    with warnings.catch_warnings():
        warnings.simplefilter("error", OpticsAssumedWarning)  # everything given: nothing assumed, nothing said
        steps = dict(run_steps(image, WidgetOptions(optics=known, model_path=model_path), restore=False))
    napari_map, model = steps["defocus map"], steps["model"]
    optics = Optics(wavelength_um=0.52, na=0.75, n=1.0, pixel_um=0.325)
    library_map = defocus_map(image, model, AWDVDOptions(), optics=optics)
    # read at the model's sampling (in optical units: pixel x NA / wavelength): windows of 129 px of this image
    factor = sampling_factor(optics, model.optics)
    assert napari_map.patch_px == library_map.patch_px == round(model.patch_px / factor) == 129
    assert napari_map.image_shape == image.shape
    np.testing.assert_array_equal(napari_map.levels, library_map.levels)
    np.testing.assert_allclose(napari_map.proba, library_map.proba, rtol=1e-6, atol=1e-9)
    assert napari_map.z_step_um == pytest.approx(level_step_um(optics, model.optics), rel=1e-12)
    assert napari_map.z_step_um != pytest.approx(model.optics.z_step_um)  # another objective: another step
    depth_px, _ = napari_map.depth_pixels()
    assert depth_px.shape == image.shape
