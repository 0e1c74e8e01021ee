"""awdvd.validate.restoration_bands: issue 12's per level band table, its true-level ceiling and the report, on a tiny tilted
specimen (84 x 330 px, 11 bands of 30 px, 15 px PSFs, candidate counts 0 and 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _standins import RuleModel

from awdvd.data.synth import tilted_specimen
from awdvd.physics.optics import Optics
from awdvd.physics.psf import psf_bank
from awdvd.validate import restoration_bands as bands

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _in_focus(seed=0, shape=(84, 330)):
    rng = np.random.default_rng(seed)
    image = np.full(shape, 200.0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for cy, cx in rng.uniform((10, 10), (shape[0] - 10, shape[1] - 10), (12, 2)):
        image += 3000.0 * ((yy - cy) ** 2 + (xx - cx) ** 2 < 40)
    return image


@pytest.fixture(scope="module")
def specimen():
    return tilted_specimen(_in_focus(), optics=Optics(), psf_size=15, seed=3)


def test_band_gains_are_zero_for_the_recorded_image_and_one_per_level(specimen):
    gains, whole = bands.band_gains(specimen, specimen.observed)
    assert len(gains) == 11 and gains == [0.0] * 11 and whole == 0.0
    better, whole = bands.band_gains(specimen, specimen.truth)
    assert all(g == np.inf or g > 0 for g in better) and whole > 0


def test_ceiling_never_loses_against_leaving_the_image_as_it_is(specimen):
    psfs = psf_bank(Optics(), size=15)
    out = bands.ceiling(specimen, psfs, counts=(0, 2), stride=42, device="cpu")
    assert len(out["counts"]) == 11 and set(out["counts"]) <= {0, 2}
    # coordinate ascent starts from "leave every level" (sum 0) and never takes a worse choice
    assert sum(out["band_gain_db"]) >= 0.0 and max(out["counts"]) == 2


def test_band_report_is_written_with_the_floors(tmp_path, monkeypatch):
    monkeypatch.setattr(bands, "PLAIN_COUNTS", (0, 2))
    images, names = [_in_focus(1)], ["f1"]
    written = bands.write_band_report(tmp_path, images=images, names=names, model=RuleModel(step=400.0),
                                      model_source="rule", options=None, ceilings=("plain",), command="test",
                                      device="cpu")
    assert [p.name for p in written] == ["bands.json", "REPORT.md"]
    report = json.loads(written[0].read_text())
    rows = report["fields"][0]["rows"]
    assert set(rows) == {"model_defaults", "model_paper", "true_defaults", "true_paper", "ceiling_plain"}
    assert rows["model_paper"]["iterations"] == [30] * 11 and rows["model_paper"]["rl"] == "plain"
    assert rows["model_defaults"]["iterations_source"] == "default"  # a model without a schedule
    floors = report["summary"]["floors"]
    assert floors["worst_band_gain_db"] == min(report["summary"]["mean"]["model_defaults"]["band_gain_db"])
    text = written[1].read_text()
    assert "## Floors (issue 12)" in text and "| f1 |" in text and "Made by `test`" in text
    with pytest.raises(FileExistsError, match="--overwrite"):
        bands.write_band_report(tmp_path, images=images, names=names, model=RuleModel(), model_source="rule")
