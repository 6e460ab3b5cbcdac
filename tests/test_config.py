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
    ("source.synthetic.n_events=lots", "config key 'source.synthetic.n_events': expected int, got 'lots'"),
    ("features.split.kind=random", "config key 'features.split.kind': 'random' is not one of"),
    ("source.synthetic.bad_rows.duplicate=0.9", "'source.synthetic.bad_rows.duplicate' must be in [0, 0.5)"),
    ("features.event_weights.like=1.0", "'features.event_weights.like' is not in quality.event_types"),
    ("quality.exclude=[{column: item_id, pattern: x}]", "unknown config key 'quality.exclude[0].pattern'"),
    ("cf.neighbours.measure=cosine", "config key 'cf.neighbours.measure': 'cosine' is not one of"),
    ("cf.neighbours.n=0", "config key 'cf.neighbours.n' must be positive"),
])
def test_bad_values_fail_naming_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides=[override])
    assert message in str(err.value)


def test_missing_source_file_is_named():
    with pytest.raises(ConfigError, match=r"source.files.events.path': no such file /nowhere/u.data"):
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
