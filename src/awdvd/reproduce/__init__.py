"""Regenerate the results section of He et al. 2019 (Tables 1-2, Fig. 3-9) from awdvd's own code, and write one
Markdown report with every number beside the paper's.

:func:`reproduce` synthesises a patch dataset from in-focus images (``awdvd.data.synth``), trains the networks it
needs (``awdvd.learn.train``), evaluates them (``awdvd.learn.evaluate``), runs the restoration experiments
(``awdvd.validate.restoration``) and writes ``REPORT.md``, ``results.json`` and one PNG per figure into a folder.
How much work it does is a :class:`Scale`: ``smoke`` checks that everything runs (numbers meaningless), ``cpu``
fits in well under an hour on two CPU cores, ``full`` is the paper's setting as far as our data allow (GPU-sized).

The package, by stage:

- :mod:`~awdvd.reproduce.paper`: the paper's numbers and the names of the items, runs and figures;
- :mod:`~awdvd.reproduce.scales`: :class:`Scale` and the presets :data:`SCALES`;
- :mod:`~awdvd.reproduce.experiments`: the dataset, the trainings and their evaluation, the items in order
  (:mod:`~awdvd.reproduce.classification`: Tables 1-2, Fig. 3-6; :mod:`~awdvd.reproduce.restoration`: Fig. 7-9);
- :mod:`~awdvd.reproduce.figures`: the PNGs; :mod:`~awdvd.reproduce.report`: REPORT.md from results.json;
- :mod:`~awdvd.reproduce.runner`: :func:`reproduce` itself (checks, staging folder, outputs moved into place).

Importing this package imports neither torch nor matplotlib; :func:`reproduce` does.
"""

from .paper import PAPER, REPORT_ITEMS
from .runner import default_data_path, reproduce
from .scales import SCALES, Scale, get_scale

__all__ = ["Scale", "SCALES", "get_scale", "PAPER", "reproduce", "default_data_path", "REPORT_ITEMS"]
