#!/usr/bin/env bash
# Data-parallel training with torchrun: one process per GPU (nccl), or per CPU process (gloo).
# Run inside a project folder (mlgraph.toml) whose features and embeddings already exist.
set -euo pipefail
gpus=${GPUS:-2}
torchrun --standalone --nproc-per-node="$gpus" -m mlgraph_cli train --head cma --epochs 20 --batch-size 64

# Several machines: run this on each node, with the same rendezvous endpoint.
# torchrun --nnodes=2 --nproc-per-node=8 --rdzv-id=mlgraph --rdzv-backend=c10d \
#          --rdzv-endpoint=node0.example:29400 -m mlgraph_cli train --head cma --epochs 20
