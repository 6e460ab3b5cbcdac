"""Scoring a trained deep model back into Spark: top-K for all users (distributed, the model's
weights broadcast), item embeddings, and a TorchScript export with what serving needs."""
from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from pyspark.sql import DataFrame

from recsys_spark.cf.topk import SCHEMA, block_rows, exact, ranked
from recsys_spark.deep.train import TrainSpec


def load_best(spec: TrainSpec) -> torch.nn.Module:
    model = spec.build()
    model.load_state_dict(torch.load(Path(spec.checkpoint_dir) / "best_model.pt", map_location="cpu"))
    return model.eval()


def top_k(spec: TrainSpec, model: torch.nn.Module, examples: DataFrame, k: int,
          block_bytes: int = 8 << 20) -> DataFrame:
    """examples: (user_idx, inputs for sequence models, seen items) -> (user_idx, rank, item_idx, score),
    seen items and padding never recommended. The model's weights travel to the tasks by broadcast."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    shared = examples.sparkSession.sparkContext.broadcast((spec, buffer.getvalue()))
    rows = block_rows(block_bytes, spec.n_items + 1)

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        torch.set_num_threads(1)
        spec, weights = shared.value
        model = spec.build()
        model.load_state_dict(torch.load(io.BytesIO(weights)))
        model.eval()

        def block_scores(block: pa.RecordBatch, offsets: np.ndarray, seen: np.ndarray) -> torch.Tensor:
            column = (block.column("inputs").flatten() if model.kind == "sequence" else block.column("user_idx"))
            inputs = column.to_numpy(zero_copy_only=False).astype(np.int64).reshape(block.num_rows, -1)
            scores = model.score_all(torch.from_numpy(inputs if model.kind == "sequence" else inputs[:, 0]))
            scores[:, 0] = float("-inf")  # padding id
            return scores

        yield from ranked(batches, exact(block_scores, k), rows, lambda seen: seen)

    columns = ["user_idx", "seen"] + (["inputs"] if "inputs" in examples.columns else [])
    return examples.select(*columns).mapInArrow(score, SCHEMA)


def item_embeddings(model: torch.nn.Module) -> np.ndarray:
    """One vector per item id (row 0 is padding): what retrieval indexes."""
    with torch.no_grad():
        if hasattr(model, "item_vectors"):
            return model.item_vectors().numpy()
        if hasattr(model, "gmf_item"):
            return model.gmf_item.weight.numpy()
        return model.item.weight.numpy()


def export(spec: TrainSpec, model: torch.nn.Module, directory: str, id_maps: dict[str, str]) -> Path:
    """model.pt (TorchScript of score_all) and serving.json (what its input means) in `directory`."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    example = (torch.ones(2, spec.max_len, dtype=torch.long) if model.kind == "sequence"
               else torch.ones(2, dtype=torch.long))

    class Scorer(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner.score_all(x)

    torch.jit.trace(Scorer(model), example).save(str(out / "model.pt"))
    meta = {"model": spec.model, "input": "item ids, left-padded with 0" if model.kind == "sequence" else "user ids",
            "sequence_length": spec.max_len, "n_items": spec.n_items, "n_users": spec.n_users,
            "output": "a score per item id (column 0 is padding)", "id_maps": id_maps}
    (out / "serving.json").write_text(json.dumps(meta, indent=2))
    return out
