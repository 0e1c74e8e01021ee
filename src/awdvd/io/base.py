"""What every reader of :mod:`awdvd.io` shares: the error it raises for a file it cannot read as an image, and the
length units files use."""

__all__ = ["ImageReadError", "UNIT_TO_UM"]


class ImageReadError(ValueError):
    """A file exists but is not an image awdvd can read."""


#: micrometres per unit, for the unit names OME-XML, TIFF resolution tags and OME-Zarr (NGFF) write
UNIT_TO_UM = {"um": 1.0, "µm": 1.0, "micron": 1.0, "microns": 1.0, "\\u00B5m": 1.0, "nm": 1e-3, "mm": 1e3, "m": 1e6,
              "cm": 1e4,
              # OME-Zarr (NGFF) spells units out, UDUNITS-2 style
              "micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3, "centimeter": 1e4, "meter": 1e6,
              "angstrom": 1e-4}
