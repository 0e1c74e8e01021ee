import numpy as np
import pytest
import tifffile

from awdvd.io import ImageReadError, atomic_path, read_image, write_json, write_png, write_tiff


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
