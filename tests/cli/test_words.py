"""awdvd.cli.words: what the command line prints about options is in the user's words (the flags and values they
typed), never Python's (``iterations None (now 30)``, ``pass --overwrite (overwrite=True)``, ``ValueError:``).
Each message is checked as a user meets it: ``awdvd ...`` run in-process."""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest

from awdvd.batch.file_optics import OPTICS_FIELDS
from awdvd.batch.jobs import DeconvolveJob, PredictJob
from awdvd.batch.reruns import ForeignOutputError, OtherSettingsError
from awdvd.batch.runner import BatchReport, FileResult
from awdvd.cli import build_parser, main
from awdvd.cli.words import FLAGS, error_line, flag, in_words, setting, summary
from awdvd.io import write_tiff

pytest.importorskip("torch")

OPTICS = ["--pixel-um", "0.65", "--na", "0.5", "--wavelength-um", "0.451", "--immersion-n", "1"]
FAST = ["--psf-size", "15", "--device", "cpu", "--workers", "0"]
AGAIN = "pass --overwrite to redo finished files, or write to another output folder (-o)"


def python_words(line: str, *folders) -> list[str]:
    """What in ``line`` only a Python caller would write: None/True/False, name=value, "options", snake_case
    names, dict or list reprs, exception types (the paths under ``folders`` left out)."""
    for folder in folders:
        line = line.replace(str(folder), "DIR")
    return re.findall(r"\b(?:None|True|False)\b|\w+=\w+|\boptions\b|\b[a-z]+_[a-z_]+\b|\{'|\[\d|\b[A-Z]\w*Error\b",
                      line)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_model_file):
    root = tmp_path_factory.mktemp("words")
    image = (np.random.default_rng(0).poisson(200, size=(100, 130)) + 96).astype(np.uint16)
    image[30:50, 40:70] += 3000
    write_tiff(root / "a.tif", image, pixel_um=0.65)
    return root, tiny_model_file


def awdvd(capsys, *argv) -> tuple[int, list[str], list[str]]:
    """(exit code, stdout lines, stderr lines) of ``awdvd ARGV``."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def deconvolve(workspace, out, *extra):
    root, model = workspace
    return ["deconvolve", root / "a.tif", "-o", out, "--model", model, *FAST, *extra]


# --------------------------------------------------------------------------------------------- the table
def _options_of(command: str) -> set[str]:
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(subparsers.choices[command]._option_string_actions)


@pytest.mark.parametrize("command,job,flagless", [("deconvolve", DeconvolveJob, {"tv_weight", "normalization"}),
                                                  ("predict", PredictJob, set())])
def test_every_setting_a_rerun_compares_is_a_flag_of_its_command(tmp_path, command, job, flagless):
    """The table cannot drift from the parsers: each setting a sidecar records names a flag the command has, or
    is one that only a Python caller can set (named in words)."""
    settings = job(out_dir=tmp_path, optics={name: 1.0 for name in OPTICS_FIELDS}).settings()
    fields = {*settings["options"], *settings["job"], *settings["job"]["optics"]} - {"optics"}
    flags = _options_of(command)
    said = {f: flag(f, command) for f in fields}
    assert {f: s for f, s in said.items() if s.startswith("-") and s not in flags} == {}
    assert {f for f, s in said.items() if not s.startswith("-")} == flagless
    assert FLAGS["overwrite"] in flags


def test_settings_read_as_typed():
    assert setting("iterations", None) == setting("rl", None) == "the model's"
    assert setting("pixel_um", None) == "the file's" and setting("psf_size", None) == "the default"
    assert setting("smoothing_px", 21.0) == "21" and setting("offset", -5.0) == "-5" and setting("offset", "auto") == "auto"
    assert setting("model", "bundled") == "the bundled model" and setting("iterations", [0, 5, 5]) == "0,5,5"
    assert flag("tv_weight") == "tv weight" and flag("normalization", "deconvolve") == "normalization"
    assert flag("map_mode", "deconvolve") == "--map-mode" and flag("map_mode", "predict") == "--mode"


def test_python_asides_are_left_out():
    for said in ("out.tif exists; choose another output or pass --overwrite (overwrite=True)",
                 "out.tif exists; choose another output or pass overwrite=True (--overwrite)"):
        assert in_words(said) == "out.tif exists; choose another output or pass --overwrite"
        assert error_line(FileExistsError(said + "\nsecond line"), "psf") == in_words(said)
    assert error_line(KeyboardInterrupt(), "psf") == "KeyboardInterrupt"  # nothing else to say


def test_a_batch_summary_names_no_exception_type(tmp_path):
    results = (FileResult(tmp_path / "a.tif", "failed", (), error="OpticsAssumedError: the file does not record NA"),
               FileResult(tmp_path / "b.tif", "skipped", ()),
               FileResult(tmp_path / "c.tif", "failed", (), error="KilledWorker"))
    said = summary(BatchReport(results=results, seconds=1.0, where="serial"))
    assert "Failed: a.tif (the file does not record NA); c.tif (KilledWorker)." in said
    assert "(--overwrite redoes them)" in said and python_words(said, tmp_path) == []


# --------------------------------------------------------------------------------------------- as a user meets them
def test_a_rerun_with_other_settings_names_the_flags(workspace, capsys):
    """The issue: "made with other options: iterations None (now 30); pass --overwrite (overwrite=True)"."""
    root, _ = workspace
    out = root / "first"
    assert awdvd(capsys, *deconvolve(workspace, out, "--iterations", "2", *OPTICS))[0] == 0
    code, _, err = awdvd(capsys, *deconvolve(workspace, out, "--iterations", "3", *OPTICS))
    sidecar = out / "a.awdvd.json"
    assert code == 1 and err == [(f"awdvd deconvolve: error: {sidecar} was made with other settings: --iterations 2 "
                                  f"(now 3); {AGAIN}")]
    # several at once, each as typed; an option left to the model says so
    code, _, err = awdvd(capsys, *deconvolve(workspace, out, "--iterations", "2", "--rl", "tv", "--offset", "5",
                                             "--dtype", "input", *OPTICS))
    assert code == 1 and len(err) == 1
    assert "--rl the model's (now tv), --offset auto (now 5), --dtype float32 (now input);" in err[0]
    # optics given before, now left to the file: one setting per flag, not a dict
    code, _, err = awdvd(capsys, *deconvolve(workspace, out, "--iterations", "2"))
    assert code == 1 and len(err) == 1
    assert ("--immersion-n 1 (now the file's), --na 0.5 (now the file's), --pixel-um 0.65 (now the file's), "
            "--wavelength-um 0.451 (now the file's);") in err[0]
    # the same settings: skipped, and the summary says how to redo them
    code, lines, err = awdvd(capsys, *deconvolve(workspace, out, "--iterations", "2", *OPTICS))
    assert code == 0 and err == [] and "1 skipped" in lines[-1] and "(--overwrite redoes them)" in lines[-1]
    for line in lines:
        assert python_words(line, root) == [], line


def test_the_models_iterations_then_a_number(workspace, capsys):
    """The issue's own line: a run with the model's iterations, rerun with --iterations 30."""
    root, _ = workspace
    out = root / "model-iterations"
    assert awdvd(capsys, *deconvolve(workspace, out, *OPTICS))[0] == 0
    code, _, err = awdvd(capsys, *deconvolve(workspace, out, "--iterations", "30", *OPTICS))
    assert code == 1 and err == [(f"awdvd deconvolve: error: {out / 'a.awdvd.json'} was made with other settings: "
                                  f"--iterations the model's (now 30); {AGAIN}")]
    assert python_words(err[0], root) == []


def test_predict_names_its_own_flag(workspace, capsys):
    root, model = workspace
    argv = ["predict", root / "a.tif", "-o", root / "maps", "--model", model, "--device", "cpu", "--workers", "0",
            *OPTICS]
    assert awdvd(capsys, *argv)[0] == 0
    code, _, err = awdvd(capsys, *argv, "--mode", "patch", "--stride", "21")
    assert code == 1 and len(err) == 1 and python_words(err[0], root) == []
    assert "made with other settings: --stride 42 (now 21), --mode auto (now patch);" in err[0]


def test_a_file_awdvd_did_not_write_is_kept_in_the_users_words(workspace, capsys):
    root, _ = workspace
    out = root / "foreign"
    out.mkdir()
    (out / "a.awdvd.tif").write_bytes(b"the user's own file")
    code, _, err = awdvd(capsys, *deconvolve(workspace, out, *OPTICS))
    assert code == 1 and err == [(f"awdvd deconvolve: error: {out / 'a.awdvd.tif'} exists but was not written by awdvd "
                                  "(no a.awdvd.json beside it), so it is not replaced: move it away, choose another "
                                  "output folder (-o), or pass --overwrite to replace it")]


def test_a_failed_file_is_reported_without_its_exception_type(workspace, capsys):
    root, _ = workspace
    code, _, err = awdvd(capsys, *deconvolve(workspace, root / "failed", "--offset", "100000", "--iterations", "1",
                                             *OPTICS))
    assert code == 1 and len(err) == 1 and "Failed: a.tif (offset 100000 ADU is above" in err[0]
    assert python_words(err[0], root) == [], err[0]


def test_an_existing_output_of_another_command(workspace, capsys):
    """A library writer's refusal ("pass overwrite=True (--overwrite)") on the command line: the flag only."""
    root, _ = workspace
    argv = ["psf", "-o", root / "bank.tif", "--levels", "2", "--size", "15"]
    assert awdvd(capsys, *argv)[0] == 0
    code, _, err = awdvd(capsys, *argv)
    assert code == 1 and err == [(f"awdvd psf: error: {root / 'bank.tif'} exists; choose another output or pass "
                                  "--overwrite")]


def test_the_refusals_are_worded_from_what_they_carry(tmp_path):
    """Errors that carry their fields are worded from them, not from their Python message."""
    other = OtherSettingsError(tmp_path / "a.awdvd.json", [("psf_size", None, 15), ("smoothing_px", 21.0, 0.0)])
    assert error_line(other, "deconvolve") == (f"{tmp_path / 'a.awdvd.json'} was made with other settings: "
                                               f"--psf-size the default (now 15), --smoothing 21 (now 0); {AGAIN}")
    foreign = ForeignOutputError(tmp_path / "a.awdvd.tif", 2, "a.awdvd.json")
    assert "a.awdvd.tif (and 2 more) exists but" in error_line(foreign, "deconvolve")
    assert "overwrite=True" in str(other) and "overwrite=True" in str(foreign)  # the library's: Python's words


def test_a_changed_tta_or_smoothing_redoes_no_finished_map_silently(tmp_path, capsys):
    """`awdvd predict --tta 2` into a folder finished with the defaults is refused with the setting named, not
    skipped as done (the maps would differ)."""
    import numpy as np
    import tifffile

    from awdvd.cli import main

    tifffile.imwrite(tmp_path / "a.tif", np.random.default_rng(0).poisson(300, (200, 260)).astype(np.uint16))
    optics = ["--pixel-um", "0.65", "--na", "0.5", "--wavelength-um", "0.451", "--immersion-n", "1.0"]
    argv = ["predict", str(tmp_path / "a.tif"), "-o", str(tmp_path / "maps"), "--workers", "0", *optics]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv + ["--tta", "2"]) == 1
    err = capsys.readouterr().err
    assert "--tta 1 (now 2)" in err and "--overwrite" in err


def test_a_z_stack_is_refused_by_deconvolve_with_the_reason(tmp_path, capsys):
    """Restoring a z-stack plane by plane with 2-D PSFs is physically wrong: one line says so and names 3-D
    deconvolution; nothing is written for it."""
    import numpy as np
    import tifffile

    from awdvd.cli import main

    stack = np.random.default_rng(0).poisson(300, (3, 120, 130)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")  # 3 planes, not RGB
    assert main(["deconvolve", str(tmp_path / "stack.tif"), "-o", str(tmp_path / "out"), "--workers", "0",
                 "--pixel-um", "0.65", "--na", "0.5", "--wavelength-um", "0.451", "--immersion-n", "1.0"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "stack of shape (3, 120, 130)" in line and "z-stack plane by plane" in line and "3-D deconvolution" in line
    assert not list((tmp_path / "out").glob("stack.awdvd.*"))
