"""Prediction rows as text: JSONL and long-format CSV, for images and for videos. Every string goes
through core/io/text.py: names that are not UTF-8 are written escaped, CSV cells never start a
spreadsheet formula."""

from __future__ import annotations

import json
from typing import Any, Iterator, Sequence

from mlgraph_cli.core.io.text import csv_text, printable_strings


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(printable_strings(row), ensure_ascii=False) + "\n" for row in rows)


def to_csv(rows: list[dict[str, Any]], *, key: str = "image", segment_fields: Sequence[str] = ()) -> str:
    """Long format ``KEY,[SEGMENT FIELDS,]rank,label,score``: one line per listed label, the whole
    input's first (its segment fields empty), then each segment's; an input or segment with no
    listed label gets one line with empty label and score, so every one read is accounted for.

    Images: ``image,rank,label,score``; YouTube-8M records: ``video,start,rank,...`` (start: the
    segment's first frame); video files: ``video,start,end,rank,...`` (seconds)."""
    blank = [""] * len(segment_fields)

    def lines() -> Iterator[list[Any]]:
        for row in rows:
            parts = [(blank, row["labels"])]
            parts += [([seg[f] for f in segment_fields], seg["labels"]) for seg in row.get("segments", [])]
            for fields, labels in parts:
                if not labels:
                    yield [row[key], *fields, "", "", ""]
                for rank, item in enumerate(labels, start=1):
                    yield [row[key], *fields, rank, item["label"], f"{item['score']:.6f}"]

    return csv_text([key, *segment_fields, "rank", "label", "score"], lines())
