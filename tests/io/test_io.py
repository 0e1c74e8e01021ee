import numpy as np
import pytest
import tifffile

from awdvd.io import (
    ImageReadError,
    PixelSizeWarning,
    atomic_path,
    check_pixel_size,
    open_ome_zarr_output,
    read_image,
    write_json,
    write_ome_tiff,
    write_ome_zarr,
    write_png,
    write_tiff,
)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.uint8])
def test_tiff_round_trip_with_pixel_size(tmp_path, dtype):
    data = (np.random.default_rng(0).uniform(0, 200, (21, 34))).astype(dtype)
    path = write_tiff(tmp_path / "a.tif", data, pixel_um=0.65)
    back = read_image(path)
    np.testing.assert_array_equal(back.data, data)
    assert back.data.dtype == dtype
    assert back.pixel_um == pytest.approx(0.65, rel=1e-6)


def test_float64_is_written_as_float32(tmp_path):
    data = np.linspace(0, 1, 30).reshape(5, 6)
    back = read_image(write_tiff(tmp_path / "f.tif", data)).data
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, data, rtol=1e-7)


def test_stack_round_trip(tmp_path):
    stack = np.random.default_rng(1).integers(0, 4000, (5, 16, 20)).astype(np.uint16)
    back = read_image(write_tiff(tmp_path / "s.tif", stack, pixel_um=0.3)).data
    np.testing.assert_array_equal(back, stack)


def test_lzw_and_multipage_tiff(tmp_path):
    stack = np.random.default_rng(2).integers(0, 4000, (3, 16, 20)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "lzw.tif", stack, compression="lzw", photometric="minisblack")
    np.testing.assert_array_equal(read_image(tmp_path / "lzw.tif").data, stack)


def test_ome_tiff_pixel_size(tmp_path):
    data = np.zeros((8, 9), np.uint16)
    tifffile.imwrite(tmp_path / "x.ome.tif", data, ome=True, metadata={"PhysicalSizeX": 0.325, "PhysicalSizeXUnit": "µm"})
    assert read_image(tmp_path / "x.ome.tif").pixel_um == pytest.approx(0.325)
    tifffile.imwrite(tmp_path / "nm.ome.tif", data, ome=True, metadata={"PhysicalSizeX": 650, "PhysicalSizeXUnit": "nm"})
    assert read_image(tmp_path / "nm.ome.tif").pixel_um == pytest.approx(0.65)


def test_plain_tiff_has_no_pixel_size(tmp_path):
    tifffile.imwrite(tmp_path / "p.tif", np.zeros((4, 4), np.uint16))
    assert read_image(tmp_path / "p.tif").pixel_um is None


def test_png_16bit(tmp_path):
    import imageio.v3 as iio

    data = np.random.default_rng(3).integers(0, 65535, (12, 13)).astype(np.uint16)
    iio.imwrite(tmp_path / "a.png", data)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png").data, data)


def test_real_bbbc006_files(bbbc006_dir):
    png = read_image(next((bbbc006_dir / "in_focus").glob("*.png")))
    tif = read_image(next((bbbc006_dir / "defocus_z00").glob("*.tif")))  # LZW: needs imagecodecs
    for image in (png, tif):
        assert image.data.shape == (520, 696) and image.data.dtype == np.uint16


def test_never_overwrites(tmp_path):
    path = write_tiff(tmp_path / "a.tif", np.zeros((3, 3), np.float32))
    with pytest.raises(FileExistsError, match="overwrite"):
        write_tiff(path, np.ones((3, 3), np.float32))
    np.testing.assert_array_equal(read_image(path).data, 0)
    write_tiff(path, np.ones((3, 3), np.float32), overwrite=True)
    np.testing.assert_array_equal(read_image(path).data, 1)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.tif"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("crash while writing")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "setup,error",
    [
        (lambda p: None, FileNotFoundError),
        (lambda p: p.write_bytes(b""), ImageReadError),
        (lambda p: p.write_text("not an image"), ImageReadError),
    ],
)
def test_bad_files(tmp_path, setup, error):
    path = tmp_path / "bad.tif"
    setup(path)
    with pytest.raises(error):
        read_image(path)


def test_folder_and_unknown_suffix(tmp_path):
    with pytest.raises(IsADirectoryError):
        read_image(tmp_path)
    (tmp_path / "a.bmpx").write_bytes(b"123")
    with pytest.raises(ImageReadError, match="unsupported"):
        read_image(tmp_path / "a.bmpx")


def test_rgb_png_refused(tmp_path):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "rgb.png", np.zeros((5, 6, 3), np.uint8) + np.arange(3, dtype=np.uint8))
    with pytest.raises(ImageReadError, match="single fluorescence channel"):
        read_image(tmp_path / "rgb.png")


def _damaged_tiffs(tmp_path):
    """(name, path, what the one-line error must say) of TIFFs damaged the ways transfers and crashes damage them."""
    rng = np.random.default_rng(0)
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, rng.integers(0, 4000, (120, 160), dtype=np.uint16), compression="lzw")
    raw = good.read_bytes()
    cut = tmp_path / "cut_in_half.tif"  # tifffile puts the header first: the pixels end past the file
    cut.write_bytes(raw[: len(raw) // 2])
    lost_ifd = tmp_path / "lost_ifd.tif"  # BBBC006's files keep their IFD at the end: it is lost with the tail
    tifffile.imwrite(lost_ifd, rng.integers(0, 4000, (120, 160), dtype=np.uint16))
    data = bytearray(lost_ifd.read_bytes())
    data[4:8] = (len(data) + 1000).to_bytes(4, "little")
    lost_ifd.write_bytes(bytes(data))
    huge = tmp_path / "huge_claim.tif"
    tifffile.imwrite(huge, np.zeros((10, 10), np.uint8))
    with tifffile.TiffFile(huge, mode="r+") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(100000)
        tif.pages[0].tags["ImageLength"].overwrite(100000)
    return [("cut", cut, "is truncated"), ("lost_ifd", lost_ifd, "damaged TIFF"),
            ("huge", huge, "claims 100000 x 100000 px")]


def test_damaged_tiffs_give_one_sentence_and_nothing_on_stderr(tmp_path, capfd):
    from awdvd.io import image_shape, read_ome_optics

    for name, path, says in _damaged_tiffs(tmp_path):
        for reader in (read_image, image_shape, read_ome_optics):
            with pytest.raises(ImageReadError, match=says) as caught:
                reader(path)
            message = str(caught.value)
            assert str(path) in message and "\n" not in message, (name, reader.__name__, message)
    out, err = capfd.readouterr()
    assert err == "" and out == ""  # tifffile's own log lines (one per damaged structure) stay quiet


@pytest.mark.parametrize("kind,says", [("rgb", "colour \\(RGB\\) image"), ("bool", "1-bit"), ("complex", "complex64"),
                                       ("channels", "3 channels")])
def test_pixels_that_are_not_intensities_are_named(tmp_path, kind, says):
    image = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)
    path = tmp_path / f"{kind}.tif"
    if kind == "rgb":
        tifffile.imwrite(path, np.stack([image.astype(np.uint8)] * 3, axis=-1), photometric="rgb")
    elif kind == "bool":
        tifffile.imwrite(path, image > 1000)
    elif kind == "complex":
        tifffile.imwrite(path, image.astype(np.complex64))
    else:
        tifffile.imwrite(path, np.stack([image] * 3), imagej=True, metadata={"axes": "CYX"})
    with pytest.raises(ImageReadError, match=says) as caught:
        read_image(path)
    assert str(path) in str(caught.value)
    # a grey stack is not a colour image
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([image] * 3), photometric="minisblack")
    assert read_image(tmp_path / "stack.tif").data.shape == (3, 64, 48)


def test_write_png_and_json(tmp_path):
    write_png(tmp_path / "a.png", np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        write_png(tmp_path / "b.png", np.zeros((4, 5)))
    write_json(tmp_path / "a.json", {"x": 1})
    assert (tmp_path / "a.json").read_text().strip().startswith("{")


def test_outputs_get_the_usual_file_mode(tmp_path):
    import os

    path = write_tiff(tmp_path / "m.tif", np.zeros((2, 2), np.float32))
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask

# ------------------------------------------------------------------------------------------- OME-Zarr / OME-TIFF
@pytest.mark.parametrize("shape,dtype", [((37, 50), np.uint16), ((37, 50), np.float32), ((3, 21, 34), np.uint16)])
def test_ome_zarr_round_trip(tmp_path, shape, dtype):
    data = np.random.default_rng(4).uniform(0, 3000, shape).astype(dtype)
    path = write_ome_zarr(tmp_path / "a.ome.zarr", data, pixel_um=0.65, chunks=16)
    back = read_image(path)
    assert isinstance(back.data, np.ndarray) and back.data.dtype == dtype
    np.testing.assert_array_equal(back.data, data)
    assert back.pixel_um == pytest.approx(0.65, rel=1e-12)
    assert back.metadata["ome_version"] == "0.5"
    lazy = read_image(path, lazy=True).data
    assert hasattr(lazy, "dask") and lazy.shape == shape
    np.testing.assert_array_equal(np.asarray(lazy[..., 5:30, 7:40]), data[..., 5:30, 7:40])


def test_ome_zarr_float64_stored_as_float32_and_no_pixel_size(tmp_path):
    data = np.linspace(0, 1, 42).reshape(6, 7)
    back = read_image(write_ome_zarr(tmp_path / "f.zarr", data, pixel_um=None))
    assert back.data.dtype == np.float32 and back.pixel_um is None
    np.testing.assert_allclose(back.data, data, rtol=1e-7)


def test_ome_zarr_from_lazy_array_in_chunk_rows(tmp_path):
    import dask.array as da

    data = np.arange(45 * 61, dtype=np.uint16).reshape(45, 61)
    write_ome_zarr(tmp_path / "d.ome.zarr", da.from_array(data, chunks=(10, 13)), pixel_um=0.3, chunks=(16, 16))
    np.testing.assert_array_equal(read_image(tmp_path / "d.ome.zarr").data, data)


def test_ome_zarr_0_4_with_channel_axis_and_nanometres(tmp_path):
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image

    data = np.random.default_rng(5).integers(0, 4000, (1, 1, 24, 30)).astype(np.uint16)
    group = zarr.open_group(str(tmp_path / "v4.zarr"), mode="w", zarr_format=2)
    write_image(data, group, axes="czyx", scale_factors=(), fmt=FormatV04(), scale={"c": 1.0, "z": 1.0, "y": 325.0, "x": 325.0},
                axes_units={"z": "nanometer", "y": "nanometer", "x": "nanometer"})
    assert "multiscales" in group.attrs.asdict()  # 0.4: not nested under "ome"
    back = read_image(tmp_path / "v4.zarr")
    np.testing.assert_array_equal(back.data, data[0, 0])
    assert back.pixel_um == pytest.approx(0.325)


def test_ome_zarr_refuses_channels_and_bare_groups(tmp_path):
    import zarr
    from ome_zarr.writer import write_image

    group = zarr.open_group(str(tmp_path / "c.zarr"), mode="w")
    write_image(np.zeros((2, 8, 9), np.uint16), group, axes="cyx", scale_factors=())
    with pytest.raises(ImageReadError, match="2 channels"):
        read_image(tmp_path / "c.zarr")
    zarr.open_group(str(tmp_path / "empty.zarr"), mode="w")
    with pytest.raises(ImageReadError, match="multiscales"):
        read_image(tmp_path / "empty.zarr")


def test_ome_zarr_output_is_atomic_and_never_overwrites(tmp_path):
    target = tmp_path / "out.ome.zarr"
    with pytest.raises(RuntimeError):
        with open_ome_zarr_output(target, shape=(20, 20), dtype=np.float32, pixel_um=0.65, chunks=8) as out:
            out[:10] = 1.0
            raise RuntimeError("crash while writing")
    assert list(tmp_path.iterdir()) == []
    write_ome_zarr(target, np.zeros((5, 6), np.uint16), pixel_um=0.65)
    with pytest.raises(FileExistsError, match="overwrite"):
        write_ome_zarr(target, np.ones((5, 6), np.uint16), pixel_um=0.65)
    write_ome_zarr(target, np.ones((5, 6), np.uint16), pixel_um=0.65, overwrite=True)
    np.testing.assert_array_equal(read_image(target).data, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ome.zarr"]
    with pytest.raises(ValueError, match=".zarr"):
        write_ome_zarr(tmp_path / "out.tif", np.zeros((5, 6)), pixel_um=0.65)


@pytest.mark.parametrize("shape", [(21, 34), (3, 21, 34)])
def test_ome_tiff_round_trip(tmp_path, shape):
    data = np.random.default_rng(6).integers(0, 65535, shape).astype(np.uint16)
    back = read_image(write_ome_tiff(tmp_path / "a.ome.tif", data, pixel_um=0.325))
    np.testing.assert_array_equal(back.data, data)
    assert back.pixel_um == pytest.approx(0.325, rel=1e-12)
    with pytest.raises(FileExistsError):
        write_ome_tiff(tmp_path / "a.ome.tif", data, pixel_um=0.325)
    with pytest.raises(ValueError, match="ome.tif"):
        write_ome_tiff(tmp_path / "a.tif", data, pixel_um=0.325)


def test_ome_tiff_tiled_from_lazy_and_read_lazily(tmp_path):
    import dask.array as da

    data = np.random.default_rng(7).uniform(0, 1, (700, 530)).astype(np.float32)  # not a multiple of the tile
    path = write_ome_tiff(tmp_path / "big.ome.tif", da.from_array(data, chunks=(300, 300)), pixel_um=0.65)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.is_tiled
    lazy = read_image(path, lazy=True)
    assert hasattr(lazy.data, "dask") and lazy.pixel_um == pytest.approx(0.65)
    np.testing.assert_array_equal(np.asarray(lazy.data), data)
    np.testing.assert_array_equal(read_image(path).data, data)


def test_check_pixel_size_warns_only_on_disagreement():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_pixel_size(0.65, 0.65)
        assert check_pixel_size(0.67, 0.65)  # 3% off: within the 5% default
        assert check_pixel_size(None, 0.65)  # nothing recorded: nothing to compare
    with pytest.warns(PixelSizeWarning, match="0.325 um.*0.65 um"):
        assert not check_pixel_size(0.325, 0.65)
    with pytest.warns(PixelSizeWarning):
        check_pixel_size(0.67, 0.65, tolerance=0.01)
    with pytest.raises(ValueError, match="positive"):
        check_pixel_size(0.65, 0.0)


@pytest.mark.parametrize("fmt, name", [("tiff", "o.tif"), ("ome-tiff", "o.ome.tif"), ("ome-zarr", "o.ome.zarr")])
def test_image_output_filled_tile_by_tile_keeps_data_and_pixel_size(tmp_path, fmt, name):
    from awdvd.io import open_image_output, write_image

    data = np.random.default_rng(8).uniform(0, 4000, (70, 90)).astype(np.float32)
    with open_image_output(tmp_path / name, format=fmt, shape=data.shape, dtype=np.float32, pixel_um=0.325,
                           chunks=32) as out:
        for y in range(0, 70, 32):
            out[y : y + 32] = data[y : y + 32]
    back = read_image(tmp_path / name)
    np.testing.assert_array_equal(back.data, data)
    assert back.pixel_um == pytest.approx(0.325, rel=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # the scratch memmap is gone
    with pytest.raises(FileExistsError):
        with open_image_output(tmp_path / name, format=fmt, shape=data.shape, dtype=np.float32, pixel_um=None):
            pass
    write_image(tmp_path / name, data[:10], format=fmt, pixel_um=0.65, overwrite=True)
    assert read_image(tmp_path / name).data.shape == (10, 90)


def test_image_output_leaves_nothing_on_error(tmp_path):
    from awdvd.io import open_image_output

    for fmt, name in (("tiff", "o.tif"), ("ome-zarr", "o.ome.zarr")):
        with pytest.raises(RuntimeError):
            with open_image_output(tmp_path / name, format=fmt, shape=(8, 8), dtype=np.uint16, pixel_um=0.65):
                raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="format"):
        with open_image_output(tmp_path / "o.png", format="png", shape=(8, 8), dtype=np.uint16, pixel_um=None):
            pass


def test_image_shape_from_metadata(tmp_path):
    from awdvd.io import image_shape

    write_tiff(tmp_path / "a.tif", np.zeros((30, 40), np.uint16))
    write_ome_tiff(tmp_path / "b.ome.tif", np.zeros((2, 30, 40), np.uint16), pixel_um=0.65)
    write_ome_zarr(tmp_path / "c.ome.zarr", np.zeros((30, 40), np.float32), pixel_um=0.65)
    write_png(tmp_path / "d.png", np.zeros((30, 40), np.uint8))
    shapes = {p.name: image_shape(p) for p in sorted(tmp_path.iterdir())}
    assert shapes == {"a.tif": (30, 40), "b.ome.tif": (2, 30, 40), "c.ome.zarr": (30, 40), "d.png": (30, 40)}
    assert all(read_image(tmp_path / n).data.shape == s for n, s in shapes.items())
    (tmp_path / "bad.tif").write_text("not a tiff")
    with pytest.raises(ImageReadError):
        image_shape(tmp_path / "bad.tif")


def test_image_stem_drops_format_suffixes():
    from awdvd.io import image_stem

    assert [image_stem(n) for n in ("a.tif", "a.ome.tif", "x/a.ome.zarr", "a.b.TIFF", "a.zarr", "a.png", ".tif")] == [
        "a", "a", "a", "a.b", "a", "a", ".tif"]


def test_read_json(tmp_path):
    from awdvd.io import read_json

    assert read_json(write_json(tmp_path / "a.json", {"x": [1, 2]})) == {"x": [1, 2]}
    (tmp_path / "b.json").write_text("{broken")
    with pytest.raises(ValueError, match="not a JSON"):
        read_json(tmp_path / "b.json")


# --------------------------------------------------------------------------------------------- discovery, plans
def test_find_images_files_folders_patterns_and_zarr(tmp_path):
    from awdvd.io import find_images

    for name in ("b.tif", "a.png", "c.TIFF", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    write_ome_zarr(tmp_path / "z.ome.zarr", np.zeros((4, 5), np.uint16), pixel_um=0.65)
    (tmp_path / "notes").mkdir()
    assert [p.name for p in find_images(tmp_path)] == ["a.png", "b.tif", "c.TIFF", "z.ome.zarr"]
    assert [p.name for p in find_images(str(tmp_path / "*.tif"))] == ["b.tif"]
    assert [p.name for p in find_images(tmp_path / "z.ome.zarr")] == ["z.ome.zarr"]
    assert len(find_images([tmp_path / "a.png", tmp_path / "a.png"])) == 1
    with pytest.raises(FileNotFoundError, match="no such file"):
        find_images(tmp_path / "missing.tif")
    with pytest.raises(FileNotFoundError, match="matches no file"):
        find_images(str(tmp_path / "*.jpg"))
    with pytest.raises(ValueError, match="no image files"):
        find_images(tmp_path / "notes")


def test_plan_outputs_once_and_checked(tmp_path):
    from awdvd.io import BatchPlan, plan_outputs

    for name in ("a.tif", "b.tif"):
        write_tiff(tmp_path / name, np.ones((8, 8), np.uint16))
    out = tmp_path / "out"
    plan = plan_outputs(tmp_path, lambda p: [out / f"{p.stem}.x.tif"])
    assert isinstance(plan, BatchPlan) and [p.name for p in plan.paths] == ["a.tif", "b.tif"]
    assert plan.todo() == list(plan.paths) and not plan.done(plan.paths[0])
    write_tiff(out / "a.x.tif", np.ones((8, 8), np.uint16))
    assert [p.name for p in plan.todo()] == ["b.tif"] and len(plan.todo(overwrite=True)) == 2
    assert [p.name for p in plan.subset([plan.paths[1]]).paths] == ["b.tif"]
    with pytest.raises(ValueError, match="would overwrite the input"):
        plan_outputs(tmp_path, lambda p: [p])
    with pytest.raises(ValueError, match="both write"):
        plan_outputs(tmp_path, lambda p: [out / "same.tif"])
    with pytest.raises(ValueError, match="named no output"):
        plan_outputs(tmp_path, lambda p: [])


def test_two_inputs_of_one_name_are_named_by_their_folders(tmp_path):
    """Issue 15 item 7: "good.tif and good.tif would both write ..." did not say which two files."""
    from awdvd.io import plan_outputs

    for sub in ("a", "b"):
        write_tiff(tmp_path / sub / "good.tif", np.ones((8, 8), np.uint16))
    with pytest.raises(ValueError) as caught:
        plan_outputs([tmp_path / "a", tmp_path / "b"], lambda p: [tmp_path / "out" / f"{p.stem}.x.tif"])
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'a' / 'good.tif'} and {tmp_path / 'b' / 'good.tif'} would both write")
