"""Petastorm in: each rank reads its shard of Spark-written Parquet, with rows counted.

Petastorm shards by row group: the row groups of the dataset's files, in path order, go to
shard `index % shard_count`. `shard_rows` computes the same split from the Parquet footers, so
every rank knows beforehand how many rows each shard holds: all ranks take the same number of
steps (the smallest shard's), and a rank that reads fewer rows than its shard holds (an empty
or short epoch, which Petastorm can produce silently) stops the run with an error.

Petastorm's own row-group shuffle (shuffle_row_groups=True) gave an empty shard in 5 of 60
reads here, so it is off, and so is its row shuffle: rows are shuffled across a window of at
least `shuffle_rows` rows (whole row groups) by a seeded buffer here, which keeps each epoch's
order reproducible. Each window is scattered into a random order in one copy, and batches are
slices of it.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

# petastorm 0.13 uses pyarrow's legacy dataset API, which warns on every reader (a dozen lines each)
warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm\.")


class ShortEpochError(RuntimeError):
    pass


def parquet_files(path: str) -> list[Path]:
    return sorted(p for p in Path(path).glob("*.parquet") if not p.name.startswith(("_", ".")))


def shard_rows(path: str, shard_count: int) -> list[int]:
    """Rows per shard, as Petastorm assigns row groups to shards."""
    groups = [meta.row_group(i).num_rows for f in parquet_files(path)
              for meta in [pq.ParquetFile(f).metadata] for i in range(meta.num_row_groups)]
    if len(groups) < shard_count:
        raise ShortEpochError(f"{path}: {len(groups)} row groups cannot feed {shard_count} ranks; "
                              f"materialise it with more files")
    return [sum(groups[shard::shard_count]) for shard in range(shard_count)]


def as_matrix(value: np.ndarray) -> np.ndarray:
    """A Petastorm column as numbers: packed_ints (bytes per row) decoded in one join."""
    if value.dtype != object:
        return value
    if len(value) and isinstance(value[0], bytes):
        return np.frombuffer(b"".join(value), ">i4").reshape(len(value), -1)
    return np.stack(value)


def _to_tensors(batch) -> dict[str, torch.Tensor]:
    out = {}
    for name, value in batch._asdict().items():
        array = as_matrix(np.asarray(value))
        out[name] = torch.from_numpy(array.astype(np.float32 if array.dtype.kind == "f" else np.int32))
    return out


def _batch(columns: dict[str, torch.Tensor], start: int, stop: int) -> dict[str, torch.Tensor]:
    """Rows start:stop, ids as int64 (what embeddings and losses take): widened per batch, which
    stays in cache, not per window."""
    return {k: v[start:stop].long() if v.dtype == torch.int32 else v[start:stop] for k, v in columns.items()}


def _scattered(parts: list[torch.Tensor], dest: torch.Tensor) -> torch.Tensor:
    """The parts, end to end, with row i of the whole at dest[i]: a shuffle in one copy, no
    concatenation before it."""
    out = torch.empty((len(dest), *parts[0].shape[1:]), dtype=parts[0].dtype)
    start = 0
    for part in parts:
        out.index_copy_(0, dest[start:start + len(part)], part)
        start += len(part)
    return out


def epoch_batches(path: str, fields: list[str], batch_size: int, rank: int, size: int, seed: int,
                  workers: int = 1, shuffle_rows: int = 65536) -> Iterator[dict[str, torch.Tensor]]:
    """Every row of this rank's shard once, shuffled by `seed`, as dicts of tensors; the last
    batch may be short. Raises ShortEpochError when the shard yields fewer rows than it holds."""
    from petastorm import make_batch_reader

    expected = shard_rows(path, size)[rank]
    rng = np.random.default_rng(seed)
    read = 0
    buffer: list[dict[str, torch.Tensor]] = []

    def drain(keep: int) -> Iterator[dict[str, torch.Tensor]]:
        """Shuffle what is buffered and emit full batches until at most `keep` rows are left."""
        n = sum(len(next(iter(b.values()))) for b in buffer)
        dest = torch.from_numpy(rng.permutation(n))
        shuffled = {k: _scattered([b[k] for b in buffer], dest) for k in buffer[0]}
        stop = 0
        while n - stop > keep and (n - stop >= batch_size or keep == 0):
            yield _batch(shuffled, stop, stop + batch_size)
            stop += batch_size
        buffer[:] = [{k: v[stop:] for k, v in shuffled.items()}] if stop < n else []

    with make_batch_reader(Path(path).resolve().as_uri(), schema_fields=fields, cur_shard=rank, shard_count=size,
                           num_epochs=1, shuffle_row_groups=False, shuffle_rows=False, seed=seed,
                           workers_count=workers) as reader:
        held = 0
        for group in reader:
            tensors = _to_tensors(group)
            rows = len(next(iter(tensors.values())))
            read, held = read + rows, held + rows
            buffer.append(tensors)
            if held >= shuffle_rows:
                yield from drain(batch_size - 1)
                held = len(next(iter(buffer[0].values()))) if buffer else 0
    if buffer:
        yield from drain(0)
    if read != expected:
        raise ShortEpochError(f"{path}: rank {rank} of {size} read {read:,} rows, its shard holds {expected:,}")
