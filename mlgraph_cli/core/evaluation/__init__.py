"""Evaluation: metrics as the literature computes them (images, video, segments), per-label
thresholds chosen on validation, and the plots beside a metrics file."""
