"""Moved in wave 2: Richardson-Lucy is :mod:`awdvd.rl`, the AWDVD blend :mod:`awdvd.blend`, the pipeline and its
options :mod:`awdvd.restore`. Only ``from awdvd.deconv import richardson_lucy`` is kept, for code on other branches
(awdvd.reproduce) until they are merged; then this module goes.
"""

from .rl import richardson_lucy

__all__ = ["richardson_lucy"]
