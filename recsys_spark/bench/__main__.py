"""`python -m recsys_spark.bench NAME [--dataset NAME_OR_PATH]` (what `make bench B=NAME DATASET=...`
runs); `all` runs every one. Benchmarks whose run() takes a dataset accept --dataset."""
from __future__ import annotations

import argparse
import inspect
import sys
import time
from importlib import import_module

from recsys_spark.bench.report import REPORTS
from recsys_spark.config import load_config
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
    "search": "recsys_spark.bench.search",
    "content": "recsys_spark.bench.content",
    "bandit": "recsys_spark.bench.bandit",
    "hybrid": "recsys_spark.bench.hybrid",
}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m recsys_spark.bench")
    p.add_argument("names", nargs="*", default=["all"])
    p.add_argument("--dataset", default="", help="a conf/datasets name or a YAML path (b2)")
    args = p.parse_args(argv)
    names = list(BENCHMARKS) if args.names in ([], ["all"]) else args.names
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {unknown[0]!r}; benchmarks are {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    runs = {n: import_module(BENCHMARKS[n]).run for n in names}
    fixed = [n for n, run in runs.items() if "dataset" not in inspect.signature(run).parameters]
    if args.dataset and fixed:
        print(f"benchmark {fixed[0]!r} has a fixed data set; DATASET= applies to "
              f"{', '.join(n for n in runs if n not in fixed) or 'b2'}", file=sys.stderr)
        return 2
    setup_logging()
    cfg = load_config(None)   # conf/local.yaml: with tracking.mlflow on, reports go to MLflow too
    for name, run in runs.items():
        start = time.time()
        run(**({"dataset": args.dataset} if args.dataset else {}))
        if cfg.tracking.mlflow:
            from recsys_spark.tracking import log_report

            written = [p for p in REPORTS.glob(f"{name}*") if p.stat().st_mtime >= start]
            log_report(cfg, name, written, time.time() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
