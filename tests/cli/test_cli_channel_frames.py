"""Multi-channel time-lapses and z-stacks (T or Z with C), the files live imaging and screening write:
`awdvd deconvolve` maps each frame from one channel and restores every channel from it into one (T, C, H, W)
OME-TIFF with the channels' names, resumable; `awdvd predict` maps the map channel plane by plane; a multi-channel
z-stack is refused by deconvolve with the reason; napari opens them as a layer per channel with the T axis."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from _standins import tiny_delpnet_model, write_lif

from awdvd.cli import main
from awdvd.io.channels import channel_info, write_channels

pytest.importorskip("torch")
ARGS = ["--psf-size", "15", "--iterations", "3", "--stride", "42", "--device", "cpu", "--workers", "0"]


def _frames(frames: int = 3, seed: int = 5) -> np.ndarray:
    """(T, 2, 100, 130) uint16: a nucleus (channel 0, "Hoechst") moving, a dimmer GFP around it (channel 1)."""
    data = (np.random.default_rng(seed).poisson(150, size=(frames, 2, 100, 130)) + 96).astype(np.uint16)
    for t in range(frames):
        data[t, 0, 30:50, 40 + 5 * t:70 + 5 * t] += 3000
        data[t, 1, 25:55, 35 + 5 * t:75 + 5 * t] += 700
    return data


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_delpnet_model(seed=2).save(tmp_path_factory.mktemp("model") / "tiny.pt")


def test_a_two_channel_time_lapse_is_restored_frame_by_frame_from_one_channel(model, tmp_path):
    from awdvd import load_model
    from awdvd.restore.channels import restore_channels

    data = _frames()
    folder = tmp_path / "in"
    folder.mkdir()
    write_channels(folder / "live.ome.tif", data, names=["GFP", "Hoechst"], emission_um=[0.52, 0.461],
                   pixel_um=0.65)
    out = tmp_path / "out"
    assert main(["deconvolve", str(folder), "-o", str(out), "--model", str(model), "--na", "0.5",
                 "--immersion-n", "1.0", *ARGS]) == 0
    target = out / "live.awdvd.ome.tif"
    restored = tifffile.imread(target)
    assert restored.shape == data.shape and restored.dtype == np.float32
    info = channel_info(target)
    assert info.names == ["GFP", "Hoechst"] and info.emission_um == pytest.approx([0.52, 0.461])
    assert info.pixel_um == pytest.approx(0.65)
    # each frame is what the library gives for that frame alone: the map from Hoechst, both channels from it
    optics = [load_model(model).optics.replace(wavelength_um=w, pixel_um=0.65, na=0.5, n=1.0) for w in (0.52, 0.461)]
    alone = restore_channels(data[1].astype(np.float32), load_model(model), optics=optics, names=["GFP", "Hoechst"],
                             iterations=3, stride=42, psf_size=15)
    np.testing.assert_allclose(restored[1], alone.images, rtol=1e-5, atol=1e-3)
    meta = json.loads((out / "live.awdvd.json").read_text())
    assert meta["parameters"]["map_channel"] == {"index": 1, "name": "Hoechst"}
    assert [c["name"] for c in meta["parameters"]["channels"]] == ["GFP", "Hoechst"]
    assert meta["parameters"]["frames"] == 3 and len(meta["level_grids"]) == 3


def test_a_stopped_two_channel_time_lapse_goes_on_and_channels_can_be_chosen(model, tmp_path, monkeypatch):
    from awdvd.batch import timelapse_files

    folder = tmp_path / "in"
    folder.mkdir()
    write_lif(folder / "live.lif", {"live": _frames(4)}, names=["Hoechst", "GFP"], emission_nm=[461, 520], na=0.5,
              n=1.0, pixel_um=0.65)
    calls, real = [], timelapse_files.restore_channels

    def stop_at_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    run = ["deconvolve", str(folder), "--model", str(model), "--channels", "GFP", *ARGS]
    monkeypatch.setattr(timelapse_files, "restore_channels", stop_at_third)
    assert main([*run, "-o", str(tmp_path / "out")]) != 0  # Ctrl-C
    assert not (tmp_path / "out" / "live.awdvd.ome.tif").exists()
    monkeypatch.setattr(timelapse_files, "restore_channels", real)
    assert main([*run, "-o", str(tmp_path / "out")]) == 0
    meta = json.loads((tmp_path / "out" / "live.awdvd.json").read_text())
    assert meta["parameters"]["resumed_frames"] == 2
    assert main([*run, "-o", str(tmp_path / "fresh")]) == 0
    resumed = tifffile.imread(tmp_path / "out" / "live.awdvd.ome.tif")
    assert resumed.shape == (4, 100, 130)  # one channel chosen: its name is kept, the C axis of one squeezed
    assert channel_info(tmp_path / "out" / "live.awdvd.ome.tif").names == ["GFP"]
    np.testing.assert_array_equal(resumed, tifffile.imread(tmp_path / "fresh" / "live.awdvd.ome.tif"))


def test_a_two_channel_stack_is_mapped_plane_by_plane_and_refused_by_deconvolve(model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    planes = _frames(3).transpose(1, 0, 2, 3)[None]  # (T 1, C 2, Z 3, Y, X)
    write_lif(folder / "stack.lif", {"stack": planes}, names=["Hoechst", "GFP"], emission_nm=[461, 520], na=0.5,
              n=1.0, pixel_um=0.65)
    assert main(["deconvolve", str(folder), "-o", str(tmp_path / "restored"), "--model", str(model), *ARGS]) == 1
    err = capsys.readouterr().err
    assert "stack of shape (2, 3, 100, 130)" in err and "3-D deconvolution" in err
    assert not list((tmp_path / "restored").glob("stack.awdvd.*"))
    out = tmp_path / "maps"
    assert main(["predict", str(folder), "-o", str(out), "--model", str(model), "--stride", "42", "--device", "cpu",
                 "--workers", "0"]) == 0
    meta = json.loads((out / "stack.defocus.json").read_text())
    assert meta["stack_axis"] == "z" and meta["planes_in_stack"] == 3 and len(meta["focus_qc"]) == 3
    assert [row["image"] for row in meta["focus_qc"]] == [f"stack.lif[z={z}]" for z in range(3)]
    assert meta["optics"]["wavelength_um"] == pytest.approx(0.461)  # the map channel's emission


def test_napari_opens_a_two_channel_time_lapse_as_a_layer_per_channel(tmp_path):
    from awdvd.napari.reader import read_layers

    data = _frames()
    path = write_channels(tmp_path / "live.ome.tif", data, names=["Hoechst", "GFP"], emission_um=[0.461, 0.52],
                          pixel_um=0.65)
    ((pixels, kwargs, kind),) = read_layers(path)
    assert kind == "image" and kwargs["channel_axis"] == 0 and pixels.shape == (2, 3, 100, 130)
    assert kwargs["name"] == ["live [Hoechst]", "live [GFP]"] and kwargs["colormap"] == ["blue", "green"]
    assert kwargs["scale"] == pytest.approx((1.0, 0.65, 0.65))
    np.testing.assert_array_equal(np.asarray(pixels[1, 2]), data[2, 1])  # read when shown
