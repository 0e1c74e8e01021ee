"""The awdvd napari plugin (npe2): a reader and a writer for TIFF / OME-TIFF / OME-Zarr with the pixel size,
the widgets "Defocus map" and "Restore (AWDVD)", and the demo's tilted specimen as sample data.

``napari.yaml`` (declared by the package's ``napari.manifest`` entry point) points at plain functions in
:mod:`.reader`, :mod:`.writer`, :mod:`.sample_data` and :mod:`.layers`, testable without napari;
:mod:`.widgets` holds the Qt widgets and :mod:`.pipeline` the one function where widget options meet the
library. Install with ``pip install 'awdvd[napari]'``. Importing this package imports neither napari nor torch.
"""
