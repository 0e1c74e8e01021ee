from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from awdvd.optics import UndersamplingWarning

warnings.simplefilter("ignore", UndersamplingWarning)

REPO = Path(__file__).resolve().parents[1]
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
    from awdvd.synth import synthetic_nuclei

    return synthetic_nuclei((128, 160), n_nuclei=8, seed=3)


@pytest.fixture(scope="session")
def dask_cluster():
    """One local Dask cluster of 2 workers shared by the modules that test work on Dask (test_batch keeps its own,
    since it kills workers). Made the way awdvd.batch makes its own clusters."""
    from awdvd.batch import local_cluster

    with local_cluster(2) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory) -> Path:
    """A small randomly initialised DelpNet saved as a model file (no trained model ships with awdvd yet)."""
    from _standins import tiny_delpnet_model

    return tiny_delpnet_model(seed=2).save(tmp_path_factory.mktemp("model") / "tiny.pt")
