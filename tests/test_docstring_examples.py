"""Every Examples section in awdvd's docstrings runs (STYLE: numpydoc with an Examples section that runs); the
API reference of the docs site shows these examples, so a stale one fails here."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import warnings

import pytest

import awdvd

# the napari plugin needs a Qt display; the bioimage.io network file is torch-only and has no examples
SKIP = ("awdvd.napari", "awdvd.learn.bioimageio_network", "awdvd.__main__")
MODULES = sorted(m.name for m in pkgutil.walk_packages(awdvd.__path__, "awdvd.") if not m.name.startswith(SKIP))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. UndersamplingWarning of the examples' optics
        result = doctest.testmod(importlib.import_module(name), verbose=False, report=True,
                                 optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} fail"


def test_the_public_entry_points_have_examples():
    """The functions a user reaches first carry an example that runs (checked above)."""
    from awdvd.restore.pipeline import defocus_map

    assert ">>>" in defocus_map.__doc__
