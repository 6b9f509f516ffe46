#!/usr/bin/env bash
# Every stage of mlgraph as a separate command with explicit files, on the embedded demo data
# (generated fashion scenes, EfficientNet-Lite0 with its packaged ImageNet weights; no network).
# Run from anywhere: bash examples/demo-pipeline.sh [WORKDIR]
set -euo pipefail
work=${1:-mlgraph-example}
vectors=$(python -c 'from importlib.resources import files; print(files("mlgraph_cli") / "data/vectors/glove-6b-50d-fashion.txt")')

mlgraph make-dataset fashion-scenes "$work/data" --train 600 --val 200 --test 200 --seed 0 --force
mkdir -p "$work/artifacts"
cd "$work"

# 1. label co-occurrence graph from the training annotations
mlgraph build-graph data/annotations/train.json -o artifacts/graph.json
# 2. ASGE label embeddings, initialised from GloVe vectors of the label names
mlgraph embed artifacts/graph.json -o artifacts/embeddings.h5 --method asge --init "$vectors" --seed 0
# 3. backbone feature maps of each split
for split in train val test; do
  mlgraph extract data/images/$split --annotations data/annotations/$split.json \
      -o artifacts/$split-features.h5 --backbone efficientnet-lite0 --image-size 224
done
# 4. the cross-modality attention classifier
mlgraph train --features artifacts/train-features.h5 --val-features artifacts/val-features.h5 \
    --embeddings artifacts/embeddings.h5 --head cma --epochs 12 --seed 0 -o runs/cma --force
# 5. metrics on the test split
mlgraph evaluate runs/cma --features artifacts/test-features.h5 -o artifacts/test-metrics.json
# 6. labels for a few images, with attention maps
mlgraph predict data/images/test --model runs/cma --topk 3 --format jsonl -o predictions.jsonl --explain explain/
head -n 3 predictions.jsonl
