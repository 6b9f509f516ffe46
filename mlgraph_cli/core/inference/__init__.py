"""Inference with a trained run: load it (``run``), score images (``scoring``), YouTube-8M
records (``records``, ``frames``) or video files (``clips``), draw where it looked
(``explain``, ``explain_clips``), write the rows (``output``), export to ONNX (``export``)."""
