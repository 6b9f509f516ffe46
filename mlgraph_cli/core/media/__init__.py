"""Media a pipeline reads: image files (``images``), video files (``videos``, PyAV) and
YouTube-8M TFRecords (``yt8m``)."""
