"""One analyser for item text (in Spark) and queries (in the Searcher): the same tokens on both
sides is what makes a match.

Fold accents and case, split on anything that is not a letter or digit, drop Lucene's English stop words,
stem with Snowball (PyStemmer). Numbers stay: sizes and model numbers are what shoppers type.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import pandas as pd
from bm25s.stopwords import STOPWORDS_EN
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType

TOKEN = re.compile(r"[a-z0-9]+")
STOP_WORDS = frozenset(STOPWORDS_EN)  # Lucene's English list: what search engines drop


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def fold(text: str) -> str:
    """Lower case without accents: 'Crème Brûlée' and 'creme brulee' are the same words."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def words(text: str | None) -> list[str]:
    """Folded words without stop words, not stemmed (what typo correction compares)."""
    return [w for w in TOKEN.findall(fold(text or "")) if w not in STOP_WORDS]


def stem(tokens: list[str]) -> list[str]:
    return _stemmer().stemWords(tokens)


def analyse(text: str | None) -> list[str]:
    return stem(words(text))


@F.pandas_udf(ArrayType(StringType()))
def words_column(texts: pd.Series) -> pd.Series:
    """words() as a Spark column, batched through Arrow."""
    return texts.map(words)


@F.pandas_udf(ArrayType(StringType()))
def stem_column(tokens: pd.Series) -> pd.Series:
    return tokens.map(lambda t: stem(list(t)))
