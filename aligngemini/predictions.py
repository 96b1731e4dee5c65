"""Prediction rows (one per image) streamed to CSV or JSONL as batches finish."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import BasePredictionWriter

BASE_COLUMNS = ("path", "subset", "label", "logit", "probability", "error")


class RowWriter:
    """Appends dict rows to ``.csv`` or ``.jsonl``; CSV columns are the base ones plus any
    extras seen in the first batch (later unknown keys are folded into ``extra``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.suffix.lower() not in {".csv", ".jsonl"}:
            raise ValueError(f"{self.path}: output must end in .csv or .jsonl")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("w", newline="", encoding="utf-8")
        self._csv: csv.DictWriter | None = None
        self.count = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self.path.suffix.lower() == ".jsonl":
            for row in rows:
                self._handle.write(json.dumps(row, default=str) + "\n")
        else:
            for row in rows:
                if self._csv is None:
                    columns = list(BASE_COLUMNS) + sorted(set(row) - set(BASE_COLUMNS))
                    self._csv = csv.DictWriter(self._handle, fieldnames=columns, extrasaction="ignore")
                    self._csv.writeheader()
                self._csv.writerow({k: "" if v is None else v for k, v in row.items()})
        self.count += len(rows)
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class PredictionWriter(BasePredictionWriter):
    """Lightning callback: writes the rows each ``predict_step`` returns."""

    def __init__(self, out: str | Path):
        super().__init__(write_interval="batch")
        self.out = Path(out)
        self._writer: RowWriter | None = None

    def on_predict_start(self, trainer, pl_module) -> None:
        path = self.out
        if trainer.world_size > 1:  # one file per rank; no cross-process writes to one file
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        self._writer = RowWriter(path)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        self._writer.write(prediction)

    def on_predict_end(self, trainer, pl_module) -> None:
        if self._writer:
            self._writer.close()
            print(f"wrote {self._writer.count} rows to {self._writer.path}")
