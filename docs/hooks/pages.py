"""mkdocs hooks (``hooks:`` in mkdocs.yml): the pages that are generated from the code at build time, so that the
site cannot disagree with it.

- ``cli.md``: the marker ``<!-- awdvd-cli -->`` becomes ``awdvd --help`` and every subcommand's ``--help``, rendered
  from :func:`awdvd.cli.build_parser` (the parser the ``awdvd`` command itself runs).
- every page: a line ``<!-- table: NAME -->`` becomes that table of measurements, rendered from the committed
  result files by ``docs/gen_tables.py`` (``benchmarks.md``, ``reproduction.md``);
- every page: a line ``::: NAME`` whose NAME is an importable public path (``awdvd.deconvolve``,
  ``awdvd.io.find_images``) is rewritten to the module that defines the object, because mkdocstrings reads the
  source statically and cannot follow ``awdvd``'s lazy imports; the heading keeps the public name.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
CLI_MARKER = "<!-- awdvd-cli -->"
TABLE_MARKER = re.compile(r"^\s*<!--\s*table:", re.MULTILINE)
HELP_COLUMNS = "100"  # argparse wraps help to $COLUMNS: a fixed width gives the same page on every machine
_DIRECTIVE = re.compile(r"^:::[ \t]+(?P<path>[A-Za-z_][\w.]*)[ \t]*$", re.MULTILINE)


@contextlib.contextmanager
def _columns(width: str):
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = width
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommand parsers of ``parser``, in the order ``--help`` lists them."""
    for action in parser._actions:  # argparse has no public accessor for its subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_reference() -> str:
    """Markdown: ``awdvd --help``, then one section per subcommand with its ``--help``."""
    from awdvd.cli import build_parser

    with _columns(HELP_COLUMNS):
        parser = build_parser()
        parts = ["## awdvd", "", "```text", parser.format_help().rstrip(), "```", ""]
        for name, sub in subcommands(parser).items():
            parts += [f"## awdvd {name}", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def _gen_tables():
    """docs/gen_tables.py, loaded from its file (it is a script beside the pages, not a package module)."""
    spec = importlib.util.spec_from_file_location("awdvd_docs_gen_tables", DOCS / "gen_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resolve(path: str) -> tuple[str, str] | None:
    """(defining path, public path) of the object at the public dotted ``path``, or None if ``path`` is not
    an attribute of an importable module (then mkdocstrings gets the line unchanged)."""
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for name in parts[split:]:
                obj = getattr(obj, name)
        except AttributeError:
            return None
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if not module or not qualname or "<" in qualname:
            return None  # a constant or a module: document it where it is named
        return f"{module}.{qualname}", path
    return None


def _rewrite_directive(match: re.Match) -> str:
    path = match.group("path")
    resolved = resolve(path)
    if resolved is None or resolved[0] == path:
        return match.group(0)
    defined, public = resolved
    # the heading keeps the public name (what users import); the source is read where the object is defined
    return f"::: {defined}\n    options:\n      heading: \"{public}\"\n      toc_label: \"{public.rsplit('.', 1)[1]}\""


def on_page_markdown(markdown: str, page, config, files) -> str:
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if TABLE_MARKER.search(markdown):
        markdown = _gen_tables().render_tables(markdown)
    return _DIRECTIVE.sub(_rewrite_directive, markdown)
