"""The documentation's code runs: every ```python and ```bash block of README.md and docs/**/*.md, and the site
builds with ``mkdocs build --strict``.

Convention (docs code runs in the tests on these files). The blocks of one page run in order, in a temporary
folder of that page's own, which holds before its first block:

- ``field.tif``: one 520 x 696 uint16 defocused procedural field (a tilted specimen of nuclei, defocus levels
  0-10 from left to right, BBBC006's camera noise) with its pixel size, 0.65 um;
- ``plate1/A01.tif``, ``plate1/A02.tif``, ``plate1/B01.tif``: three such fields named after plate wells, tilted
  over levels 0-1 (in focus), 2-5 and 6-10 (12-20 um from focus);
- ``my_in_focus/``: two in-focus procedural fields (520 x 696 uint16, 0.65 um);
- ``plate.czi``: a Zeiss CZI of two scenes ("A1", "A2": 260 x 348 crops of defocused fields) recording its pixel
  size, emission, NA and immersion index (when pylibCZIrw, of ``awdvd[formats]``, is installed).

What a page's blocks write there (``restored/``, ``my_model.pt``, ...) is there for its later blocks.

- ```python blocks are executed with ``exec`` in a fresh namespace, the page's folder as working directory.
- ```bash blocks run line by line (``\\`` continuations joined, ``#`` comments dropped): a line starting with
  ``awdvd`` runs in this process through ``awdvd.cli.main(shlex.split(line)[1:])`` and must exit with status 0;
  a line starting with ``make`` is an install step, and its targets must exist in the Makefile; ``pip`` and
  ``git`` lines are install steps that a test must not run (they would change this environment or need the
  network) and are skipped; other programs (``napari``, ``bioimageio``, ...) are not run here either. A bash
  block with nothing to run is reported as skipped, with the lines it holds.
- Output-only blocks are ```text, and are not run.
- Commands that run for minutes must be written with a small budget (``awdvd train --images ... --recipe
  smoke``, ``awdvd train DATASET ... --epochs 1``); a line that would not is refused before it runs
  (:func:`too_long`), saying what to change.

A failure names the page, the block's number on it and the line of its opening fence, e.g.
``docs/training.md#2 (line 50)``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
RUN_LANGUAGES = ("python", "bash")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
INSTALL_PROGRAMS = {"pip": "installs into this environment", "git": "needs the network"}
#: minutes-long subcommands, and what a docs line of each must say to stay within seconds
LONG_COMMANDS = {
    "reproduce": "takes minutes even at --scale smoke: show it in prose or a ```text block",
    "calibrate-restoration": "takes minutes: show it in prose or a ```text block",
    "evaluate-robustness": "takes minutes: show it in prose or a ```text block",
    "evaluate-restoration": "takes minutes: show it in prose or a ```text block",
    "fetch-bbbc006": "needs the network: show it in prose or a ```text block",
    "demo": "takes 10-15 s on its own: show `make demo` instead",
}
#: subcommands that need an extra: the block is skipped, saying so, where it is not installed
NEEDS_MODULE = {"export-bioimageio": "bioimageio.spec"}


@dataclass(frozen=True)
class Block:
    path: Path
    number: int  # 1-based, counting the page's ```python and ```bash blocks only
    line: int  # 1-based line of the opening fence
    language: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO).as_posix()}#{self.number}"


def code_blocks(path: Path) -> list[Block]:
    """The ```python and ```bash blocks of a Markdown file, in order (fences of 3+ backticks or tildes, possibly
    indented, as in a list; a block's lines lose the fence's indentation)."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, indent = opening.group("fence"), len(opening.group("indent"))
        language = opening.group("info").strip().split(" ")[0].lower() if opening.group("info").strip() else ""
        body, end = [], index + 1
        while end < len(lines):
            closing = FENCE.match(lines[end])
            if closing and closing.group("fence")[0] == fence[0] and len(closing.group("fence")) >= len(fence) \
                    and not closing.group("info").strip():
                break
            body.append(lines[end][indent:] if not indent or lines[end][:indent].isspace() else lines[end].lstrip())
            end += 1
        if language in RUN_LANGUAGES:
            blocks.append(Block(path, len(blocks) + 1, index + 1, language, "\n".join(body) + "\n"))
        index = end + 1
    return blocks


def command_lines(code: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blank lines dropped."""
    commands, pending = [], ""
    for raw in code.splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        words = shlex.split(line, comments=True)
        if words:
            commands.append(shlex.join(words))
    if pending.strip():
        commands.append(pending.strip())
    return commands


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set()
    for match in re.finditer(r"^([A-Za-z0-9_.\-$() ]+):(?!=)", text, flags=re.MULTILINE):
        targets.update(match.group(1).split())
    return targets


def too_long(argv: list[str]) -> str | None:
    """Why an ``awdvd`` command (its arguments) would run for minutes in a test, or None."""
    from awdvd.cli import build_parser

    try:
        args = build_parser().parse_args(argv)
    except SystemExit:  # a usage error: running the line reports it
        return None
    command = args.command
    if command in LONG_COMMANDS:
        return f"awdvd {command} {LONG_COMMANDS[command]}"
    if command == "train" and args.images is not None and args.recipe != "smoke":
        return "awdvd train --images runs for an hour: write the docs' example with --recipe smoke"
    if command == "train" and args.images is None and not args.list_variants \
            and (args.epochs is None or args.epochs > 2):
        return "awdvd train DATASET runs for many epochs: write the docs' example with --epochs 1"
    if command == "simulate" and (args.crops or 20) * (args.realizations or 1) > 20:
        return "awdvd simulate with more than 20 crops per image makes a large dataset: use --crops 4"
    return None


# ------------------------------------------------------------------------------------------------ the files
SHAPE = (520, 696)
PIXEL_UM = 0.65
PLATE = {"A01": (0, 1), "A02": (2, 5), "B01": (6, 10)}  # well: (first, last) defocus level, left to right


def _quietly_optics():
    from awdvd import Optics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the paper's 0.65 um pixels are undersampled by design
        return Optics()


def _uint16(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, np.iinfo(np.uint16).max).astype(np.uint16)


@pytest.fixture(scope="session")
def docs_files(tmp_path_factory) -> Path:
    """The files the docs' code uses (see the module docstring), made once; each page gets a copy."""
    from awdvd.data.synth import synthetic_nuclei, tilted_specimen
    from awdvd.io import write_tiff

    folder = tmp_path_factory.mktemp("docs-files")
    optics = _quietly_optics()

    def defocused(seed: int, first_level: int = 0, last_level: int = 10) -> np.ndarray:
        specimen = tilted_specimen(synthetic_nuclei(SHAPE, seed=seed), optics=optics, seed=seed,
                                   first_level=first_level, last_level=last_level)
        return _uint16(specimen.observed)

    write_tiff(folder / "field.tif", defocused(0), pixel_um=PIXEL_UM)
    (folder / "plate1").mkdir()
    for seed, (well, levels) in enumerate(PLATE.items(), start=1):
        write_tiff(folder / "plate1" / f"{well}.tif", defocused(seed, *levels), pixel_um=PIXEL_UM)
    (folder / "my_in_focus").mkdir()
    for seed in (10, 11):
        write_tiff(folder / "my_in_focus" / f"in_focus_{seed}.tif", _uint16(synthetic_nuclei(SHAPE, seed=seed)),
                   pixel_um=PIXEL_UM)
    if importlib.util.find_spec("pylibCZIrw") is not None:
        from _standins import write_czi

        write_czi(folder / "plate.czi", defocused(12)[None, None, None, :260, :348], names=["Hoechst"],
                  emission_nm=[451], na=0.5, n=1.0, pixel_um=PIXEL_UM, scenes=["A1", "A2"])
    return folder


class Page:
    """One documentation page's folder, and which of its blocks have run."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.attempted: set[int] = set()


_PAGES: dict[Path, Page] = {}


@pytest.fixture
def page_for(docs_files, tmp_path_factory):
    def get(path: Path) -> Page:
        if path not in _PAGES:
            folder = tmp_path_factory.mktemp(re.sub(r"\W+", "-", path.relative_to(REPO).as_posix()))
            shutil.copytree(docs_files, folder, dirs_exist_ok=True)
            _PAGES[path] = Page(folder)
        return _PAGES[path]

    return get


@contextlib.contextmanager
def _working_directory(folder: Path):
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


# -------------------------------------------------------------------------------------------- running blocks
def run_python(block: Block) -> None:
    code = compile(block.code, f"{block.id} (line {block.line})", "exec")
    exec(code, {"__name__": "__docs__"})  # noqa: S102 - the docs' own code, as a reader would run it


def run_bash(block: Block) -> list[str]:
    """Run the block's awdvd lines and check its make lines; returns the lines not run, with the reason."""
    from awdvd.cli import main

    not_run = []
    for command in command_lines(block.code):
        words = shlex.split(command)
        program = words[0]
        if program == "awdvd":
            reason = too_long(words[1:])
            assert reason is None, f"{block.id}: `{command}`: {reason}"
            needed = next((m for c, m in NEEDS_MODULE.items() if c in words[1:2]), None)
            if needed and importlib.util.find_spec(needed.split(".")[0]) is None:
                not_run.append(f"`{command}` (needs {needed}, not installed)")
                continue
            start = time.perf_counter()
            try:
                status = main(words[1:])
            except SystemExit as exit_:  # argparse: a usage error, or --help / --version
                status = exit_.code
            assert status in (0, None), f"{block.id}: `{command}` exited with status {status}"
            print(f"{block.id}: `{command}` took {time.perf_counter() - start:.1f} s")
        elif program == "make":
            targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
            missing = sorted(set(targets) - makefile_targets())
            assert not missing, f"{block.id}: `{command}`: no target {', '.join(missing)} in the Makefile"
        elif program in INSTALL_PROGRAMS:
            not_run.append(f"`{command}` ({INSTALL_PROGRAMS[program]})")
        else:
            not_run.append(f"`{command}` ({program} is not run by the tests)")
    return not_run


def run_block(block: Block, page: Page) -> list[str]:
    page.attempted.add(block.number)
    with _working_directory(page.folder), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # e.g. UndersamplingWarning for the paper's optics
        if block.language == "python":
            run_python(block)
            return []
        return run_bash(block)


BLOCKS = [block for path in DOC_FILES for block in code_blocks(path)]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.id} (line {b.line})" for b in BLOCKS])
def test_docs_block_runs(block: Block, page_for):
    page = page_for(block.path)
    # run alone (pytest -k), a block still finds what the page's earlier blocks make; their errors are theirs
    for earlier in code_blocks(block.path)[: block.number - 1]:
        if earlier.number not in page.attempted:
            with contextlib.suppress(Exception):
                run_block(earlier, page)
    not_run = run_block(block, page)
    runnable = [c for c in command_lines(block.code) if c.split()[0] in ("awdvd", "make")] \
        if block.language == "bash" else [block.code]
    if not runnable:
        pytest.skip(f"{block.id}: nothing here runs in the tests: {'; '.join(not_run)}")


# ------------------------------------------------------------------------------------------------ the rules
def test_docs_have_blocks_to_run():
    """The parser finds the pages' blocks (a silent zero would make every test above vacuous)."""
    pages = {block.path.name for block in BLOCKS}
    assert {"index.md", "microscope.md", "files-and-batch.md", "focus-qc.md", "training.md"} <= pages


def test_command_lines_join_continuations_and_drop_comments():
    code = "awdvd train --images x/ -o m.pt \\\n    --recipe smoke   # a comment\n\n# only a comment\nmake demo\n"
    assert command_lines(code) == ["awdvd train --images x/ -o m.pt --recipe smoke", "make demo"]


def test_long_commands_are_refused_before_they_run():
    assert too_long(["train", "--images", "x/", "-o", "m.pt"]) is not None
    assert too_long(["train", "--images", "x/", "-o", "m.pt", "--recipe", "smoke"]) is None
    assert too_long(["train", "data/", "-o", "m.pt"]) is not None
    assert too_long(["reproduce", "--scale", "smoke", "-o", "out"]) is not None
    assert too_long(["deconvolve", "field.tif", "-o", "out"]) is None


def test_cli_reference_is_the_parsers_help():
    """docs/cli.md is rendered from the parser: every subcommand's --help, as `awdvd COMMAND --help` prints it."""
    spec = importlib.util.spec_from_file_location("awdvd_docs_pages", REPO / "docs" / "hooks" / "pages.py")
    pages = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pages)
    from awdvd.cli import build_parser

    page = pages.on_page_markdown((REPO / "docs" / "cli.md").read_text(encoding="utf-8"), None, None, None)
    assert pages.CLI_MARKER not in page
    commands = pages.subcommands(build_parser())
    assert len(commands) >= 10
    for name in commands:
        assert f"## awdvd {name}\n" in page
        assert f"usage: awdvd {name}" in page


def test_architecture_lists_every_module():
    """docs/architecture.md names every package and module of src/awdvd (a new module goes into its table)."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    package = REPO / "src" / "awdvd"
    names = {p.stem for p in package.rglob("*.py") if p.name != "__init__.py" or p.parent == package}
    names |= {p.name for p in package.iterdir() if p.is_dir() and p.name != "__pycache__"}
    missing = sorted(n for n in names if f"`{n}`" not in text and f"`{n}/`" not in text)
    assert missing == [], f"docs/architecture.md does not list: {', '.join(missing)}"


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None,
                    reason="mkdocs / mkdocstrings are not installed (the `docs` extra: pip install -e '.[docs]', "
                           "or `make install`)")
def test_mkdocs_build_strict(tmp_path):
    """The site builds without a warning (mkdocs --strict): pages, nav, the CLI reference, the tables of
    measurements, every docstring that the API reference renders."""
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(tmp_path / "site")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    assert (tmp_path / "site" / "cli" / "index.html").is_file()
