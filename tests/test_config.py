import pytest

from recsys_spark.config import CONF_DIR, ConfigError, load_config


def test_layers_and_overrides_resolve_in_order():
    cfg = load_config(CONF_DIR / "cluster.yaml", overrides=["spark.shuffle_partitions=12"])
    assert cfg.runtime == "cluster"
    assert cfg.source.synthetic.n_events == 100_000_000  # from the overlay
    assert cfg.spark.shuffle_partitions == 12            # from --set
    assert cfg.quality.event_types[0] == "view"           # from base.yaml


def test_dataset_layer_maps_files(tmp_path):
    (tmp_path / "u.x").write_text("1\t2\t3\t4\n")
    paths = [f"source.files.{t}.path={tmp_path}/u.x" for t in ("events", "items", "users")]
    cfg = load_config(None, "movielens100k", paths)
    assert cfg.source.kind == "files"
    assert cfg.source.files.events.columns["user_id"] == "_c0"
    assert cfg.features.split.kind == "leave_last_out"


@pytest.mark.parametrize("override, message", [
    ("spark.shuffle_partitons=4", "unknown config key 'spark.shuffle_partitons'"),
    ("source.synthetic.n_events=lots", "config key 'source.synthetic.n_events': Input should be a valid integer"),
    ("features.split.kind=random", "config key 'features.split.kind': Input should be 'temporal', 'leave_last_out'"),
    ("source.synthetic.bad_rows.duplicate=0.9", "'source.synthetic.bad_rows.duplicate': Input should be less"),
    ("features.event_weights.like=1.0", "'features.event_weights': 'like' is not in quality.event_types"),
    ("cf.relevant_event_types=[purchse]", "'cf.relevant_event_types': 'purchse' is not in quality.event_types"),
    ("features.sequence_event_types=[clik]", "'features.sequence_event_types': 'clik' is not in quality.event_types"),
    ("features.holidays=[12-25,25-12]", "config key 'features.holidays[1]': String should match pattern"),
    ("search.price_bands=[50,10]", "config key 'search.price_bands': the edges must rise"),
    ("quality.exclude=[{column: item_id, pattern: x}]", "unknown config key 'quality.exclude[0].pattern'"),
    ("cf.neighbours.measure=cosine", "config key 'cf.neighbours.measure': Input should be 'jaccard' or 'lift'"),
    ("cf.neighbours.n=0", "config key 'cf.neighbours.n': Input should be greater than or equal to 1"),
    # the values a careless YAML edit produces, each caught before Spark starts
    ("quality.event_key=[]", "config key 'quality.event_key': List should have at least 1 item"),
    ("deep.negatives=0", "config key 'deep.negatives': Input should be greater than or equal to 1"),
    ("cf.relevant_event_types=[]", "config key 'cf.relevant_event_types': List should have at least 1 item"),
    ("cf.topk.block_mb=0", "config key 'cf.topk.block_mb': Input should be greater than 0"),
    ("deep.max_len=51", "config key 'deep.max_len': 51 is longer than the sequences features.sequence_length = 50"),
    ("quality.max_future_days=0.5", "config key 'quality.max_future_days': Input should be a valid integer"),
    ("deep.sasrec.dropout=1.5", "config key 'deep.sasrec.dropout': Input should be less than 1"),
    ("deep.loss=softmax", "config key 'deep.loss': Input should be 'ce', 'bce' or 'sampled'"),
    # a model hybrid cannot fuse (misspelt, or a deep model without tuning-cut lists) fails before any stage
    ("hybrid.models=[als,eas]", "config key 'hybrid.models[1]': Input should be 'als', 'ease'"),
    ("hybrid.models=[als,sasrec]", "(got 'sasrec')"),
])
def test_bad_values_fail_naming_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides=[override])
    assert message in str(err.value)


def test_missing_source_file_is_named():
    with pytest.raises(ConfigError, match=r"source.files.events': no such file /nowhere/u.data"):
        load_config(None, "movielens100k", ["source.files.events.path=/nowhere/u.data"])


def test_missing_config_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("spark: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(bad)


def test_hashing_without_key_fails_at_start(monkeypatch):
    monkeypatch.delenv("RECSYS_SPARK_ID_KEY", raising=False)
    with pytest.raises(ConfigError, match="RECSYS_SPARK_ID_KEY is empty"):
        load_config(None, overrides=["privacy.hash_user_ids=true"])
    monkeypatch.setenv("RECSYS_SPARK_ID_KEY", "s3cret")
    assert load_config(None, overrides=["privacy.hash_user_ids=true"]).privacy.hash_user_ids


def test_per_model_settings_reach_the_models():
    from recsys_spark.deep.models import build_model

    cfg = load_config(None, overrides=["deep.sasrec.blocks=3", "deep.sasrec.inner_size=32", "deep.gru4rec.layers=2",
                                       "deep.ncf.layers=[32, 8]"])
    hyper = cfg.deep.model_dump(include={"sasrec", "gru4rec", "ncf"})
    sasrec = build_model("sasrec", 10, 20, None, 5, 16, "ce", hyper=hyper)
    assert len(sasrec.blocks.layers) == 3 and sasrec.blocks.layers[0].linear1.out_features == 32
    assert build_model("gru4rec", 10, 20, None, 5, 16, "ce", hyper=hyper).gru.num_layers == 2
    assert build_model("ncf", 10, 20, None, 5, 16, "ce", hyper=hyper).mlp[0].in_features == 32


def test_dataset_by_path(tmp_path):
    layer = tmp_path / "mine.yaml"
    layer.write_text("features: {split: {kind: leave_last_out}}\ncf: {k: 20}\n")
    cfg = load_config(None, str(layer))
    assert (cfg.features.split.kind, cfg.cf.k) == ("leave_last_out", 20)
    with pytest.raises(ConfigError, match="unknown dataset 'nosuch'.*movielens100k"):
        load_config(None, "nosuch")
