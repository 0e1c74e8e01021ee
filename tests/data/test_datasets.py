
import numpy as np
import pytest
import tifffile

from awdvd.data.datasets import (
    DatasetError,
    bbbc006_fields,
    fetch_bbbc006,
    in_focus_index,
    is_bbbc006_root,
    load_bbbc006_in_focus,
    load_in_focus_images,
    parse_planes,
    read_dataset,
    read_dataset_metadata,
    simulate_dataset,
    write_dataset,
)
from awdvd.data.synth import DatasetSpec, make_patch_dataset, synthetic_nuclei
from awdvd.io import find_images, read_image


@pytest.fixture(scope="module")
def small_dataset():
    sources = [synthetic_nuclei((100, 120), n_nuclei=5, seed=s) for s in range(2)]
    return make_patch_dataset(sources, spec=DatasetSpec(psf_size=15, crops_per_image=3))


def test_dataset_round_trip(tmp_path, small_dataset):
    splits, meta = small_dataset
    write_dataset(tmp_path / "ds", splits, meta)
    for name, part in splits.items():
        back, back_meta = read_dataset(tmp_path / "ds", name)
        assert back_meta == meta
        for field in ("raw", "truth", "level", "background", "source", "image", "yx"):
            np.testing.assert_array_equal(getattr(back, field), getattr(part, field))
    with np.load(tmp_path / "ds" / "train.npz", allow_pickle=False) as f:  # plain arrays only
        assert "meta" in f.files


def test_dataset_refuses_to_overwrite(tmp_path, small_dataset):
    write_dataset(tmp_path / "ds", *small_dataset)
    with pytest.raises(FileExistsError, match="overwrite"):
        write_dataset(tmp_path / "ds", *small_dataset)
    write_dataset(tmp_path / "ds", *small_dataset, overwrite=True)


def test_bad_dataset_folders(tmp_path, small_dataset):
    with pytest.raises(DatasetError, match="not a dataset folder"):
        read_dataset_metadata(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no dataset.json"):
        read_dataset(tmp_path / "empty", "train")
    write_dataset(tmp_path / "ds", *small_dataset)
    (tmp_path / "ds" / "test.npz").unlink()
    with pytest.raises(DatasetError, match="missing"):
        read_dataset(tmp_path / "ds", "test")
    (tmp_path / "ds" / "val.npz").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="not a valid"):
        read_dataset(tmp_path / "ds", "val")
    with pytest.raises(ValueError, match="split"):
        read_dataset(tmp_path / "ds", "holdout")


def test_find_images(tmp_path):
    for name in ("b.tif", "a.png", "c.TIFF", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    names = [p.name for p in find_images(tmp_path)]
    assert names == ["a.png", "b.tif", "c.TIFF"]
    assert [p.name for p in find_images(str(tmp_path / "*.tif"))] == ["b.tif"]
    assert len(find_images([tmp_path / "a.png", tmp_path / "a.png"])) == 1
    with pytest.raises(FileNotFoundError):
        find_images(tmp_path / "missing.tif")
    with pytest.raises(FileNotFoundError, match="matches no file"):
        find_images(str(tmp_path / "*.jpg"))
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        find_images(tmp_path / "sub")


def test_find_images_counts_zarr_folders_as_images(tmp_path):
    from awdvd.io import write_ome_zarr

    write_ome_zarr(tmp_path / "z.ome.zarr", np.zeros((4, 5), np.uint16), pixel_um=0.65)
    (tmp_path / "a.tif").write_bytes(b"x")
    (tmp_path / "notes").mkdir()
    assert [p.name for p in find_images(tmp_path)] == ["a.tif", "z.ome.zarr"]
    assert [p.name for p in find_images(tmp_path / "z.ome.zarr")] == ["z.ome.zarr"]
    assert [p.name for p in find_images(str(tmp_path / "*.zarr"))] == ["z.ome.zarr"]


def test_in_focus_index_is_max_std():
    rng = np.random.default_rng(0)
    stack = np.stack([rng.normal(100, s, (20, 20)) for s in (1, 3, 9, 4, 2)])
    assert in_focus_index(stack) == 2
    with pytest.raises(ValueError, match=r"a z-stack must be \(Z, H, W\)"):
        in_focus_index(np.zeros((4, 4)))


def test_load_in_focus_from_multipage_stack(tmp_path):
    sharp = synthetic_nuclei((90, 100), n_nuclei=4, seed=0)
    stack = np.stack([np.full_like(sharp, sharp.mean()), sharp, (sharp + sharp.mean()) / 2]).astype(np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    tifffile.imwrite(tmp_path / "plain.tif", stack[1])
    images, names = load_in_focus_images(tmp_path)
    assert names == ["plain.tif", "stack.tif[z=1]"]
    np.testing.assert_array_equal(images[1], stack[1])


def test_simulate_dataset_reads_synthesises_and_writes(tmp_path):
    from awdvd.data.synth import CameraNoise
    from awdvd.physics.optics import Optics

    folder = tmp_path / "in_focus"
    folder.mkdir()
    sources = [synthetic_nuclei((90, 100), n_nuclei=4, seed=seed) for seed in range(2)]
    for seed, image in enumerate(sources):
        tifffile.imwrite(folder / f"f{seed}.tif", image.astype(np.uint16))
    spec, noise = DatasetSpec(psf_size=11, crops_per_image=2, seed=5), CameraNoise(gain_adu_per_e=1.0, offset_adu=0.0)
    with pytest.warns(UserWarning):
        optics = Optics(n_levels=4)
    metadata = simulate_dataset(folder, tmp_path / "ds", optics=optics, noise=noise, spec=spec)
    assert metadata == read_dataset_metadata(tmp_path / "ds")
    assert metadata["sources"] == ["f0.tif", "f1.tif"] and metadata["noise"] == noise.to_dict()
    assert sum(metadata["n_patches"].values()) == 2 * 4 * 2
    # the same as synthesising the arrays directly (the files hold the images as read)
    expected, _ = make_patch_dataset([image.astype(np.uint16) for image in sources], optics=optics, noise=noise,
                                     spec=spec, source_names=["f0.tif", "f1.tif"])
    train, _ = read_dataset(tmp_path / "ds", "train")
    np.testing.assert_array_equal(train.raw, expected["train"].raw)
    with pytest.raises(FileExistsError, match="already holds a dataset; use another folder or --overwrite"):
        simulate_dataset(tmp_path / "missing", tmp_path / "ds")  # refused before reading anything
    assert simulate_dataset(folder, tmp_path / "ds", spec=spec, overwrite=True)["spec"]["seed"] == 5


@pytest.fixture()
def bbbc006_layout(tmp_path, bbbc006_dir):
    """A miniature BBBC006 in the original layout, from the shared real images: 2 fields x 3 planes x 2 channels.
    The sharp in-focus image sits at z=16 of each field, defocused real images at the other planes."""
    focus = sorted((bbbc006_dir / "in_focus").glob("*.png"))[:2]
    blurred = sorted((bbbc006_dir / "defocus_z00").glob("*.tif"))[:2]
    root = tmp_path / "BBBC006"
    for z in (0, 16, 33):
        folder = root / f"BBBC006_v1_images_z_{z:02d}"
        folder.mkdir(parents=True)
        for (well, site), sharp, soft in zip((("a01", 1), ("b02", 2)), focus, blurred):
            for channel in (1, 2):
                name = f"mcf-z-stacks-03212011_{well}_s{site}_w{channel}{'0f3c' if channel == 1 else 'a9b1'}-1d2e.tif"
                src = read_image(sharp if z == 16 else soft).data
                tifffile.imwrite(folder / name, src, compression="lzw")
        (folder / "Thumbs.db").write_bytes(b"junk")  # unrelated files are ignored
    return root, focus


def test_bbbc006_layout(bbbc006_layout):
    root, focus = bbbc006_layout
    assert is_bbbc006_root(root)
    fields = bbbc006_fields(root)
    assert [f.name for f in fields] == ["a01_s1_w1", "b02_s2_w1"]
    assert [z for z, _ in fields[0].planes] == [0, 16, 33]
    assert fields[0].stack().shape == (3, 520, 696)
    assert len(bbbc006_fields(root, channel=None)) == 4
    images, names = load_bbbc006_in_focus(root)
    assert names == ["a01_s1_w1[z=16]", "b02_s2_w1[z=16]"]
    np.testing.assert_array_equal(images[0], read_image(focus[0]).data)
    images2, names2 = load_in_focus_images([root])  # a BBBC006 root is recognised by the generic loader
    assert names2 == names


def test_bbbc006_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        bbbc006_fields(tmp_path / "none")
    with pytest.raises(ValueError, match="BBBC006_v1_images_z_NN"):
        bbbc006_fields(tmp_path)
    (tmp_path / "BBBC006_v1_images_z_00").mkdir()
    with pytest.raises(ValueError, match="no BBBC006 image files"):
        bbbc006_fields(tmp_path)


def test_parse_planes():
    assert parse_planes("all") == list(range(34))
    assert parse_planes("0,16, 20-22") == [0, 16, 20, 21, 22]
    for bad, message in (("", "BBBC006 planes are 0..33"), ("x", "planes must be 'all', numbers or ranges"),
                         ("40", "BBBC006 planes are 0..33"), ("3-50", "BBBC006 planes are 0..33")):
        with pytest.raises(ValueError, match=message):
            parse_planes(bad)


def test_fetch_without_network_fails_cleanly(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(ConnectionError, match="cannot download"):
        fetch_bbbc006(tmp_path / "bbbc", planes=[16])
    assert not (tmp_path / "bbbc").exists()


def test_fetch_unpacks_archives(tmp_path, monkeypatch):
    """The download path against a local zip served by a stand-in for urlopen: real unpacking, real renames."""
    import io
    import urllib.request
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("BBBC006_v1_images_z_16/mcf-z-stacks-03212011_a01_s1_w1abc.tif", b"tiff bytes")
    payload = buffer.getvalue()

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}

    calls = []

    def fake_urlopen(url, timeout):
        calls.append(url)
        return Response(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    folders = fetch_bbbc006(tmp_path, planes=[16])
    assert calls == ["https://data.broadinstitute.org/bbbc/BBBC006/BBBC006_v1_images_z_16.zip"]
    assert (folders[0] / "mcf-z-stacks-03212011_a01_s1_w1abc.tif").read_bytes() == b"tiff bytes"
    fetch_bbbc006(tmp_path, planes=[16])  # already there: skipped, no second download
    assert len(calls) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BBBC006_v1_images_z_16"]


def test_a_damaged_split_file_is_named(tmp_path, small_dataset):
    """Issue 15 item 7: a damaged .npz said only "File is not a zip file"."""
    write_dataset(tmp_path / "ds", *small_dataset)
    split = tmp_path / "ds" / "train.npz"
    split.write_bytes(split.read_bytes()[:200])  # cut short, as a failed copy leaves it
    with pytest.raises(DatasetError) as caught:
        read_dataset(tmp_path / "ds", "train")
    assert str(caught.value).startswith(f"{split} is not a valid awdvd split file")


def test_simulate_checks_its_output_before_any_work(tmp_path, monkeypatch):
    """Issue 15 item 11: `simulate -o EXISTING_FILE` read and synthesised everything before refusing."""
    import awdvd.data.datasets

    def no_reading(*args, **kwargs):
        raise AssertionError("images read")

    monkeypatch.setattr(awdvd.data.datasets, "load_in_focus_images", no_reading)
    (tmp_path / "existing").write_bytes(b"mine")
    with pytest.raises(NotADirectoryError, match="is a file; -o takes a folder"):
        simulate_dataset(tmp_path, tmp_path / "existing")
    assert (tmp_path / "existing").read_bytes() == b"mine"
