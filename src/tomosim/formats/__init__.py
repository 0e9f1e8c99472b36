"""File formats of the field: RELION 5, IMOD/AreTomo alignment, OME-Zarr, copick, napari.

Each module writes (and where useful reads) one family of formats from a tomosim run folder or
from arrays in memory, with the libraries of the field (``starfile``, ``zarr``/``ome-zarr``,
``copick``). Heavy optional libraries are imported inside the functions that need them.
"""
