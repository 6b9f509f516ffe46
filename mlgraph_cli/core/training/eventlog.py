"""The experiment log of a run: TensorBoard event files beside ``metrics.jsonl``.

ultralytics' ``yolo`` and timm's train script write TensorBoard logs that a practitioner opens with
``tensorboard --logdir runs/``; a run folder does the same when the optional ``tensorboard``
package is installed (``pip install 'mlgraph[tensorboard]'``), through torch's own
``torch.utils.tensorboard.SummaryWriter``. Per epoch (the step is the epoch number): the training
and validation losses, validation mAP, CF1 and OF1, and the learning rate, the same numbers as the
epoch's line of ``metrics.jsonl``, which stays the record the toolkit reads.

A resumed run opens a new event file with ``purge_step`` at its first new epoch, so epochs logged
by the interrupted run after its last checkpoint are hidden instead of drawn twice. Rank 0 alone
logs (the stage opens the log only there).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from mlgraph_cli.errors import MlgraphError

INSTALL = "pip install 'mlgraph[tensorboard]'"
EVENT_FILES = "events.out.tfevents.*"  # the names SummaryWriter gives its files (a --force run removes them)
# metrics.jsonl key -> TensorBoard tag (grouped into the "loss", "val" and "lr" sections)
TAGS = {"train_loss": "loss/train", "val_loss": "loss/val", "val_mAP": "val/mAP", "val_CF1": "val/CF1",
        "val_OF1": "val/OF1", "lr": "lr"}


def tensorboard_installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def wants_log(setting: bool | None) -> bool:
    """Whether a run writes event files: ``setting`` None means "when the package is installed";
    True without the package is one line saying what to install."""
    if setting is False:
        return False
    installed = tensorboard_installed()
    if setting and not installed:
        raise MlgraphError(f"--tensorboard: the tensorboard package is not installed (`{INSTALL}`, or drop "
                           "--tensorboard)")
    return installed


class EventLog:
    """Scalars of each epoch into TensorBoard event files in ``run_dir``; call it with a metrics row."""

    def __init__(self, run_dir: str | os.PathLike, start_epoch: int = 0) -> None:
        # lazy: optional dependency (tensorboard, extra `tensorboard`)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=os.fspath(run_dir), purge_step=start_epoch + 1 if start_epoch else None)

    def __call__(self, row: dict[str, Any]) -> None:
        for key, tag in TAGS.items():
            value = row.get(key)
            if value is not None:
                self.writer.add_scalar(tag, float(value), global_step=int(row["epoch"]))
        self.writer.flush()  # an interrupted run keeps what it logged

    def close(self) -> None:
        self.writer.close()
