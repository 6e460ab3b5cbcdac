"""One log format for drivers and training workers (which start without any handler)."""
from __future__ import annotations

import logging


def setup_logging() -> None:
    """Our INFO lines, and only warnings from libraries: py4j logs every closed gateway connection
    (horovod.spark.run closes several) at INFO, with tracebacks that look like failures."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("recsys_spark").setLevel(logging.INFO)
