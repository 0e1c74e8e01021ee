"""The patch vocabulary: normalisation, the background rule, PatchSet and its fingerprint."""

import numpy as np
import pytest

from awdvd.data.patches import BACKGROUND, SPLITS, PatchSet, fingerprint, is_background, normalize_patches


def _patchset(n: int, p: int = 8, *, seed: int = 0) -> PatchSet:
    rng = np.random.default_rng(seed)
    raw = rng.uniform(100, 400, (n, p, p)).astype(np.float32)
    return PatchSet(raw=raw, truth=raw * 0.5, level=(np.arange(n) % 3).astype(np.int16),
                    background=np.arange(n) % 4 == 0, source=np.zeros(n, np.int32),
                    image=np.arange(n, dtype=np.int32), yx=np.zeros((n, 2), np.int32))


def test_normalize_patches():
    x = np.stack([np.arange(16.0).reshape(4, 4), np.full((4, 4), 7.0)])
    out = normalize_patches(x)
    assert out.dtype == np.float32 and out[0].min() == 0 and out[0].max() == 1
    np.testing.assert_array_equal(out[1], 0)  # a constant patch is all zeros, not NaN


def test_background_rule():
    flat = np.full((84, 84), 120.0)
    flat[0, 0] = 149.0  # range 29 < 30
    busy = flat.copy()
    busy[1, 1] = 151.0  # range 31
    bright = np.full((84, 84), 231.0)  # flat but max >= 230
    np.testing.assert_array_equal(is_background(np.stack([flat, busy, bright])), [True, False, False])
    assert is_background(busy[None], range_below=40)[0]


def test_labels_counts_and_normalised_input():
    patches = _patchset(8)
    np.testing.assert_array_equal(patches.labels, [BACKGROUND, 1, 2, 0, BACKGROUND, 2, 0, 1])
    assert patches.labels.dtype == np.int64
    assert patches.class_counts(3) == {"0": 2, "1": 2, "2": 2, "bg": 2}
    np.testing.assert_array_equal(patches.normalized(), normalize_patches(patches.raw))


def test_subset_and_concatenate():
    patches = _patchset(6)
    part = patches.subset(np.array([4, 1]))
    assert len(part) == 2
    np.testing.assert_array_equal(part.raw, patches.raw[[4, 1]])
    np.testing.assert_array_equal(part.image, [4, 1])
    np.testing.assert_array_equal(patches.subset(patches.level == 0).image, [0, 3])
    joined = PatchSet.concatenate([patches.subset(slice(0, 2)), patches.subset(slice(2, 6))], 8)
    for name in ("raw", "truth", "level", "background", "source", "image", "yx"):
        np.testing.assert_array_equal(getattr(joined, name), getattr(patches, name))
    empty = PatchSet.concatenate([], 8)
    assert len(empty) == 0 and empty.raw.shape == (0, 8, 8) and empty.level.dtype == np.int16


def test_fingerprint_sees_data_levels_and_background():
    a = _patchset(5)
    assert fingerprint(a) == fingerprint(_patchset(5)) and len(fingerprint(a)) == 20
    assert fingerprint(a) != fingerprint(_patchset(5, seed=1))
    relabelled = a.subset(slice(None))
    relabelled.level = (relabelled.level + 1).astype(np.int16)
    assert fingerprint(relabelled) != fingerprint(a)
    flipped = a.subset(slice(None))
    flipped.background = ~flipped.background
    assert fingerprint(flipped) != fingerprint(a)
    assert fingerprint(a, a) != fingerprint(a)  # two splits hash as their concatenation, not one of them


def test_the_vocabulary_has_one_home():
    """The patch vocabulary lives in awdvd.data.patches alone (synth defined it once and re-exported it after)."""
    from awdvd.data import synth

    for name in ("BACKGROUND", "SPLITS", "PatchSet", "normalize_patches", "is_background"):
        assert name not in synth.__all__
    assert SPLITS == ("train", "val", "test") and BACKGROUND == -1


def test_patches_module_is_light():
    import subprocess
    import sys

    code = "import sys, awdvd.data.patches; sys.exit(int(any(m in sys.modules for m in ('torch', 'scipy', 'matplotlib'))))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("index", [np.array([0, 0, 2]), slice(1, None, 2)])
def test_subset_keeps_every_field_aligned(index):
    patches = _patchset(5)
    part = patches.subset(index)
    np.testing.assert_array_equal(part.raw, patches.raw[index])
    np.testing.assert_array_equal(part.yx, patches.yx[index])
    np.testing.assert_array_equal(part.labels, patches.labels[index])
