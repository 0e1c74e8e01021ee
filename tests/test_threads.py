"""awdvd._threads: one setting for the threads awdvd asks for (FFT workers, the AWDVD region pool)."""

from __future__ import annotations

import numpy as np
import pytest

from awdvd._threads import THREADS_VARIABLE, allowed_threads, available_cpus, set_thread_limit, thread_limit
from awdvd.restore.plan import RestorationPlan


def test_default_is_the_cpus_of_this_process(monkeypatch):
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    assert allowed_threads() == available_cpus() >= 1


def test_environment_variable_then_limit(monkeypatch):
    monkeypatch.setenv(THREADS_VARIABLE, "3")
    assert allowed_threads() == 3
    with thread_limit(1):
        assert allowed_threads() == 1
        with thread_limit(None):
            assert allowed_threads() == 3
        assert allowed_threads() == 1
    assert allowed_threads() == 3
    set_thread_limit(2)
    try:
        assert allowed_threads() == 2
    finally:
        set_thread_limit(None)
    monkeypatch.setenv(THREADS_VARIABLE, "many")
    with pytest.raises(ValueError, match=THREADS_VARIABLE):
        allowed_threads()
    with pytest.raises(ValueError, match="threads"):
        set_thread_limit(0)


def test_results_do_not_depend_on_the_thread_count():
    from awdvd import Optics, psf_bank
    from awdvd.data.synth import blur, synthetic_nuclei
    from awdvd.restore.blend import deconvolve_levels
    from awdvd.restore.rl import richardson_lucy
    from awdvd.restore.windows import DefocusMap

    image = synthetic_nuclei((120, 150), n_nuclei=6, seed=2)
    bank = psf_bank(Optics(n_levels=3), size=15)
    dmap = DefocusMap.from_levels(np.array([[0, 1, 2], [2, 1, -1], [1, 1, 2]]), image.shape, stride=33,
                                  patch_px=84, n_levels=3)
    plan = RestorationPlan(iterations=4, method="fast", weighting="triangular", level_blend="argmax", offset=0.0,
                           halo_px=None, device="cpu")
    with thread_limit(1):
        one = (richardson_lucy(image, bank[2], iterations=4), blur(image, bank[1]),
               deconvolve_levels(image, dmap, bank, plan))
    with thread_limit(4):
        many = (richardson_lucy(image, bank[2], iterations=4), blur(image, bank[1]),
                deconvolve_levels(image, dmap, bank, plan))
    for a, b in zip(one, many):
        assert np.array_equal(a, b)
