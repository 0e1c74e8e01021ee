"""Stand-in defocus models for tests: fixed rules and small random networks whose behaviour a test can predict."""

from __future__ import annotations

import numpy as np


class RuleModel:
    """Duck-typed DefocusModel whose 'prediction' is a fixed rule: background if the patch is flat (range
    below ``flat_below``), else level ``min(int(patch mean) // step, n_levels - 1)``. Patch mode only."""

    patch_px = 84

    def __init__(self, *, step: float = 100.0, flat_below: float = 1.0, n_levels: int = 11):
        self.step, self.flat_below, self.n_levels = step, flat_below, n_levels
        self.class_levels = np.array(list(range(n_levels)) + [-1])
        from awdvd.physics.optics import Optics

        self.optics = Optics(n_levels=n_levels)

    def predict_patches(self, patches, *, return_proba=False, batch_size=256):
        x = np.asarray(patches, dtype=np.float64)
        flat = np.ptp(x, axis=(1, 2)) < self.flat_below
        levels = np.minimum((x.mean(axis=(1, 2)) // self.step).astype(np.int64), self.n_levels - 1)
        levels = np.where(flat, -1, levels)
        proba = np.zeros((len(x), len(self.class_levels)), dtype=np.float32)
        proba[np.arange(len(x)), np.where(levels < 0, len(self.class_levels) - 1, levels)] = 1.0
        return (levels, proba) if return_proba else levels


def tiny_delpnet_model(seed: int = 0, *, widths=(4, 4, 8, 8, 8, 8, 8), normalization: str = "window-minmax"):
    """A randomly initialised, small DelpNet wrapped as a DefocusModel (BatchNorm statistics randomised so
    that folding them into the convs is exercised)."""
    import torch

    from awdvd.learn.model import DefocusModel, DelpNetConfig, build_delpnet
    from awdvd.physics.optics import Optics

    torch.manual_seed(seed)
    network = build_delpnet(DelpNetConfig(widths=tuple(widths)))
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return DefocusModel(network, optics=Optics(), class_levels=list(range(11)) + [-1], normalization=normalization)


def blend_args(**changes) -> dict:
    """The fields of a RestorationPlan for awdvd.restore.blend / awdvd.restore.tiles restorations: AWDVDOptions' method
    and weighting, each window's most likely level (argmax), offset 0 (so tests see plain RL), the default halo,
    the CPU; ``changes`` override them."""
    from awdvd.restore.options import AWDVDOptions

    defaults = AWDVDOptions()
    args = dict(method=defaults.method, weighting=defaults.weighting, level_blend="argmax", offset=0.0, halo_px=None,
                device="cpu")
    return {**args, **changes}


def blend_plan(**changes):
    """:func:`blend_args` as a :class:`awdvd.restore.plan.RestorationPlan`."""
    from awdvd.restore.plan import RestorationPlan

    return RestorationPlan(**blend_args(**changes))


def level_map(levels, shape, *, stride: int, patch_px: int = 84, n_levels: int = 11):
    """A DefocusMap holding the given (ny, nx) window levels of an image of ``shape``."""
    from awdvd.restore.windows import DefocusMap

    return DefocusMap.from_levels(np.asarray(levels), shape, stride=stride, patch_px=patch_px, n_levels=n_levels)


def tiny_exact_model(seed: int = 0, *, widths=(4, 4, 8, 8, 8, 8, 8), sharpness: float = 30.0):
    """A randomly initialised, small DelpNet-lean (no padding, pooled after blocks 0, 2, 3) whose windows are
    normalised by their image's range: the kind of model whose dense maps are exact. The dense layer's weights
    are scaled by ``sharpness`` so that the class probabilities depend visibly on the input."""
    import torch

    from awdvd.learn.model import DefocusModel, DelpNetConfig, build_delpnet
    from awdvd.physics.optics import Optics

    torch.manual_seed(seed)
    network = build_delpnet(DelpNetConfig(widths=tuple(widths), pool_at=(0, 2, 3), padding=0, dropout=0.0,
                                          head_dropout=0.0, bn_momentum=0.1))
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
        network.head[-1].weight.mul_(sharpness)
    return DefocusModel(network, optics=Optics(), class_levels=list(range(11)) + [-1], normalization="image-range")


def tiny_range_extended_model(seed: int = 0, *, consult_from: int | None = None, switch: float = 0.5,
                              image_share: float = 0.25):
    """A :class:`awdvd.learn.range_extension.RangeExtendedModel` of two small exact-dense DelpNets: the near one
    over the default 11 levels, the far one over 21 (0-40 um)."""
    import torch

    from awdvd.learn.model import DefocusModel, DelpNetConfig, build_delpnet
    from awdvd.learn.range_extension import RangeExtendedModel
    from awdvd.physics.optics import Optics

    near = tiny_exact_model(seed)
    torch.manual_seed(seed + 1)
    network = build_delpnet(DelpNetConfig(widths=(4, 4, 8, 8, 8, 8, 8), pool_at=(0, 2, 3), padding=0, dropout=0.0,
                                          head_dropout=0.0, bn_momentum=0.1, n_classes=22))
    with torch.no_grad():
        network.head[-1].weight.mul_(30.0)
    far = DefocusModel(network.eval(), optics=Optics(n_levels=21), class_levels=list(range(21)) + [-1],
                       normalization="image-range")
    return RangeExtendedModel(near, far, consult_from=consult_from, switch=switch, image_share=image_share)


def ome_xml(*, shape: tuple[int, int], pixel_um: float, na: float, emission_nm: float | None, n: float = 1.0,
            channels: list[tuple[str, float | None]] | None = None) -> str:
    """The OME-XML of one 2-D uint16 field recording its pixel size, objective NA, immersion index and emission
    wavelength (what awdvd.io.read_ome_optics reads), for ``tifffile.imwrite(..., description=..., metadata=None)``.
    ``channels``: (name, emission nm or None) of each channel of a (C, H, W) field instead of one channel."""
    rows, cols = shape
    channels = [(None, emission_nm)] if channels is None else channels
    elements = "".join(
        f'<Channel ID="Channel:0:{i}" SamplesPerPixel="1"' + (f' Name="{name}"' if name else "")
        + (f' EmissionWavelength="{nm}" EmissionWavelengthUnit="nm"' if nm is not None else "") + "/>"
        for i, (name, nm) in enumerate(channels))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">
  <Instrument ID="Instrument:0"><Objective ID="Objective:0:0" LensNA="{na}"/></Instrument>
  <Image ID="Image:0" Name="field">
    <InstrumentRef ID="Instrument:0"/><ObjectiveSettings ID="Objective:0:0" RefractiveIndex="{n}"/>
    <Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" SizeX="{cols}" SizeY="{rows}" SizeC="{len(channels)}" SizeZ="1"
            SizeT="1" PhysicalSizeX="{pixel_um}" PhysicalSizeXUnit="um" PhysicalSizeY="{pixel_um}" PhysicalSizeYUnit="um">
      {elements}
      <TiffData/>
    </Pixels>
  </Image>
</OME>"""


def write_czi(path, data, *, names=None, emission_nm=None, pixel_um: float | None = 0.325, na: float | None = None,
              n: float | None = None, scenes: list[str] | None = None, modality: str | None = None):
    """A Zeiss CZI file written with pylibCZIrw: ``data`` is (T, C, Z, Y, X) uint16 (every scene the same pixels),
    or (S, T, C, Z, Y, X) with one entry per scene;
    the metadata record the channels' names and emission wavelengths (nm), the objective's NA and the immersion
    index (and each channel's ``AcquisitionMode``, ``modality``) where given, in the places ZEN writes them
    (``Information/Image/Dimensions/Channels/Channel``,
    ``Information/Instrument/Objectives/Objective/LensNA``, ``Information/Image/ObjectiveSettings``)."""
    import xml.etree.ElementTree as ET

    pyczi = __import__("pylibCZIrw.czi", fromlist=["czi"])
    data = np.asarray(data)
    per_scene = data if data.ndim == 6 else [data] * len(scenes or [None])
    frames, channels, planes, _, cols = data.shape[-5:]
    with pyczi.create_czi(str(path), exist_ok=False) as czi:
        for s, pixels in enumerate(per_scene):
            for t in range(frames):
                for c in range(channels):
                    for z in range(planes):
                        czi.write(data=pixels[t, c, z], plane={"T": t, "C": c, "Z": z}, scene=s,
                                  location=(s * (cols + 10), 0))
        scale = pixel_um * 1e-6 if pixel_um else 0.0  # metres, as CZI records it
        czi.write_metadata(document_name="awdvd test", channel_names=dict(enumerate(names or [])),
                           scale_x=scale, scale_y=scale)
    with pyczi.edit_czi(str(path)) as editor:
        root = ET.fromstring(editor.read_metadata_xml())
        information = root.find("Metadata/Information")
        image = information.find("Image")
        for channel, nm in zip(image.findall("Dimensions/Channels/Channel"), emission_nm or []):
            if nm is not None:
                ET.SubElement(channel, "EmissionWavelength").text = str(nm)
        for channel in image.findall("Dimensions/Channels/Channel") if modality else []:
            ET.SubElement(channel, "AcquisitionMode").text = modality
        if na is not None:  # a second objective of the microscope first: the image names the one it used
            objectives = ET.SubElement(ET.SubElement(information, "Instrument"), "Objectives")
            for ident, value in (("Objective:0", 0.25), ("Objective:1", na)):
                ET.SubElement(ET.SubElement(objectives, "Objective", Id=ident), "LensNA").text = str(value)
        settings = ET.SubElement(image, "ObjectiveSettings")
        if na is not None:
            ET.SubElement(settings, "ObjectiveRef", Id="Objective:1")
        if n is not None:
            ET.SubElement(settings, "RefractiveIndex").text = str(n)
        if scenes:
            listed = ET.SubElement(ET.SubElement(image.find("Dimensions"), "S"), "Scenes")
            for s, name in enumerate(scenes):
                ET.SubElement(listed, "Scene", Index=str(s), Name=name)
        with editor.edit_session() as builder:
            builder.set_xml(ET.tostring(root, encoding="unicode"))
    return path


def write_lif(path, images, *, pixel_um: float | None = 0.1625, na: float | None = None, n: float | None = None,
              names=None, emission_nm=None, objective: str = "HC PL FLUOTAR 40x/0.75 DRY", confocal: bool = False):
    """A Leica LIF file written byte by byte in the layout LAS X writes and liffile (bioio-lif's reader) parses: a
    UTF-16 XML header (``LMSDataContainerHeader`` version 2), then one memory block per image. ``images`` maps
    each image's name to its (T, C, Y, X) or (T, C, Z, Y, X) uint16 pixels; every image records the pixel size
    (``DimensionDescription`` lengths in metres), its channels and, where given, the widefield settings LAS X
    writes (``ATLCameraSettingDefinition``: NumericalAperture, RefractionIndex, ObjectiveName;
    ``WideFieldChannelInfo``: EmissionWavelength in nm, UserDefName); ``confocal``: the objective in a confocal's
    ``ATLConfocalSettingDefinition`` instead."""
    import struct
    from xml.sax.saxutils import quoteattr

    def dimension(dim_id, count, pixel, bytes_inc):
        length = f"{(count - 1) * pixel * 1e-6:.6e}" if pixel else "0"
        unit = "m" if dim_id < 4 else "s"
        return (f'<DimensionDescription DimID="{dim_id}" NumberOfElements="{count}" Origin="0" Length="{length}" '
                f'Unit="{unit}" BitInc="0" BytesInc="{bytes_inc}"/>')

    elements, blocks = [], []
    for index, (name, pixels) in enumerate(images.items()):
        pixels = np.asarray(pixels)
        pixels = np.ascontiguousarray(pixels[:, :, None] if pixels.ndim == 4 else pixels, dtype="<u2")
        frames, channels, planes, height, width = pixels.shape
        plane = height * width * 2
        pixels = np.ascontiguousarray(pixels.transpose(0, 2, 1, 3, 4))  # stored as T, Z, C, Y, X
        luts = ["Blue", "Green", "Red", "Gray"]
        described = "".join(
            f'<ChannelDescription DataType="0" ChannelTag="0" Resolution="16" NameOfMeasuredQuantity="" Min="0" '
            f'Max="65535" Unit="" LUTName="{luts[c % 4]}" IsLUTInverted="0" BytesInc="{c * plane}" BitInc="0"/>'
            for c in range(channels))
        dims = dimension(1, width, pixel_um, 2) + dimension(2, height, pixel_um, 2 * width)
        if planes > 1:
            dims += dimension(3, planes, 0.5, plane * channels)  # 0.5 um between planes
        if frames > 1:
            dims += (f'<DimensionDescription DimID="4" NumberOfElements="{frames}" Origin="0" Length="{frames - 1}" '
                     f'Unit="s" BitInc="0" BytesInc="{plane * channels * planes}"/>')
        settings = ""
        if na is not None or emission_nm is not None:
            infos = "".join(
                f'<WideFieldChannelInfo LUT="{luts[c % 4]}" UserDefName={quoteattr((names or [""] * channels)[c])} '
                f'ContrastingMethodName="FLUO" FluoCubeName="DFT51010" ExposureTime="0.05"'
                + (f' EmissionWavelength="{emission_nm[c]}"' if emission_nm and emission_nm[c] is not None else "")
                + "/>" for c in range(channels))
            objective_attrs = f' ObjectiveName={quoteattr(objective)}'
            if na is not None:
                objective_attrs += f' NumericalAperture="{na}"'
            if n is not None:
                objective_attrs += f' RefractionIndex="{n}"'
            settings = (f'<Attachment Name="HardwareSetting" Software="LAS X 3.7" DataSourceTypeName="Camera">'
                        f'<ATLCameraSettingDefinition{objective_attrs}><WideFieldChannelConfigurator '
                        f'CameraName="DFC9000">{infos}</WideFieldChannelConfigurator></ATLCameraSettingDefinition>'
                        f'</Attachment>')
            if confocal:
                settings = (f'<Attachment Name="HardwareSetting" DataSourceTypeName="Confocal">'
                            f'<ATLConfocalSettingDefinition{objective_attrs} Pinhole="0.000095"/></Attachment>')
        block_id = f"MemBlock_{index + 1}"
        elements.append(f'<Element Name={quoteattr(name)}><Data><Image><ImageDescription><Channels>{described}'
                        f'</Channels><Dimensions>{dims}</Dimensions></ImageDescription>{settings}</Image></Data>'
                        f'<Memory Size="{pixels.nbytes}" MemoryBlockID="{block_id}"/><Children/></Element>')
        blocks.append((block_id, pixels.tobytes()))
    xml = ('<LMSDataContainerHeader Version="2"><Element Name="project"><Data><Experiment/></Data>'
           '<Memory Size="0" MemoryBlockID="MemBlock_0"/><Children>' + "".join(elements)
           + "</Children></Element></LMSDataContainerHeader>")
    text = xml.encode("utf-16-le")
    with open(path, "wb") as out:
        out.write(struct.pack("<IIBI", 0x70, len(text) + 5, 0x2A, len(xml)) + text)
        for block_id, payload in [("MemBlock_0", b"")] + blocks:
            name = block_id.encode("utf-16-le")
            out.write(struct.pack("<IIBQBI", 0x70, 0, 0x2A, len(payload), 0x2A, len(block_id)) + name + payload)
    return path
