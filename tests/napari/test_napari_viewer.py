"""The napari plugin in a real, headless viewer (napari's make_napari_viewer, pytest-qt, an Xvfb display from
pytest-xvfb): open with the reader, sample data, both widgets run in thread workers, cancel, errors, save.

Skipped, with the reason, where napari / pytest-qt are not installed (pip install 'awdvd[napari,test-gui]') or
no X display can be had (Debian: apt-get install xvfb xauth, then pytest starts one itself).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari", reason="napari not installed (pip install 'awdvd[napari]')")
pytest.importorskip("pytestqt", reason="pytest-qt not installed (pip install 'awdvd[test-gui]')")
if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    pytest.skip("no X display for napari's OpenGL canvas (install xvfb and pytest-xvfb, or run under xvfb-run)",
                allow_module_level=True)

from awdvd.learn.model_files import bundled_model_path

pytestmark = pytest.mark.skipif(not bundled_model_path().is_file(), reason="no bundled model in this installation")

WAIT_MS = 120_000


@pytest.fixture(scope="module")
def specimen():
    """A small tilted specimen (levels 0-10 left to right) at the bundled model's 0.65 um pixels."""
    from awdvd.data.synth import synthetic_nuclei, tilted_specimen

    return tilted_specimen(synthetic_nuclei((168, 336), n_nuclei=20, seed=1), seed=1).observed


def run_widget(qtbot, widget):
    """Start the widget's job and wait until its worker has finished (the event loop runs meanwhile)."""
    widget.start()
    assert widget.busy
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)


def test_reader_opens_ome_tiff_with_scale(make_napari_viewer, tmp_path, specimen):
    from awdvd.io import write_ome_tiff

    path = write_ome_tiff(tmp_path / "field.ome.tif", specimen, pixel_um=0.65)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="awdvd")
    assert layer.name == "field" and tuple(layer.scale) == pytest.approx((0.65, 0.65))
    assert layer.data.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(layer.data), specimen)


def test_sample_data_and_restore_widget(make_napari_viewer, qtbot, specimen):
    from awdvd import deconvolve, load_model
    from awdvd.napari.widgets import RestoreWidget

    viewer = make_napari_viewer()
    viewer.add_image(specimen, name="field", scale=(0.65, 0.65), translate=(10.0, 20.0), metadata={"pixel_um": 0.65})
    widget = RestoreWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Restore (AWDVD)")
    assert widget._image.value is viewer.layers["field"]
    widget._iterations.value = 5
    widget._stride.value = 42
    run_widget(qtbot, widget)
    assert widget._status.value.startswith("done"), widget._status.value
    assert widget._progress.value == widget._progress.max
    names = ("field defocus levels", "field confidence", "field AWDVD", "field depth (um)", "field depth spread (um)")
    levels, confidence, restored, depth, spread = (viewer.layers[n] for n in names)
    for layer in (levels, confidence, restored, depth, spread):  # same place in the world as the input
        assert tuple(layer.scale) == pytest.approx((0.65, 0.65)) and tuple(layer.translate) == pytest.approx((10, 20))
        assert layer.data.shape == specimen.shape
    assert viewer.layers[-1] is depth and depth.visible and not spread.visible and not levels.visible
    assert depth.data.dtype == np.float32 and tuple(depth.contrast_limits) == pytest.approx((0.0, 40.0))  # the model's range
    np.testing.assert_allclose(depth.data, widget.dmap.depth_pixels()[0], rtol=1e-6, equal_nan=True)
    median_um = float(np.median(widget.dmap.depth_um[widget.dmap.levels >= 0]))
    assert f"median depth {median_um:.3g} um" in widget._status.value
    # the layer records its pixel size only: NA, immersion index and emission wavelength are the model's, said once
    assert widget._status.value.count("assumed the model's") == 1
    assert "does not record its NA, immersion index, emission wavelength;" in widget._status.value
    assert levels.data.dtype == np.uint8 and levels.data.max() <= 11
    assert levels.colormap.map(np.array([0]))[0, 3] == 0  # background label transparent
    assert 0.0 <= float(confidence.data.min()) and float(confidence.data.max()) <= 1.0
    expected = deconvolve(specimen, load_model(), stride=42, iterations=5, offset="auto")
    assert restored.data.dtype == np.float32
    np.testing.assert_allclose(restored.data, expected, rtol=1e-5, atol=1e-3)
    assert "10: 20 um" in widget._legend.value
    assert widget._image.value is viewer.layers["field"]  # its own result layers do not take the image menu
    # the right half of the specimen is deep: the map must say so (levels as label + 1)
    left, right = levels.data[:, :84], levels.data[:, -84:]
    assert np.median(right[right > 0]) > np.median(left[left > 0])


def test_defocus_map_widget_and_sample(make_napari_viewer, qtbot):
    from awdvd.napari.widgets import DefocusMapWidget

    viewer = make_napari_viewer()
    viewer.open_sample("awdvd", "tilted_specimen")
    assert [layer.name for layer in viewer.layers] == ["tilted specimen: truth (in focus)",
                                                       "tilted specimen: true levels", "tilted specimen: recorded"]
    widget = DefocusMapWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget._image.value is viewer.layers["tilted specimen: recorded"]
    widget._map_mode.value = "dense"
    run_widget(qtbot, widget)
    assert widget._status.value.startswith("done"), widget._status.value
    assert "tilted specimen: recorded AWDVD" not in viewer.layers
    levels = viewer.layers["tilted specimen: recorded defocus levels"]
    truth = viewer.layers["tilted specimen: true levels"]
    recorded = viewer.layers["tilted specimen: recorded"]
    assert tuple(map(str, recorded.units)) == ("micrometer", "micrometer")
    assert tuple(levels.units) == tuple(recorded.units) == tuple(truth.units)  # one unit for the whole view
    foreground = levels.data > 0
    within_two = np.abs(levels.data.astype(int) - truth.data.astype(int))[foreground] <= 2
    assert within_two.mean() > 0.5  # the bundled model roughly follows the tilt (measured: see the report)
    # the sample records its optics: the fields show them, nothing is assumed
    assert {name: edit.value for name, edit in widget._optics.items()} == {
        "pixel_um": "0.65", "na": "0.5", "wavelength_um": "0.451", "n": "1"}
    assert "assumed" not in widget._status.value, widget._status.value
    assert "10: 20 um" in widget._legend.value


def test_an_image_at_half_the_models_pixel(make_napari_viewer, qtbot, specimen):
    """A layer at 0.325 um (half the model's pixel; other optics the model's): the model reads it at its own
    sampling, so its windows are 168 px of this image, and the map is the one of the same field at 0.65 um."""
    from awdvd import defocus_map, load_model
    from awdvd.napari.widgets import DefocusMapWidget

    viewer = make_napari_viewer()
    fine = np.kron(specimen, np.ones((2, 2), dtype=np.float32))  # the same field, pixels half as wide
    viewer.add_image(fine, name="fine", scale=(0.325, 0.325))
    widget = DefocusMapWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget._optics["pixel_um"].value == "0.325"  # from the layer's scale
    for name in ("na", "n", "wavelength_um"):
        widget._optics[name].value = {"na": "0.5", "n": "1.0", "wavelength_um": "0.451"}[name]  # the model's
    run_widget(qtbot, widget)
    assert widget._status.value.startswith("done") and "warning" not in widget._status.value, widget._status.value
    assert widget.dmap.patch_px == 168 and widget.dmap.image_shape == fine.shape
    depth = viewer.layers["fine depth (um)"]
    assert depth.data.shape == fine.shape and tuple(depth.scale) == pytest.approx((0.325, 0.325))
    np.testing.assert_array_equal(widget.dmap.levels, defocus_map(specimen, load_model()).levels)
    assert "10: 20 um" in widget._legend.value  # the model's optics but for the pixel: the same depth per level


def test_typed_optics_reach_run_steps(make_napari_viewer, qtbot, monkeypatch, specimen):
    """The optics fields show what the selected layer records and may be typed over; what they hold at Run is the
    WidgetOptions run_steps gets; depths, legend and status come in those optics."""
    from awdvd.napari import widgets
    from awdvd.napari.pipeline import ImageOptics
    from awdvd.physics.optical_units import level_step_um
    from awdvd.physics.optics import Optics

    seen, run_steps = [], widgets.run_steps

    def recording_run_steps(image, options, *, restore, others=()):
        seen.append(options)
        yield from run_steps(image, options, restore=restore, others=others)

    monkeypatch.setattr(widgets, "run_steps", recording_run_steps)
    viewer = make_napari_viewer()
    viewer.open_sample("awdvd", "tilted_specimen")
    widget = widgets.DefocusMapWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget._optics["na"].value == "0.5"  # the sample's record
    viewer.add_image(specimen, name="field", scale=(0.65, 0.65))  # selected: the fields follow it
    assert {name: edit.value for name, edit in widget._optics.items()} == {
        "pixel_um": "0.65", "na": "", "wavelength_um": "", "n": ""}
    widget._optics["na"].value, widget._optics["wavelength_um"].value = "0.75", "0.52"
    expected = ImageOptics(pixel_um=0.65, na=0.75, wavelength_um=0.52)
    assert widget.options().optics == expected
    run_widget(qtbot, widget)
    assert [options.optics for options in seen] == [expected]
    status = widget._status.value
    assert status.startswith("done") and "does not record its immersion index; assumed the model's (immersion " \
        "index 1)" in status, status
    step = level_step_um(Optics(wavelength_um=0.52, na=0.75, n=1.0, pixel_um=0.65), Optics())
    assert widget.dmap.z_step_um == pytest.approx(step, rel=1e-9)
    assert f"10: {10 * step:.3g} um" in widget._legend.value
    depth = viewer.layers["field depth (um)"]
    assert tuple(depth.contrast_limits) == pytest.approx((0.0, 20 * step))  # the model's 21 levels
    assert widget._optics["na"].value == "0.75"  # typed values stay through the run and its new layers
    # the depth map is selected now, but awdvd's maps are no input: a new layer leaves the image, and what was typed
    assert viewer.layers.selection.active.name == "field depth (um)"
    assert "field depth (um)" not in [layer.name for layer in widget._image.choices]
    viewer.add_points([[10.0, 10.0]])
    assert widget._optics["na"].value == "0.75" and widget._image.value.name == "field"
    widget._optics["na"].value = "lots"
    widget.start()
    assert widget._status.value == "error: NA must be a number (or empty for the model's), got 'lots'"


def test_an_image_with_nothing_recorded_says_what_was_assumed(make_napari_viewer, qtbot, specimen):
    """No scale, no metadata: every optics field is empty, the model's optics are used, and the status line says
    so in one warning line."""
    from awdvd.napari.widgets import DefocusMapWidget

    viewer = make_napari_viewer()
    viewer.add_image(specimen, name="field")
    widget = DefocusMapWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert all(edit.value == "" for edit in widget._optics.values())
    assert widget._optics["na"].native.placeholderText() == "not recorded: the model's"
    run_widget(qtbot, widget)
    lines = widget._status.value.splitlines()
    assert lines[0].startswith("done: ") and "median depth" in lines[0], lines
    assumed = [line for line in lines if "assumed" in line]
    assert assumed == [("warning: the image does not record its pixel size, NA, immersion index, emission "
                        "wavelength; assumed the model's (pixel size 0.65 um, NA 0.5, immersion index 1, emission "
                        "wavelength 0.451 um); type them in the widget to set them")]


@pytest.mark.parametrize("dock_before_sample", [False, True])
def test_image_menu_defaults_to_the_recorded_sample_image(make_napari_viewer, dock_before_sample):
    """Not the menu's first entry (the sample's hidden in-focus truth): the recorded image, what Restore is for,
    whether the widget was docked before or after the sample was opened."""
    viewer = make_napari_viewer()
    if dock_before_sample:
        _, widget = viewer.window.add_plugin_dock_widget("awdvd", "Restore (AWDVD)")
        viewer.open_sample("awdvd", "tilted_specimen")
    else:
        viewer.open_sample("awdvd", "tilted_specimen")
        _, widget = viewer.window.add_plugin_dock_widget("awdvd", "Restore (AWDVD)")
    truth = viewer.layers["tilted specimen: truth (in focus)"]
    assert viewer.layers.index(truth) == 0 and not truth.visible  # the sample adds its truth first, hidden
    assert widget._image.choices[0].name == truth.name  # ... so the menu's first entry is the truth
    # (layers are compared by name: napari hands plugin widgets proxies of the viewer's layers)
    assert widget._image.value.name == "tilted specimen: recorded"


def test_image_menu_follows_the_selection(make_napari_viewer, specimen):
    """Selecting an image layer makes it the default; selecting a layer of another kind leaves the menu alone; a
    removed layer gives way to the newest visible image. One widget docked as Plugins > awdvd does it (it sees
    proxies of the viewer's layers), one made directly."""
    from awdvd.napari.widgets import DefocusMapWidget

    viewer = make_napari_viewer()
    viewer.open_sample("awdvd", "tilted_specimen")
    _, restore = viewer.window.add_plugin_dock_widget("awdvd", "Restore (AWDVD)")
    defocus = DefocusMapWidget(viewer)
    viewer.window.add_dock_widget(defocus)

    def shown():
        return restore._image.value.name, defocus._image.value.name

    truth, recorded = "tilted specimen: truth (in focus)", "tilted specimen: recorded"
    assert shown() == (recorded, recorded)
    viewer.layers.selection.active = viewer.layers[truth]  # the user picks another image layer: the default follows
    assert shown() == (truth, truth)
    viewer.layers.selection.active = viewer.layers["tilted specimen: true levels"]  # not an image: menu stays
    assert shown() == (truth, truth)
    restore._image.value = restore._image.choices[-1]  # chosen in the menu; nothing, then a Labels layer selected
    viewer.layers.selection.clear()
    assert shown() == (recorded, truth)
    viewer.layers.selection.active = viewer.layers["tilted specimen: true levels"]
    assert shown() == (recorded, truth)
    field = viewer.add_image(specimen, name="field")  # a new layer is selected: the menus follow
    assert shown() == ("field", "field")
    viewer.layers.selection.active = viewer.layers["tilted specimen: true levels"]
    viewer.layers.remove(field)  # the menus' layer is gone: the newest visible image layer, not the hidden truth
    assert shown() == (recorded, recorded)
    assert [layer.name for layer in restore._image.choices] == [truth, recorded]


def test_widgets_start_from_the_library_defaults(make_napari_viewer):
    """One set of defaults: an untouched widget asks for exactly AWDVDOptions(), whatever those are."""
    from awdvd.napari.pipeline import WidgetOptions
    from awdvd.napari.widgets import DefocusMapWidget, RestoreWidget, _iterations_text, _parse_iterations
    from awdvd.restore.options import AWDVDOptions

    viewer = make_napari_viewer()
    for widget in (DefocusMapWidget(viewer), RestoreWidget(viewer)):
        assert widget.options() == WidgetOptions()
        assert widget.options().awdvd == AWDVDOptions()
    widget._stride.value, widget._iterations.value, widget._offset.value = 21, "7", "100"
    assert widget.options().awdvd == AWDVDOptions(stride=21, iterations=7, offset=100.0)
    for iterations in (None, 7, tuple(range(1, 12))):  # every kind of iterations value shows and reads back
        assert _parse_iterations(_iterations_text(iterations)) == iterations
    with pytest.raises(ValueError, match="RL iterations"):
        _parse_iterations("many")


def test_cancel_stops_before_the_next_step(make_napari_viewer, qtbot, specimen):
    from awdvd.napari.widgets import RestoreWidget

    viewer = make_napari_viewer()
    viewer.add_image(specimen, name="field")
    widget = RestoreWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.start()
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget._status.value == "cancelled"
    assert [layer.name for layer in viewer.layers] == ["field"]
    assert widget._run.enabled and not widget._cancel.enabled


def test_errors_show_in_the_status_line(make_napari_viewer, qtbot, tmp_path, specimen):
    from awdvd.napari.widgets import FROM_FILE, DefocusMapWidget

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("awdvd", "Defocus map")  # as Plugins > awdvd does it
    assert isinstance(widget, DefocusMapWidget)
    widget.start()  # no image yet
    assert widget._status.value.startswith("error: open an image first")
    viewer.add_image(specimen, name="field")
    widget._model.value = FROM_FILE
    assert not widget._model_file.native.isHidden()  # the file chooser shows once "model file" is chosen
    widget._model_file.value = tmp_path / "missing.pt"
    run_widget(qtbot, widget)
    assert widget._status.value.startswith("error: no such model file"), widget._status.value
    assert [layer.name for layer in viewer.layers] == ["field"]


def test_save_restored_layer_with_the_writer(make_napari_viewer, tmp_path):
    from awdvd.io import read_image

    viewer = make_napari_viewer()
    data = np.linspace(-2.0, 9.0e4, 96 * 96, dtype=np.float32).reshape(96, 96)
    layer = viewer.add_image(data, name="restored", scale=(0.65, 0.65), metadata={"pixel_um": 0.65})
    [written] = layer.save(str(tmp_path / "restored.ome.tif"), plugin="awdvd")
    back = read_image(written)
    assert back.data.dtype == np.float32 and back.pixel_um == pytest.approx(0.65)
    np.testing.assert_array_equal(back.data, data)


def test_docs_screenshot_script_writes_the_window(tmp_path):
    """docs/make_napari_screenshot.py (what makes docs/napari-widget.png) runs the real widget to the end and
    saves the whole window: a PNG of a plausible size, not a blank one."""
    import importlib.util

    import imageio.v3 as iio  # napari's own PNG writer

    script = Path(__file__).resolve().parents[2] / "docs" / "make_napari_screenshot.py"
    spec = importlib.util.spec_from_file_location("make_napari_screenshot", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.main(tmp_path / "shot.png")
    assert written == tmp_path / "shot.png" and written.stat().st_size > 50_000
    pixels = iio.imread(written)
    height, width = pixels.shape[:2]
    assert width >= 1000 and 600 <= height <= width  # the whole window (canvas and dock widget), landscape
    assert pixels[..., :3].std() > 10  # drawn, not a blank grab


def test_restore_widget_restores_every_channel_from_the_chosen_ones_map(make_napari_viewer, qtbot, tmp_path, specimen):
    """Issue 26 item 6: a two-channel file opens as two layers; restoring one restores both from its map, the
    other with its own emission wavelength (what awdvd.restore_channels does)."""
    import tifffile
    from _standins import ome_xml

    from awdvd import load_model
    from awdvd.napari.widgets import RestoreWidget
    from awdvd.physics.optics import Optics
    from awdvd.restore.channels import channel_psfs, depth_everywhere
    from awdvd.restore.pipeline import deconvolve

    second = np.roll(specimen, 60, axis=1)
    data = np.stack([specimen, second]).astype(np.uint16)
    xml = ome_xml(shape=specimen.shape, pixel_um=0.65, na=0.5, emission_nm=None,
                  channels=[("Hoechst", 451), ("mCherry", 610)])
    tifffile.imwrite(tmp_path / "two.ome.tif", data, description=xml, metadata=None)
    viewer = make_napari_viewer()
    hoechst, cherry = viewer.open(str(tmp_path / "two.ome.tif"), plugin="awdvd")
    viewer.layers.selection.active = hoechst
    widget = RestoreWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget._image.value is hoechst and widget._all_channels.value
    widget._iterations.value = 4
    run_widget(qtbot, widget)
    assert widget._status.value.startswith("done"), widget._status.value
    restored = viewer.layers["two [mCherry] AWDVD"]
    red = Optics(wavelength_um=0.61, na=0.5, n=1.0, pixel_um=0.65)
    expected = deconvolve(data[1], load_model(), iterations=4, dmap=depth_everywhere(widget.dmap, data[0]), optics=red,
                          psfs=channel_psfs(red, widget.dmap))
    np.testing.assert_allclose(restored.data, expected, rtol=1e-5, atol=1e-3)
    assert "two [Hoechst] AWDVD" in viewer.layers


def test_a_time_lapse_is_restored_at_the_frame_on_screen(make_napari_viewer, qtbot, tmp_path, specimen):
    """A two-channel time-lapse opens as a layer per channel with its T axis; the restore widget restores the frame
    the viewer shows, both channels from the map channel's map of that frame, and names the results after it."""
    from awdvd import load_model
    from awdvd.io.channels import write_channels
    from awdvd.napari.widgets import RestoreWidget
    from awdvd.physics.optics import Optics
    from awdvd.restore.channels import channel_psfs, depth_everywhere
    from awdvd.restore.pipeline import deconvolve, defocus_map

    frames = np.stack([np.stack([np.roll(specimen, 20 * t, axis=1), np.roll(specimen, 20 * t + 60, axis=1)])
                       for t in range(3)]).astype(np.uint16)  # (T 3, C 2, Y, X)
    path = write_channels(tmp_path / "live.ome.tif", frames, names=["Hoechst", "mCherry"], emission_um=[0.451, 0.61],
                          pixel_um=0.65)
    viewer = make_napari_viewer()
    hoechst, cherry = viewer.open(str(path), plugin="awdvd")
    assert hoechst.data.shape == (3, *specimen.shape)
    viewer.dims.set_current_step(0, 2)
    viewer.layers.selection.active = hoechst
    widget = RestoreWidget(viewer)
    viewer.window.add_dock_widget(widget)
    for name, value in (("na", "0.5"), ("n", "1.0")):
        widget._optics[name].value = value
    widget._iterations.value = 4
    run_widget(qtbot, widget)
    assert widget._status.value.startswith("done"), widget._status.value
    blue = Optics(wavelength_um=0.451, na=0.5, n=1.0, pixel_um=0.65)
    shown = defocus_map(frames[2, 0], load_model(), optics=blue)
    np.testing.assert_array_equal(widget.dmap.levels, shown.levels)  # the map of frame 2, not of frame 0
    red = blue.replace(wavelength_um=0.61)
    expected = deconvolve(frames[2, 1], load_model(), iterations=4, dmap=depth_everywhere(widget.dmap, frames[2, 0]),
                          optics=red, psfs=channel_psfs(red, widget.dmap))
    np.testing.assert_allclose(viewer.layers["live [mCherry] [2] AWDVD"].data, expected, rtol=1e-5, atol=1e-3)
    assert "live [Hoechst] [2] AWDVD" in viewer.layers and "live [Hoechst] [2] depth (um)" in viewer.layers
