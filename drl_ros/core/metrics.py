"""Scalar metrics of a run: a CSV file that plots and tests read, and TensorBoard event files."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any


class MetricsWriter:
    """Appends ``step, wall_time, tag, value`` rows to ``metrics.csv`` and mirrors them to TensorBoard.

    TensorBoard is optional (``tensorboardX``); the CSV is always written so that ``drl-ros plot``
    and the tests need nothing else.
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "metrics.csv"
        # A run killed before its first flush leaves an empty file, one killed mid-row a partial
        # last line: a resumed run must still write a header and start on a line of its own.
        is_new = not path.exists() or path.stat().st_size == 0
        partial_line = False
        if not is_new:
            with path.open("rb") as existing:
                existing.seek(-1, 2)
                partial_line = existing.read(1) != b"\n"
        self._file = path.open("a", newline="")
        self._csv = csv.writer(self._file)
        if partial_line:
            self._file.write("\r\n")
        if is_new:
            self._csv.writerow(["step", "wall_time", "tag", "value"])
            self._file.flush()
        self._tb: Any = None
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:  # TensorBoard logging is a convenience, never a reason to fail a run
                self._tb = None
            else:
                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        now = time.time()
        for tag, value in values.items():
            self._csv.writerow([step, f"{now:.3f}", tag, repr(float(value))])
            if self._tb is not None:
                self._tb.add_scalar(tag, float(value), step, walltime=now)

    def flush(self) -> None:
        self._file.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        self.flush()
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: Path) -> dict[str, tuple[list[int], list[float]]]:
    """Read ``metrics.csv`` back as ``tag -> (steps, values)``."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    path = Path(run_dir) / "metrics.csv"
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                step, value, tag = int(row["step"]), float(row["value"]), row["tag"]
            except (KeyError, TypeError, ValueError):
                continue  # a row cut short by a killed process
            if tag is None:
                continue
            steps, values = series.setdefault(tag, ([], []))
            steps.append(step)
            values.append(value)
    return series
