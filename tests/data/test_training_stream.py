import numpy as np
import pytest

from awdvd.data.patches import BACKGROUND, image_range
from awdvd.data.training_stream import PAPER_CAMERAS, Camera, CameraRange, TrainingStream, background_rule
from awdvd.physics.optics import Optics

OPTICS = Optics(n_levels=4)


def _field(seed=0, shape=(120, 140)):
    from awdvd.data.synth import synthetic_nuclei

    return synthetic_nuclei(shape, n_nuclei=6, seed=seed)


@pytest.fixture(scope="module")
def stream():
    return TrainingStream([_field(0), _field(1)], optics=OPTICS, patch_px=32, psf_size=31, seed=3)


def test_image_range_is_the_smoothed_percentiles():
    from scipy import ndimage as ndi

    image = np.random.default_rng(0).gamma(2.0, 50.0, size=(64, 80)).astype(np.float32)
    lo, hi = image_range(image)
    smooth = ndi.gaussian_filter(image, 1.5, mode="reflect")
    assert lo == pytest.approx(np.percentile(smooth, 1.0), rel=1e-6)
    assert hi == pytest.approx(np.percentile(smooth, 99.9), rel=1e-6)
    assert image_range(np.full((20, 20), 7.0)) == (7.0, 7.0)


def test_image_range_of_a_large_image_is_close_to_the_whole(monkeypatch):
    import awdvd.data.patches as stream_module

    image = np.random.default_rng(1).gamma(2.0, 50.0, size=(300, 310)).astype(np.float32)
    whole = image_range(image)
    monkeypatch.setattr(stream_module, "_RANGE_MAX_PIXELS", 5000)  # force banding and subsampling
    sampled = image_range(image)
    assert sampled[0] == pytest.approx(whole[0], rel=0.05)
    assert sampled[1] == pytest.approx(whole[1], rel=0.05)


def test_camera_record_noiseless_is_the_affine_signal_model():
    raw = np.array([[96.0, 100.0], [196.0, 50.0]])
    camera = Camera(noiseless=True, offset_adu=10.0, pedestal_adu=5.0, intensity_scale=2.0)
    out = camera.record(raw, np.random.default_rng(0), source_offset_adu=96.0)
    np.testing.assert_allclose(out, [[15.0, 23.0], [215.0, 15.0]])


def test_camera_record_poisson_statistics():
    raw = np.full((200, 200), 96.0 + 400.0)
    camera = Camera(gain_adu_per_e=2.0, offset_adu=50.0, read_noise_adu=3.0)
    out = camera.record(raw, np.random.default_rng(0), source_offset_adu=96.0)
    assert out.mean() == pytest.approx(450.0, abs=1.0)
    assert out.var() == pytest.approx(2.0 * 400.0 + 9.0, rel=0.05)  # gain x signal + read^2


def test_camera_range_draws_inside_its_bounds():
    draw = CameraRange().draw(np.random.default_rng(0), 5000)
    assert draw["gain"].min() >= 0.15 and draw["gain"].max() <= 3.0
    assert draw["scale"].min() >= 0.25 and draw["scale"].max() <= 3.0
    assert 0.05 < draw["noiseless"].mean() < 0.15
    assert 0.3 < np.mean(draw["pedestal"] > 0) < 0.4
    with pytest.raises(ValueError, match="low <= high"):
        CameraRange(gain_adu_per_e=(2.0, 1.0))
    assert CameraRange.from_dict(CameraRange().to_dict()) == CameraRange()


def test_paper_cameras_lie_in_the_training_range():
    r = CameraRange()
    for name, camera in PAPER_CAMERAS.items():
        if camera.noiseless:
            continue
        assert r.gain_adu_per_e[0] <= camera.gain_adu_per_e <= r.gain_adu_per_e[1], name
        assert r.intensity_scale[0] <= camera.intensity_scale <= r.intensity_scale[1], name
        assert r.pedestal_adu[0] <= camera.pedestal_adu <= r.pedestal_adu[1], name
        assert r.read_noise_adu[0] <= camera.read_noise_adu <= r.read_noise_adu[1], name
        assert r.outside(camera) == [], name


def test_unseen_cameras_lie_outside_the_training_range():
    from awdvd.data.training_stream import UNSEEN_CAMERAS, Camera

    r = CameraRange()
    assert r.outside(UNSEEN_CAMERAS["offset1000-read12"]) == ["offset_adu", "read_noise_adu"]
    assert r.outside(UNSEEN_CAMERAS["gain8-dim"]) == ["gain_adu_per_e"]
    assert r.outside(UNSEEN_CAMERAS["bright-x6"]) == ["intensity_scale"]
    assert r.outside(Camera(pedestal_adu=200.0)) == ["pedestal_adu"]
    assert r.outside(Camera(noiseless=True)) == [] and CameraRange(noiseless_probability=0).outside(
        Camera(noiseless=True)) == ["noiseless"]


def test_stream_batches_are_normalised_labelled_and_reproducible(stream):
    x, labels = stream.batch(64)
    assert x.shape == (64, 1, 32, 32) and x.dtype == np.float32
    assert set(np.unique(labels)) <= set(range(4)) | {BACKGROUND}
    assert np.isfinite(x).all()
    again = TrainingStream([_field(0), _field(1)], optics=OPTICS, patch_px=32, psf_size=31, seed=3)
    x2, labels2 = again.batch(64)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(labels, labels2)


def test_stream_levels_are_balanced_and_noise_is_fresh(stream):
    _, labels = stream.batch(4000)
    counts = np.array([np.sum(labels == level) for level in range(4)] + [np.sum(labels == BACKGROUND)])
    assert counts.sum() == 4000
    assert counts[:4].min() > 0.5 * counts[:4].max()  # levels drawn uniformly (bg takes a share of each)
    a, _ = stream.batch(8)
    b, _ = stream.batch(8)
    assert not np.array_equal(a, b)


def test_window_normalisation_uses_the_image_range():
    """A noiseless window equals the source window normalised by the blurred image's range."""
    field = _field(2)
    s = TrainingStream([field], optics=Optics(n_levels=1), cameras=Camera(noiseless=True, offset_adu=0.0,
                       gain_adu_per_e=1.0), patch_px=32, psf_size=31, seed=0, dihedral=False)
    raw = field[None, 10:42, 20:52]
    lo, hi = image_range(field)
    cam = {"gain": np.ones(1), "scale": np.ones(1), "offset": np.zeros(1), "pedestal": np.zeros(1),
           "read": np.zeros(1), "noiseless": np.ones(1, bool)}
    x, _ = s.record(raw, np.zeros(1, int), np.array([lo]), np.array([hi]), cam)
    expected = (np.clip(raw - 96.0, 0, None) - max(lo - 96.0, 0)) / (hi - lo)
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-6)


def test_constant_and_faint_windows_are_background():
    assert background_rule(100.0, 99.0, 1.0, bg_sigmas=4.0)
    assert not background_rule(110.0, 99.0, 1.0, bg_sigmas=4.0)
    flat = np.full((80, 80), 96.0 + 40.0, np.float32)
    s = TrainingStream([flat], optics=OPTICS, patch_px=32, psf_size=31, seed=0)
    _, labels = s.batch(50)
    assert np.all(labels == BACKGROUND)


def test_stream_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one source"):
        TrainingStream([], optics=OPTICS)
    with pytest.raises(ValueError, match="at least"):
        TrainingStream([np.zeros((10, 10))], optics=OPTICS, patch_px=32)
    with pytest.raises(ValueError, match="source_weights"):
        TrainingStream([_field(0)], optics=OPTICS, patch_px=32, psf_size=31, source_weights=[0.0])
