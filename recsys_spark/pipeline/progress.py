"""Per-stage progress: a log line per step with rows and seconds, and the Spark job
description set so the Spark UI names every job after its stage and step."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

log = logging.getLogger("recsys_spark")


@dataclass
class StepResult:
    stage: str
    step: str
    rows: int | None = None
    seconds: float = 0.0


@dataclass
class Progress:
    spark: SparkSession
    results: list[StepResult] = field(default_factory=list)

    @contextmanager
    def step(self, stage: str, step: str) -> Iterator[StepResult]:
        """Time a step; the caller sets `.rows` on what it yields."""
        result = StepResult(stage, step)
        self.spark.sparkContext.setJobDescription(f"{stage}: {step}")
        start = time.perf_counter()
        try:
            yield result
        finally:
            self.spark.sparkContext.setJobDescription(None)
        result.seconds = time.perf_counter() - start
        self.results.append(result)
        rows = "" if result.rows is None else f"{result.rows:>12,} rows "
        log.info("[%s] %-32s %sin %6.1fs", stage, step, rows, result.seconds)


def format_table(headers: list[str], rows: list[list]) -> str:
    """A plain text table for terminal summaries."""
    cells = [[str(h) for h in headers]] + [[f"{v:,}" if isinstance(v, int) else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    def line(r: list[str]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))

    lines = [line(r) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
