"""Using a trained run: load it (:mod:`.run`), score images (:mod:`.scoring`) or YouTube-8M clips
(:mod:`.video`), draw where the model looked (:mod:`.explain`), and write the rows (:mod:`.output`).

``from mlgraph_cli.core.predict import load_run`` keeps working: the names below are re-exported.
"""

from mlgraph_cli.core.predict.explain import colorize, explain_image, explain_names, explanation_maps, panel_size
from mlgraph_cli.core.predict.output import to_csv, to_jsonl, to_video_csv
from mlgraph_cli.core.predict.run import LoadedRun, load_run
from mlgraph_cli.core.predict.scoring import ImageScores, Predictor, Skipped, select_labels
from mlgraph_cli.core.predict.video import VideoPredictor, VideoScores

__all__ = [
    "ImageScores", "LoadedRun", "Predictor", "Skipped", "VideoPredictor", "VideoScores", "colorize", "explain_image",
    "explain_names", "explanation_maps", "load_run", "panel_size", "select_labels", "to_csv", "to_jsonl",
    "to_video_csv",
]
