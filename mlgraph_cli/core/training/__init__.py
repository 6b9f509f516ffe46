"""Training: data from a features file, batches, the one Trainer, the optimiser, the probe start,
and the run folder it writes (checkpoint files, ``config.json``)."""
