#!/usr/bin/env bash
# mlgraph on a COCO-format dataset of your own:
#   my-dataset/annotations/instances_train.json, instances_val.json   (COCO instances JSON)
#   my-dataset/images/train/, images/val/                             (the images they name)
# and word vectors for the label names (word2vec text/binary, GloVe text, or gensim .kv).
# ResNet-101 needs its ImageNet weights on disk: pass a local file to --weights, or put
# resnet101-cd907fc2.pth in $TORCH_HOME/hub/checkpoints/ to use --weights IMAGENET1K_V2.
set -euo pipefail
cd "${1:-my-dataset}"
vectors=${VECTORS:-glove.6B.300d.txt}

mlgraph init --annotations annotations/instances_train.json --images images/train \
    --val-annotations annotations/instances_val.json --val-images images/val \
    --vectors "$vectors" --format coco --force
mlgraph build-graph --min-count 5            # drop labels with fewer than 5 training images
mlgraph embed                                # ASGE from the project's vectors
mlgraph extract --backbone resnet101 --weights IMAGENET1K_V2 --image-size 448
mlgraph extract --split val --backbone resnet101 --weights IMAGENET1K_V2 --image-size 448
mlgraph train --head cma --epochs 20
mlgraph evaluate --per-label
mlgraph predict photos/ --topk 5
