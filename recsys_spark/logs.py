"""One log format for drivers and training workers (which start without any handler), and
progress for long loops."""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator

log = logging.getLogger("recsys_spark")


def setup_logging() -> None:
    """Our INFO lines, and only warnings from libraries: py4j logs every closed gateway connection
    (horovod.spark.run closes several) at INFO, with tracebacks that look like failures."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("recsys_spark").setLevel(logging.INFO)


def track(items: Iterable, desc: str, total: int | None = None, unit: str = "batches",
          every_s: float = 30.0) -> Iterator:
    """A progress bar on a terminal; elsewhere (a log file, a cluster's worker) a log line every
    `every_s` seconds with the count so far and the rate."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, desc=desc, total=total, unit=unit, leave=False)
        return
    start = last = time.perf_counter()
    for n, item in enumerate(items, 1):
        yield item
        now = time.perf_counter()
        if now - last >= every_s:
            log.info("%s: %s/%s %s, %.1f %s/s", desc, f"{n:,}", f"{total:,}" if total else "?", unit,
                     n / (now - start), unit)
            last = now
