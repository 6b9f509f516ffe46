"""How many decoding workers and torch threads `mlgraph extract` uses when left to the default."""

from __future__ import annotations

import os


def resolve_parallelism(config, device_type: str):
    """Fill in ``workers`` and ``threads`` left to the default, from the cores this process may use.

    On the CPU the forward pass is nearly all the work (decoding a 224 px JPEG costs about 1 %
    of EfficientNet-Lite0's forward), so decoding workers only compete with torch's threads: none
    up to 4 cores, then one per 4 cores. With a GPU the forward is fast and decoding is the work:
    a worker per core but one. Processes of one node started together (torchrun's
    ``LOCAL_WORLD_SIZE``) share the cores. Threads: the cores left after the workers.
    """
    from dataclasses import replace

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    cores = max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)))
    workers = config.workers
    if workers is None:
        workers = min(8, max(0, cores - 1)) if device_type == "cuda" else (0 if cores <= 4 else min(8, cores // 4))
    threads = config.threads if config.threads is not None else max(1, cores - (workers if device_type != "cuda" else 0))
    return replace(config, workers=int(workers), threads=int(threads))
