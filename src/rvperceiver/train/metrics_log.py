"""The run's metrics file: append-only JSONL (plus optional TensorBoard), safe to resume after a crash."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from rvperceiver.utils import atomic_write_text

METRICS_FILENAME = "metrics.jsonl"
TIMING_KEYS = ("elapsed_s", "flops_per_s", "mfu")
"""Fields of a log line that measure wall-clock speed: they differ between two runs that are otherwise identical
(e.g. a run and the same run killed and resumed), so comparisons of runs leave them out."""


def _parse_record(line: str) -> dict[str, Any] | None:
    """One metrics.jsonl line as a dict; None for a blank or torn line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


class MetricsLog:
    """Append-only JSONL metrics file plus optional TensorBoard; a no-op where nothing should be written."""

    def __init__(self, out_dir: Path | None, tensorboard: bool, resume_step: int | None) -> None:
        self.path = out_dir / METRICS_FILENAME if out_dir is not None else None
        self.writer = None
        if self.path is None:
            return
        if resume_step is not None and self.path.exists():
            # Drop lines a crashed run wrote after its last checkpoint: they are about to be redone. A line cut
            # short by the crash (or a full disk) is dropped too. Rewritten atomically: a kill during the rewrite
            # must not cost the history.
            kept = [
                line
                for line in self.path.read_text(encoding="utf-8").splitlines()
                if (record := _parse_record(line)) is not None and record.get("step", 0) <= resume_step
            ]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        elif resume_step is None:
            self.path.write_text("", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(out_dir / "tensorboard"))
            except Exception as error:  # TensorBoard is a convenience; never let it stop a run
                warnings.warn(f"TensorBoard logging disabled: {error}", stacklevel=2)

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            kind = record.get("kind", "train")
            for key, value in record.items():
                if key not in ("step", "kind") and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"{kind}/{key}", value, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
