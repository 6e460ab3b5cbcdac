"""`python -m recsys_spark.bench NAME` (what `make bench B=NAME` runs); `all` runs every one."""
from __future__ import annotations

import sys
from importlib import import_module

from recsys_spark.logs import setup_logging

BENCHMARKS = {
    "pipeline": "recsys_spark.bench.pipeline",
    "b1": "recsys_spark.bench.b1",
    "topk": "recsys_spark.bench.topk",
    "b3": "recsys_spark.bench.b3",
    "als_vs_implicit": "recsys_spark.bench.als_vs_implicit",
    "b2": "recsys_spark.bench.b2",
    "petastorm": "recsys_spark.bench.petastorm",
    "scaling": "recsys_spark.bench.scaling",
}


def main(argv: list[str]) -> int:
    names = list(BENCHMARKS) if not argv or argv[0] == "all" else argv
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {unknown[0]!r}; benchmarks are {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    setup_logging()
    for name in names:
        import_module(BENCHMARKS[name]).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
