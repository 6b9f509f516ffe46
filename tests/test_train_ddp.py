"""`torchrun --nproc-per-node=2 -m mlgraph_cli train`: two gloo processes on the CPU match one process.

Comparable by design: the global batch is the same (16 = 2 x 8), 64 training images divide
into whole batches on both ranks (no padded repeats), the sampler gives rank r every 2nd index
of the same permutation, the gap head has no dropout or batch norm, and the loss over 8 + 8
images averaged by DDP equals the loss over 16.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

import trainkit


def _read(run):
    from safetensors.torch import load_file

    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return load_file(str(run / "last.safetensors")), rows


def test_two_gloo_processes_match_one(cli, tmp_path):
    import torch

    data = trainkit.toy_dataset(tmp_path / "data", n_train=64, n_val=24)
    args = ["train", "--features", str(data["features"]), "--val-features", str(data["val"]), "--head", "gap",
            "--epochs", "2", "--batch-size", "16", "--lr", "0.05", "--device", "cpu", "--cache", "ram"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLGRAPH_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           "-m", "mlgraph_cli", *args, "-o", str(tmp_path / "ddp")],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("Trained 2 epochs") == 1  # rank 0 alone reports

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = cli(*args, "-o", tmp_path / "single")
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output

    w_ddp, rows_ddp = _read(tmp_path / "ddp")
    w_one, rows_one = _read(tmp_path / "single")
    assert w_ddp.keys() == w_one.keys()
    for k in w_one:
        assert np.allclose(w_ddp[k].numpy(), w_one[k].numpy(), rtol=1e-4, atol=1e-5), k
    assert len(rows_ddp) == len(rows_one) == 2
    for a, b in zip(rows_ddp, rows_one):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4
        # validation runs on rank 0 over the whole set: same images, no padded duplicates
        assert abs(a["val_mAP"] - b["val_mAP"]) < 1e-3
    args_json = json.loads((tmp_path / "ddp" / "args.json").read_text())
    assert args_json["world_size"] == 2


def test_torchrun_environment_is_read():
    from mlgraph_cli.core.training.distributed import DistInfo, backend_for, device_for, dist_info_from_env

    assert dist_info_from_env({}) == DistInfo()
    assert not dist_info_from_env({"WORLD_SIZE": "1", "RANK": "0"}).enabled
    info = dist_info_from_env({"WORLD_SIZE": "8", "RANK": "5", "LOCAL_RANK": "1"})
    assert (info.world_size, info.rank, info.local_rank, info.is_main) == (8, 5, 1, False)
    assert device_for(info, "cuda") == "cuda:1" and device_for(info, "cpu") == "cpu"
    assert backend_for("cuda") == "nccl" and backend_for("cpu") == "gloo"
