"""Shared fixtures: the real BBBC006 sample (skips where absent), procedural images, a tiny seeded patch
dataset (3 defocus levels, 32 x 32 patches) made in memory."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from awdvd.physics.optics import UndersamplingWarning

warnings.simplefilter("ignore", UndersamplingWarning)

REPO = Path(__file__).resolve().parents[1]


def load_script(relative: str):
    """A script of the repository that is not part of the package (docs/, benchmarks/), loaded as a module."""
    import importlib.util

    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
SHARED_BBBC006 = REPO.parent / "shared" / "data" / "bbbc006"


@pytest.fixture(scope="session")
def bbbc006_dir() -> Path:
    """The real BBBC006 sample shipped beside the repo (../shared); tests using it skip where it is absent."""
    if not (SHARED_BBBC006 / "in_focus").is_dir():
        pytest.skip(f"real BBBC006 sample not found at {SHARED_BBBC006} (it sits beside the repo in CI, not in a user's clone)")
    return SHARED_BBBC006


@pytest.fixture(scope="session")
def nuclei_image() -> np.ndarray:
    """A small seeded procedural in-focus field (ADU, float32)."""
    from awdvd.data.synth import synthetic_nuclei

    return synthetic_nuclei((128, 160), n_nuclei=8, seed=3)



def specimen(seed: int, shape=(64, 96)) -> np.ndarray:
    """Blobs (nuclei-like Gaussians) on the left 40 % of a camera-offset background, Poisson noise; the empty
    right side gives background ("bg") patches."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, 100.0)
    for _ in range(12):
        y, x, sigma = rng.uniform(0, shape[0]), rng.uniform(0, shape[1] * 0.4), rng.uniform(1.0, 2.5)
        image += rng.uniform(800, 3000) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma * sigma))
    return rng.poisson(image).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_dataset():
    """(splits, metadata) of make_patch_dataset on 4 procedural images: 3 levels, 32 x 32 patches, 8 crops."""
    from awdvd.data.synth import DatasetSpec, make_patch_dataset
    from awdvd.physics.optics import Optics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optics = Optics(n_levels=3)
    return make_patch_dataset([specimen(i) for i in range(4)], optics=optics,
                              spec=DatasetSpec(patch_px=32, crops_per_image=8, seed=0))


@pytest.fixture(scope="session")
def tiny_dataset_dir(tiny_dataset, tmp_path_factory):
    """The tiny dataset written as a dataset folder."""
    from awdvd.data.datasets import write_dataset

    splits, metadata = tiny_dataset
    return write_dataset(tmp_path_factory.mktemp("data") / "tiny", splits, metadata)


@pytest.fixture(scope="session")
def tiny_optics(tiny_dataset):
    from awdvd.physics.optics import Optics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Optics.from_dict(tiny_dataset[1]["optics"])


@pytest.fixture(scope="session")
def dask_cluster():
    """One local Dask cluster of 2 workers shared by the modules that test work on Dask (test_batch keeps its own,
    since it kills workers). Made the way awdvd.batch.runner makes its own clusters."""
    from awdvd._cluster import local_cluster

    with local_cluster(2) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory) -> Path:
    """A small randomly initialised DelpNet saved as a model file (fast to load; the bundled model is tested on its own)."""
    from _standins import tiny_delpnet_model

    return tiny_delpnet_model(seed=2).save(tmp_path_factory.mktemp("model") / "tiny.pt")
