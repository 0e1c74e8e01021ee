"""The model card's two real-data checks on the shared BBBC006 sample (awdvd.validate.real_data).

    PYTHONPATH=src python benchmarks/real_data_checks.py [--model MODEL.pt] [-o benchmarks/results/real_data.json]

- in_focus/ (6 images at best focus): share of foreground 84 x 84 tiles called level 0 or 1;
- defocus_z00/ (20 images, about 32 um from focus, beyond the deepest level, 20 um): share called the three
  deepest levels (16-20 um), and the whole histogram.

Without --model the bundled model is checked. Note for the bundled model: the 6 in-focus images are its training
sources (level 0 = the image itself), so the first check is on seen fields; the z00 fields were never seen.
Needs ../shared/data/bbbc006 (relative to the project root).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "bbbc006"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model file (default: the bundled model)")
    parser.add_argument("--data", type=Path, default=DATA, help=f"BBBC006 sample folder (default {DATA})")
    parser.add_argument("-o", "--out", type=Path, help="JSON to write")
    args = parser.parse_args()
    from awdvd.io import find_images, read_image, write_json
    from awdvd.learn.model_files import load_model
    from awdvd.validate.real_data import real_data_checks

    if not (args.data / "in_focus").is_dir():
        print(f"real_data_checks: {args.data} holds no in_focus/ folder (the shared BBBC006 sample)", file=sys.stderr)
        return 1
    model = load_model(args.model)

    def images(folder):
        return [read_image(path).data for path in find_images(args.data / folder)]

    result = real_data_checks(model, in_focus=images("in_focus"), defocused=images("defocus_z00"))
    result["model"] = str(args.model) if args.model else "bundled"
    for name, census in (("in focus", result["in_focus"]), ("z00, ~32 um", result["defocused"])):
        print(f"{name}: {census['n_foreground']} foreground tiles of {census['n_tiles']} in {census['n_images']} "
              f"images; called levels {census['levels_expected']}: {census['fraction_expected']:.3f}; "
              f"mean level {census['mean_level']}; histogram {census['histogram']}")
    if args.out:
        write_json(args.out, result, overwrite=True)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
