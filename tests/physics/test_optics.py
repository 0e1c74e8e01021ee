import json
import math
import warnings

import pytest

from awdvd import Optics
from awdvd.physics.optics import UndersamplingWarning


def test_defaults_are_the_papers():
    o = Optics()
    assert (o.wavelength_um, o.na, o.n, o.pixel_um, o.z_step_um, o.n_levels) == (0.451, 0.5, 1.0, 0.65, 2.0, 11)
    assert o.depths_um == tuple(float(2 * i) for i in range(11))


def test_json_round_trip():
    o = Optics(wavelength_um=0.52, na=1.4, n=1.518, pixel_um=0.1, z_step_um=0.5, n_levels=7)
    assert Optics.from_json(o.to_json()) == o
    assert json.loads(o.to_json())["na"] == 1.4


@pytest.mark.parametrize(
    "kwargs, message",
    [({"na": 0}, "Optics.na must be a finite positive number"),
     ({"na": -0.1}, "Optics.na must be a finite positive number"),
     ({"wavelength_um": math.nan}, "Optics.wavelength_um must be a finite positive number"),
     ({"pixel_um": math.inf}, "Optics.pixel_um must be a finite positive number"),
     ({"n_levels": 0}, "Optics.n_levels must be a positive integer"),
     ({"n_levels": 2.5}, "Optics.n_levels must be a positive integer"),
     ({"na": 1.0, "n": 1.0}, r"must be smaller than the refractive index n \(1.0\)"),
     ({"na": 1.2, "n": 1.0}, r"must be smaller than the refractive index n \(1.0\)")],
)
def test_invalid_values_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Optics(**kwargs)


def test_non_number_raises_type_error():
    with pytest.raises(TypeError, match="must be a number"):
        Optics(na="0.5")


def test_unknown_field_in_dict():
    with pytest.raises(ValueError, match="unknown Optics field"):
        Optics.from_dict({"na": 0.5, "magnification": 20})


def test_undersampling_warning():
    with pytest.warns(UndersamplingWarning, match="Nyquist"):
        Optics(pixel_um=0.65)  # Nyquist is 0.451 / 2 = 0.2255 um
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndersamplingWarning)
        Optics(pixel_um=0.2)  # finer than Nyquist: no warning


def test_frozen():
    with pytest.raises(AttributeError, match="cannot assign to field 'na'"):
        Optics().na = 0.8
