"""Writing restored tiles in the input's number type, tile by tile (:class:`DtypeWriter`)."""

from __future__ import annotations

import numpy as np

from ..restore.rl import to_input_dtype

__all__ = ["DtypeWriter"]


class DtypeWriter:
    """An output array's stand-in that converts float32 tiles to ``dtype`` as they are written (rounding and
    clipping are per pixel, so tile by tile equals whole) and counts the clipped pixels. Over a resumable
    output (:class:`awdvd.io.resumable.ResumableArray`) it passes the journal on, with each tile's clipped count, so
    that a resumed run counts the tiles it kept."""

    def __init__(self, target, dtype):
        self.target, self.dtype, self._last = target, np.dtype(dtype), 0
        self.shape = tuple(target.shape)
        tiles = target.part.tiles if hasattr(target, "part") else {}
        self.resumed_tiles = len(tiles)
        self.clipped = sum(int(info.get("clipped", 0)) for info in tiles.values())
        if hasattr(target, "tile_done"):
            self.tile_done = target.tile_done

    def __setitem__(self, index, value):
        converted, clipped = to_input_dtype(value, self.dtype)
        self.clipped += clipped
        self._last = clipped
        self.target[index] = converted

    def mark_tile(self, core) -> None:
        """The tile just written is complete (awdvd.restore.tiling.tiled_map calls this after each tile)."""
        if hasattr(self.target, "mark_tile"):
            self.target.mark_tile(core, clipped=int(self._last))
