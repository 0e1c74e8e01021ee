import json

import numpy as np
import pytest

from awdvd import defocus_psf
from awdvd.data.patches import BACKGROUND, is_background
from awdvd.data.synth import (
    CameraNoise,
    DatasetSpec,
    blur,
    blur_levels,
    depth_variant_blur,
    estimate_camera_noise,
    forward_bank,
    make_patch_dataset,
    split_counts,
    synthetic_nuclei,
    tilted_levels,
)


def delta(size):
    psf = np.zeros((size, size))
    psf[size // 2, size // 2] = 1
    return psf


def test_delta_psf_is_identity(nuclei_image):
    np.testing.assert_allclose(blur(nuclei_image, delta(7)), nuclei_image, rtol=1e-6)


@pytest.mark.parametrize("shape", [(40, 57), (33, 33)])
def test_flux_conserved(shape):
    image = np.random.default_rng(0).uniform(0, 100, shape)
    out = blur_levels(image, forward_bank(size=25))
    np.testing.assert_allclose(out.sum(axis=(1, 2)), image.sum(), rtol=2e-6)


def test_flux_conserved_when_psf_is_wider_than_the_image():
    image = np.random.default_rng(1).uniform(0, 10, (9, 12))
    assert blur(image, defocus_psf(10.0, size=31)).sum() == pytest.approx(image.sum(), rel=1e-5)


def test_blur_matches_scipy_reflect_convolution():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(2)
    image, psf = rng.uniform(0, 1, (30, 41)), defocus_psf(6.0, size=13)
    expected = ndi.convolve(image, psf, mode="reflect")  # half-sample symmetric, like ours
    np.testing.assert_allclose(blur(image, psf), expected, rtol=1e-5, atol=1e-6)


def test_shift_is_not_introduced_by_odd_shapes():
    image = np.zeros((31, 45))
    image[15, 22] = 1.0
    out = blur(image, defocus_psf(4.0, size=15))
    yy, xx = np.mgrid[:31, :45]
    assert (out * yy).sum() / out.sum() == pytest.approx(15, abs=1e-5)
    assert (out * xx).sum() / out.sum() == pytest.approx(22, abs=1e-5)


def test_depth_variant_blur_is_the_sum_of_masked_blurs(nuclei_image):
    bank = forward_bank(size=15)
    levels = tilted_levels(nuclei_image.shape, 11)
    out = depth_variant_blur(nuclei_image, levels, bank)
    expected = sum(blur(nuclei_image * (levels == l), bank[l]) for l in range(11))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-3)
    assert out.sum() == pytest.approx(nuclei_image.sum(), rel=1e-5)
    uniform = depth_variant_blur(nuclei_image, np.full(nuclei_image.shape, 3, np.int16), bank)
    np.testing.assert_allclose(uniform, blur(nuclei_image, bank[3]), rtol=1e-5, atol=1e-3)


def test_depth_variant_blur_bad_levels(nuclei_image):
    bank = forward_bank(size=9)
    with pytest.raises(ValueError, match="0..10"):
        depth_variant_blur(nuclei_image, np.full(nuclei_image.shape, 11), bank)
    with pytest.raises(ValueError, match="must match"):
        depth_variant_blur(nuclei_image, np.zeros((3, 3), int), bank)
    with pytest.raises(TypeError, match="levels must be integers"):
        depth_variant_blur(nuclei_image, np.zeros(nuclei_image.shape), bank)


def test_forward_bank_level0_is_delta():
    bank = forward_bank(size=21)
    np.testing.assert_array_equal(bank[0], delta(21))
    np.testing.assert_allclose(bank[5], defocus_psf(10.0, size=21))


@pytest.mark.parametrize("bad, error, message", [(np.full((20, 20), np.nan), ValueError, "contains NaN or infinite"),
                                                (np.zeros((4, 20, 20)), ValueError, "must be 2-D"),
                                                (np.array(["a"]), TypeError, "must be a numeric array")])
def test_blur_rejects_bad_images(bad, error, message):
    with pytest.raises(error, match=message):
        blur(bad, delta(3))


def test_blur_rejects_even_psf(nuclei_image):
    with pytest.raises(ValueError, match="odd"):
        blur(nuclei_image, np.ones((4, 4)))


def test_camera_noise_statistics():
    noise = CameraNoise(gain_adu_per_e=0.5, offset_adu=100.0)
    expected = np.full((400, 400), 300.0)
    out = noise.apply(expected, np.random.default_rng(0))
    assert out.dtype == np.float32
    assert out.mean() == pytest.approx(300.0, abs=0.2)
    assert out.var() == pytest.approx(0.5 * 200.0, rel=0.02)  # gain * (mean - offset)


def test_camera_noise_is_seeded():
    noise, image = CameraNoise(), np.full((20, 20), 500.0)
    a = noise.apply(image, np.random.default_rng(5))
    np.testing.assert_array_equal(a, noise.apply(image, np.random.default_rng(5)))
    assert not np.array_equal(a, noise.apply(image, np.random.default_rng(6)))


def test_estimate_camera_noise_recovers_gain_and_offset():
    rng = np.random.default_rng(0)
    truth = CameraNoise(gain_adu_per_e=0.4, offset_adu=90.0)
    yy, xx = np.mgrid[:256, :256]
    smooth = 120 + 600 * np.exp(-((yy - 128) ** 2 + (xx - 128) ** 2) / (2 * 60.0**2))
    images = [truth.apply(smooth, rng) for _ in range(3)]
    fit = estimate_camera_noise(images)
    assert fit.gain_adu_per_e == pytest.approx(0.4, rel=0.1)
    assert fit.offset_adu == pytest.approx(90.0, abs=10)


def test_camera_noise_validation():
    with pytest.raises(ValueError, match="gain_adu_per_e must be positive"):
        CameraNoise(gain_adu_per_e=0)
    with pytest.raises(ValueError, match="offset_adu and read_noise_adu must be >= 0"):
        CameraNoise(offset_adu=-1)
    with pytest.raises(ValueError, match="must be a finite number"):
        CameraNoise(read_noise_adu=float("nan"))
    assert CameraNoise.from_dict(CameraNoise(gain_adu_per_e=2.0).to_dict()) == CameraNoise(gain_adu_per_e=2.0)
    with pytest.raises(ValueError, match=r"unknown CameraNoise field\(s\) \['qe'\]"):
        CameraNoise.from_dict({"gain_adu_per_e": 1.0, "qe": 0.8})


@pytest.mark.parametrize("n,expected", [(66, (49, 10, 7)), (6, (4, 1, 1)), (3, (1, 1, 1)), (1, (1, 0, 0))])
def test_split_counts(n, expected):
    counts = split_counts(n, (0.75, 0.15, 0.10))
    assert sum(counts) == n and counts == expected


@pytest.fixture(scope="module")
def sources():
    return [synthetic_nuclei((120, 150), n_nuclei=6, seed=s) for s in range(4)]


def make(sources, **spec):
    return make_patch_dataset(sources, spec=DatasetSpec(psf_size=21, crops_per_image=5, **spec))


def test_dataset_counts_and_labels(sources):
    splits, meta = make(sources)
    n_images = 4 * 11
    assert sum(meta["n_synthetic_images"].values()) == n_images
    assert meta["n_synthetic_images"] == dict(zip(("train", "val", "test"), split_counts(n_images, (0.75, 0.15, 0.10))))
    assert sum(len(s) for s in splits.values()) == n_images * 5
    for name, part in splits.items():
        assert part.raw.shape[1:] == (84, 84) and part.raw.dtype == np.float32
        assert set(np.unique(part.level)) <= set(range(11))
        np.testing.assert_array_equal(part.labels, np.where(part.background, BACKGROUND, part.level))
        np.testing.assert_array_equal(part.background, is_background(part.raw))
        assert sum(part.class_counts(11).values()) == len(part)
        assert meta["counts"][name] == part.class_counts(11)
        x = part.normalized()
        assert x.min() >= 0 and x.max() <= 1
        for i in range(len(part)):  # the truth is the source crop at the recorded place
            y, xx = part.yx[i]
            np.testing.assert_array_equal(part.truth[i], sources[part.source[i]][y : y + 84, xx : xx + 84])


def test_level0_is_the_unchanged_source(sources):
    splits, _ = make(sources)
    for part in splits.values():
        for i in np.nonzero(part.level == 0)[0]:
            np.testing.assert_array_equal(part.raw[i], part.truth[i])


def test_synthetic_images_never_span_splits(sources):
    splits, _ = make(sources)
    ids = [set(part.image.tolist()) for part in splits.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


def test_strict_split_by_source(sources):
    splits, meta = make(sources, split_by="source")
    owners = [set(part.source.tolist()) for part in splits.values()]
    assert not (owners[0] & owners[1] or owners[0] & owners[2] or owners[1] & owners[2])
    assert meta["spec"]["split_by"] == "source"


def test_realizations_add_independent_images(sources):
    one, meta_one = make(sources)
    three, meta = make(sources, realizations=3)
    assert sum(meta["n_synthetic_images"].values()) == 4 * 11 * 3
    assert sum(len(s) for s in three.values()) == 4 * 11 * 3 * 5
    ids = [set(part.image.tolist()) for part in three.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set.union(*ids) == set(range(4 * 11 * 3))
    # realizations of one (source, level > 0) differ in their noise and crops
    pooled = {k: np.concatenate([p.raw for p in three.values()]) for k in ("raw",)}
    image = np.concatenate([p.image for p in three.values()])
    first, second = pooled["raw"][image == 3 * 5][0], pooled["raw"][image == 3 * 5 + 1][0]
    assert not np.array_equal(first, second)
    # realization 0 is the dataset made with one realization, so old datasets stay reproducible
    old = {int(i): r for p in one.values() for i, r in zip(p.image, p.raw)}
    new = {int(i): r for p in three.values() for i, r in zip(p.image, p.raw)}
    for source in range(4):
        for level in range(11):
            np.testing.assert_array_equal(old[source * 11 + level], new[(source * 11 + level) * 3])


def test_dataset_is_deterministic(sources):
    a, meta_a = make(sources, seed=7)
    b, meta_b = make(sources, seed=7)
    c, _ = make(sources, seed=8)
    for name in a:
        np.testing.assert_array_equal(a[name].raw, b[name].raw)
        np.testing.assert_array_equal(a[name].yx, b[name].yx)
    assert meta_a == meta_b
    assert not np.array_equal(a["train"].raw, c["train"].raw)


def test_background_patches_appear_on_sparse_fields():
    empty = [synthetic_nuclei((200, 200), n_nuclei=1, seed=s) for s in range(2)]
    splits, meta = make(empty)
    assert sum(meta["counts"][s]["bg"] for s in meta["counts"]) > 0


@pytest.mark.parametrize(
    "bad,match",
    [([], "no source"), ([np.zeros((50, 50))], "at least"), ([np.full((100, 100), 5.0)], "constant"),
     ([np.zeros((3, 100, 100))], "2-D"), ([np.full((100, 100), np.nan)], "NaN")],
)
def test_dataset_rejects_bad_sources(bad, match):
    with pytest.raises(ValueError, match=match):
        make_patch_dataset(bad, spec=DatasetSpec(psf_size=9))


def test_spec_validation():
    with pytest.raises(ValueError, match="three non-negative numbers summing to 1"):
        DatasetSpec(fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="split_by must be 'image' or 'source'"):
        DatasetSpec(split_by="well")
    assert DatasetSpec.from_dict(DatasetSpec(seed=3).to_dict()) == DatasetSpec(seed=3)
    data = json.loads(DatasetSpec(fractions=(0.5, 0.25, 0.25)).to_json())
    assert data["fractions"] == [0.5, 0.25, 0.25] and DatasetSpec.from_dict(data).fractions == (0.5, 0.25, 0.25)
    with pytest.raises(ValueError, match="unknown DatasetSpec field"):
        DatasetSpec.from_dict({"patch_size": 84})


def test_tilted_levels_cover_every_level():
    levels = tilted_levels((10, 95), 11)
    assert levels[0, 0] == 0 and levels[0, -1] == 10
    assert set(np.unique(levels)) == set(range(11))
    assert np.all(np.diff(levels[0].astype(int)) >= 0)


def test_synthetic_nuclei_is_seeded_and_plausible():
    a, b = synthetic_nuclei((100, 120), seed=1), synthetic_nuclei((100, 120), seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 125 - 1e-3 and a.max() > 400
