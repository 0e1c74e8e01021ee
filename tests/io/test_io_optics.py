"""Optics from image metadata (io.read_ome_optics) and the check against a model's optics (io.check_optics).

The files are written here: OME-TIFF with tifffile (its own OME-XML, and a hand-written one with an
instrument), ImageJ TIFF, OME-Zarr with and without a bioformats2raw-style OME/METADATA.ome.xml.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from awdvd.io import (
    ImageReadError,
    OpticsMismatchError,
    OpticsWarning,
    check_optics,
    read_ome_optics,
    write_ome_tiff,
    write_ome_zarr,
    write_tiff,
)
from awdvd.physics.optics import Optics

OME_XML = """<?xml version="1.0" encoding="UTF-8"?>
<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">
  <Instrument ID="Instrument:0">
    <Objective ID="Objective:0:0" LensNA="1.4" NominalMagnification="63"/>
    <Objective ID="Objective:0:1" LensNA="{na}" NominalMagnification="20"/>
  </Instrument>
  <Image ID="Image:0" Name="field">
    <InstrumentRef ID="Instrument:0"/>
    <ObjectiveSettings ID="Objective:0:1" RefractiveIndex="1.0"/>
    <Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" SizeX="96" SizeY="64" SizeC="1" SizeZ="1" SizeT="1"
            PhysicalSizeX="{pixel_nm}" PhysicalSizeXUnit="nm" PhysicalSizeY="{pixel_nm}" PhysicalSizeYUnit="nm">
      <Channel ID="Channel:0:0" SamplesPerPixel="1" EmissionWavelength="{emission}" {emission_unit}/>
      <TiffData/>
    </Pixels>
  </Image>
</OME>"""


def ome_xml(*, na=0.5, pixel_nm=650, emission=461, emission_unit='EmissionWavelengthUnit="nm"') -> str:
    return OME_XML.format(na=na, pixel_nm=pixel_nm, emission=emission, emission_unit=emission_unit)


@pytest.fixture
def pixels():
    return np.arange(64 * 96, dtype=np.uint16).reshape(64, 96)


def test_ome_tiff_with_instrument(tmp_path, pixels):
    import tifffile

    path = tmp_path / "field.ome.tif"
    tifffile.imwrite(path, pixels, description=ome_xml(), metadata=None)
    optics = read_ome_optics(path)
    assert optics["source"] == "ome-xml"
    assert optics["pixel_um"] == pytest.approx(0.65, rel=1e-9)
    assert optics["wavelength_um"] == pytest.approx(0.461, rel=1e-9)
    assert optics["na"] == pytest.approx(0.5, rel=1e-9)  # the objective the image names, not the first one
    assert optics["n"] == pytest.approx(1.0, rel=1e-9)


def test_a_zero_pixel_size_is_an_error_naming_it(tmp_path, pixels):
    import tifffile

    path = tmp_path / "zero.ome.tif"
    tifffile.imwrite(path, pixels, description=ome_xml(pixel_nm=0), metadata=None)
    with pytest.raises(ValueError, match="records PhysicalSizeX='0', which is not a positive size"):
        read_ome_optics(path)


def test_emission_without_unit_is_nm(tmp_path, pixels):
    import tifffile

    path = tmp_path / "nounit.ome.tif"
    tifffile.imwrite(path, pixels, description=ome_xml(emission=520, emission_unit=""), metadata=None)
    assert read_ome_optics(path)["wavelength_um"] == pytest.approx(0.52, rel=1e-9)


def test_tifffile_ome_and_awdvd_writers(tmp_path, pixels):
    import tifffile

    path = tmp_path / "channel.ome.tif"
    tifffile.imwrite(path, pixels, ome=True, metadata={"axes": "YX", "PhysicalSizeX": 0.325,
                     "Channel": {"Name": "DAPI", "EmissionWavelength": 455.0}})
    optics = read_ome_optics(path)
    assert optics["pixel_um"] == pytest.approx(0.325, rel=1e-9)
    assert optics["wavelength_um"] == pytest.approx(0.455, rel=1e-9)
    assert optics["na"] is None and optics["n"] is None
    ours = read_ome_optics(write_ome_tiff(tmp_path / "ours.ome.tif", pixels, pixel_um=0.65))
    assert ours["pixel_um"] == pytest.approx(0.65, rel=1e-9) and ours["wavelength_um"] is None
    imagej = read_ome_optics(write_tiff(tmp_path / "imagej.tif", pixels, pixel_um=0.5))
    assert imagej["source"] == "tiff" and imagej["pixel_um"] == pytest.approx(0.5, rel=1e-6)
    assert imagej["wavelength_um"] is None


def test_ome_zarr_with_and_without_ome_xml(tmp_path, pixels):
    path = write_ome_zarr(tmp_path / "field.ome.zarr", pixels, pixel_um=0.65)
    plain = read_ome_optics(path)
    assert plain["source"] == "ome-zarr" and plain["pixel_um"] == pytest.approx(0.65, rel=1e-9)
    assert plain["na"] is None
    (path / "OME").mkdir()
    (path / "OME" / "METADATA.ome.xml").write_text(ome_xml(na=0.75, pixel_nm=999), encoding="utf-8")
    both = read_ome_optics(path)
    assert both["source"] == "ome-zarr+ome-xml"
    assert both["na"] == pytest.approx(0.75, rel=1e-9)
    assert both["pixel_um"] == pytest.approx(0.65, rel=1e-9)  # the NGFF scale wins over the XML


def test_read_ome_optics_refuses_other_files(tmp_path):
    png = tmp_path / "x.png"
    png.write_bytes(b"not really")
    with pytest.raises(ImageReadError, match="OME-TIFF"):
        read_ome_optics(png)
    with pytest.raises(FileNotFoundError):
        read_ome_optics(tmp_path / "missing.ome.tif")


def test_check_optics_agreement_and_mismatch():
    model = Optics()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_optics({"pixel_um": 0.65, "wavelength_um": 0.46, "na": 0.5, "n": None}, model) == []
        assert check_optics({}, model) == []
    with pytest.warns(OpticsWarning, match="NA 1.4 in the file, 0.5 in the model"):
        messages = check_optics({"pixel_um": 0.65, "na": 1.4, "n": 1.04}, model)  # n within 5%
    assert messages == ["NA 1.4 in the file, 0.5 in the model's optics"]


def test_check_optics_lists_every_mismatch_and_strict_raises():
    file_optics = {"pixel_um": 0.1, "wavelength_um": 0.6, "na": 1.3, "n": 1.5}
    model = Optics(wavelength_um=0.6, na=1.3, n=1.515, pixel_um=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_optics(file_optics, model) == []  # n 1.5 vs 1.515: within 5%
    with pytest.warns(OpticsWarning):
        messages = check_optics(file_optics, Optics())
    assert [m.split(" ")[0] for m in messages] == ["pixel", "emission", "NA", "immersion"]
    with pytest.raises(OpticsMismatchError, match="pixel size 0.1 um in the file, 0.65 um in the model"):
        check_optics(file_optics, Optics().to_dict(), strict=True)


def test_the_acquisition_mode_an_ome_tiff_records(tmp_path):
    import tifffile

    from awdvd.batch.file_optics import NotWidefieldWarning, file_optics, is_widefield

    data = np.zeros((2, 30, 40), np.uint16)
    for mode, widefield in (("SpinningDiskConfocal", False), ("WideField", True), (None, True)):
        channel = {"Name": ["DAPI", "GFP"], **({"AcquisitionMode": [mode] * 2} if mode else {})}
        path = tmp_path / f"{mode}.ome.tif"
        tifffile.imwrite(path, data, ome=True, photometric="minisblack",
                         metadata={"axes": "CYX", "Channel": channel, "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65})
        assert read_ome_optics(path)["modality"] == mode and is_widefield(mode) is widefield
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found = file_optics(path, Optics(), {"na": 0.5, "n": 1.0, "wavelength_um": 0.46})
        said = [str(w.message) for w in caught if issubclass(w.category, NotWidefieldWarning)]
        assert found.record()["modality"] == mode
        assert said == ([] if widefield else ["the file says it was recorded by spinning disk confocal "
                                              "(SpinningDiskConfocal); awdvd's depth model and PSFs are a widefield "
                                              "microscope's, so its depth map and restoration assume a blur this "
                                              "image does not have"])
