"""The hidden pieces of outputs being written: whose they are, sweeping the ones a killed run left behind, and
resuming a tiled output from the tiles it already holds. Part of :mod:`awdvd.io`.

Every temporary file or folder awdvd writes beside an output ``NAME`` is called ``.NAME.<owner>.<random>.part``
(``.old`` while a finished folder replaces an older one), where ``<owner>`` is ``host-pid`` of the process
writing it. A process killed outright (SIGKILL, out of memory, a power cut) cannot remove its pieces;
:func:`sweep_orphans` removes those of processes on this machine that are no longer alive (and pieces without
an owner, as older awdvd versions named them, once untouched for an hour), and never the pieces of a live
process.

A tiled output (a large image restored tile by tile) is written into a resumable part instead,
``.NAME.resume.part`` (:func:`open_resumable_part`): the pixel store, a journal of the tiles that are complete
(``tiles.txt``, a line per tile, written after the tile's pixels) and ``resume.json`` (the key of what is
being made, and the owner). A rerun of the same work (same key) finds it and skips the tiles in the journal; a
part made for other work (another input, other options) is removed and started afresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path

__all__ = ["owner_tag", "part_prefix", "sweep_orphans", "owner_alive", "ResumablePart", "ResumableArray",
           "open_resumable_part", "RESUME_SUFFIX", "ORPHAN_AGE_S"]

#: the name ending of a resumable part (``.NAME.resume.part``)
RESUME_SUFFIX = ".resume.part"
#: pieces that record no owner (older awdvd versions) are swept once untouched for this long
ORPHAN_AGE_S = 3600.0
_OWNER = re.compile(r"^(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def owner_tag() -> str:
    """``host-pid`` of this process, as written into the names of its temporary pieces."""
    return f"{_host()}-{os.getpid()}"


def part_prefix(path: str | os.PathLike) -> str:
    """The name prefix of this process's temporary pieces of the output ``path``: ``.NAME.host-pid.``."""
    return f".{Path(path).name}.{owner_tag()}."


def owner_alive(tag: str | None) -> bool | None:
    """Whether the process of an owner tag still runs: True / False for this machine, None for another
    machine's process or no tag (it cannot be told from here)."""
    match = _OWNER.match(tag or "")
    if match is None or match["host"] != _host():
        return None
    pid = int(match["pid"])
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _piece_owner(entry: Path, name: str) -> tuple[bool, str | None]:
    """(is a piece of output ``name``, its owner tag or None)."""
    rest = entry.name[len(name) + 2:]  # after ".NAME."
    if rest == RESUME_SUFFIX.lstrip("."):
        try:
            return True, json.loads((entry / "resume.json").read_text()).get("owner")
        except (OSError, ValueError):
            return True, None
    if ".part" not in rest and not rest.endswith(".old"):
        return False, None
    first = rest.split(".", 1)[0]
    return True, first if _OWNER.match(first) else None


def sweep_orphans(folder: str | os.PathLike, names, *, keep_resumable: bool = True) -> list[Path]:
    """Remove the temporary pieces (``.NAME.*.part*``, ``.NAME.*.old``) that killed processes left beside the
    outputs ``names`` in ``folder``: those whose owner on this machine is dead, and those with no owner untouched
    for :data:`ORPHAN_AGE_S`. With ``keep_resumable`` (default) resumable parts (``.NAME.resume.part``) are left
    for :func:`open_resumable_part`, which resumes or replaces them. One listing of the folder. Returns what was
    removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    wanted = {str(n) for n in names}
    removed = []
    now = time.time()
    for entry in folder.iterdir():
        if not entry.name.startswith("."):
            continue
        name = next((n for n in wanted if entry.name.startswith(f".{n}.")), None)
        if name is None:
            continue
        piece, owner = _piece_owner(entry, name)
        if not piece or (keep_resumable and entry.name.endswith(RESUME_SUFFIX)):
            continue
        alive = owner_alive(owner)
        if owner is None:
            try:
                stale = now - entry.stat().st_mtime > ORPHAN_AGE_S
            except FileNotFoundError:
                continue
        else:
            stale = alive is False
        if stale:
            _remove(entry)
            removed.append(entry)
    return removed


class ResumablePart:
    """A resumable part folder of one output (see the module docstring): ``folder`` (put the pixel store and
    anything else worth keeping there), ``resumed`` (True if it holds an earlier run's work),
    :meth:`tile_done` / :meth:`mark_tile` (the journal of complete tiles, each with a small dict of what it
    needs to remember, e.g. its clipped pixels)."""

    def __init__(self, folder: Path, resumed: bool):
        self.folder, self.resumed = folder, resumed
        self._journal = folder / "tiles.txt"
        self.tiles: dict[tuple[int, int, int, int], dict] = self._read_journal() if resumed else {}

    def _read_journal(self) -> dict:
        tiles = {}
        try:
            lines = self._journal.read_text().splitlines()
        except FileNotFoundError:
            return tiles
        for line in lines:  # a line cut short by a kill is not a tile
            try:
                entry = json.loads(line)
                tiles[tuple(int(v) for v in entry["tile"])] = dict(entry.get("info", {}))
            except (ValueError, KeyError, TypeError):
                continue
        return tiles

    @staticmethod
    def _key(core) -> tuple[int, int, int, int]:
        ys, xs = core
        return int(ys.start), int(ys.stop), int(xs.start), int(xs.stop)

    def tile_done(self, core) -> bool:
        """True if the tile ``core`` ((rows, columns) slices) is complete in the store."""
        return self._key(core) in self.tiles

    def mark_tile(self, core, **info) -> None:
        """Record the tile ``core`` as complete (call after its pixels are written)."""
        key = self._key(core)
        self.tiles[key] = info
        with open(self._journal, "a") as handle:
            handle.write(json.dumps({"tile": list(key), "info": info}) + "\n")
            handle.flush()


@contextlib.contextmanager
def open_resumable_part(path: str | os.PathLike, *, key: str):
    """The resumable part of the output ``path`` for the work ``key`` (a string that changes with anything that
    changes the pixels: input, options, model, tile size). Yields a :class:`ResumablePart`.

    An existing part with the same key is resumed; one with another key, or unreadable, is replaced; one whose
    owner is alive (another process writing the same output right now) is refused (FileExistsError). When the
    block ends normally the caller has moved its result out, and the part is removed; when it ends by an
    interrupt (KeyboardInterrupt, e.g. Ctrl-C or awdvd's SIGTERM) or the process is killed, the part stays for
    a rerun; any other error removes it (a failed file would likely fail again, and a slide's part holds GBs).
    """
    path = Path(path)
    folder = path.parent / f".{path.name}{RESUME_SUFFIX}"
    state_file = folder / "resume.json"
    resumed = False
    if folder.exists():
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            state = {}
        if state.get("owner") != owner_tag() and owner_alive(state.get("owner")):
            raise FileExistsError(f"{path} is being written by another awdvd process ({state.get('owner')}); wait "
                                  "for it to finish, or write to another output folder")
        if state.get("key") == key:
            resumed = True
        else:
            _remove(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"key": key, "owner": owner_tag(), "output": str(path), "started": time.time()}
    tmp = folder / f"resume.json.{owner_tag()}.part"
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, state_file)
    try:
        yield ResumablePart(folder, resumed)
    except KeyboardInterrupt:
        raise  # kept: the next run resumes from the tiles in the journal
    except BaseException:
        _remove(folder)
        raise
    _remove(folder)


class ResumableArray:
    """An output array (zarr, memmap) filled tile by tile into a :class:`ResumablePart`: indexing goes to the
    array; :meth:`tile_done` and :meth:`mark_tile` to the part's journal (``awdvd.restore.tiling.tiled_map`` skips the
    tiles done and marks each one it writes). ``part`` is the :class:`ResumablePart`."""

    def __init__(self, array, part: ResumablePart):
        self.array, self.part = array, part
        self.shape, self.dtype = tuple(array.shape), array.dtype

    def __setitem__(self, index, value):
        self.array[index] = value

    def __getitem__(self, index):
        return self.array[index]

    def tile_done(self, core) -> bool:
        return self.part.tile_done(core)

    def mark_tile(self, core, **info) -> None:
        self.part.mark_tile(core, **info)
