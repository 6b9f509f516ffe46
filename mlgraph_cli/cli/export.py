"""``mlgraph export``: a trained run -> an ONNX graph (pixels, or clips' frames, in; probabilities out) and its card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from mlgraph_cli.cli._common import handle_errors, summary
from mlgraph_cli.cli._options import plain_option
from mlgraph_cli.core.training.config import CHECKPOINTS  # a plain tuple: no torch

EPILOG = ("Example: mlgraph export runs/train/exp -o model.onnx  (needs the export extra: "
          'pip install "mlgraph\\[export]")')


def export(
    run: Annotated[Path, typer.Argument(help="Run folder from `mlgraph train`.", show_default=False)],
    *,
    output: Annotated[Path, typer.Option(
        "-o", "--output", help="ONNX file to write (.onnx); its card goes beside it with .json (model.onnx -> "
                               "model.json).")] = Path("model.onnx"),
    checkpoint: Annotated[Literal[CHECKPOINTS], typer.Option(
        "--checkpoint", help="Weights of the best validation epoch, or of the last.")] = "best",
    image_size: Annotated[Optional[int], plain_option(
        "--image-size", help="Image runs: input side S in px instead of the run's (the heads take any map size).")] = None,
    opset: Annotated[Optional[int], plain_option(
        "--opset", min=7, help="ONNX opset. Default: the exporter's (recorded in the card).")] = None,
    check: Annotated[bool, typer.Option(
        "--check/--no-check", help="Run the written graph with onnxruntime and compare it with the torch model "
                                   "(images: a random batch; clips: one of the run's training clips).")] = True,
) -> None:
    """Export a trained run to ONNX: input float32 (N, 3, S, S) RGB pixels 0-255 (EXIF-transposed,
    stretched to S x S with PIL bilinear, as extract does), normalisation inside the graph, output (N, C)
    probabilities, dynamic batch. The card (.json) holds the labels, image size, thresholds and preprocessing.

    A run trained on video files takes (N, T, 3, S, S) frames, sampled as the card's `sampling` says, and
    an (N, T) bool mask of the real ones (per-frame backbone, average pooling and the temporal head in
    the graph); a YouTube-8M run takes (N, T, D) frame features and the mask (its head alone)."""
    from mlgraph_cli.stages.export import ExportConfig, export as run_export

    result = run_export(run, output, ExportConfig(checkpoint=checkpoint, image_size=image_size, opset=opset,
                                                  check=check))
    checked = (f"; onnxruntime matches torch to {result.max_abs_diff:.1e} on {result.checked_on}"
               if result.max_abs_diff is not None else "; not checked")
    kind = (f"{result.image_size} px" if result.modality == "image" else
            f"clips of {result.image_size} px frames" if result.image_size else "frame features")
    summary(f"Exported {run} ({checkpoint}, {len(result.labels)} labels, {kind}, opset "
            f"{result.opset}) -> {result.onnx} ({result.size_bytes / 1e6:.1f} MB) and {result.card}{checked}")


def register(app: typer.Typer) -> None:
    app.command("export", epilog=EPILOG)(handle_errors(export))
