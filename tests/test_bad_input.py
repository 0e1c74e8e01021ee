"""The bad-input matrix (issue 15): every command that reads an image, a dataset or a model, given each kind of
bad file a user meets (plus the issue's own cases), ends with the exit code it should, exactly one line on
stderr (no traceback, no library's log lines, no progress bar), and changes no input and no existing output
(checksums of every file before and after). Valid but unusual images (negative, constant, a stack for
``simulate``) succeed quietly.

The commands run in this process through ``awdvd.cli.main`` with stdout and stderr captured (a command that
needs a real process, a signal, is in tests/cli/test_cli.py). A tiny random DelpNet stands in for the bundled model:
the matrix tests what happens to files, not the model's skill.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from awdvd.cli import main

# --------------------------------------------------------------------------------------------- the bad files
SIDE = 168  # two windows of 84 px: the pipeline runs, and fast


def _field(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.poisson(150, (SIDE, SIDE)).astype(np.float64) + 96
    yy, xx = np.mgrid[:SIDE, :SIDE]
    for _ in range(8):
        y, x = rng.uniform(0, SIDE, 2)
        image += 2500 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 5.0**2))
    return image


def _make_images(folder: Path) -> None:
    field = _field()
    u16 = field.astype(np.uint16)
    tifffile.imwrite(folder / "good.tif", u16)
    (folder / "empty.tif").write_bytes(b"")
    (folder / "text.tif").write_text("these are not the pixels you are looking for\n")
    raw = (folder / "good.tif").read_bytes()
    (folder / "truncated.tif").write_bytes(raw[: len(raw) // 2])  # header first: the pixels end past the file
    lost = bytearray(raw)  # the header at the end (as in BBBC006's files), and the end lost
    lost[4:8] = (len(raw) + 1000).to_bytes(4, "little")
    (folder / "lost_ifd.tif").write_bytes(bytes(lost))
    tifffile.imwrite(folder / "huge.tif", np.zeros((10, 10), np.uint8))
    with tifffile.TiffFile(folder / "huge.tif", mode="r+") as tif:  # a header that claims 100000 x 100000 px
        tif.pages[0].tags["ImageWidth"].overwrite(100000)
        tif.pages[0].tags["ImageLength"].overwrite(100000)
    for name, value in (("nan", np.nan), ("inf", np.inf)):
        bad = field.astype(np.float32)
        bad[20, 30] = value
        tifffile.imwrite(folder / f"{name}.tif", bad)
    tifffile.imwrite(folder / "negative.tif", (field - 400).astype(np.float32))  # background-subtracted
    tifffile.imwrite(folder / "constant.tif", np.full((SIDE, SIDE), 500, np.uint16))
    tifffile.imwrite(folder / "zeros.tif", np.zeros((SIDE, SIDE), np.uint16))
    tifffile.imwrite(folder / "saturated.tif", np.full((SIDE, SIDE), 65535, np.uint16))
    tifffile.imwrite(folder / "tiny.tif", u16[:10, :10])
    tifffile.imwrite(folder / "stack.tif", np.stack([u16] * 3), photometric="minisblack")
    u8 = np.clip(field / field.max() * 255, 0, 255).astype(np.uint8)
    tifffile.imwrite(folder / "rgb.tif", np.stack([u8] * 3, axis=-1), photometric="rgb")
    tifffile.imwrite(folder / "bool.tif", field > field.mean())
    tifffile.imwrite(folder / "complex.tif", field.astype(np.complex64))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    tifffile.imwrite(folder / "u8.tif", u8)


def _make_models(folder: Path, good: Path) -> None:
    (folder / "empty.pt").write_bytes(b"")
    (folder / "corrupt.pt").write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    raw = good.read_bytes()
    (folder / "truncated.pt").write_bytes(raw[: len(raw) // 3])
    (folder / "notes.pt").write_text("a model, I promise\n")
    (folder / "a_folder.pt").mkdir()


def _make_datasets(folder: Path, good: Path) -> None:
    (folder / "empty").mkdir()
    shutil.copytree(good, folder / "corrupt")
    for split in ("train", "val", "test"):
        (folder / "corrupt" / f"{split}.npz").write_bytes(b"garbage " * 64)
    shutil.copytree(good, folder / "truncated")
    for split in ("train", "val", "test"):
        path = folder / "truncated" / f"{split}.npz"
        path.write_bytes(path.read_bytes()[:300])
    shutil.copytree(good, folder / "bad_json")
    (folder / "bad_json" / "dataset.json").write_text("{ not json")
    (folder / "images").mkdir()
    tifffile.imwrite(folder / "images" / "a.tif", np.zeros((8, 8), np.uint16))


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model_file, tiny_dataset_dir):
    """Folders of bad inputs (never to change), a good model and dataset; returns their places by name."""
    root = tmp_path_factory.mktemp("bad")
    for name in ("images", "models", "datasets"):
        (root / name).mkdir()
    _make_images(root / "images")
    _make_models(root / "models", tiny_model_file)
    _make_datasets(root / "datasets", tiny_dataset_dir)
    return {"root": root, "img": root / "images", "models": root / "models", "ds": root / "datasets",
            "model": tiny_model_file, "dataset": tiny_dataset_dir}


# --------------------------------------------------------------------------------------------- running a command
def _checksums(*folders: Path) -> dict[str, str]:
    sums = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                sums[str(path)] = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    return sums


def run_cli(argv: list[str]) -> tuple[int, str, list[str], list[str]]:
    """(exit code, stdout, stderr lines, warnings that would have reached the terminal) of ``awdvd ARGV``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:  # argparse
            code = exit_.code
    shown = [str(w.message) for w in caught if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))]
    return int(code), out.getvalue(), err.getvalue().splitlines(), shown


def check_case(world, tmp_path, argv_of, code: int, says: str | None):
    """Run one case in a fresh output folder that already holds a file of the user's; check exit code, one
    stderr line saying ``says`` (or none for a success), no traceback, inputs and existing outputs unchanged."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own notes, beside the outputs\n")
    argv = argv_of({**world, "out": out})
    before_inputs = _checksums(world["root"])
    before_outputs = _checksums(out)
    got, stdout, lines, shown = run_cli(argv)
    assert not shown, f"warnings reached the terminal: {shown}"
    assert not any("Traceback" in line or "%|" in line for line in lines), lines
    if says is None:
        assert got == code and lines == [], (got, lines, stdout)
    else:
        assert got == code and len(lines) == 1 and says in lines[0], (got, lines)
    assert _checksums(world["root"]) == before_inputs, "an input changed"
    after = _checksums(out)
    changed = [p for p, digest in before_outputs.items() if after.get(p) != digest]
    assert not changed, f"existing outputs changed: {changed}"
    if says is not None:  # a failure writes nothing but its report
        new = [Path(p).name for p in after if p not in before_outputs]
        assert all(name.startswith("awdvd-") and name.endswith(".json") for name in new), new
    return got, stdout, lines


# --------------------------------------------------------------------------------------------- images
# the test images are plain TIFFs that record no optics: given here, so that a valid image gives no warning line
# (an image whose optics are assumed says so in one line: tests/cli/test_cli_deconvolve.py)
OPTICS = ["--pixel-um", "0.65", "--na", "0.5", "--wavelength-um", "0.451", "--immersion-n", "1.0"]
FAST = ["--workers", "0", "--psf-size", "15", *OPTICS]


def _image_commands(kind_file: str):
    return {
        "predict": lambda w: ["predict", w["img"] / kind_file, "-o", w["out"], "--model", w["model"], "--workers", "0",
                              *OPTICS],
        "deconvolve": lambda w: ["deconvolve", w["img"] / kind_file, "-o", w["out"], "--model", w["model"],
                                 "--iterations", "2", *FAST],
        "demo": lambda w: ["demo", "--image", w["img"] / kind_file, "-o", w["out"], "--model", w["model"]],
        "simulate": lambda w: ["simulate", w["img"] / kind_file, "-o", w["out"] / "ds", "--crops", "2", "--levels",
                               "3", "--psf-size", "15"],
        "evaluate-restoration": lambda w: ["evaluate-restoration", "--in-focus", w["img"] / kind_file, "-o", w["out"],
                                           "--iterations", "1", "--psf-size", "15", "--strides", "84"],
    }


# kind: (file, {command: (exit code, what the one line says)}); "*" for every image command. A file that fails in
# predict / deconvolve fails alone (exit 1, the run's summary names it); elsewhere it is the command's error.
_READ_ERRORS = {
    "missing": ("missing.tif", "no such file"),
    "empty": ("empty.tif", "is empty (0 bytes)"),
    "non-image": ("text.tif", "could not be read as an image"),
    "truncated": ("truncated.tif", "is truncated: its pixels (168 x 168 px) end at byte"),
    "lost-ifd": ("lost_ifd.tif", "is a damaged TIFF (truncated or corrupt"),
    "huge-claim": ("huge.tif", "claims 100000 x 100000 px"),
    "nan": ("nan.tif", "NaN or infinite"),
    "inf": ("inf.tif", "NaN or infinite"),
    "tiny": ("tiny.tif", "10 x 10"),
    "rgb": ("rgb.tif", "is a colour (RGB) image"),
    "bool": ("bool.tif", "1-bit (true/false) pixels"),
    "complex": ("complex.tif", "holds complex64 pixels"),
    "broken-png": ("broken.png", "could not be read as an image"),
    "3-d": ("stack.tif", "holds a stack of shape (3, 168, 168)"),
}
_TINY_ELSEWHERE = {"simulate": "has shape (10, 10); at least (84, 84) is needed",
                   "evaluate-restoration": "10 px along one axis; at least the patch size 84 px", "demo": "10 x 10"}
_STACK_ELSEWHERE = {"demo": "is a stack of shape (3, 168, 168); the demo takes one 2-D image"}
_OK = {  # valid but unusual: these succeed
    "negative": ("negative.tif", ("predict", "deconvolve", "demo", "simulate", "evaluate-restoration")),
    "constant": ("constant.tif", ("predict", "deconvolve", "demo")),
    "zeros": ("zeros.tif", ("predict", "deconvolve", "demo")),
    # stacks give their in-focus plane (simulate, evaluate-restoration) or a map per plane (predict)
    "3-d": ("stack.tif", ("simulate", "evaluate-restoration", "predict")),
}
_CONSTANT_SIMULATE = {"constant": "is constant", "zeros": "is constant"}


def _image_cases():
    for kind, (file, says) in _READ_ERRORS.items():
        for command in _image_commands(file):
            if kind == "3-d" and command in _OK["3-d"][1]:
                continue
            text = {"tiny": _TINY_ELSEWHERE, "3-d": _STACK_ELSEWHERE}.get(kind, {}).get(command, says)
            yield pytest.param(command, file, 1, text, id=f"{command}-{kind}")
    for kind, (file, commands) in _OK.items():
        for command in commands:
            yield pytest.param(command, file, 0, None, id=f"{command}-{kind}")
    for kind, says in _CONSTANT_SIMULATE.items():
        for command in ("simulate", "evaluate-restoration"):
            yield pytest.param(command, f"{kind}.tif", 1, says, id=f"{command}-{kind}")


@pytest.mark.parametrize("command,file,code,says", list(_image_cases()))
def test_image_matrix(world, tmp_path, command, file, code, says):
    got, stdout, lines = check_case(world, tmp_path, _image_commands(file)[command], code, says)
    if command in ("predict", "deconvolve") and code == 0:
        image = tifffile.imread(world["img"] / file)
        if command == "deconvolve":
            restored = tifffile.imread(next((tmp_path / "out").glob("*.awdvd.tif")))
            assert restored.shape == image.shape and np.isfinite(restored).all()
            if np.ptp(image) == 0:  # a constant image comes back as it was
                np.testing.assert_allclose(restored, image, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("file", ["constant.tif", "zeros.tif", "saturated.tif"])
def test_exactly_constant_images_are_background(world, tmp_path, file):
    """Issue 15 item 10 (the lead's, in awdvd.restore.defocus_maps): a constant window holds nothing to classify."""
    check_case(world, tmp_path, _image_commands(file)["predict"], 0, None)
    counts = json.loads(next((tmp_path / "out").glob("*.defocus.json")).read_text())["counts"]
    foreground = {level: n for level, n in counts.items() if level != "bg" and n}
    assert not foreground, f"windows of {file} called {foreground}"
    assert counts.get("bg", 0) > 0


# --------------------------------------------------------------------------------------------- models
def _model_commands(model: str):
    return {
        "predict": lambda w: ["predict", w["img"] / "good.tif", "-o", w["out"], "--model", w["models"] / model,
                              "--workers", "0"],
        "deconvolve": lambda w: ["deconvolve", w["img"] / "good.tif", "-o", w["out"], "--model", w["models"] / model,
                                 *FAST],
        "demo": lambda w: ["demo", "--image", w["img"] / "good.tif", "-o", w["out"], "--model", w["models"] / model],
        "evaluate": lambda w: ["evaluate", w["models"] / model, w["dataset"], "-o", w["out"]],
        "evaluate-restoration": lambda w: ["evaluate-restoration", "--in-focus", w["img"] / "good.tif", "--model",
                                           w["models"] / model, "-o", w["out"], "--psf-size", "15"],
        "export-bioimageio": lambda w: ["export-bioimageio", w["models"] / model, "-o", w["out"] / "delpnet.zip"],
        "train --init": lambda w: ["train", w["dataset"], "-o", w["out"] / "m.pt", "--init", w["models"] / model,
                                   "--epochs", "1", "--no-progress"],
    }


_BAD_MODELS = {"missing": ("missing.pt", "no such model file"),
               "empty": ("empty.pt", "could not be read as a model file"),
               "corrupt": ("corrupt.pt", "could not be read as a model file"),
               "truncated": ("truncated.pt", "could not be read as a model file"),
               "non-model": ("notes.pt", "could not be read as a model file"),
               "folder": ("a_folder.pt", "a_folder.pt")}


@pytest.mark.parametrize("command,model,says", [
    pytest.param(command, file, says, id=f"{command}-{kind}")
    for kind, (file, says) in _BAD_MODELS.items() for command in _model_commands(file)])
def test_model_matrix(world, tmp_path, command, model, says):
    check_case(world, tmp_path, _model_commands(model)[command], 1, says)


# --------------------------------------------------------------------------------------------- datasets
def _dataset_commands(dataset: str):
    return {
        "train": lambda w: ["train", w["ds"] / dataset, "-o", w["out"] / "m.pt", "--epochs", "1", "--no-progress"],
        "evaluate": lambda w: ["evaluate", w["model"], w["ds"] / dataset, "-o", w["out"]],
        "evaluate-restoration": lambda w: ["evaluate-restoration", "--dataset", w["ds"] / dataset, "-o", w["out"],
                                           "--psf-size", "15"],
    }


_BAD_DATASETS = {"missing": ("missing", "is not a dataset folder"),
                 "empty": ("empty", "has no dataset.json"),
                 "corrupt-npz": ("corrupt", "is not a valid awdvd split file"),
                 "truncated-npz": ("truncated", "is not a valid awdvd split file"),
                 "bad-json": ("bad_json", "is not valid JSON"),
                 "images-only": ("images", "has no dataset.json")}


@pytest.mark.parametrize("command,dataset,says", [
    pytest.param(command, folder, says, id=f"{command}-{kind}")
    for kind, (folder, says) in _BAD_DATASETS.items() for command in _dataset_commands(folder)])
def test_dataset_matrix(world, tmp_path, command, dataset, says):
    got, _, lines = check_case(world, tmp_path, _dataset_commands(dataset)[command], 1, says)
    if "split file" in says:
        assert str(world["ds"] / dataset) in lines[0]  # the damaged file is named


# --------------------------------------------------------------------------------------------- the issue's own cases
_ISSUE_CASES = {
    # item 1: an offset that would destroy the image
    "offset-above-most-pixels": (lambda w: ["deconvolve", w["img"] / "u8.tif", "-o", w["out"], "--model", w["model"],
                                            "--offset", "200", *FAST], 1, "is above 9"),
    "offset-above-maximum": (lambda w: ["deconvolve", w["img"] / "good.tif", "-o", w["out"], "--model", w["model"],
                                        "--offset", "100000", *FAST], 1, "above 100% of the image's pixels"),
    "offset-far-below": (lambda w: ["deconvolve", w["img"] / "good.tif", "-o", w["out"], "--model", w["model"],
                                    "--offset=-1e9", *FAST], 1, "far below the image's darkest pixel"),
    # item 3
    "train-into-a-folder": (lambda w: ["train", w["dataset"], "-o", w["out"], "--overwrite", "--epochs", "1"], 1,
                            "is a folder; -o takes the model file to write"),
    # item 7
    "evaluate-into-a-file": (lambda w: ["evaluate", w["model"], w["dataset"], "-o", w["out"] / "notes.txt"], 1,
                             "notes.txt is a file; -o takes a folder"),
    "demo-into-a-file": (lambda w: ["demo", "-o", w["out"] / "notes.txt"], 1, "notes.txt is a file; -o takes a folder"),
    "predict-into-a-file": (lambda w: ["predict", w["img"] / "good.tif", "-o", w["out"] / "notes.txt", "--model",
                                       w["model"]], 1, "notes.txt is a file; -o takes a folder"),
    "export-into-a-folder": (lambda w: ["export-bioimageio", w["model"], "-o", w["out"]], 1,
                             "is a folder; -o takes the file to write"),
    # item 11
    "simulate-into-a-file": (lambda w: ["simulate", w["img"] / "good.tif", "-o", w["out"] / "notes.txt"], 1,
                             "notes.txt is a file; -o takes a folder"),
    "psf-size-1": (lambda w: ["deconvolve", w["img"] / "good.tif", "-o", w["out"], "--psf-size", "1"], 2,
                   "a 1 px PSF deconvolves nothing"),
    "psf-size-2001": (lambda w: ["deconvolve", w["img"] / "good.tif", "-o", w["out"], "--psf-size", "2001"], 2,
                      "expected at most 1001 px"),
    "psf-size-even": (lambda w: ["simulate", w["img"] / "good.tif", "-o", w["out"], "--psf-size", "20"], 2,
                      "expected an odd size"),
}


@pytest.mark.parametrize("case", list(_ISSUE_CASES))
def test_issue_cases(world, tmp_path, case):
    argv_of, code, says = _ISSUE_CASES[case]
    check_case(world, tmp_path, argv_of, code, says)


def test_a_file_with_an_output_name_is_kept(world, tmp_path):
    """Item 4: a file that merely has an output's name is not replaced, and the refusal is one line."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "good.awdvd.tif").write_bytes(b"the user's own file")
    got, _, lines, _ = run_cli(["deconvolve", world["img"] / "good.tif", "-o", out, "--model", world["model"], *FAST])
    assert got == 1 and len(lines) == 1 and "exists but was not written by awdvd" in lines[0]
    assert (out / "good.awdvd.tif").read_bytes() == b"the user's own file"


def test_same_names_in_two_folders_say_which(world, tmp_path):
    """Item 7: "good.tif and good.tif would both write ..." now names the two files."""
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(world["img"] / "good.tif", tmp_path / sub / "good.tif")
    got, _, lines, _ = run_cli(["deconvolve", tmp_path / "a" / "good.tif", tmp_path / "b" / "good.tif", "-o",
                                tmp_path / "out", "--model", world["model"], *FAST])
    assert got == 1 and len(lines) == 1
    assert f"{tmp_path / 'a' / 'good.tif'} and {tmp_path / 'b' / 'good.tif'} would both write" in lines[0]


def test_rerun_into_the_input_folder(world, tmp_path):
    """Item 8: output folder = input folder works on rerun."""
    shutil.copy(world["img"] / "good.tif", tmp_path / "good.tif")
    for command in ("deconvolve", "predict"):
        for _ in range(2):
            extra = FAST if command == "deconvolve" else ["--workers", "0", *OPTICS]
            got, stdout, lines, _ = run_cli([command, tmp_path, "-o", tmp_path, "--model", world["model"], *extra])
            assert got == 0 and lines == [], lines
        assert "1 skipped" in stdout
