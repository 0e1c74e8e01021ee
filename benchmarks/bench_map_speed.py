"""The defocus map and AWDVD at stride 8 with the bundled model's own map, beside one scikit-image RL (issue 11
item 4). Not a test: prints figures and saves a JSON. Needs ../shared/data/bbbc006 (a z00 field, 696 x 520).

    PYTHONPATH=src python benchmarks/bench_map_speed.py [-o FILE] [--rounds 3] [--threads 2]

Interleaved rounds (every variant once per round), so that a neighbour's load hits them alike; the median is
reported. scikit-image RL: 30 iterations with the level-6 PSF of the bank, on the uint16 image as read (it
computes in float64) and on float32.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbbc006"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import numpy as np
    import torch
    from skimage.restoration import richardson_lucy

    from awdvd import deconvolve
    from awdvd.io import find_images, read_image
    from awdvd.learn.model_files import load_model
    from awdvd.physics.psf import psf_bank
    from awdvd.restore.options import AWDVDOptions
    from awdvd.restore.pipeline import defocus_map

    torch.set_num_threads(args.threads)
    model = load_model()
    raw = read_image(sorted(find_images(SHARED / "defocus_z00"))[0]).data
    image = raw.astype(np.float32)
    psf = psf_bank(model.optics)[6]
    variants = {
        "map_stride8_s": lambda: defocus_map(image, model, AWDVDOptions(stride=8)),
        "awdvd_stride8_defaults_s": lambda: deconvolve(image, model, stride=8),
        "awdvd_stride8_30_plain_s": lambda: deconvolve(image, model, stride=8, iterations=30, rl="plain"),
        "skimage_rl30_uint16_s": lambda: richardson_lucy(raw, psf, num_iter=30, clip=False),
        "skimage_rl30_float32_s": lambda: richardson_lucy(image, psf.astype(np.float32), num_iter=30, clip=False),
    }
    for fn in variants.values():  # warm-up
        fn()
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    result = {name: round(statistics.median(t), 3) for name, t in times.items()}
    result["awdvd_over_skimage_uint16"] = round(result["awdvd_stride8_defaults_s"] / result["skimage_rl30_uint16_s"], 2)
    result["awdvd_over_skimage_float32"] = round(result["awdvd_stride8_defaults_s"] / result["skimage_rl30_float32_s"], 2)
    result.update(image=list(image.shape), psf_px=int(psf.shape[0]), threads=args.threads, rounds=times)
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=1))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
