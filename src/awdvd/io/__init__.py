"""Image files: the only package that knows file formats (TIFF incl. LZW/OME/multi-page, PNG, JPEG, OME-Zarr),
and which files a command names.

- reading (:mod:`awdvd.io.images`): :func:`read_image` returns the pixels and the pixel size the file records;
  images of more than :data:`LARGEST_IMAGE_IN_MEMORY_PX` pixels (OME-Zarr, and TIFF that tifffile can map as a
  zarr store) come as a lazily loaded ``dask.array.Array`` instead of being read into memory;
- the optics a file records (:mod:`awdvd.io.optics_metadata`): :func:`read_ome_optics`, and :func:`check_optics` /
  :func:`check_pixel_size` against a model's optics;
- discovery (:mod:`awdvd.io.files`): :func:`find_images` and :func:`plan_outputs` (the files of a batch and
  their outputs, checked once);
- records beside the images (:mod:`awdvd.io.records`): :func:`write_png`, :func:`write_json`, :func:`write_csv`;
- writing (:mod:`awdvd.io.writers`): atomic (temporary file or folder in the target folder, then rename), never
  over an existing file unless ``overwrite=True``; :func:`open_ome_zarr_output` / :func:`open_image_output` give
  an array to fill tile by tile (``awdvd.restore.tiling.tiled_map(..., out=...)``) that becomes the image only once it
  is complete.
"""

from .files import SOFTWARE_PREFIX, BatchPlan, file_identity, find_images, made_by_awdvd, plan_outputs, same_content
from .images import (
    IMAGE_SUFFIXES,
    LARGEST_IMAGE_IN_MEMORY_PX,
    ZARR_SUFFIX,
    ImageFile,
    ImageReadError,
    image_shape,
    image_stem,
    is_image_folder,
    read_image,
    read_json,
)
from .optics_metadata import (
    OpticsMismatchError,
    OpticsWarning,
    PixelSizeWarning,
    check_optics,
    check_pixel_size,
    read_ome_optics,
)
from .resumable import ResumableArray, open_resumable_part, sweep_orphans
from .writers import (
    OUTPUT_FORMATS,
    atomic_path,
    check_output_file,
    check_output_folder,
    keep_previous,
    open_image_output,
    open_ome_zarr_output,
    write_image,
    write_ome_tiff,
    write_ome_zarr,
    write_tiff,
)
from .records import write_csv, write_json, write_png

__all__ = [
    "ImageFile",
    "read_image",
    "find_images",
    "plan_outputs",
    "BatchPlan",
    "file_identity",
    "same_content",
    "made_by_awdvd",
    "SOFTWARE_PREFIX",
    "write_tiff",
    "write_ome_tiff",
    "write_ome_zarr",
    "write_image",
    "open_ome_zarr_output",
    "open_image_output",
    "OUTPUT_FORMATS",
    "write_png",
    "write_json",
    "write_csv",
    "read_json",
    "image_shape",
    "image_stem",
    "atomic_path",
    "check_output_folder",
    "check_output_file",
    "keep_previous",
    "sweep_orphans",
    "open_resumable_part",
    "ResumableArray",
    "check_pixel_size",
    "is_image_folder",
    "IMAGE_SUFFIXES",
    "ZARR_SUFFIX",
    "LARGEST_IMAGE_IN_MEMORY_PX",
    "ImageReadError",
    "PixelSizeWarning",
    "read_ome_optics",
    "check_optics",
    "OpticsWarning",
    "OpticsMismatchError",
]
