"""Settings of ``mlgraph extract``: a plain dataclass (no torch, no numpy), so the command's help
can show its defaults without loading the extraction code."""

from __future__ import annotations

from dataclasses import dataclass, field

# What `mlgraph extract` stores from an image when no --layer is given: for EfficientNet-Lite0 its
# last map (7 x 7 at 224 px) and the finer map of stage 5 (14 x 14), the two MS-CMA reads, the
# default head on such files (docs/benchmarks.md); other backbones their last stage. Video frames keep
# one stage.
DEFAULT_IMAGE_LAYERS: dict[str, tuple[str, ...]] = {"efficientnet-lite0": ("stage5", "head")}


def default_layers(backbone: str, video: bool = False) -> list[str]:
    """The stages extract stores when ``--layer`` is not given (empty: the backbone's last)."""
    return [] if video else list(DEFAULT_IMAGE_LAYERS.get(backbone, ()))


# The largest input side in px a backbone is run at (a 8192 x 8192 image is 200 MB of floats).
MAX_IMAGE_SIZE = 8192
SPLITS = ("train", "val", "test")  # the splits a project names ([dataset] images, val_images, test_images)


@dataclass
class ExtractConfig:
    """Settings of ``mlgraph extract`` (defaults, then ``[extract]`` of mlgraph.toml, then flags)."""

    backbone: str = "efficientnet-lite0"
    weights: str = "DEFAULT"  # torchvision enum name, IMAGENET1K for Lite0, a state-dict file, or none
    image_size: int | None = field(default=None, metadata={"default": "448 torchvision, 224 efficientnet-lite0"})
    layers: list[str] = field(default_factory=list)  # empty: default_layers(); two: main + aux (MS-CMA)
    batch_size: int = 32
    workers: int | None = None  # DataLoader processes decoding and resizing; 0 = main process; None: by cores
    threads: int | None = None  # torch threads for the forward pass; None: the cores left to this process
    device: str = "auto"
    seed: int = 0  # random init when weights = none
    format: str | None = None  # annotation format (auto-detected)
    label_order: str = "name"  # as `mlgraph build-graph --label-order`
    image_set: str | None = None  # VOC image set / NUS-WIDE split / YOLO split of the annotations
    label_delimiter: str | None = None  # CSV: between the labels of a row (default ;)
    labels: str | None = None  # declared label set: a file of one label per line, or a graph (its order)
    max_pixels: int | None = None  # decompression-bomb limit (default: PIL's, ~89 Mpx)
    offline: bool = False  # never download weights (also MLGRAPH_OFFLINE=1 or HF_HUB_OFFLINE=1)
    fps: float = 1.0  # video files (core/media/videos.py): frames per second sampled,
    min_frames: int = 32  # but at least this many spread over a clip that has them (docs/video.md),
    frames: int | None = None  # or this many frames spread over each clip,
    max_frames: int = 300  # and at most this many

    def __post_init__(self) -> None:
        if isinstance(self.layers, str):
            self.layers = [self.layers]
        self.layers = [str(x) for x in (self.layers or [])]
        if self.image_size is not None and not 1 <= int(self.image_size) <= MAX_IMAGE_SIZE:
            raise ValueError(f"--image-size {self.image_size}: must be a whole number of px from 1 to {MAX_IMAGE_SIZE}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.workers is not None and int(self.workers) < 0:
            raise ValueError(f"workers must be 0 or more, got {self.workers}")
        if self.threads is not None and int(self.threads) < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) or not 0 <= self.fps < float("inf"):
            raise ValueError(f"--fps {self.fps}: must be a finite number of frames per second")
        for name in ("frames", "max_frames"):
            value = getattr(self, name)
            if value is not None and not 1 <= int(value) <= 10**5:
                raise ValueError(f"--{name.replace('_', '-')} {value}: must be a whole number from 1 to 100,000")
        if not 0 <= int(self.min_frames) <= 10**5:
            raise ValueError(f"--min-frames {self.min_frames}: must be a whole number from 0 to 100,000")

    def sampling_fields(self) -> dict:
        """The keyword arguments of ``core.media.videos.Sampling`` these settings give."""
        return {"fps": float(self.fps), "frames": int(self.frames) if self.frames else None,
                "max_frames": int(self.max_frames), "min_frames": int(self.min_frames)}
