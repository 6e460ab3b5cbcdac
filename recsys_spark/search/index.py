"""The search index as Spark transforms: per-field tokens, postings (term, item, field, term
frequency), field lengths and term statistics, all in Delta. BM25F weights come later, at load,
from these counts (search.fields, k1, b), so changing a weight needs no rebuild.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.search.embed import document
from recsys_spark.search.text import stem_column, words_column

FIELDS = ("title", "category", "brand", "description")


def item_text(items: DataFrame, id_map: DataFrame) -> DataFrame:
    """One row per catalogue item: its text, price, stock and the document the embedder reads.
    Every item is indexed, with or without interactions."""
    text = {f: F.coalesce(F.col(f), F.lit("")) for f in FIELDS}
    return items.join(id_map.select("item_id", "item_idx"), "item_id").select(
        "item_idx", "item_id", *[v.alias(k) for k, v in text.items()],
        F.col("price").cast("double").alias("price"), F.col("stock").cast("int").alias("stock"),
        document(*text.values()).alias("doc"))


def field_tokens(text: DataFrame) -> DataFrame:
    """(item_idx, field, words, tokens): each field analysed like a query; words are the folded
    surface forms the tokens (stems) come from, position by position."""
    fields = F.array(*[F.struct(F.lit(f).alias("field"), F.col(f).alias("text")) for f in FIELDS])
    return (text.select("item_idx", F.explode(fields).alias("f"))
            .select("item_idx", "f.field", words_column(F.col("f.text")).alias("words"))
            .withColumn("tokens", stem_column(F.col("words"))))


def vocabulary(tokens: DataFrame) -> DataFrame:
    """(word, term, df): the surface words a misspelt query word is corrected to."""
    pairs = tokens.select("item_idx", F.explode(F.arrays_zip("words", "tokens")).alias("p"))
    return (pairs.groupBy(F.col("p.words").alias("word"), F.col("p.tokens").alias("term"))
            .agg(F.countDistinct("item_idx").cast("int").alias("df")))


def postings(tokens: DataFrame) -> DataFrame:
    """(term, item_idx, field, tf)."""
    return (tokens.select("item_idx", "field", F.explode("tokens").alias("term"))
            .groupBy("term", "item_idx", "field").agg(F.count("*").cast("int").alias("tf")))


def field_lengths(tokens: DataFrame) -> DataFrame:
    """(item_idx, field, length) in tokens, zero for an empty field."""
    return tokens.select("item_idx", "field", F.size("tokens").cast("int").alias("length"))


def term_stats(postings: DataFrame, n_items: int) -> DataFrame:
    """(term, df, idf): df counts items with the term in any field."""
    df = postings.groupBy("term").agg(F.countDistinct("item_idx").cast("int").alias("df"))
    return df.withColumn("idf", F.log1p((F.lit(n_items) - F.col("df") + 0.5) / (F.col("df") + 0.5)))
