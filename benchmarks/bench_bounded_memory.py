"""Peak memory of time-lapses and z-stacks: `awdvd deconvolve` of a 20-frame 696 x 520 time-lapse and `awdvd predict`
of an 8-plane stack, of one channel and of two (OME-TIFF, Hoechst and GFP), each in its own process, against the
same command on one frame (the peak resident set size of the child process, from getrusage). Frames are read and
restored one at a time, so the time-lapse's peak should stay near one frame's.

    python benchmarks/bench_bounded_memory.py -o benchmarks/results/bounded_memory.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

OPTICS = ["--na", "0.5", "--wavelength-um", "0.451", "--immersion-n", "1.0", "--workers", "0"]


def peak_mb(argv: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of ``awdvd ARGV`` in a fresh process."""
    code = "import sys, resource; from awdvd.cli import main; rc = main(sys.argv[1:]); " \
           "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    kb = int(next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("PEAK")))
    return kb / 1024, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--planes", type=int, default=8)
    args = parser.parse_args(argv)

    import tifffile

    from awdvd.data.synth import synthetic_nuclei, tilted_specimen

    frames = []
    for t in range(max(args.frames, args.planes)):
        specimen = tilted_specimen(synthetic_nuclei((520, 696), seed=100 + t), seed=t, first_level=0, last_level=8)
        frames.append(np.clip(np.rint(specimen.observed), 0, 65535).astype(np.uint16))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        resolution, meta = (1 / 0.65, 1 / 0.65), {"unit": "um"}
        tifffile.imwrite(tmp / "movie.tif", np.stack(frames[: args.frames]), imagej=True, resolution=resolution,
                         metadata={"axes": "TYX", **meta})
        tifffile.imwrite(tmp / "stack.tif", np.stack(frames[: args.planes]), imagej=True, resolution=resolution,
                         metadata={"axes": "ZYX", **meta})
        tifffile.imwrite(tmp / "one.tif", frames[0], imagej=True, resolution=resolution, metadata=meta)
        # two channels: the nuclei as Hoechst beside the next frame's as a second stain, OME-TIFF (T|Z, C, Y, X)
        two = np.stack([frames, frames[1:] + frames[:1]], axis=1)
        names = {"Name": ["Hoechst", "GFP"], "EmissionWavelength": [461.0, 520.0],
                 "EmissionWavelengthUnit": ["nm", "nm"]}
        ome = {"PhysicalSizeX": 0.65, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 0.65, "PhysicalSizeYUnit": "µm"}
        for name, axes, data in (("movie2.ome.tif", "TCYX", two[: args.frames]), ("stack2.ome.tif", "ZCYX",
                                                                                 two[: args.planes]),
                                 ("one2.ome.tif", "CYX", two[0])):
            tifffile.imwrite(tmp / name, data, ome=True, photometric="minisblack",
                             metadata={"axes": axes, "Channel": names, **ome})
        rows = {}
        for label, argv_ in (
                ("deconvolve one frame", ["deconvolve", str(tmp / "one.tif"), "-o", str(tmp / "a")]),
                (f"deconvolve {args.frames}-frame time-lapse", ["deconvolve", str(tmp / "movie.tif"), "-o", str(tmp / "b")]),
                ("predict one plane", ["predict", str(tmp / "one.tif"), "-o", str(tmp / "c")]),
                (f"predict {args.planes}-plane stack", ["predict", str(tmp / "stack.tif"), "-o", str(tmp / "d")]),
                ("deconvolve one 2-channel frame", ["deconvolve", str(tmp / "one2.ome.tif"), "-o", str(tmp / "e")]),
                (f"deconvolve {args.frames}-frame 2-channel time-lapse",
                 ["deconvolve", str(tmp / "movie2.ome.tif"), "-o", str(tmp / "f")]),
                (f"predict {args.planes}-plane 2-channel stack",
                 ["predict", str(tmp / "stack2.ome.tif"), "-o", str(tmp / "g")])):
            mb, seconds = peak_mb([*argv_, *OPTICS])
            rows[label] = {"peak_rss_mb": round(mb, 1), "wall_s": round(seconds, 1)}
            print(f"{label}: peak RSS {mb:.0f} MB, {seconds:.1f} s", flush=True)
    report = {"command": "python benchmarks/bench_bounded_memory.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "frame_px": [520, 696], "input_mb": {"time_lapse": round(args.frames * 520 * 696 * 2 / 2**20, 1),
                                                   "restored_float32": round(args.frames * 520 * 696 * 4 / 2**20, 1),
                                                   "two_channel_time_lapse": round(args.frames * 2 * 520 * 696 * 2
                                                                                   / 2**20, 1)},
              "runs": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
