"""Run every benchmark script in turn (what `make bench` does). Each prints its figures and saves a JSON in
benchmarks/results/. Benchmarks time peers in the same run; run them on an otherwise idle machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

SCRIPTS = [
    ("bench_foundation.py", ["--out", str(RESULTS / "foundation.json")]),
    ("bench_delpnet.py", []),
    ("bench_deconv.py", ["-o", str(RESULTS / "deconv.json")]),
    ("bench_batch.py", ["--out", str(RESULTS / "batch.json")]),
    ("real_data_checks.py", ["-o", str(RESULTS / "real_data.json")]),
]


def main() -> int:
    RESULTS.mkdir(exist_ok=True)
    failed = []
    for script, args in SCRIPTS:
        path = HERE / script
        if not path.exists():
            print(f"== {script}: not present, skipped")
            continue
        print(f"== {script}", flush=True)
        if subprocess.run([sys.executable, str(path), *args]).returncode != 0:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
