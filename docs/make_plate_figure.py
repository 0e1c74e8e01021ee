"""Make docs/plate-focus-qc.png: `awdvd predict` on the shared BBBC006 sample (6 in-focus fields and 20 fields of
plane z00, about 32 um from focus) with the bundled model and BBBC006's optics, and its plate heat-map.

    .venv/bin/python docs/make_plate_figure.py [docs/plate-focus-qc.png]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from awdvd.batch.jobs import FOCUS_PLATE
from awdvd.cli import main as awdvd

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbbc006"
BBBC006_OPTICS = ["--pixel-um", "0.65", "--na", "0.5", "--wavelength-um", "0.451", "--immersion-n", "1.0"]


def main(output: Path) -> int:
    with tempfile.TemporaryDirectory() as work:
        inputs = Path(work) / "in"
        inputs.mkdir()
        for folder in ("in_focus", "defocus_z00"):
            for path in sorted((DATA / folder).iterdir()):
                if path.suffix in (".png", ".tif"):
                    (inputs / path.name).symlink_to(path)
        code = awdvd(["predict", str(inputs), "-o", str(Path(work) / "maps"), "--workers", "0", *BBBC006_OPTICS])
        if code == 0:
            shutil.copyfile(Path(work) / "maps" / FOCUS_PLATE, output)
            print(f"wrote {output}")
    return code


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "plate-focus-qc.png"))
