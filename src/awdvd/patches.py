"""The patch vocabulary shared by data, learning and restoration: labels, splits and the background class.

(The one-pipeline issue moves PatchSet, the normalisation and the background rule here from ``synth``.)
"""

from __future__ import annotations

__all__ = ["BACKGROUND", "SPLITS"]

BACKGROUND = -1  # label of a background patch or window wherever levels are stored as integers
SPLITS = ("train", "val", "test")
