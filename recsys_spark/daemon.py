"""Spark's Python daemon, with the libraries every worker needs imported once before it forks them.

Each forked worker then starts with numpy, pandas, pyarrow and torch loaded: in local mode that
saves one to two seconds per worker on every stage that runs Python (set in spark.py as
spark.python.daemon.module; clusters keep Spark's own daemon).
"""
import numpy  # noqa: F401
import pandas  # noqa: F401
import pyarrow  # noqa: F401
import torch  # noqa: F401
from pyspark.daemon import manager

if __name__ == "__main__":
    manager()
