"""Prediction rows as text: JSONL and long-format CSV, for images and for videos. Every string goes
through core/io/text.py: names that are not UTF-8 are written escaped, CSV cells never start a
spreadsheet formula."""

from __future__ import annotations

import json
from typing import Any, Iterator

from mlgraph_cli.core.io.text import csv_text, printable_strings


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(printable_strings(row), ensure_ascii=False) + "\n" for row in rows)


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Long format ``image,rank,label,score``: one line per listed label, an image with none gets
    one line with empty label and score (so every image read is accounted for)."""
    def lines() -> Iterator[list[Any]]:
        for row in rows:
            if not row["labels"]:
                yield [row["image"], "", "", ""]
            for rank, item in enumerate(row["labels"], start=1):
                yield [row["image"], rank, item["label"], f"{item['score']:.6f}"]

    return csv_text(["image", "rank", "label", "score"], lines())


def to_video_csv(rows: list[dict[str, Any]]) -> str:
    """Long format ``video,start,rank,label,score``: the video's labels with an empty ``start``, then
    each segment's with its first frame; a video or segment with no listed label gets one line with
    empty label and score."""
    def lines() -> Iterator[list[Any]]:
        for row in rows:
            parts = [("", row["labels"])] + [(seg["start"], seg["labels"]) for seg in row.get("segments", [])]
            for start, labels in parts:
                if not labels:
                    yield [row["video"], start, "", "", ""]
                for rank, item in enumerate(labels, start=1):
                    yield [row["video"], start, rank, item["label"], f"{item['score']:.6f}"]

    return csv_text(["video", "start", "rank", "label", "score"], lines())
