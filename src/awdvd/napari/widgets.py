"""The dock widgets "Defocus map" and "Restore (AWDVD)" (magicgui containers).

Each runs :func:`awdvd.napari.pipeline.run_steps` in a napari thread worker: the viewer stays responsive, the
progress bar advances after each step, and Cancel stops the job at the next step (a step already running,
e.g. Richardson-Lucy, finishes first; its result is dropped). Results arrive as layers with the input's scale
and translation: the depth in um at every pixel (on top, translucent, background transparent); hidden at
first, its spread, the level map (Labels, background transparent) and the confidence (max class probability);
and, for Restore, the restored image (float32 as computed). The legend in the widget gives every level's
colour and depth, which the depth map shares.

The image's optics: the fields "pixel (um)", "NA", "emission (um)" and "immersion n" show what the selected
layer records (its scale, or what awdvd's reader found in the file), and may be typed over; an empty field is
the model's value, assumed with one warning line in the status line (never in silence). The model reads the
image at its own sampling, and depths come back in the image's optics (:func:`awdvd.restore.pipeline.defocus_map`).

The "image" menu lists the image layers but awdvd's maps (depth, spread, confidence) and follows the viewer: it
shows the selected image layer, keeps its image while a layer of another kind is selected, and otherwise falls
back to the most recently added visible image layer (so a hidden reference, such as the sample's in-focus truth,
is never the default). Every option's initial value but the optics is :class:`~awdvd.restore.options.AWDVDOptions`'s
default; the options the widgets do not show keep theirs.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING

from magicgui.widgets import (CheckBox, ComboBox, Container, FileEdit, Label, LineEdit, ProgressBar, PushButton,
                              SpinBox)

from ..data.patches import PATCH_PX
from ..physics.optics import UndersamplingWarning
from ..qc import focus_row
from ..restore.options import MAP_MODES, AWDVDOptions
from .layers import (
    confidence_layer,
    depth_layer,
    depth_spread_layer,
    is_map_layer,
    level_depths_um,
    level_legend,
    levels_layer,
    restored_layer,
)
from .pipeline import OPTICS_LABELS, STEPS, ImageOptics, WidgetOptions, layer_optics, run_steps

if TYPE_CHECKING:
    import napari

__all__ = ["DefocusMapWidget", "RestoreWidget", "BUNDLED", "FROM_FILE"]

BUNDLED = "bundled model"
FROM_FILE = "model file"
#: the optics fields: ImageOptics field -> (label, tooltip)
_OPTICS_FIELDS = {
    "pixel_um": ("pixel (um)", "pixel size in the specimen plane; the layer's scale"),
    "na": ("NA", "numerical aperture of the objective"),
    "wavelength_um": ("emission (um)", "emission wavelength, in micrometres (e.g. 0.52 for GFP)"),
    "n": ("immersion n", "refractive index of the immersion medium (air 1.0, water 1.33, oil 1.515)"),
}


class _AWDVDWidget(Container):
    restore = False

    def __init__(self, viewer: napari.viewer.Viewer):  # the annotation is how napari knows to pass the viewer
        super().__init__(labels=True)
        self._viewer = viewer
        self.worker = None  # the running (or last) thread worker
        self.busy = False  # True from start() until the worker has finished (done, failed or cancelled)
        self._adding_results = False  # True while _on_done adds layers: the image menu stays on the input
        self._optics_of = None  # the layer whose record the optics fields were filled from
        self._siblings = []  # the other channels of the input's file restored with it (restore widget)
        self._plane_name = ""  # " [t]" (the plane's index) when the input is a time-lapse or a stack
        self._image = ComboBox(label="image", choices=self._image_layers)
        self._model = ComboBox(label="model", choices=[BUNDLED, FROM_FILE], value=BUNDLED)
        self._model_file = FileEdit(label="model file", mode="r", filter="*.pt *.zip", visible=False)
        self._optics = {name: LineEdit(label=label, value="", tooltip=f"{tooltip}; shown as the file records it, "
                                       "or type it; empty: the model's, with a warning")
                        for name, (label, tooltip) in _OPTICS_FIELDS.items()}
        for edit in self._optics.values():
            edit.native.setPlaceholderText("not recorded: the model's")
        defaults = AWDVDOptions()  # every initial value below is the library's default, never restated here
        self._stride = SpinBox(label="stride (px)", value=defaults.stride, min=1, max=PATCH_PX,
                               tooltip="window step; half a window is the paper's, smaller = finer map, slower")
        self._map_mode = ComboBox(label="map mode", choices=list(MAP_MODES), value=defaults.map_mode,
                                  tooltip="patch: every window on its own (reference); dense: one pass (faster); "
                                          "auto: dense where it gives the same map")
        option_widgets = [self._image, self._model, self._model_file, *self._optics.values(), self._stride,
                          self._map_mode]
        if self.restore:
            self._iterations = LineEdit(label="RL iterations", value=_iterations_text(defaults.iterations),
                                        tooltip="model: the model's count per defocus level; a number: that "
                                                "count at every level (the paper's behaviour); numbers separated "
                                                "by commas: one count per level")
            self._offset = LineEdit(label="offset (ADU)", value=str(defaults.offset),
                                    tooltip="background removed before RL and added back: a number, or auto "
                                            "(the image's 1st percentile)")
            self._all_channels = CheckBox(label="all channels", value=True,
                                          tooltip="for a channel of a multi-channel file: also restore the file's "
                                                  "other channels, from this channel's map, each with its own "
                                                  "emission wavelength")
            option_widgets += [self._iterations, self._offset, self._all_channels]
        self._run = PushButton(text="Restore" if self.restore else "Compute map")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", min=0, max=len(STEPS) if self.restore else len(STEPS) - 1,
                                     value=0)
        self._status = Label(label="", value="")
        self._status.native.setWordWrap(True)  # warnings are whole sentences: wrapped, not widening the dock
        self._legend = Label(label="", value="")
        self.extend(option_widgets + [self._run, self._cancel, self._progress, self._status, self._legend])
        self._model.changed.connect(lambda value: setattr(self._model_file, "visible", value == FROM_FILE))
        self._image.changed.connect(self._show_optics)
        self._run.changed.connect(self.start)
        self._cancel.changed.connect(self.cancel)
        # connected before napari docks the widget (and connects its own reset_choices), so these run first and
        # still see the menu's value from before a removal
        for emitter in (viewer.layers.events.inserted, viewer.layers.events.removed,
                        viewer.layers.events.reordered, viewer.layers.selection.events.active):
            emitter.connect(self._follow_viewer)
        self._show_image(self._default_image(keep=None))  # not the menu's first entry: that may be a truth
        self._show_optics(self._image.value)

    # ----------------------------------------------------------------------------------------- options
    def _image_layers(self, *_):
        import napari

        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, napari.layers.Image)
                and not layer.rgb and not is_map_layer(layer.metadata)]

    def _default_image(self, *, keep):
        """The layer the image menu should show: the selected image layer; else ``keep`` (the menu's layer) if
        it is still in the viewer; else the most recently added visible image layer, else the most recently
        added image layer; None when the viewer holds no image layer."""
        layers = [layer for _, layer in self._image_layers()]
        for wanted in (self._viewer.layers.selection.active, keep):
            if wanted is not None and any(_same_layer(wanted, layer) for layer in layers):
                return wanted
        newest_first = layers[::-1]  # napari adds layers on top of the list
        return next((layer for layer in newest_first if layer.visible), newest_first[0] if layers else None)

    def _follow_viewer(self, *_):
        """Refresh the image menu after the layer list or the selection changed (see :meth:`_default_image`)."""
        shown = self._image.value
        self._image.reset_choices()
        if self._adding_results:  # our own result layers: keep the input, whatever napari selects
            return
        self._show_image(self._default_image(keep=shown))

    def _show_image(self, layer):
        if layer is not None and not _same_layer(layer, self._image.value):
            self._image.value = layer

    def _show_optics(self, layer):
        """Fill the optics fields with what ``layer`` records (empty where nothing: the model's), when the image
        menu shows another layer (the menu also reports refreshes of the same one: typed values stay then)."""
        if layer is not None and self._optics_of is not None and _same_layer(layer, self._optics_of):
            return
        self._optics_of = layer
        recorded = layer_optics(layer.metadata, layer.scale) if layer is not None else {}
        for name, edit in self._optics.items():
            value = recorded.get(name)
            edit.value = "" if value is None else f"{value:g}"

    def options(self) -> WidgetOptions:
        """The widget's current options (ValueError, shown in the status line, for a bad entry)."""
        model_path = None
        if self._model.value == FROM_FILE:
            path = str(self._model_file.value or "")
            if not path or path == ".":
                raise ValueError("choose a model file (.pt from awdvd train, or a bioimage.io .zip)")
            model_path = path
        extra = {}
        if self.restore:
            text = self._offset.value.strip()
            try:
                offset = text if text == "auto" else float(text)
            except ValueError:
                raise ValueError(f"offset must be a number of ADU or 'auto', got {text!r}") from None
            extra = {"iterations": _parse_iterations(self._iterations.value), "offset": offset}
        # the shown options replace the library's defaults; the others keep them
        awdvd = dataclasses.replace(AWDVDOptions(), stride=int(self._stride.value), map_mode=self._map_mode.value,
                                    **extra)
        optics = ImageOptics(**{name: _parse_optics_value(edit.value, name) for name, edit in self._optics.items()})
        return WidgetOptions(awdvd=awdvd, optics=optics, model_path=model_path)

    # ----------------------------------------------------------------------------------------- running
    def start(self, *_):
        """Start the job in a thread worker (returns at once); the worker is ``self.worker``."""
        from napari.qt.threading import create_worker

        if self.busy:
            return
        layer = self._image.value
        try:
            if layer is None:
                raise ValueError("open an image first (File > Open, or File > Open Sample > awdvd)")
            options = self.options()
        except ValueError as error:
            self._show(f"error: {error}")
            return
        self._layer, self._job_options = layer, options
        self._siblings = self._channel_siblings(layer) if self.restore and self._all_channels.value else []
        plane, index = self._shown_plane(layer)
        self._plane_name = f" [{', '.join(str(i) for i in index)}]" if index else ""
        try:
            others = [(self._shown_plane(sibling)[0], self._sibling_optics(sibling, options))
                      for sibling in self._siblings]
        except ValueError as error:
            self._show(f"error: {error}")
            return
        self._progress.value = 0
        self._show(f"{STEPS[0]}...")
        # an "errored" connection of our own: errors go to the status line, not back into the event loop
        worker = create_worker(self._job, plane, options, others, _start_thread=False, _connect={
            "yielded": self._on_step, "returned": self._on_done, "errored": self._on_error,
            "aborted": lambda: self._show("cancelled"), "finished": self._on_finished})
        self._run.enabled, self._cancel.enabled = False, True
        self.worker, self.busy = worker, True
        worker.start()

    def _shown_plane(self, layer) -> tuple:
        """(the 2-D plane of ``layer`` the viewer shows, its index over the layer's leading axes): a time-lapse or
        a z-stack is processed one plane at a time, the one on screen; () for a 2-D layer."""
        data = layer.data
        if data.ndim <= 2:
            return data, ()
        point = layer.world_to_data(self._viewer.dims.point)
        index = tuple(int(min(max(round(float(p)), 0), n - 1)) for p, n in zip(point[:-2], data.shape[:-2]))
        return data[index], index

    def _channel_siblings(self, layer) -> list:
        """The other channels of ``layer``'s field (image layers awdvd's reader made from the same path and scene)."""
        meta = layer.metadata if isinstance(layer.metadata, dict) else {}
        if "channel" not in meta or not meta.get("path"):
            return []
        return [other for _, other in self._image_layers() if not _same_layer(other, layer)
                and isinstance(other.metadata, dict) and other.metadata.get("path") == meta["path"]
                and other.metadata.get("scene") == meta.get("scene") and "channel" in other.metadata]

    @staticmethod
    def _sibling_optics(sibling, options: WidgetOptions) -> ImageOptics:
        """A sibling channel's optics: its own recorded emission wavelength, the widget's other values."""
        wavelength = layer_optics(sibling.metadata, sibling.scale).get("wavelength_um")
        return options.optics.replace(wavelength_um=wavelength or options.optics.wavelength_um)

    def _job(self, data, options, others=()):
        """The worker's generator: the pipeline's steps, warnings caught for the status line (but undersampling)."""
        results = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # undersampling is the normal case of widefield cameras, not news for the status line (as in the CLI)
            warnings.simplefilter("ignore", UndersamplingWarning)
            for step, value in run_steps(data, options, restore=self.restore, others=others):
                results[step] = value
                yield step
        results["warnings"] = [str(w.message) for w in caught]
        return results

    def cancel(self, *_):
        """Ask the running job to stop at its next step."""
        if self.busy:
            self.worker.quit()
            self._show("cancelling after the current step...")

    def _on_step(self, step: str):
        if step not in STEPS:  # the other channels: restored within the last step
            return
        self._progress.value = STEPS.index(step) + 1
        following = STEPS.index(step) + 1
        last = len(STEPS) if self.restore else len(STEPS) - 1
        if following < last:
            self._show(f"{STEPS[following]}...")

    def _on_error(self, error: Exception):
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        self._show(f"error: {message}")

    def _on_finished(self):
        self._run.enabled, self._cancel.enabled = True, False
        self.busy = False

    def _show(self, text: str):
        self._status.value = text

    # ----------------------------------------------------------------------------------------- results
    def _on_done(self, results: dict):
        layer, options = self._layer, self._job_options
        dmap = results["defocus map"]
        where = {"scale": tuple(layer.scale)[-2:], "translate": tuple(layer.translate)[-2:],
                 "units": tuple(layer.units)[-2:]}
        depths_um = level_depths_um(dmap)
        record = {"options": options.to_dict(), "z_step_um": float(dmap.z_step_um), "window_px": int(dmap.patch_px)}
        depth_px, spread_px = dmap.depth_pixels()
        name = f"{layer.name}{self._plane_name}"
        levels = levels_layer(dmap.to_pixels(), depths_um=depths_um, name=f"{name} defocus levels",
                              metadata=record, **where)
        levels[1]["visible"] = False  # the depth map on top says the same, finer; the levels stay a click away
        added = []  # restored image first, the translucent depth map last (on top, the active layer)
        self._adding_results = True
        try:
            if self.restore:
                added.append(self._add(restored_layer(results["restore"], name=f"{name} AWDVD",
                                                      pixel_um=options.optics.pixel_um, options=options.to_dict(),
                                                      **where)))
            for sibling, restored in zip(self._siblings, results.get("other channels", [])):
                added.append(self._add(restored_layer(restored, name=f"{sibling.name}{self._plane_name} AWDVD",
                                                      pixel_um=options.optics.pixel_um, options=options.to_dict(),
                                                      **where)))
            added.append(self._add(confidence_layer(dmap, name=f"{name} confidence", **where)))
            added.append(self._add(depth_spread_layer(spread_px, name=f"{name} depth spread (um)", **where)))
            added.append(self._add(levels))
            added.append(self._add(depth_layer(depth_px, depths_um=depths_um, name=f"{name} depth (um)",
                                               metadata=record, **where)))
        finally:
            self._adding_results = False
        self._legend.value = level_legend(len(depths_um), depths_um)
        self.dmap, self.added_layers = dmap, added
        self._show(_summary(dmap, results.get("warnings", [])))

    def _add(self, layer_data: tuple):
        data, kwargs, layer_type = layer_data
        return getattr(self._viewer, f"add_{layer_type}")(data, **kwargs)


def _same_layer(a, b) -> bool:
    """Whether ``a`` and ``b`` are one layer: napari hands plugin widgets a proxy of the viewer, whose layers
    come as a new proxy object at every access, so identity is checked on what the proxies wrap."""
    return getattr(a, "__wrapped__", a) is getattr(b, "__wrapped__", b)


def _summary(dmap, messages) -> str:
    """The status line after a run: windows, background, the median depth (um) and the focus verdict
    (:func:`awdvd.qc.focus_row`), then each warning once, on its own line."""
    row = focus_row("", dmap)
    background = row["n_windows"] - row["n_foreground_windows"]
    depth = (f"median depth {row['median_depth_um']:.3g} um ({row['verdict']})" if row["n_foreground_windows"]
             else "no foreground: no depth")
    lines = [f"done: {row['n_windows']} windows, {background} background; {depth}"]
    lines += [f"warning: {message}" for message in dict.fromkeys(messages)]
    return "\n".join(lines)


def _parse_optics_value(text: str, name: str) -> float | None:
    """An optics field's value: None when empty (the model's), else the number typed."""
    text = str(text).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{OPTICS_LABELS[name]} must be a number (or empty for the model's), got {text!r}") from None


def _iterations_text(iterations) -> str:
    """The "RL iterations" field's text for an :class:`AWDVDOptions` ``iterations`` value."""
    if iterations is None:
        return "model"
    if isinstance(iterations, (tuple, list)):
        return ", ".join(str(int(n)) for n in iterations)
    return str(int(iterations))


def _parse_iterations(text: str):
    """The ``iterations`` value of the "RL iterations" field's text (the inverse of :func:`_iterations_text`)."""
    text = text.strip()
    if text == "model":
        return None
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"RL iterations must be 'model', a whole number, or one whole number per level "
                         f"separated by commas, got {text!r}") from None
    return counts[0] if len(counts) == 1 else counts


class DefocusMapWidget(_AWDVDWidget):
    """"Defocus map": the depth (um) of every pixel of a 2-D image in its optics, its spread, the level (0-10 or
    background) of every window as a Labels layer, and the model's confidence."""

    restore = False


class RestoreWidget(_AWDVDWidget):
    """"Restore (AWDVD)": the defocus map, then depth-variant deconvolution (each region with its level's PSF,
    blended with triangular weights); the restored image is added with the input's scale."""

    restore = True
