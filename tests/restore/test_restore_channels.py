"""One map per field, every channel restored with its own emission PSFs (awdvd.restore.channels)."""

import dataclasses

import numpy as np
import pytest

from awdvd.data.synth import synthetic_nuclei
from awdvd.physics.optics import Optics
from awdvd.physics.psf import defocus_psf, psf_bank
from awdvd.restore import pipeline
from awdvd.restore.channels import channel_psfs, choose_channel, choose_channels, depth_everywhere, restore_channels
from awdvd.restore.image_optics import restoration_optics
from awdvd.restore.windows import DefocusMap

BLUE = Optics(wavelength_um=0.46, na=0.5, n=1.0, pixel_um=0.65)
RED = BLUE.replace(wavelength_um=0.60)


@pytest.fixture(scope="module")
def bundled_model():
    from awdvd.learn.model_files import load_model

    return load_model()


def test_the_map_channel_defaults_to_a_nuclear_stain_and_is_checked():
    assert choose_channel(["GFP", "mCherry"]) == 0
    assert choose_channel(["GFP", "DAPI"]) == 1 and choose_channel(["Alexa 488", "Hoechst 33342"]) == 1
    assert choose_channel(["GFP", "DAPI"], "gfp") == 0 and choose_channel(["GFP", "DAPI"], "1") == 1
    with pytest.raises(ValueError, match="no channel is named 'Cy5'; the image's channels are GFP, DAPI"):
        choose_channel(["GFP", "DAPI"], "Cy5")
    with pytest.raises(ValueError, match="channel 2 does not exist: the image has 2 channels"):
        choose_channel(["GFP", "DAPI"], 2)
    assert choose_channels(["a", "b", "c"]) == [0, 1, 2]
    assert choose_channels(["a", "b", "c"], "c,a") == [2, 0] and choose_channels(["a", "b"], [1]) == [1]


def test_channel_psfs_keep_the_maps_depths_in_micrometres(bundled_model):
    dmap = pipeline.defocus_map(synthetic_nuclei((128, 128), seed=3), bundled_model, optics=BLUE)
    blue = channel_psfs(BLUE, dmap, size=41)
    # the map channel's own PSFs are the pipeline's
    assert np.allclose(blue, psf_bank(restoration_optics(BLUE, bundled_model.optics), size=41))
    red = channel_psfs(RED, dmap, size=41)
    # the red channel's PSF of level l is its own wavelength's at the map's depth l * z_step_um (um), not at
    # the blue channel's level-equivalent (which would be 0.60 / 0.46 times deeper)
    for level in (0, 3, 9):
        expected = defocus_psf(level * dmap.z_step_um, optics=RED, size=41)
        assert np.allclose(red[level], expected)
    assert not np.allclose(red[3], blue[3], atol=1e-4)


def test_every_channel_is_restored_from_one_map(bundled_model, monkeypatch):
    field = np.stack([synthetic_nuclei((130, 140), seed=s) for s in (1, 2)])
    calls = []
    real = pipeline.defocus_map

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr("awdvd.restore.channels.defocus_map", counted)
    out = restore_channels(field, bundled_model, optics=[BLUE, RED], names=["GFP", "Hoechst"], iterations=3)
    assert len(calls) == 1 and out.map_channel == 1 and out.names == ["GFP", "Hoechst"]
    assert out.images.shape == (2, 130, 140) and out.images.dtype == np.float32
    for c, optics in enumerate((BLUE, RED)):  # the map channel from the map, the other with a depth everywhere
        dmap = out.dmap if c == out.map_channel else depth_everywhere(out.dmap, field[out.map_channel])
        alone = pipeline.restore_image(field[c], bundled_model, iterations=3, dmap=dmap,
                                       psfs=channel_psfs(optics, out.dmap))
        assert np.allclose(out.images[c], alone.image)
    one = restore_channels(field, bundled_model, optics=[BLUE, RED], names=["GFP", "Hoechst"], channels="GFP",
                           iterations=3)
    assert one.images.shape == (1, 130, 140) and one.channels == [0] and np.allclose(one.images[0], out.images[0])
    with pytest.raises(ValueError, match="3 optics for 2 channels"):
        restore_channels(field, bundled_model, optics=[BLUE] * 3)
    given = restore_channels(field, bundled_model, optics=[BLUE, RED], names=["GFP", "Hoechst"], iterations=3,
                             dmap=out.dmap)  # a map made elsewhere (a time-lapse's, combined over frames)
    assert len(calls) == 2 and np.array_equal(given.images, out.images)  # no map made for it (2: "one" above)
    with pytest.raises(ValueError, match="the defocus map is of a 130 x 140 image; the channels are 130 x 120"):
        restore_channels(field[:, :, :120], bundled_model, optics=[BLUE, RED], dmap=out.dmap)


def test_other_channels_get_a_depth_in_every_window():
    levels = np.array([[2, 2, -1, -1, -1], [2, 3, -1, -1, 8], [-1, -1, -1, -1, -1]])
    dmap = DefocusMap.from_levels(levels, (168, 252), stride=42, patch_px=84, n_levels=10)
    full = depth_everywhere(dmap)
    assert (full.levels >= 0).all() and (full.levels <= 9).all() and np.allclose(full.proba.sum(-1), 1)
    assert np.all(full.proba[..., list(full.class_levels).index(-1)] == 0)  # no background share left
    assert full.levels[0, 0] == 2
    empty = DefocusMap.from_levels(np.full((2, 2), -1), (126, 126), stride=42, patch_px=84, n_levels=10)
    assert depth_everywhere(empty) is empty


def test_other_channels_depth_follows_a_curved_surface_under_background_windows():
    # a bowl of levels over a 12 x 16 window grid; a third of the windows background, one foreground window
    # read two levels off with split probabilities (weighs less): the surface's levels come back everywhere
    jj, ii = np.mgrid[:12, :16]
    truth = np.round(9 * ((jj - 5.5) ** 2 + (ii - 7.5) ** 2) / (5.5 ** 2 + 7.5 ** 2)).astype(np.int64)
    read = np.where(np.random.default_rng(0).random(truth.shape) < 0.33, -1, truth)
    read[6, 8] = truth[6, 8] + 2
    dmap = DefocusMap.from_levels(read, (12 * 42 + 42, 16 * 42 + 42), stride=42, patch_px=84, n_levels=10)
    proba = np.asarray(dmap.proba, np.float64).copy()
    column = {int(level): k for k, level in enumerate(dmap.class_levels)}
    proba[6, 8] = 0
    proba[6, 8, column[int(read[6, 8])]], proba[6, 8, column[int(truth[6, 8])]] = 0.5, 0.5
    dmap = dataclasses.replace(dmap, proba=proba.astype(np.float32))
    full = depth_everywhere(dmap)
    assert np.mean(np.abs(full.levels - truth) <= 1) == 1.0
    assert np.mean(full.levels == truth) >= 0.8
    assert abs(int(full.levels[6, 8]) - int(truth[6, 8])) <= 1
    background = read < 0
    assert np.mean(full.levels[background] == truth[background]) >= 0.8


def test_a_confident_reading_far_off_the_surface_weighs_less(monkeypatch):
    # a tilt (one level every two window columns) with a hole of background windows; one confident reading in the
    # hole's centre says level 9 where the tilt is at 3: the robustness passes halve how far it pulls the surface
    # (the largest change of the expected level from the surface without it)
    from awdvd.restore import channels

    def expected(dmap):
        classes = np.asarray(dmap.class_levels)
        return (np.asarray(dmap.proba, np.float64) * np.where(classes >= 0, classes, 0)).sum(-1)

    truth = np.broadcast_to(np.arange(12) // 2, (8, 12)).astype(np.int64)
    read = truth.copy()
    read[3:6, 5:8] = -1
    wrong = read.copy()
    wrong[4, 6] = 9
    pull = {}
    for passes in (0, channels.ROBUST_PASSES):
        monkeypatch.setattr(channels, "ROBUST_PASSES", passes)
        clean, pulled = (expected(depth_everywhere(DefocusMap.from_levels(levels, (378, 546), stride=42, patch_px=84,
                                                                          n_levels=10))) for levels in (read, wrong))
        pull[passes] = float(np.abs(pulled - clean).max())
    assert pull[0] > 1.0 and pull[channels.ROBUST_PASSES] < 0.6 * pull[0]


def test_a_window_reading_sits_where_its_signal_is():
    # a bright spot 6 px inside each window's right edge (84 px windows every 42 px: a window also holds its left
    # neighbour's spot, so their centroid is 16.5 px right of its centre; the first holds one, 37.5 px right);
    # levels rise by one per window: given the image, the readings sit right of the centres, so the surface at
    # the centres is lower by about their offset
    from awdvd.restore.channels import _local_quadratic, _signal_offsets

    image = np.zeros((84, 84 + 42 * 5))
    xs = 42 * np.arange(6) + 78
    image[40:44, xs[:, None] + np.arange(3)] = 100.0
    dmap = DefocusMap.from_levels(np.arange(6)[None, :], image.shape, stride=42, patch_px=84, n_levels=10)
    dy, dx = _signal_offsets(image, dmap)
    assert np.allclose(dy, 0.0) and np.allclose(dx, [[37.5 / 42] + [16.5 / 42] * 5])
    values, weight = np.arange(6.0)[None, :], np.ones((1, 6))
    assert np.allclose(_local_quadratic(values, weight, 2.0), values, atol=0.02)
    shifted = _local_quadratic(values, weight, 2.0, (dy, dx))
    assert np.all((values - shifted)[0, 2:5] > 0.3)
    assert np.allclose(shifted[0, 2:5], values[0, 2:5] - 16.5 / 42, atol=0.1)
