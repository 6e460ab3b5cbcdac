"""Product search: text analysis, a BM25F index built in Spark, sentence embeddings, fusion and a
learned personalised re-ranker, and the in-memory Searcher that answers queries."""
