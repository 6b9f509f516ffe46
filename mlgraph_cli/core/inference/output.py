"""Prediction rows as text: JSONL and long-format CSV, for images and for videos."""

from __future__ import annotations

import csv
import io
import json
from typing import Any


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Long format ``image,rank,label,score``: one line per listed label, an image with none gets
    one line with empty label and score (so every image read is accounted for)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", "rank", "label", "score"])
    for row in rows:
        if not row["labels"]:
            writer.writerow([row["image"], "", "", ""])
        for rank, item in enumerate(row["labels"], start=1):
            writer.writerow([row["image"], rank, item["label"], f"{item['score']:.6f}"])
    return buf.getvalue()


def to_video_csv(rows: list[dict[str, Any]]) -> str:
    """Long format ``video,start,rank,label,score``: the video's labels with an empty ``start``, then
    each segment's with its first frame; a video or segment with no listed label gets one line with
    empty label and score."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["video", "start", "rank", "label", "score"])
    for row in rows:
        parts = [("", row["labels"])] + [(seg["start"], seg["labels"]) for seg in row.get("segments", [])]
        for start, labels in parts:
            if not labels:
                writer.writerow([row["video"], start, "", "", ""])
            for rank, item in enumerate(labels, start=1):
                writer.writerow([row["video"], start, rank, item["label"], f"{item['score']:.6f}"])
    return buf.getvalue()
