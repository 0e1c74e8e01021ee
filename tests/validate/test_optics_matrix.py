"""The optics axis of the robustness matrix: sharp fields at other pixel sizes and synthetic defocus under other
objectives, read in the image's own optics (issue 28 item 5)."""

import json

import numpy as np
import pytest
from _standins import tiny_exact_model

from awdvd.data.synth import synthetic_nuclei
from awdvd.validate.optics_matrix import OPTICS_MATRIX, optics_axis, optics_markdown

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def field():
    return synthetic_nuclei((200, 260), n_nuclei=20, seed=5)


def test_the_bundled_model_reads_depth_in_another_objectives_micrometres(field):
    """Procedural nuclei (never trained on): sharp at half the pixel size still in focus; the 40x / 0.75 defocus
    at the model's object scale read within one level-equivalent (1.02 um) as well as the model's own."""
    from awdvd import load_model

    matrix = {name: OPTICS_MATRIX[name] for name in ("20x/0.5 (model's)", "40x/0.75, 0.1625 um")}
    axis = optics_axis(load_model(), {"nuclei": field}, crop=None, matrix=matrix, pixel_sizes=(0.65, 0.325))
    sharp = axis["sharp_at_pixel_sizes"]
    assert set(sharp) == {"0.65", "0.325"} and all(v["windows"] > 10 for v in sharp.values())
    assert all(v["in_focus_share"] >= 0.9 for v in sharp.values())
    model_scale = axis["defocus_under_optics"]["model"]
    assert model_scale["20x/0.5 (model's)"]["level_equivalent_um"] == pytest.approx(2.0)
    assert model_scale["40x/0.75, 0.1625 um"]["level_equivalent_um"] == pytest.approx(1.025, abs=1e-3)
    assert all(v["within_1"] >= 0.9 and v["within_half"] <= v["within_1"] for v in model_scale.values())
    # the object scale of the 40x holds the same nuclei on 4x as many pixels: more windows
    assert axis["defocus_under_optics"]["object"]["40x/0.75, 0.1625 um"]["windows"] > \
        model_scale["40x/0.75, 0.1625 um"]["windows"]
    table = optics_markdown(axis)
    assert "| 0.325 | " in table and "| 40x/0.75, 0.1625 um | 1.0249 |" in table


def test_cli_adds_the_optics_axis(tmp_path, field):
    from awdvd.cli import main
    from awdvd.io import write_tiff

    model_path = tmp_path / "tiny.pt"
    tiny_exact_model(0).save(model_path)
    write_tiff(tmp_path / "field.tif", field[:120, :150].astype(np.uint16))
    out = tmp_path / "out"
    assert main(["evaluate-robustness", str(model_path), "--fields", str(tmp_path / "field.tif"), "-o", str(out),
                 "--procedural", "0", "--per-level", "2", "--no-maps", "--optics"]) == 0
    axis = json.loads((out / "robustness.json").read_text())["tiny"]["optics"]
    assert set(axis["defocus_under_optics"]["object"]) == set(OPTICS_MATRIX)
    assert set(axis["sharp_at_pixel_sizes"]) == {"0.65", "0.43", "0.325", "0.22", "0.98"}
    assert "## optics axis: tiny" in (out / "robustness.md").read_text()
    assert main(["evaluate-robustness", str(model_path), "-o", str(tmp_path / "o2"), "--procedural", "1",
                 "--optics"]) == 1  # the optics axis needs real fields
