"""One config object, built from YAML layers and `--set` overrides, validated once at start-up.

Layers, later wins: conf/base.yaml, the place overlay (local / cluster / databricks), a dataset
file (conf/datasets/<name>.yaml), then `--set a.b=value`. A wrong key, type or value fails here
with the key's dotted name, before any Spark work starts.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


class ConfigError(ValueError):
    """A config that cannot run; the message names the key and where it came from."""


@dataclass
class LakehouseConf:
    root: str = "lakehouse"
    checkpoint_dir: str = "/tmp/recsys-spark/checkpoints"
    models_dir: str = ""


@dataclass
class SparkConf:
    master: str = "local[*]"
    shuffle_partitions: int = 8
    driver_memory: str = "6g"
    log_level: str = "WARN"
    conf: dict[str, str] = field(default_factory=dict)


@dataclass
class BadRowsConf:
    duplicate: float = 0.005
    null_id: float = 0.002
    unknown_item: float = 0.002
    future_timestamp: float = 0.001
    ancient_timestamp: float = 0.001
    negative_value: float = 0.001
    unparseable: float = 0.001


@dataclass
class SyntheticConf:
    seed: int = 42
    n_events: int = 1_000_000
    n_users: int = 20_000
    n_items: int = 5_000
    n_categories: int = 20
    start_date: str = "2025-01-01"
    days: int = 180
    bad_rows: BadRowsConf = field(default_factory=BadRowsConf)


@dataclass
class FileSourceConf:
    """A file mapped onto one raw table: `columns` maps our column -> the file's column."""

    path: str = ""
    format: str = "csv"
    options: dict[str, str] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    distinct: bool = False


@dataclass
class FilesConf:
    events: FileSourceConf | None = None
    items: FileSourceConf | None = None
    users: FileSourceConf | None = None


@dataclass
class SourceConf:
    kind: str = "synthetic"
    batch_id: str = ""
    synthetic: SyntheticConf = field(default_factory=SyntheticConf)
    files: FilesConf = field(default_factory=FilesConf)


@dataclass
class PrivacyConf:
    hash_user_ids: bool = False
    key_env: str = "RECSYS_SPARK_ID_KEY"


@dataclass
class ExcludeRule:
    column: str = ""
    regex: str = ""
    reason: str = ""


@dataclass
class QualityConf:
    event_types: list[str] = field(default_factory=list)
    event_key: list[str] = field(default_factory=list)
    timestamp_formats: list[str] = field(default_factory=list)
    min_timestamp: str = "2000-01-01 00:00:00"
    max_future_days: float = 1.0
    rating_min: float = 1.0
    rating_max: float = 5.0
    max_quantity: int = 10000
    require_known_items: bool = True
    require_known_users: bool = False
    exclude: list[ExcludeRule] = field(default_factory=list)


@dataclass
class SplitConf:
    kind: str = "temporal"
    test_days: float = 14.0
    validation_days: float = 14.0


@dataclass
class FeaturesConf:
    event_weights: dict[str, float] = field(default_factory=dict)
    half_life_days: float = 60.0
    sequence_length: int = 50
    sequence_event_types: list[str] = field(default_factory=list)
    price_levels: int = 5
    split: SplitConf = field(default_factory=SplitConf)
    holidays: list[str] = field(default_factory=list)


@dataclass
class ALSConf:
    rank: int = 64
    reg_param: float = 0.05
    alpha: float = 10.0
    max_iter: int = 15
    implicit: bool = True
    seed: int = 42
    checkpoint_interval: int = 5


@dataclass
class TuningConf:
    """The ALS search space, tried in full on the validation split (NDCG@k decides)."""

    rank: list[int] = field(default_factory=lambda: [64])
    reg_param: list[float] = field(default_factory=lambda: [0.05])
    alpha: list[float] = field(default_factory=lambda: [10.0])
    max_iter: list[int] = field(default_factory=lambda: [15])


@dataclass
class NeighboursConf:
    n: int = 20
    measure: str = "jaccard"
    min_count: int = 2
    max_items_per_user: int = 200


@dataclass
class CFConf:
    k: int = 10
    relevant_event_types: list[str] = field(default_factory=list)
    tune: bool = False
    recent_days: float = 30.0
    als: ALSConf = field(default_factory=ALSConf)
    tuning: TuningConf = field(default_factory=TuningConf)
    block_size: int = 2048
    neighbours: NeighboursConf = field(default_factory=NeighboursConf)
    category_top: int = 3


@dataclass
class DeepConf:
    model: str = "sasrec"
    launcher: str = "horovod_spark"
    num_proc: int = 2
    use_gpu: bool = False
    epochs: int = 20
    batch_size: int = 256
    lr: float = 0.001
    dim: int = 64
    max_len: int = 50
    loss: str = "ce"
    negatives: int = 4
    negative_sampling: str = "uniform"
    patience: int = 3
    workers: int = 1
    mixed_precision: bool = False
    files_per_proc: int = 4
    cache_dir: str = ""
    seed: int = 42


@dataclass
class Config:
    app_name: str = "recsys-spark"
    runtime: str = "local"
    lakehouse: LakehouseConf = field(default_factory=LakehouseConf)
    spark: SparkConf = field(default_factory=SparkConf)
    source: SourceConf = field(default_factory=SourceConf)
    privacy: PrivacyConf = field(default_factory=PrivacyConf)
    quality: QualityConf = field(default_factory=QualityConf)
    features: FeaturesConf = field(default_factory=FeaturesConf)
    cf: CFConf = field(default_factory=CFConf)
    deep: DeepConf = field(default_factory=DeepConf)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CHOICES = {
    "runtime": {"local", "cluster", "databricks"},
    "source.kind": {"synthetic", "files"},
    "features.split.kind": {"temporal", "leave_last_out"},
    "cf.neighbours.measure": {"jaccard", "lift"},
    "deep.model": {"two_tower", "ncf", "gru4rec", "sasrec"},
    "deep.launcher": {"horovod_spark", "horovodrun", "databricks", "torch_distributor"},
    "deep.loss": {"ce", "bce"},
    "deep.negative_sampling": {"uniform", "popularity"},
}
FILE_FORMATS = {"csv", "json", "parquet"}


def _build(cls: type, data: Any, key: str) -> Any:
    """Turn plain YAML data into `cls`, naming the dotted key of the first thing that is wrong."""
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(cls) if a is not type(None)]
        return None if data is None else _build(args[0], data, key)
    if dataclasses.is_dataclass(cls):
        if not isinstance(data, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {data!r}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            where = f"'{key}.{unknown[0]}'" if key else f"'{unknown[0]}'"
            raise ConfigError(f"unknown config key {where}; known keys here: {', '.join(sorted(names))}")
        return cls(**{n: _build(hints[n], v, f"{key}.{n}" if key else n) for n, v in data.items()})
    if origin is list:
        if not isinstance(data, list):
            raise ConfigError(f"config key '{key}': expected a list, got {data!r}")
        (item,) = typing.get_args(cls)
        return [_build(item, v, f"{key}[{i}]") for i, v in enumerate(data)]
    if origin is dict:
        if not isinstance(data, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {data!r}")
        _, val = typing.get_args(cls)
        return {str(k): _build(val, v, f"{key}.{k}") for k, v in data.items()}
    if cls is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if cls is str and isinstance(data, (int, float, date)) and not isinstance(data, bool):
        return data.isoformat() if isinstance(data, date) else str(data)
    if not isinstance(data, cls) or (cls is int and isinstance(data, bool)):
        raise ConfigError(f"config key '{key}': expected {cls.__name__}, got {data!r}")
    return data


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    return data


def _parse_override(item: str) -> dict:
    if "=" not in item:
        raise ConfigError(f"override '{item}' is not key=value")
    key, raw = item.split("=", 1)
    value = yaml.safe_load(raw) if raw else ""
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def _validate(cfg: Config) -> None:
    for key, allowed in CHOICES.items():
        value = cfg.to_dict()
        for part in key.split("."):
            value = value[part]
        if value not in allowed:
            raise ConfigError(f"config key '{key}': {value!r} is not one of {sorted(allowed)}")
    syn = cfg.source.synthetic
    for name in ("n_events", "n_users", "n_items", "n_categories", "days"):
        if getattr(syn, name) <= 0:
            raise ConfigError(f"config key 'source.synthetic.{name}' must be positive")
    for name, rate in dataclasses.asdict(syn.bad_rows).items():
        if not 0.0 <= rate < 0.5:
            raise ConfigError(f"config key 'source.synthetic.bad_rows.{name}' must be in [0, 0.5)")
    if cfg.source.kind == "files":
        if cfg.source.files.events is None:
            raise ConfigError("config key 'source.files.events' is required when source.kind is files")
        for table in ("events", "items", "users"):
            spec = getattr(cfg.source.files, table)
            if spec is None:
                continue
            if spec.format not in FILE_FORMATS:
                raise ConfigError(f"config key 'source.files.{table}.format': {spec.format!r} is not one of "
                                  f"{sorted(FILE_FORMATS)}")
            if "://" not in spec.path and not Path(spec.path).exists():
                raise ConfigError(f"config key 'source.files.{table}.path': no such file {spec.path}")
    unknown = sorted(set(cfg.features.event_weights) - set(cfg.quality.event_types))
    if unknown:
        raise ConfigError(f"config key 'features.event_weights.{unknown[0]}' is not in quality.event_types")
    for key, value in (("cf.k", cfg.cf.k), ("cf.als.rank", cfg.cf.als.rank), ("cf.als.max_iter", cfg.cf.als.max_iter),
                       ("cf.neighbours.n", cfg.cf.neighbours.n), ("cf.category_top", cfg.cf.category_top),
                       ("cf.neighbours.max_items_per_user", cfg.cf.neighbours.max_items_per_user),
                       ("deep.num_proc", cfg.deep.num_proc), ("deep.epochs", cfg.deep.epochs),
                       ("deep.batch_size", cfg.deep.batch_size), ("deep.max_len", cfg.deep.max_len),
                       ("deep.files_per_proc", cfg.deep.files_per_proc)):
        if value < 1:
            raise ConfigError(f"config key '{key}' must be positive")
    if cfg.features.sequence_length < 2:
        raise ConfigError("config key 'features.sequence_length' must be at least 2")
    if cfg.privacy.hash_user_ids and not os.environ.get(cfg.privacy.key_env):
        raise ConfigError(f"privacy.hash_user_ids is on but the environment variable {cfg.privacy.key_env} is empty")


def load_config(overlay: str | Path | None = None, dataset: str | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Resolve the layers into one validated Config (base.yaml sits next to the overlay)."""
    overlay_path = Path(overlay) if overlay else CONF_DIR / "local.yaml"
    conf_dir = overlay_path.parent
    data = _read_yaml(conf_dir / "base.yaml") if (conf_dir / "base.yaml").is_file() else {}
    if overlay_path.name != "base.yaml":
        data = _merge(data, _read_yaml(overlay_path))
    if dataset:
        data = _merge(data, _read_yaml(conf_dir / "datasets" / f"{dataset}.yaml"))
    for item in overrides:
        data = _merge(data, _parse_override(item))
    cfg = _build(Config, data, "")
    _validate(cfg)
    return cfg
