"""Training on the stream: a smoke run, checkpoint and resume, the file outputs and the CLI."""

import numpy as np
import pytest

from awdvd.data.synth import synthetic_nuclei
from awdvd.learn.train_stream import STREAM_RECIPES, StreamRecipe, ordinal_distances, train_from_stream
from awdvd.physics.optics import Optics

OPTICS = Optics(n_levels=3)
TINY = StreamRecipe(name="tiny", steps=4, batch_size=8, procedural=1, val_every=2, val_windows=16,
                    network={"widths": (4, 4, 8, 8, 8, 8, 8), "pool_at": (0, 2, 3), "padding": 0, "dropout": 0.0,
                             "head_dropout": 0.0, "bn_momentum": 0.1})


@pytest.fixture(scope="module")
def sources():
    return [synthetic_nuclei((100, 120), n_nuclei=5, seed=s) for s in (1, 2)]


def _weights(model):
    return {k: v.clone() for k, v in model.network.state_dict().items()}


def test_recipe_checks_and_round_trip():
    assert StreamRecipe.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ValueError, match="loss"):
        StreamRecipe(loss="hinge")
    with pytest.raises(ValueError, match="steps"):
        StreamRecipe(steps=0)
    assert set(STREAM_RECIPES) == {"stream", "smoke"}


def test_ordinal_distances():
    d = ordinal_distances([0, 1, 2, -1], bg_distance=3.0).numpy()
    assert d[0, 2] == 2 and d[1, 3] == 3 and d[3, 3] == 0 and d[2, 2] == 0


def test_smoke_run_gives_an_image_range_model(sources):
    model, history = train_from_stream(sources, optics=OPTICS, recipe=TINY, seed=0, threads=1)
    assert model.normalization == "image-range" and model.config.padding == 0
    assert [h["step"] for h in history] == [2, 4]
    assert model.info["training"]["kind"] == "stream" and model.info["data"]["procedural_fields"] == 1
    assert list(model.class_levels) == [0, 1, 2, -1]


def test_resume_continues_the_same_run(sources, tmp_path):
    full, _ = train_from_stream(sources, optics=OPTICS, recipe=TINY, seed=3, threads=1)
    checkpoint = tmp_path / "run.ckpt"

    def stop(entry):
        if entry["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_from_stream(sources, optics=OPTICS, recipe=TINY, seed=3, threads=1, checkpoint_path=checkpoint,
                          progress=stop)
    resumed, history = train_from_stream(sources, optics=OPTICS, recipe=TINY, seed=3, threads=1,
                                         checkpoint_path=checkpoint, resume=True)
    assert [h["step"] for h in history] == [2, 4]
    a, b = _weights(full), _weights(resumed)
    for key in a:
        assert np.allclose(a[key].numpy(), b[key].numpy(), atol=1e-6), key
    with pytest.raises(ValueError, match="different"):
        train_from_stream(sources, optics=OPTICS, recipe=TINY.replace(lr=1e-4), seed=3, threads=1,
                          checkpoint_path=checkpoint, resume=True)


def test_init_starts_from_a_trained_models_weights(sources, tmp_path):
    trained, _ = train_from_stream(sources, optics=OPTICS, recipe=TINY, seed=0, threads=1)
    frozen = TINY.replace(lr=0.0)  # AdamW with lr 0 moves no weight (its decay is scaled by lr too)
    tuned, _ = train_from_stream(sources, optics=OPTICS, recipe=frozen, seed=5, threads=1, init=trained)
    fresh, _ = train_from_stream(sources, optics=OPTICS, recipe=frozen, seed=5, threads=1)
    a, b, c = _weights(trained), _weights(tuned), _weights(fresh)
    convs = [k for k in a if k.endswith("weight") and a[k].ndim == 4]
    assert convs and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in convs)
    assert not any(np.array_equal(a[k].numpy(), c[k].numpy()) for k in convs)
    record = tuned.info["training"]["initialised_from"]
    assert record["steps"] == TINY.steps and len(record["weights_fingerprint"]) == 20
    assert fresh.info["training"]["initialised_from"] is None

    checkpoint = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        train_from_stream(sources, optics=OPTICS, recipe=TINY, seed=5, threads=1, init=trained,
                          checkpoint_path=checkpoint, progress=lambda entry: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(ValueError, match="different init"):  # resuming without the run's init
        train_from_stream(sources, optics=OPTICS, recipe=TINY, seed=5, threads=1, checkpoint_path=checkpoint,
                          resume=True)
    with pytest.raises(ValueError, match="optics"):
        train_from_stream(sources, optics=Optics(na=0.4, n_levels=3), recipe=TINY, threads=1, init=trained)
    with pytest.raises(ValueError, match="extended, not cut"):
        train_from_stream(sources, optics=Optics(n_levels=2), recipe=TINY, threads=1, init=trained)
    wider = TINY.replace(network={**TINY.network, "widths": (8, 4, 8, 8, 8, 8, 8)})
    with pytest.raises(ValueError, match="init model is a delpnet"):
        train_from_stream(sources, optics=OPTICS, recipe=wider, threads=1, init=trained)


def test_cli_trains_from_images(tmp_path):
    from awdvd.cli import main
    from awdvd.io import write_tiff
    from awdvd.learn.model_files import load_model

    folder = tmp_path / "in_focus"
    folder.mkdir()
    for s in (1, 2):
        write_tiff(folder / f"f{s}.tif", synthetic_nuclei((100, 120), n_nuclei=5, seed=s).astype(np.uint16))
    out = tmp_path / "m.pt"
    assert main(["train", "--images", str(folder), "-o", str(out), "--recipe", "smoke", "--levels", "3",
                 "--threads", "1"]) == 0
    for suffix in (".pt", ".curves.csv", ".curves.png", ".json"):
        assert (tmp_path / f"m{suffix}").is_file()
    assert not (tmp_path / "m.checkpoint.pt").exists()
    assert load_model(out).normalization == "image-range"
    assert main(["train", "--images", str(folder), "-o", str(out), "--recipe", "smoke"]) == 1  # exists
    assert main(["train", "--images", str(folder), "-o", str(tmp_path / "x.pt"), "--recipe", "paper"]) == 1
    tuned = tmp_path / "tuned.pt"
    assert main(["train", "--images", str(folder), "-o", str(tuned), "--recipe", "smoke", "--levels", "3",
                 "--threads", "1", "--init", str(out), "--lr", "1e-4", "--seed", "1"]) == 0
    record = load_model(tuned).info
    assert record["recipe"]["lr"] == 1e-4 and record["training"]["initialised_from"]["steps"] == 6
    assert main(["train", "--images", str(folder), "-o", str(tmp_path / "y.pt"), "--batch-size", "8"]) == 1


def test_deep_range_recipe_fields_round_trip_and_check():
    recipe = TINY.replace(procedural_scale=(0.6, 2.5), object_scale_copies=1, object_scale=(0.5, 0.9))
    assert StreamRecipe.from_dict(recipe.to_dict()) == recipe
    assert StreamRecipe.from_dict({**recipe.to_dict(), "object_scale": [0.5, 0.9]}).object_scale == (0.5, 0.9)
    with pytest.raises(ValueError, match="object_scale"):
        TINY.replace(object_scale=(0.5, 1.5))  # upsampling a real field would blur it
    with pytest.raises(ValueError, match="procedural_scale"):
        TINY.replace(procedural_scale=(2.0, 1.0))
    with pytest.raises(ValueError, match="object_scale_copies"):
        TINY.replace(object_scale_copies=-1)


def test_procedural_scale_makes_larger_nuclei_and_keeps_the_default_fields():
    from awdvd.learn.train_stream import procedural_sources

    default = procedural_sources(1, seed=4, shape=(128, 128))[0]
    assert np.array_equal(default, procedural_sources(1, seed=4, shape=(128, 128), scale=(1.0, 1.0))[0])
    small = procedural_sources(2, seed=4, shape=(160, 160), scale=(0.6, 0.6))
    large = procedural_sources(2, seed=4, shape=(160, 160), scale=(2.5, 2.5))

    def mean_object_px(fields):  # area above the half maximum per connected object
        from scipy import ndimage
        sizes = []
        for f in fields:
            mask = f - f.min() > 0.5 * (f.max() - f.min()) * 0.3
            labels, n = ndimage.label(mask)
            sizes += list(np.bincount(labels.ravel())[1:])
        return np.median(sizes)

    assert mean_object_px(large) > 4 * mean_object_px(small)


def test_sources_of_other_optics_are_trained_on_the_models_grid(sources):
    other = Optics(wavelength_um=0.46, na=0.45, n=1.0, pixel_um=0.645, n_levels=3)
    big = [np.pad(s, 20, mode="reflect") for s in sources]  # 140 x 160 px: 122 x 140 on the model's grid
    model, _ = train_from_stream(big, optics=OPTICS, recipe=TINY.replace(object_scale_copies=1), seed=0, threads=1,
                                 source_optics=[other, None])
    assert model.info["data"]["source_optics"] == [other.to_dict(), None]
    with pytest.raises(ValueError, match="smaller than a 84 px window"):
        train_from_stream(sources, optics=OPTICS, recipe=TINY, seed=0, threads=1,
                          source_optics=[Optics(pixel_um=0.3, n_levels=3), None])


def test_init_with_fewer_levels_extends_the_range(sources):
    from awdvd.learn.train import extend_head

    short, _ = train_from_stream(sources, optics=OPTICS, recipe=TINY, seed=0, threads=1)
    deep = OPTICS.replace(n_levels=5)
    extended = extend_head(short, deep, [0, 1, 2, 3, 4, -1])
    x = np.random.default_rng(0).random((6, 84, 84)).astype(np.float32)
    old, new = short.predict_logits_normalized(x), extended.predict_logits_normalized(x)
    # levels 0-2 and bg keep their outputs; levels 3 and 4 start as level 2
    assert np.allclose(new[:, [0, 1, 2, 5]], old, atol=1e-5)
    assert np.allclose(new[:, 3], old[:, 2], atol=1e-5) and np.allclose(new[:, 4], old[:, 2], atol=1e-5)
    model, _ = train_from_stream(sources, optics=deep, recipe=TINY, seed=1, threads=1, init=short)
    assert list(model.class_levels) == [0, 1, 2, 3, 4, -1]
    assert model.info["training"]["initialised_from"]["weights_fingerprint"]
    with pytest.raises(ValueError, match="other optics"):
        train_from_stream(sources, optics=deep.replace(na=0.4), recipe=TINY, seed=1, threads=1, init=short)


def test_source_weights_set_each_sources_share_of_the_real_windows(sources, monkeypatch):
    """source_weights: a source's share of the real windows, shared with its object-scale copies; checked."""
    import awdvd.learn.train_stream as train_stream

    seen = []
    original = train_stream.TrainingStream

    def recording(*args, **kwargs):
        seen.append(kwargs.get("source_weights"))
        return original(*args, **kwargs)

    monkeypatch.setattr(train_stream, "TrainingStream", recording)
    recipe = TINY.replace(steps=2, val_every=2, object_scale_copies=1)
    train_from_stream(sources, optics=OPTICS, recipe=recipe, seed=0, threads=1, source_weights=[3.0, 1.0])
    weights = np.asarray(seen[0])
    real = recipe.real_weight
    np.testing.assert_allclose(weights[:4], real * np.array([3, 1, 3, 1]) / 8)  # two sources, then their copies
    np.testing.assert_allclose(weights[4:], [1 - real])  # the procedural field keeps its share
    with pytest.raises(ValueError, match="2 non-negative weights"):
        train_from_stream(sources, optics=OPTICS, recipe=recipe, seed=0, threads=1, source_weights=[1.0])
