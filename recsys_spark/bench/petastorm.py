"""Rows per second reaching the training loop: Petastorm (our sharded, shuffled, counted reader)
vs pyarrow reading the same rows straight into tensors, as a ratio, in the same run.

The data is what SASRec trains on: rows of two 50-item int arrays, written by Spark in 8 files,
once as Spark writes arrays (list columns) and once blocked as the pipeline materialises them
(deep.data.blocked: 1,024 rows per Parquet row). The reference is pyarrow on the list layout by its
fastest plain path (flatten, reshape, no Python per row, no shuffle); pyarrow on the blocked layout
is shown too. Each reader makes 5 full passes as batches of 256 torch tensors; the best pass counts.
Three cases: 200,000 and 1,000,000 rows in 8 files, and 1,000,000 rows in 40 files, which has the
25,000-row files of the first with the pass length of the second: the rate of every reader depends
on the rows per file (a file's matrices fit in the CPU's cache or do not) more than on the pass
length.
"""
from __future__ import annotations

import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from pyspark.sql import functions as F

from recsys_spark.bench.report import row, write_report
from recsys_spark.config import DeepConf, load_config
from recsys_spark.deep.data import BLOCK_ROWS, materialise
from recsys_spark.deep.loader import block_layout, epoch_batches, parquet_files
from recsys_spark.spark import get_spark

CASES, LENGTH, BATCH, PASSES = ((200_000, 8), (1_000_000, 8), (1_000_000, 40)), 50, 256, 5


def pyarrow_batches(path: str, batch_size: int):
    """The plainest fast path: whole files into numpy matrices, then tensors, in order, no shuffle."""
    layout = block_layout(path)
    for f in parquet_files(path):
        table = pq.read_table(f)
        arrays = {c: matrix(table, c, layout) for c in ("inputs", "targets")}
        for start in range(0, len(arrays["inputs"]), batch_size):
            yield {c: torch.from_numpy(a[start:start + batch_size]) for c, a in arrays.items()}


def matrix(table: pa.Table, column: str, layout: dict[str, dict] | None) -> np.ndarray:
    """A fixed-length int array column as a (rows, length) matrix without Python per row; in the
    blocked layout, the blocks' bytes end to end."""
    values = table.column(column).combine_chunks()
    if layout is None:
        return values.flatten().to_numpy().reshape(table.num_rows, -1)
    offsets = np.frombuffer(values.buffers()[1], np.int32)[values.offset:values.offset + len(values) + 1]
    start, stop = int(offsets[0]), int(offsets[-1])
    dtype = np.dtype(layout[column]["dtype"])
    flat = np.frombuffer(values.buffers()[2], dtype, (stop - start) // dtype.itemsize, start)
    return flat.reshape(pc.sum(table.column(BLOCK_ROWS)).as_py(), -1)


def timed_pass(batches) -> tuple[int, float]:
    start, rows = time.perf_counter(), 0
    for batch in batches:
        rows += len(batch["inputs"])
    return rows, time.perf_counter() - start


def measure(spark, root: str, size: int, files: int, timings: dict) -> list[dict]:
    """The three readers' best rates on `size` rows in `files` files, and the ratios, as report rows."""
    items = F.transform(F.sequence(F.lit(1), F.lit(LENGTH)), lambda i: (F.col("id") * 7 + i) % 5000 + 1)
    data = spark.range(size).select(F.col("id").cast("int").alias("user_idx"), items.cast("array<int>")
                                    .alias("inputs"), items.cast("array<int>").alias("targets"))
    path, blocked = f"{root}/lists-{size}-{files}", f"{root}/blocked-{size}-{files}"
    n = materialise(data, path, files)
    materialise(data, blocked, files, DeepConf().block_rows)
    readers = {"petastorm": lambda epoch: epoch_batches(blocked, ["inputs", "targets"], BATCH, 0, 1, epoch),
               "pyarrow": lambda epoch: pyarrow_batches(path, BATCH),
               "pyarrow_blocked": lambda epoch: pyarrow_batches(blocked, BATCH)}
    best, rows = {}, []
    for name, make in readers.items():
        passes = [timed_pass(make(epoch)) for epoch in range(PASSES)]
        assert all(r == n for r, _ in passes), f"{name} read {[r for r, _ in passes]} rows, not {n}"
        best[name] = n / min(s for _, s in passes)
        timings[f"{name}_{size}_{files}"] = [round(s, 3) for _, s in passes]
        rows.append(row(name, "rows_per_second", round(best[name]), batch_size=BATCH, rows=size, files=files))
    for ref in ("pyarrow_blocked", "pyarrow"):
        rows.append(row(f"petastorm_vs_{ref}", "throughput_ratio", round(best["petastorm"] / best[ref], 3), rows=size,
                        files=files))
    return rows


def run() -> None:
    spark = get_spark(load_config(None))
    rows, timings = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-petastorm-") as root:
        for size, files in CASES:
            rows += measure(spark, root, size, files, timings)
    write_report("petastorm", f"rows/second reaching the loop as torch batches of {BATCH}; best of {PASSES} passes; "
                 "petastorm = make_batch_reader on the blocked layout (1 shard, rows shuffled, counted); pyarrow = "
                 "read_table per file of the list layout, flattened and reshaped (no shuffle); pyarrow_blocked = the "
                 "same on the blocked layout",
                 f"{', '.join(f'{s:,} rows in {f} files' for s, f in CASES)}; rows of 2 int arrays of {LENGTH}, "
                 "Parquet written by Spark in each layout (one row group per file)", rows, timings,
                 notes=["A ratio under 1 is what Petastorm costs for sharding, shuffling and its worker pool; "
                        "it pays off when the data does not fit in one process's memory. Petastorm turns a list "
                        "column into a matrix with a Python object per row: hence the blocked layout, whose "
                        f"rows hold {DeepConf().block_rows:,} examples each.",
                        "Rows per file set the rates more than the pass length does: compare 1,000,000 rows in 8 "
                        "files (125,000 rows each) with the same rows in 40 files (25,000 rows each, as in the "
                        "200,000-row case). pyarrow reads a whole file into one matrix, which stays in the CPU's "
                        "cache when the file is small."])
