"""The contracts every stage shares: how an artifact says what it is (``artifacts``), how an
output is written (``outputs``: never over an input, never replacing what is not a
regular file, one writer at a time) and how HDF5 artifacts are read (``hdf5``)."""
