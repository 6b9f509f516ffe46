"""Video files: frames/s of decode + forward (`mlgraph extract CLIPS/`) against the bare forward.

Clips: generated H.264 MP4s (320 x 240, 30 s at 8 fps = 240 frames each, a key frame every 12
frames as libx264 places them for this content), sampled at --fps 1 (30 frames a clip, so 7 of
every 8 frames are never converted to pictures and most are skipped by seeking). Rows:

- decode: core/media/videos.read_frames alone (seek + decode + resize to the backbone's input);
- forward: the backbone on ready (n, 3, S, S) batches of the same number of frames (the bound);
- extract, workers 0 / 1: the whole stage (header probe, decode, forward, HDF5 writes) with
  decoding in the main process or in one DataLoader worker beside the forward.

    .venv/bin/python benchmarks/video_files_speed.py [--clips 6] [--image-size 224] [--threads 1]

Prints a table and writes benchmarks/results/video_files_speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's mlgraph_cli; tests/ holds the clip generators


def write_clips(folder: Path, n: int, seconds: int, rate: int) -> list[Path]:
    from clipkit import write_clip

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        base = rng.integers(0, 255, size=(30, 40, 3)).astype(np.uint8)
        frames = np.stack([np.kron(np.roll(base, t, axis=1), np.ones((8, 8, 1), np.uint8)) for t in range(seconds * rate)])
        out.append(write_clip(folder / f"clip{i}.mp4", frames, fps=rate))
    return out


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "benchmarks" / "results" / "video_files_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from mlgraph_cli.core.features.backbones.build import build_backbone
    from mlgraph_cli.core.features.sources import frame_vectors
    from mlgraph_cli.core.media.videos import Sampling, probe, read_frames
    from mlgraph_cli.stages.extract import ExtractConfig, extract

    rows = {}
    with tempfile.TemporaryDirectory(prefix="video-speed-") as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        clips = write_clips(folder, args.clips, args.seconds, 8)
        s = args.image_size
        sampling = Sampling(fps=1.0)
        t0 = time.perf_counter()
        pictures = []
        for c in clips:
            pictures.append(read_frames(c, sampling.times(probe(c).duration), size=(s, s))[0])
        decode = time.perf_counter() - t0
        frames = sum(len(p) for p in pictures)
        rows["decode"] = {"frames": frames, "seconds": decode, "frames_per_s": frames / decode}
        backbone = build_backbone("efficientnet-lite0", "DEFAULT", [], s, torch.device("cpu"))
        frame_vectors(backbone, pictures[0][:4], "cpu", 32)  # warm-up
        t0 = time.perf_counter()
        for p in pictures:
            frame_vectors(backbone, p, "cpu", 32)
        forward = time.perf_counter() - t0
        rows["forward"] = {"frames": frames, "seconds": forward, "frames_per_s": frames / forward}
        for workers in (0, 1):
            config = ExtractConfig(backbone="efficientnet-lite0", weights="DEFAULT", image_size=s, fps=1.0,
                                   workers=workers, device="cpu", offline=True)
            r = extract([folder], Path(tmp) / f"f{workers}.h5", config)
            rows[f"extract, workers {workers}"] = {"frames": r.frames, "seconds": r.seconds,
                                                   "frames_per_s": r.frames_per_s}
    share = decode / (decode + forward)
    print(f"\nVideo files: EfficientNet-Lite0 at {args.image_size} px, {args.clips} clips of {args.seconds} s "
          f"(320x240, 8 fps) sampled at 1 fps, {args.threads} torch thread(s)")
    print(f"  {'path':<22} {'frames':>7} {'seconds':>8} {'frames/s':>9}")
    for name, r in rows.items():
        print(f"  {name:<22} {r['frames']:>7} {r['seconds']:>8.2f} {r['frames_per_s']:>9.1f}")
    print(f"  decoding's share of decode + forward: {100 * share:.0f}%")
    payload = {"benchmark": "video_files_speed", "command": "python benchmarks/video_files_speed.py "
               + " ".join(sys.argv[1:]), "clips": args.clips, "seconds_per_clip": args.seconds, "clip_fps": 8,
               "clip_size": [320, 240], "sample_fps": 1.0, "image_size": args.image_size, "rows": rows,
               "decode_share": share,
               "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": args.threads}}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
