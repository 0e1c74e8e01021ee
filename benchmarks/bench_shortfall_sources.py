"""Where two missed floors lose: the model's map, or what is done with it?

Each figure is measured twice, once as ``awdvd`` runs it (the model's own map, the library defaults) and once
with the map replaced by the truth, everything else unchanged. Where the truth closes the gap, the map is what
loses; where it does not, the restoration does.

1. **The second stain of a two-channel specimen** (issue 26's floor: >= 92% of its own true-depth ceiling; the
   specimens of ``benchmarks/bench_channels.py``, tilted along x): the GFP channel is restored from
   :func:`awdvd.restore.channels.depth_everywhere` of (a) the model's map of the Hoechst channel, as
   ``restore_channels`` does; (b) the same foreground windows, each given its true level instead of the model's
   reading (the fill unchanged). Also: the share of the map's foreground windows read at their true level.
2. **Steep tilts, 0-40 um** (issue 27's floor: no depth band below -0.3 dB; the specimens of
   ``benchmarks/bench_range_extension.py``, six BBBC006 fields, BBBC006's camera): band gains with (a) the model's
   map and the defaults; (b) the true level of every foreground window of that map, with the same defaults
   (argmax levels, the model's restoration schedule, 84 px windows every 42 px); beside the ceiling recorded in
   ``benchmarks/results/range_extension_bands.json`` (plain RL, each level's count chosen on the specimen).

    python benchmarks/bench_shortfall_sources.py -o benchmarks/results/shortfall_sources.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_channels import cytoplasm, depth_surfaces, true_level_map, two_stains  # noqa: E402
from train_bundled_model import SHARED, split_bbbc039  # noqa: E402

FIELDS = SHARED / "bbbc006" / "in_focus"


def with_true_readings(dmap, truth):
    """``dmap`` with every foreground window's probabilities put on its level in ``truth`` (a map of the same
    grid); background windows stay background."""
    classes = np.asarray(dmap.class_levels)
    foreground = np.asarray(dmap.levels) >= 0
    levels = np.where(foreground, truth.levels, -1)
    one_hot = (classes[None, None, :] == levels[..., None]).astype(np.float32)
    return dataclasses.replace(dmap, levels=levels.astype(np.int64),
                               proba=np.where(foreground[..., None], one_hot, dmap.proba))


def second_stain(model, seed: int) -> dict:
    """{specimen: figures} of section 1."""
    from awdvd.data.training_stream import PAPER_CAMERAS
    from awdvd.io import read_image
    from awdvd.learn.range_extension import near_optics
    from awdvd.metrics import psnr, truth_data_range
    from awdvd.restore.channels import channel_psfs, depth_everywhere
    from awdvd.restore.pipeline import defocus_map, restore_image

    camera = PAPER_CAMERAS["bbbc006"]
    a07 = read_image(next(FIELDS.glob("*__a07__*.png"))).data.astype(np.float32)
    _, held = split_bbbc039(list((SHARED / "bbbc039" / "in_focus").glob("*.tif")))
    specimens = {"other field": read_image(held[1]).data.astype(np.float32)[: a07.shape[0], : a07.shape[1]],
                 "cytoplasm": cytoplasm(a07, np.random.default_rng([seed, 7]))}
    levels = depth_surfaces(a07.shape, near_optics(model).n_levels)["tilted along x"]
    out = {}
    for name, second in specimens.items():
        image, optics, truth = two_stains(model, a07, second, camera, seed, levels)
        dmap = defocus_map(image[0], model, optics=optics[0])
        true_map = true_level_map(levels, dmap, model)
        data_range = truth_data_range(truth[1])

        def gfp_psnr(restore_from):
            restored = restore_image(image[1], model, dmap=restore_from, optics=optics[1],
                                     psfs=channel_psfs(optics[1], restore_from)).image
            return psnr(truth[1], np.asarray(restored, np.float64) - camera.offset_adu + 96.0,
                        data_range=data_range)

        recorded = psnr(truth[1], np.asarray(image[1], np.float64) - camera.offset_adu + 96.0,
                        data_range=data_range)
        ceiling = gfp_psnr(true_map)
        shares = {"model map (as restore_channels runs it)": depth_everywhere(dmap, image[0]),
                  "true levels at the map's foreground windows, same fill":
                      depth_everywhere(with_true_readings(dmap, true_map), image[0])}
        foreground = np.asarray(dmap.levels) >= 0
        out[name] = {"gfp_share_of_ceiling": {label: round((gfp_psnr(m) - recorded) / (ceiling - recorded), 4)
                                              for label, m in shares.items()},
                     "map_foreground_windows_at_true_level": round(float(np.mean(
                         np.asarray(dmap.levels)[foreground] == true_map.levels[foreground])), 4)}
        print(name, out[name], flush=True)
    return out


def steep_tilts(model) -> dict:
    """Section 2's figures."""
    from awdvd.data.synth import CameraNoise, tilted_specimen
    from awdvd.io import read_image
    from awdvd.physics.optics import Optics
    from awdvd.restore.pipeline import defocus_map, restore_image
    from awdvd.validate.restoration_bands import band_gains

    recorded = json.loads((ROOT / "benchmarks" / "results" / "range_extension_bands.json").read_text())
    optics = Optics(n_levels=21)
    key = f"0-{optics.depths_um[-1]:g} um"
    fields = {}
    for index, path in enumerate(sorted(FIELDS.glob("*.png"))):
        image = read_image(path).data.astype(np.float32)
        specimen = tilted_specimen(image, optics=optics, noise=CameraNoise(), seed=index)
        dmap = defocus_map(specimen.observed, model)
        truth = with_true_readings(dmap, true_level_map(np.asarray(specimen.levels), dmap, model))
        field = path.name.split("__")[1]
        fields[field] = {}
        for label, restored in (("model map, defaults", restore_image(specimen.observed, model, dmap=dmap)),
                                ("true levels, defaults", restore_image(specimen.observed, model, dmap=truth,
                                                                        level_blend="argmax"))):
            gains, whole = band_gains(specimen, restored.image)
            fields[field][label] = {"band_gain_db": [round(g, 3) for g in gains], "whole_gain_db": round(whole, 3)}
        best = recorded["fields"][key][field]["ceiling"]
        fields[field]["ceiling (recorded)"] = {"band_gain_db": [round(g, 3) for g in best["band_gain_db"]],
                                               "whole_gain_db": round(best["whole_gain_db"], 3)}
        print(field, {k: v["whole_gain_db"] for k, v in fields[field].items()}, flush=True)
    summary = {}
    for label in fields["a07"]:
        bands = np.mean([row[label]["band_gain_db"] for row in fields.values()], axis=0)
        summary[label] = {"whole_gain_db_mean": round(float(np.mean([row[label]["whole_gain_db"]
                                                                     for row in fields.values()])), 3),
                          "band_gain_db_mean": [round(float(b), 3) for b in bands],
                          "worst_mean_band_db": round(float(bands.min()), 3),
                          "a07_worst_band_db": round(min(fields["a07"][label]["band_gain_db"]), 3)}
    return {"range": key, "summary": summary, "fields": fields}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model file (default: the bundled model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    if not FIELDS.is_dir():
        print(f"the shared data are not at {FIELDS}", file=sys.stderr)
        return 1
    warnings.simplefilter("ignore")
    from awdvd.learn.model_files import load_model

    model = load_model(args.model)
    report = {"command": "python benchmarks/bench_shortfall_sources.py " + " ".join(sys.argv[1:] if argv is None
                                                                                     else argv),
              "model": args.model or "bundled",
              "second_stain": second_stain(model, args.seed),
              "steep_tilts": steep_tilts(model),
              "split": "Hoechst / the 0-40 um tilts' a07: BBBC006 a07, held out of the bundled model's training; "
                       "GFP 'other field': a held-out BBBC039 field's texture; 0-40 um tilts of a02-a06: training "
                       "sources of both networks (specimens and noise made here)"}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["steep_tilts"]["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
