"""Petastorm in: each rank reads its shard of Spark-written Parquet, with rows counted.

Petastorm shards by row group: the row groups of the dataset's files, in path order, go to
shard `index % shard_count`. `shard_rows` computes the same split from the Parquet footers, so
every rank knows beforehand how many rows each shard holds: all ranks take the same number of
steps (the smallest shard's), and a rank that reads fewer rows than its shard holds (an empty
or short epoch, which Petastorm can produce silently) stops the run with an error.

Petastorm's own row-group shuffle (shuffle_row_groups=True) gave an empty shard in 5 of 60
reads here, so it is off, and so is its row shuffle: rows are shuffled across a window of at
least `shuffle_rows` rows (whole row groups) by a seeded buffer here, which keeps each epoch's
order reproducible. A window's rows are drawn in a random order, and each batch is gathered
from it in one copy, which stays in cache.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from recsys_spark.deep.data import BLOCK_ROWS

# petastorm 0.13 uses pyarrow's legacy dataset API, which warns on every reader (a dozen lines each)
warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm\.")
SPARK_SCHEMA = b"org.apache.spark.sql.parquet.row.metadata"


class ShortEpochError(RuntimeError):
    pass


def parquet_files(path: str) -> list[Path]:
    return sorted(p for p in Path(path).glob("*.parquet") if not p.name.startswith(("_", ".")))


def _group_rows(path: str) -> list[int]:
    """Rows per row group, in Petastorm's order; a blocked layout's real rows, not its blocks."""
    files = [pq.ParquetFile(f) for f in parquet_files(path)]
    if block_layout(path) is None:
        return [f.metadata.row_group(i).num_rows for f in files for i in range(f.metadata.num_row_groups)]
    return [pc.sum(f.read_row_group(i, columns=[BLOCK_ROWS]).column(0)).as_py() or 0
            for f in files for i in range(f.metadata.num_row_groups)]


def shard_rows(path: str, shard_count: int) -> list[int]:
    """Rows per shard, as Petastorm assigns row groups to shards."""
    groups = _group_rows(path)
    if len(groups) < shard_count:
        raise ShortEpochError(f"{path}: {len(groups)} row groups cannot feed {shard_count} ranks; "
                              f"materialise it with more files")
    return [sum(groups[shard::shard_count]) for shard in range(shard_count)]


def block_layout(path: str) -> dict[str, dict] | None:
    """Each column's {block_rows, dtype, array} when `path` was materialised `blocked`, else None: from the
    schema Spark writes into every file's footer, column metadata included."""
    files = parquet_files(path)
    meta = (pq.read_schema(files[0]).metadata or {}) if files else {}
    fields = json.loads(meta.get(SPARK_SCHEMA, b'{"fields": []}'))["fields"]
    return {f["name"]: f["metadata"] for f in fields if "block_rows" in f.get("metadata", {})} or None


def _columns(group, fields: list[str], layout: dict[str, dict] | None) -> dict[str, list[np.ndarray]]:
    """A Petastorm row group as pieces per field, end to end a row per example: in the blocked
    layout one view per block, no copy."""
    values = group._asdict()
    if layout is None:
        return {k: [np.asarray(values[k])] for k in fields}
    real = np.asarray(values[BLOCK_ROWS])
    return {k: [np.frombuffer(b, layout[k]["dtype"]).reshape((n, -1) if layout[k]["array"] else (n,))
                for b, n in zip(values[k], real, strict=True)] for k in fields}


def _batch(columns: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, torch.Tensor]:
    """The rows gathered into new arrays, ids as int64 (what embeddings and losses take) and other
    numbers as float32: one copy of a batch, which stays in cache."""
    out = {}
    for k, v in columns.items():
        taken = np.take(v, rows, axis=0)
        out[k] = torch.from_numpy(taken.astype(np.float32 if taken.dtype.kind == "f" else np.int64, copy=False))
    return out


def epoch_batches(path: str, fields: list[str], batch_size: int, rank: int, size: int, seed: int,
                  workers: int = 1, shuffle_rows: int = 65536) -> Iterator[dict[str, torch.Tensor]]:
    """Every row of this rank's shard once, shuffled by `seed`, as dicts of tensors; the last
    batch may be short. Raises ShortEpochError when the shard yields fewer rows than it holds."""
    from petastorm import make_batch_reader

    expected = shard_rows(path, size)[rank]
    layout = block_layout(path)
    rng = np.random.default_rng(seed)
    read = 0
    parts: list[dict[str, list[np.ndarray]]] = []

    def drain(keep: int) -> Iterator[dict[str, torch.Tensor]]:
        """Shuffle the buffered rows and emit full batches until at most `keep` rows are left."""
        columns = {k: np.concatenate([piece for part in parts for piece in part[k]]) for k in fields}
        order = rng.permutation(len(columns[fields[0]]))
        stop = 0
        while len(order) - stop > keep and (len(order) - stop >= batch_size or keep == 0):
            yield _batch(columns, order[stop:stop + batch_size])
            stop += batch_size
        parts[:] = [{k: [np.take(v, order[stop:], axis=0)] for k, v in columns.items()}] if stop < len(order) else []

    with make_batch_reader(Path(path).resolve().as_uri(), schema_fields=fields + ([BLOCK_ROWS] if layout else []),
                           cur_shard=rank, shard_count=size, num_epochs=1, shuffle_row_groups=False,
                           shuffle_rows=False, seed=seed, workers_count=workers) as reader:
        held = 0
        for group in reader:
            parts.append(_columns(group, fields, layout))
            rows = sum(len(piece) for piece in parts[-1][fields[0]])
            read, held = read + rows, held + rows
            if held >= shuffle_rows:
                yield from drain(batch_size - 1)
                held = len(parts[0][fields[0]][0]) if parts else 0
    if parts:
        yield from drain(0)
    if read != expected:
        raise ShortEpochError(f"{path}: rank {rank} of {size} read {read:,} rows, its shard holds {expected:,}")
