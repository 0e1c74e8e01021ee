"""Make docs/napari-widget.png from the real plugin, so the picture cannot drift from the widget.

Opens a napari viewer, loads the plugin's sample data (File > Open Sample > awdvd), docks "Restore (AWDVD)" as
Plugins > awdvd does, clicks Restore with the widget's defaults, the sample's recorded optics and the bundled
model, waits until the restored image and the depth map (um, over it) are in the viewer, and saves a screenshot
of the whole window (dock widget included: the optics fields, the status line with the median depth, the legend
of every level's depth).

Needs napari (``pip install 'awdvd[napari]'``) and a display; on a headless Linux machine run it under Xvfb::

    xvfb-run -a python docs/make_napari_screenshot.py docs/napari-widget.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

#: the window's size in logical pixels: wide enough for the dock widget's legend beside the canvas
WINDOW_SIZE_PX = (1500, 860)
#: the longest the restoration may take before the script gives up (the bundled model on a laptop's CPU: ~1 min)
TIMEOUT_S = 900.0


def _wait_until(done, *, timeout_s: float, what: str) -> None:
    """Run the Qt event loop until ``done()`` is true; TimeoutError after ``timeout_s`` seconds."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not finish within {timeout_s:g} s")
        QApplication.processEvents()
        time.sleep(0.02)


def main(output_path="docs/napari-widget.png", *, timeout_s: float = TIMEOUT_S) -> Path:
    """Save the screenshot of the viewer with the restored sample and the "Restore (AWDVD)" widget to
    ``output_path`` (PNG, the window's size in device pixels); returns the path written.

    Raises
    ------
    RuntimeError if the widget's run ends in an error or is cancelled (its status line is in the message);
    TimeoutError if it has not finished within ``timeout_s`` seconds.
    """

    import napari

    from awdvd.napari.widgets import RestoreWidget

    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari: awdvd", show=True)  # shown: a hidden window grabs as blank
    try:
        viewer.window.resize(*WINDOW_SIZE_PX)
        viewer.open_sample("awdvd", "tilted_specimen")
        _, widget = viewer.window.add_plugin_dock_widget("awdvd", "Restore (AWDVD)")
        if not isinstance(widget, RestoreWidget):
            raise RuntimeError(f"the awdvd plugin docked a {type(widget).__name__}, not the Restore widget")
        widget._run.native.click()  # the Restore button, as a user clicks it
        _wait_until(lambda: not widget.busy, timeout_s=timeout_s, what="the Restore widget's run")
        status = str(widget._status.value)
        if not status.startswith("done"):
            raise RuntimeError(f"the Restore widget did not finish: {status}")
        viewer.reset_view()
        # let Qt and the OpenGL canvas draw the new layers before the window is grabbed
        settled = time.monotonic() + 1.0
        _wait_until(lambda: time.monotonic() > settled, timeout_s=timeout_s, what="drawing")
        viewer.window.screenshot(str(output_path), canvas_only=False, flash=False)
    finally:
        viewer.close()
    return output_path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_path", nargs="?", default="docs/napari-widget.png", help="PNG to write")
    parser.add_argument("--timeout-s", type=float, default=TIMEOUT_S, help="give up after this many seconds")
    args = parser.parse_args()
    print(main(args.output_path, timeout_s=args.timeout_s))
