"""Make docs/channels-depth.png: the depth the other channels of a field get from the map channel's map.

A two-stain specimen of the benchmark (benchmarks/bench_channels.py) whose depth is a bowl: Hoechst = BBBC006
a07 (held out of the bundled model's training), GFP = a held-out BBBC039 field's texture (shining mostly where
the nuclei are not), each blurred with its own emission's PSFs and recorded by BBBC006's camera. Panels: the two
recorded channels; the map made once from Hoechst by the bundled model (blank: windows without nuclei); the depth
every window of GFP is restored with (``awdvd.restore.channels.depth_everywhere``); the true depth.

    .venv/bin/python docs/make_channels_figure.py [docs/channels-depth.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def main(output: Path) -> int:
    sys.path.insert(0, str(BENCHMARKS))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from bench_channels import depth_surfaces
    from train_bundled_model import SHARED, split_bbbc039

    from awdvd.data.synth import depth_variant_blur, forward_bank
    from awdvd.data.training_stream import PAPER_CAMERAS
    from awdvd.io import read_image
    from awdvd.learn.model_files import load_model
    from awdvd.learn.range_extension import near_optics
    from awdvd.physics.optics import Optics
    from awdvd.restore.channels import depth_everywhere
    from awdvd.restore.image_optics import restoration_optics
    from awdvd.restore.pipeline import defocus_map

    if not SHARED.is_dir():
        print(f"the shared data are not at {SHARED}", file=sys.stderr)
        return 1
    model = load_model()
    camera = PAPER_CAMERAS["bbbc006"]
    a07 = read_image(next((SHARED / "bbbc006" / "in_focus").glob("*__a07__*.png"))).data.astype(np.float32)
    _, held = split_bbbc039(list((SHARED / "bbbc039" / "in_focus").glob("*.tif")))
    other = read_image(held[1]).data.astype(np.float32)[: a07.shape[0], : a07.shape[1]]
    base = near_optics(model)  # the bowl spans the range the model reads level by level (0-20 um)
    levels = depth_surfaces(a07.shape, base.n_levels)["bowl"]
    hoechst = Optics(wavelength_um=0.46, na=base.na, n=base.n, pixel_um=base.pixel_um)
    step_um = restoration_optics(hoechst, base).z_step_um
    recorded = []
    for c, (field, wavelength) in enumerate(((a07, 0.46), (other, 0.60))):
        bank = forward_bank(hoechst.replace(wavelength_um=wavelength, z_step_um=step_um, n_levels=base.n_levels))
        offset = min(96.0, float(field.min()))
        blurred = depth_variant_blur(field - offset, levels, bank) + offset
        recorded.append(camera.record(blurred, np.random.default_rng([0, c]), source_offset_adu=96.0))
    dmap = defocus_map(recorded[0], model, optics=hoechst)
    everywhere = depth_everywhere(dmap, recorded[0])
    centre = dmap.patch_px // 2
    truth = levels[dmap.ys[:, None] + centre, dmap.xs[None, :] + centre]
    read = np.where(dmap.levels >= 0, dmap.levels, np.nan)
    extent = (dmap.xs[0], dmap.xs[-1] + dmap.stride, dmap.ys[-1] + dmap.stride, dmap.ys[0])
    figure, axes = plt.subplots(1, 5, figsize=(17, 3.4), constrained_layout=True)
    for ax, image, title in zip(axes[:2], recorded, ("Hoechst, recorded (map channel)", "GFP, recorded")):
        ax.imshow(image, cmap="gray", vmin=np.percentile(image, 1), vmax=np.percentile(image, 99.5))
        ax.set_title(title, fontsize=10)
    panels = ((read, "map from Hoechst (blank: no nuclei)"), (everywhere.levels, "depth GFP is restored with"),
              (truth, "true depth"))
    step = float(dmap.z_step_um)
    for ax, (grid, title) in zip(axes[2:], panels):
        shown = ax.imshow(grid * step, cmap="viridis", vmin=0, vmax=(base.n_levels - 1) * step, extent=extent,
                          interpolation="nearest")
        ax.set_title(title, fontsize=10)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    figure.colorbar(shown, ax=axes[2:], label="depth (um)", shrink=0.9)
    figure.savefig(output, dpi=80)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "channels-depth.png"))
