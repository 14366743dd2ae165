"""Inputs the scoring service collected (JSONL, ml_service/serving/collector.py) as tables.

One collected record is one request: {"time", "request_id", "model_version", "inputs": [[row in
schema order], ...], "predictions": [...]}. `join_labels` turns collected inputs plus a labels file a
user supplies later (CSV: request_id, optional row (0-based, within the request), and the target
column) into training rows.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from ml_service.errors import UsageError

PATTERN = "predictions-*.jsonl"


class CollectedError(UsageError):
    """Collected data or a labels file cannot be used; the message names the file."""


@dataclass
class Collected:
    """Rows of collected requests: one entry per input row."""

    rows: list[list] = field(default_factory=list)
    predictions: list = field(default_factory=list)
    keys: list[tuple[str, int]] = field(default_factory=list)  # (request id, row within the request)
    times: list[float] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    bad_lines: int = 0


def read(directory: Path, since: float | None = None, until: float | None = None,
         model_version: str | None = None) -> Collected:
    """Every row collected in directory (its predictions-*.jsonl files), optionally within [since, until] and
    served by one model version."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CollectedError(f"{directory}: no such folder of collected inputs (the scoring service writes them "
                             "where MLOPS_COLLECT_DIR points)")
    out = Collected()
    for path in sorted(directory.glob(PATTERN)):
        with open(path, errors="replace") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                    stamp = float(record["time"])
                    inputs, predictions = record["inputs"], record.get("predictions") or []
                except (ValueError, KeyError, TypeError):  # a torn last line after a kill, or not ours
                    out.bad_lines += 1
                    continue
                if (since is not None and stamp < since) or (until is not None and stamp > until):
                    continue
                if model_version is not None and str(record.get("model_version", "")) != str(model_version):
                    continue
                for index, row in enumerate(inputs):
                    out.rows.append(row)
                    out.predictions.append(predictions[index] if index < len(predictions) else None)
                    out.keys.append((str(record.get("request_id", "")), index))
                    out.times.append(stamp)
                    out.versions.append(str(record.get("model_version", "")))
    return out


def read_labels(path: Path, target: str) -> dict[tuple[str, int], str]:
    """(request id, row) -> label from a CSV with request_id, optional row, and the target column."""
    path = Path(path)
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in ("request_id", target) if c not in header]
            if missing:
                raise CollectedError(f"{path}: the labels file needs the column(s) {', '.join(missing)} "
                                     f"(has: {', '.join(header) or 'none'})")
            labels = {}
            for number, item in enumerate(reader, start=2):
                try:
                    row = int(item.get("row") or 0)
                except ValueError:
                    raise CollectedError(f"{path}: line {number}: row {item.get('row')!r} is not a whole number") \
                        from None
                labels[(item["request_id"], row)] = item[target]
            return labels
    except FileNotFoundError:
        raise CollectedError(f"{path}: labels file not found") from None
    except UnicodeDecodeError as exc:
        raise CollectedError(f"{path}: not a readable CSV file: {exc}") from None


def join_labels(collected: Collected, labels: dict[tuple[str, int], str], features: list[str], target: str,
                base: Path | None, out: Path) -> dict[str, int]:
    """Write base's rows (if any) then every labelled collected row, in base's column order, to out.

    Returns counts: base rows, labelled rows added, collected rows without a label, labels without input.
    """
    columns = list(features) + [target]
    base_rows = 0
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        if base is not None:
            with open(base, newline="") as source:
                reader = csv.DictReader(source)
                columns = list(reader.fieldnames or columns)
                writer.writerow(columns)
                for item in reader:
                    writer.writerow([item[c] for c in columns])
                    base_rows += 1
        else:
            writer.writerow(columns)
        added = unlabelled = 0
        for key, row in zip(collected.keys, collected.rows):
            if key not in labels:
                unlabelled += 1
                continue
            if len(row) != len(features):
                raise CollectedError(f"request {key[0]} row {key[1]}: {len(row)} values, the data set has "
                                     f"{len(features)} features ({', '.join(features)})")
            values = dict(zip(features, row), **{target: labels[key]})
            writer.writerow(["" if values[c] is None else values[c] for c in columns])
            added += 1
    orphans = len(set(labels) - set(collected.keys))
    return {"base_rows": base_rows, "added": added, "unlabelled": unlabelled, "labels_without_input": orphans}
