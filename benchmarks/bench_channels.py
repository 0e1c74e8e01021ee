"""A 2-channel specimen restored from one map: each channel's gain against its own true-depth ceiling.

Two stains of one tilted specimen (depth rising from 0 across the field to the model's deepest level, one depth
field for both): channel "Hoechst" (emission 0.46 um) is BBBC006 a07's in-focus field; channel "GFP" (emission
0.60 um) is, in two specimens,
- "other field": a held-out BBBC039 field (every 8th by name, benchmarks/train_bundled_model.py) as the second
  stain's texture, shining mostly where the nuclei are not (the hardest case: the map has no cell there);
- "cytoplasm": a stain around the same cells (a07's nuclei grown by 10 px, the nuclei cut out, a smooth random
  texture; what a cytoplasmic GFP around stained nuclei looks like), about as bright as the nuclei.
Each is blurred with the Eq. 2 PSFs of its own wavelength at the same depths in um (20x / NA 0.5, 0.65 um
pixels), recorded by BBBC006's camera, and restored by awdvd.restore_channels (the map made once, from
Hoechst). The floor's specimen is tilted along x (depth rising in 11 equal bands from 0 to the deepest level);
the same two stains are also measured over five other depth surfaces (tilted along y, a bowl, a dome, two smooth
random surfaces: a fill that assumes a plane fails on them), and on a check set not looked at while the other
channels' depth fill was chosen (three more random surfaces, a saddle, a diagonal tilt; two more held-out BBBC039
textures and the cytoplasm; noise seed + 1; the record's "check"). The ceiling of each channel is AWDVD with the true
depth map (same options, its own PSFs); the figure is the share of that ceiling's PSNR gain over the recorded
image that the model's map reaches.

    python benchmarks/bench_channels.py -o benchmarks/results/channels.json [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_bundled_model import SHARED, split_bbbc039  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)

    from awdvd.data.training_stream import PAPER_CAMERAS
    from awdvd.io import read_image
    from awdvd.learn.model_files import load_model
    from awdvd.learn.range_extension import near_optics

    model = load_model(args.model)
    camera = PAPER_CAMERAS["bbbc006"]
    a07 = read_image(next((SHARED / "bbbc006" / "in_focus").glob("*__a07__*.png"))).data.astype(np.float32)
    _, held = split_bbbc039(list((SHARED / "bbbc039" / "in_focus").glob("*.tif")))
    other = read_image(held[1]).data.astype(np.float32)[: a07.shape[0], : a07.shape[1]]
    specimens = {"other field": other, "cytoplasm": cytoplasm(a07, np.random.default_rng([args.seed, 7]))}
    rows, timings, surfaces = {}, {}, {}
    for surface, levels in depth_surfaces(a07.shape, near_optics(model).n_levels).items():
        for specimen, second in specimens.items():
            print(f"{surface}, {specimen}:", flush=True)
            figures, spent, map_channel = measure(model, a07, second, camera, args.seed, levels)
            if surface == "tilted along x":
                rows[specimen], timings[specimen] = figures, spent
            surfaces.setdefault(surface, {})[specimen] = {name: round(row["share_of_ceiling"], 4)
                                                          for name, row in figures.items()}
    shares = [row["GFP"] for by_specimen in surfaces.values() for row in by_specimen.values()]
    # specimens that were not looked at while the other channels' fill was chosen: other surfaces, textures, noise
    check = {}
    textures = {f"other field {k}": read_image(held[k]).data.astype(np.float32)[: a07.shape[0], : a07.shape[1]]
                for k in (2, 3)}
    textures["cytoplasm, seed + 1"] = cytoplasm(a07, np.random.default_rng([args.seed + 1, 7]))
    for surface, levels in check_surfaces(a07.shape, near_optics(model).n_levels).items():
        for texture, second in textures.items():
            print(f"check: {surface}, {texture}:", flush=True)
            figures, _, _ = measure(model, a07, second, camera, args.seed + 1, levels)
            check[f"{surface} / {texture}"] = round(figures["GFP"]["share_of_ceiling"], 4)
    # crops of the floor's specimen: rows start .. start + 469 of a07 and of held-out texture 1 or 2, tilted along x
    # over 0-20 um, another noise seed (added at stop 37, after the fill's robustness passes were chosen on them)
    crops = {}
    for start in (0, 25, 50):
        for k in (1, 2):
            field = read_image(held[k]).data.astype(np.float32)[start:start + 470, : a07.shape[1]]
            levels = depth_surfaces(field.shape, near_optics(model).n_levels)["tilted along x"]
            print(f"crop: rows {start}+470, other field {k}:", flush=True)
            figures, _, _ = measure(model, a07[start:start + 470], field, camera, args.seed + 2, levels)
            crops[f"rows {start}-{start + 469} / other field {k}"] = round(figures["GFP"]["share_of_ceiling"], 4)
    report = {"command": "python benchmarks/bench_channels.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "model": args.model or "bundled", "depth_range_um": [0, near_optics(model).depths_um[-1]],
              "specimens": rows, "map_channel": map_channel, "timings_s": timings,
              "surfaces": surfaces, "surfaces_gfp_share": {"mean": round(float(np.mean(shares)), 4),
                                                           "worst": round(float(np.min(shares)), 4)},
              "check": {"specimens": check, "gfp_share": {"mean": round(float(np.mean(list(check.values()))), 4),
                                                          "worst": round(float(min(check.values())), 4)},
                        "about": "second stain's share on specimens not used while choosing the other channels' "
                                 "depth fill (awdvd.restore.channels.depth_everywhere): other surfaces, two other "
                                 "held-out BBBC039 textures, another noise and cytoplasm seed"},
              "crops": {"specimens": crops, "gfp_share": {"mean": round(float(np.mean(list(crops.values()))), 4),
                                                          "worst": round(float(min(crops.values())), 4)},
                        "about": "the floor's specimen (x tilt, other field's texture) cropped to 470 rows at three "
                                 "starts, textures 1 and 2, noise seed + 2"},
              "split": "Hoechst: BBBC006 a07 (held out of the bundled model's training); GFP: a held-out BBBC039 "
                       "field's texture, or a cytoplasm around a07's own nuclei"}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1))
    print(json.dumps(report["timings_s"]), json.dumps(report["surfaces_gfp_share"]),
          json.dumps(report["check"]["gfp_share"]), json.dumps(report["crops"]["gfp_share"]))
    return 0


def depth_surfaces(shape, n_levels: int) -> dict[str, np.ndarray]:
    """{name: (H, W) int64 levels} of the specimens' depth surfaces: tilted along x (the floor's specimen) and
    along y in equal bands, a bowl (0 at the centre, the deepest level in the corners), a dome (the reverse) and
    two smooth random surfaces (Gaussian-filtered noise, sigma 120 px, seeds 3 and 4, spread over every level)."""
    from awdvd.data.synth import tilted_levels

    deepest = n_levels - 1
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    radius = np.hypot(yy - shape[0] / 2, xx - shape[1] / 2)
    bowl = (radius / radius.max()) ** 2
    surfaces = {"tilted along x": tilted_levels(shape, n_levels), "tilted along y": tilted_levels(shape, n_levels,
                                                                                                   axis=0),
                "bowl": np.round(deepest * bowl), "dome": np.round(deepest * (1 - bowl))}
    for seed in (3, 4):
        surfaces[f"random {seed}"] = np.round(deepest * random_surface(shape, seed, 120))
    return {name: np.asarray(levels, dtype=np.int64) for name, levels in surfaces.items()}


def random_surface(shape, seed: int, sigma_px: float) -> np.ndarray:
    """A smooth random surface spread over 0..1: Gaussian-filtered white noise of ``seed``, sigma ``sigma_px``."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma_px)
    return (noise - noise.min()) / np.ptp(noise)


def check_surfaces(shape, n_levels: int) -> dict[str, np.ndarray]:
    """Depth surfaces of the check set: smooth random surfaces of other seeds and scales, a saddle, a diagonal
    tilt (levels 0 to the deepest)."""
    deepest = n_levels - 1
    surfaces = {f"random {seed} (sigma {sigma} px)": deepest * random_surface(shape, seed, sigma)
                for seed, sigma in ((5, 120), (6, 160), (7, 90))}
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    u, v = 2 * xx / shape[1] - 1, 2 * yy / shape[0] - 1
    surfaces["saddle"] = deepest / 2 * (1 + u * v)
    surfaces["diagonal tilt"] = deepest * (xx / shape[1] + yy / shape[0]) / 2
    return {name: np.round(levels).astype(np.int64) for name, levels in surfaces.items()}


def cytoplasm(nuclei: np.ndarray, rng) -> np.ndarray:
    """A cytoplasmic stain around the nuclei of an in-focus field (raw ADU, offset 96): the nuclei mask (above the
    midpoint of background and the nuclei's 99th percentile) grown by 10 px, the nuclei cut out, times a smooth
    random texture, scaled to the nuclei's brightness."""
    from scipy.ndimage import binary_dilation, gaussian_filter

    background = float(np.percentile(nuclei, 5))
    mask = nuclei > background + 0.3 * (float(np.percentile(nuclei, 99)) - background)
    ring = binary_dilation(mask, iterations=10) & ~mask
    texture = gaussian_filter(rng.random(nuclei.shape), 3.0)
    texture = (texture - texture.min()) / (np.ptp(texture) + 1e-12)
    cell = gaussian_filter(ring * (0.4 + texture), 1.0)
    return (background + cell / cell.max() * (float(np.percentile(nuclei, 99)) - background)).astype(np.float32)


def two_stains(model, a07, second, camera, seed: int, levels: np.ndarray):
    """(image (2, H, W) float32 as recorded, each channel's Optics, each channel's truth) of the two-stain
    specimen of depth ``levels``: "Hoechst" (``a07``, emission 0.46 um) and "GFP" (``second``, 0.60 um), each
    blurred by Eq. 2 of its own wavelength at the same depths in um and recorded by ``camera``."""
    from awdvd.data.synth import depth_variant_blur, forward_bank
    from awdvd.learn.range_extension import near_optics
    from awdvd.physics.optics import Optics
    from awdvd.restore.image_optics import restoration_optics

    base = near_optics(model)  # the specimens span the range the model reads level by level (0-20 um)
    observed, optics, truth = [], [], []
    # the specimen's depth in um: level l of the Hoechst channel's level-equivalents; both channels at those um
    hoechst = Optics(wavelength_um=0.46, na=base.na, n=base.n, pixel_um=base.pixel_um)
    step_um = restoration_optics(hoechst, base).z_step_um
    for c, (field, wavelength) in enumerate(((a07, 0.46), (second, 0.60))):
        o = hoechst.replace(wavelength_um=wavelength)
        offset = min(96.0, float(field.min()))
        bank = forward_bank(o.replace(z_step_um=step_um, n_levels=base.n_levels))
        blurred = depth_variant_blur(field - offset, levels, bank) + offset
        observed.append(camera.record(blurred, np.random.default_rng([seed, c]), source_offset_adu=96.0))
        optics.append(o)
        truth.append(field)
    return np.stack(observed).astype(np.float32), optics, truth


def true_level_map(levels: np.ndarray, dmap, model):
    """The map of ``dmap``'s window grid holding the specimen's true ``levels`` at every window's centre (every
    window foreground), in ``dmap``'s micrometres."""
    from awdvd.restore.windows import DefocusMap

    centre = model.patch_px // 2
    true_grid = levels[dmap.ys[:, None] + centre, dmap.xs[None, :] + centre]
    true_map = DefocusMap.from_levels(true_grid, dmap.image_shape, stride=dmap.stride, patch_px=dmap.patch_px,
                                      n_levels=model.optics.n_levels)
    true_map.z_step_um = dmap.z_step_um
    return true_map


def measure(model, a07, second, camera, seed: int, levels: np.ndarray):
    """({channel: figures}, timings, the map channel's name) for one two-stain specimen of depth ``levels``."""
    from awdvd.metrics import psnr, truth_data_range
    from awdvd.restore.channels import channel_psfs, restore_channels
    from awdvd.restore.pipeline import defocus_map, restore_image

    stains = {"Hoechst": 0.46, "GFP": 0.60}
    image, optics, truth = two_stains(model, a07, second, camera, seed, levels)
    started = time.perf_counter()
    out = restore_channels(image, model, optics=optics, names=list(stains))
    total_s = time.perf_counter() - started
    map_alone = time.perf_counter()
    defocus_map(image[0], model, optics=optics[0])
    map_alone = time.perf_counter() - map_alone
    true_map = true_level_map(levels, out.dmap, model)
    rows = {}
    for c, name in enumerate(stains):
        ceiling = restore_image(image[c], model, dmap=true_map, optics=optics[c],
                                psfs=channel_psfs(optics[c], true_map)).image
        data_range = truth_data_range(truth[c])

        def to_source(x):
            return np.asarray(x, np.float64) - camera.offset_adu + 96.0

        recorded = psnr(truth[c], to_source(image[c]), data_range=data_range)
        model_map = psnr(truth[c], to_source(out.images[c]), data_range=data_range)
        true_depth = psnr(truth[c], to_source(ceiling), data_range=data_range)
        rows[name] = {"emission_um": stains[name], "psnr_recorded": recorded, "psnr_model_map": model_map,
                      "psnr_true_depth": true_depth,
                      "share_of_ceiling": (model_map - recorded) / (true_depth - recorded)}
        print(f"{name}: recorded {recorded:.2f} dB, model map {model_map:.2f}, true depth {true_depth:.2f} "
              f"({rows[name]['share_of_ceiling']:.1%} of the ceiling's gain)", flush=True)
    timings = {"restore_channels_total": round(total_s, 2), **out.timings_s, "one_map_alone": round(map_alone, 2)}
    return rows, timings, out.names[out.map_channel]


if __name__ == "__main__":
    sys.exit(main())
