"""Public data set layouts (conf/datasets/*.yaml) through the generic files source: each on a small
file in its real layout, ingested and checked, with the values a reader of the file would expect."""
from datetime import datetime

import pytest

from recsys_spark.config import ConfigError
from recsys_spark.pipeline import run_stage


def ingest(make_ctx, tmp_path, dataset: str, files: dict[str, tuple[str, str | bytes]]):
    """Write each table's file, point the data set at it, run ingest and quality."""
    sets = []
    for table, (name, content) in files.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        sets.append(f"source.files.{table}.path={path}")
    ctx = make_ctx(*sets, dataset=dataset)
    run_stage(ctx, "ingest")
    run_stage(ctx, "quality")
    return ctx


def rows(ctx, layer: str, table: str, key: str) -> dict:
    return {r[key]: r.asDict() for r in ctx.lake.read(layer, table).collect()}


def nothing_quarantined(ctx, *tables: str) -> bool:
    return all(not ctx.lake.exists("quarantine", t) or ctx.lake.count("quarantine", t) == 0 for t in tables)


def test_yoochoose_clicks_sessions_as_users_iso_times_with_millis(make_ctx, tmp_path):
    clicks = ("1,2014-04-07T10:51:09.277Z,214536502,0\n"
              "1,2014-04-07T10:54:09.868Z,214536500,0\n"
              "2,2014-04-07T13:56:37.614Z,214662742,S\n"
              "2,2014-04-07T13:57:19.373Z,214536502,0\n")
    ctx = ingest(make_ctx, tmp_path, "yoochoose", {"events": ("clicks.dat", clicks), "items": ("clicks.dat", clicks)})
    events = ctx.lake.read("silver", "events").orderBy("ts").collect()
    assert [(e["user_id"], e["item_id"], e["event_type"]) for e in events][:2] == [
        ("1", "214536502", "click"), ("1", "214536500", "click")]
    assert events[0]["ts"] == datetime(2014, 4, 7, 10, 51, 9, 277000) and events[0]["session_id"] == "1"
    items = rows(ctx, "silver", "items", "item_id")
    assert items["214662742"]["category"] == "S" and len(items) == 3
    assert nothing_quarantined(ctx, "events", "items")


def test_diginetica_views_time_is_date_plus_timeframe(make_ctx, tmp_path):
    views = ("sessionId;userId;itemId;timeframe;eventdate\n"
             "1;NA;81766;526309;2016-05-09\n"
             "1;NA;31331;1031018;2016-05-09\n"
             "2;;32118;243569;2016-05-10\n")
    categories = "itemId;categoryId\n81766;1095\n31331;1095\n32118;12\n"
    ctx = ingest(make_ctx, tmp_path, "diginetica", {"events": ("train-item-views.csv", views),
                                                    "items": ("product-categories.csv", categories)})
    events = {r["item_id"]: r for r in ctx.lake.read("silver", "events").collect()}
    assert events["81766"]["ts"] == datetime(2016, 5, 9, 0, 8, 46)     # 526309 ms after midnight
    assert events["32118"]["user_id"] == "2" and events["31331"]["event_type"] == "click"
    assert rows(ctx, "silver", "items", "item_id")["32118"]["category"] == "12"
    assert nothing_quarantined(ctx, "events", "items")


def test_gru4rec_session_file_with_fractional_epoch_times(make_ctx, tmp_path):
    tsv = "SessionId\tItemId\tTime\n1\t214536502\t1396867869.277\n1\t214536500\t1396868049.868\n2\t7\t1396879000\n"
    ctx = ingest(make_ctx, tmp_path, "sessions", {"events": ("train.tsv", tsv), "items": ("train.tsv", tsv)})
    events = {r["item_id"]: r for r in ctx.lake.read("silver", "events").collect()}
    assert events["214536502"]["ts"] == datetime(2014, 4, 7, 10, 51, 9) and events["7"]["user_id"] == "2"
    assert nothing_quarantined(ctx, "events")


def test_amazon_2014_reviews_and_python_literal_metadata(make_ctx, tmp_path):
    reviews = (
        '{"reviewerID": "A2SUAM1J3GNN3B", "asin": "0000013714", "reviewerName": "J. McDonald", "helpful": [2, 3], '
        '"reviewText": "I bought this for my husband.", "overall": 5.0, "summary": "Heavenly", '
        '"unixReviewTime": 1252800000, "reviewTime": "09 13, 2009"}\n'
        '{"reviewerID": "A14VAT5EAX3D9S", "asin": "0000031852", "overall": 4.0, "reviewText": "Cute", '
        '"unixReviewTime": 1363392000, "reviewTime": "03 16, 2013"}\n')
    meta = ("{'asin': '0000031852', 'title': \"Girls' Ballet Tutu Zebra Hot Pink\", 'price': 3.17, "
            "'salesRank': {'Toys & Games': 211836}, 'brand': 'Coxlures', "
            "'categories': [['Sports & Outdoors', 'Other Sports', 'Dance'], ['Clothing']]}\n"
            "{'asin': '0000013714', 'title': 'Heavenly Highway Hymns', 'description': '3 hymnals', "
            "'categories': [['Books']]}\n")
    ctx = ingest(make_ctx, tmp_path, "amazon2014", {"events": ("reviews.json", reviews), "items": ("meta.json", meta)})
    events = {r["item_id"]: r for r in ctx.lake.read("silver", "events").collect()}
    assert events["0000013714"]["rating"] == 5.0 and events["0000013714"]["ts"] == datetime(2009, 9, 13)
    assert events["0000013714"]["review"] == "I bought this for my husband."
    tutu = rows(ctx, "silver", "items", "item_id")["0000031852"]
    assert (tutu["title"], tutu["category"], tutu["brand"], tutu["price"]) == (
        "Girls' Ballet Tutu Zebra Hot Pink", "Dance", "Coxlures", 3.17)
    assert nothing_quarantined(ctx, "events", "items")


def test_amazon_2018_reviews_and_metadata(make_ctx, tmp_path):
    reviews = ('{"overall": 5.0, "verified": true, "reviewTime": "10 17, 2015", "reviewerID": "A1HP7NVNPFMA4N", '
               '"asin": "0700026657", "reviewerName": "Ambrosia075", "reviewText": "This game is a bit hard", '
               '"summary": "but when you do it\'s great.", "unixReviewTime": 1445040000}\n')
    meta = ('{"category": ["Video Games", "PC", "Games"], "description": ["Brand new sealed!", "Two discs."], '
            '"title": "Anno 2070", "brand": "by\\n    \\n    Ubisoft", "price": "$13.99", "asin": "0700026657"}\n'
            '{"category": [], "description": [], "title": "Dr. Seuss", "brand": "", "price": "", '
            '"asin": "0763855553"}\n')
    ctx = ingest(make_ctx, tmp_path, "amazon2018", {"events": ("reviews.json", reviews), "items": ("meta.json", meta)})
    (event,) = ctx.lake.read("silver", "events").collect()
    assert (event["user_id"], event["item_id"], event["ts"]) == ("A1HP7NVNPFMA4N", "0700026657", datetime(2015, 10, 17))
    items = rows(ctx, "silver", "items", "item_id")
    anno = items["0700026657"]
    assert (anno["category"], anno["price"], anno["description"]) == ("Games", 13.99, "Brand new sealed! Two discs.")
    assert items["0763855553"]["price"] is None and items["0763855553"]["category"] is None
    assert nothing_quarantined(ctx, "events", "items")


ML_MOVIES = "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n1::Toy Story (1995)::Animation|Children's|Comedy\n"


def test_movielens_1m_double_colon_files_in_latin1(make_ctx, tmp_path):
    ratings = "1::1193::5::978300760\n1::1::3::978302109\n2::1::4::978298413\n"
    movies = ML_MOVIES.encode() + "3::Misérables, Les (1995)::Drama\n".encode("latin-1")
    users = "1::F::1::10::48067\n2::M::56::16::70072\n"
    ctx = ingest(make_ctx, tmp_path, "movielens1m", {"events": ("ratings.dat", ratings),
                                                     "items": ("movies.dat", movies), "users": ("users.dat", users)})
    events = ctx.lake.read("silver", "events").where("user_id = '1' AND item_id = '1193'").collect()
    assert events[0]["rating"] == 5.0 and events[0]["ts"] == datetime(2000, 12, 31, 22, 12, 40)
    items = rows(ctx, "silver", "items", "item_id")
    assert items["1"]["category"] == "Animation" and items["3"]["title"] == "Misérables, Les (1995)"
    users = rows(ctx, "silver", "users", "user_id")
    assert (users["2"]["gender"], users["2"]["age_band"], users["2"]["region"]) == ("M", "56", "7")
    assert ctx.lake.count("silver", "events") == 3 and nothing_quarantined(ctx, "events", "items", "users")


def test_movielens_10m_half_stars(make_ctx, tmp_path):
    ratings = "1::1193::5::838985046\n1::1::4.5::838983525\n"
    ctx = ingest(make_ctx, tmp_path, "movielens10m", {"events": ("ratings.dat", ratings),
                                                      "items": ("movies.dat", ML_MOVIES)})
    assert {r["rating"] for r in ctx.lake.read("silver", "events").collect()} == {5.0, 4.5}
    assert nothing_quarantined(ctx, "events", "items")


def test_movielens_latest_csv_with_quoted_titles(make_ctx, tmp_path):
    ratings = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,0.5,964981247\n"
    movies = ('movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n'
              '3,"American President, The (1995)",Comedy|Drama|Romance\n')
    ctx = ingest(make_ctx, tmp_path, "movielens-latest", {"events": ("ratings.csv", ratings),
                                                          "items": ("movies.csv", movies)})
    items = rows(ctx, "silver", "items", "item_id")
    assert (items["3"]["title"], items["3"]["category"]) == ("American President, The (1995)", "Comedy")
    assert {r["rating"] for r in ctx.lake.read("silver", "events").collect()} == {4.0, 0.5}
    assert nothing_quarantined(ctx, "events", "items")


def test_a_derivation_that_does_not_fit_the_file_names_the_file_and_key(make_ctx, tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("SessionId\tItemId\tTimestamp\n1\t2\t3\n")
    ctx = make_ctx(f"source.files.events.path={path}", f"source.files.items.path={path}", dataset="sessions")
    with pytest.raises(ValueError, match=r"train.tsv: source.files.events.derive.ts .*Time"):
        run_stage(ctx, "ingest")
    with pytest.raises(ConfigError, match="both mapped"):
        make_ctx(f"source.files.events.path={path}", f"source.files.items.path={path}",
                 "source.files.events.derive.session_id=SessionId", dataset="sessions")
