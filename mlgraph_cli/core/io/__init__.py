"""The contracts every stage shares.

One way to write an output: ``outputs`` (``write_output``: never over an input, never replacing
what is not a regular file, one writer at a time, the umask's permissions; ``text`` makes what is
written safe for its format). One way to read an artifact: each artifact has one validating
reader beside its kind (graph, embeddings, features, run folder, project, TFRecords) built on
``inputs`` (a regular file, checked before it is opened), ``jsonfile`` (bounded JSON), ``hdf5``
(datasets of the right kind, dtype, shape and finite values) and ``artifacts`` (schema tags).
"""
