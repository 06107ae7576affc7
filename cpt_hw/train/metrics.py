"""Metrics as JSON lines: one object per line, appended and flushed as training goes.

Records carry ``kind`` ("train": averages over the last logging interval; "eval": test-set results;
"range_test": one precision of the range test; "summary": the end of the run).  On resume the file is cut
back to the length recorded in the checkpoint, so it never holds records of iterations that were redone.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterator

from ..errors import CptHwError


class MetricsWriter:
    """Append-only JSON-lines writer (rank 0 only; other ranks pass ``enabled=False``)."""

    def __init__(self, path: str | Path, *, truncate_to: int | None = None, enabled: bool = True) -> None:
        self.path, self.enabled = Path(path), enabled
        self._f = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_to is None or not self.path.is_file():
            self._f = open(self.path, "w")  # a new run, or a run resumed into a new folder
            return
        if self.path.stat().st_size < truncate_to:
            raise CptHwError(f"{self.path}: shorter than the {truncate_to} bytes the checkpoint recorded (was it "
                             "edited?); resume into a new --out folder to start a new metrics file")
        self._f = open(self.path, "a")
        self._f.truncate(truncate_to)
        self._f.seek(truncate_to)

    def write(self, record: dict[str, Any]) -> None:
        if self._f is None:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        self._f.write(json.dumps(clean, sort_keys=False) + "\n")
        self._f.flush()

    def tell(self) -> int:
        """Bytes written so far (what a checkpoint records)."""
        if self._f is None:
            return 0
        self._f.flush()
        os.fsync(self._f.fileno())
        return self._f.tell()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read_metrics(path: str | Path) -> Iterator[dict[str, Any]]:
    with open(path) as f:
        for line in f:
            if line.strip():
                yield json.loads(line)
