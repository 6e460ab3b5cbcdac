"""One config object, built from YAML layers and `--set` overrides, validated once at start-up.

Layers, later wins: conf/base.yaml, the place overlay (local / cluster / databricks), a dataset
file (conf/datasets/<name>.yaml, or any YAML path), then `--set a.b=value`. Every field carries
its own type and constraint; a wrong key, type or value fails here with the key's dotted name,
before any Spark work starts.
"""
from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

# A checkout's conf/; an installed wheel carries the same files as recsys_spark/conf.
_HERE = Path(__file__).resolve().parent
CONF_DIR = _HERE.parent / "conf" if (_HERE.parent / "conf").is_dir() else _HERE / "conf"

Positive = Annotated[int, Field(ge=1)]
Rate = Annotated[float, Field(ge=0.0, lt=0.5)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]
NonEmpty = Annotated[list[str], Field(min_length=1)]


class ConfigError(ValueError):
    """A config that cannot run; the message names the key and where it came from."""


class Section(BaseModel):
    """Unknown keys are errors: a misspelt key would otherwise be silently ignored."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, validate_default=True)


class LakehouseConf(Section):
    root: str = "lakehouse"
    checkpoint_dir: str = "/tmp/recsys-spark/checkpoints"
    models_dir: str = ""
    # maintain: files no version younger than this needs are deleted (time travel reaches this far)
    vacuum_hours: Annotated[float, Field(ge=0.0)] = 168.0
    # maintain: tables compacted and vacuumed at once (their small jobs overlap on the cores)
    maintain_threads: Annotated[int, Field(ge=1, le=64)] = 4


class SparkConf(Section):
    master: str = "local[*]"
    shuffle_partitions: Positive = 8
    driver_memory: str = "6g"
    log_level: str = "WARN"
    conf: dict[str, str] = {}


class BadRowsConf(Section):
    duplicate: Rate = 0.005
    null_id: Rate = 0.002
    unknown_item: Rate = 0.002
    future_timestamp: Rate = 0.001
    ancient_timestamp: Rate = 0.001
    negative_value: Rate = 0.001
    unparseable: Rate = 0.001


class SyntheticConf(Section):
    seed: int = 42
    n_events: Positive = 1_000_000
    n_users: Positive = 20_000
    n_items: Positive = 5_000
    n_categories: Positive = 20
    start_date: str = "2025-01-01"
    days: Positive = 180
    bad_rows: BadRowsConf = BadRowsConf()


class FileSourceConf(Section):
    """A file mapped onto one raw table: `columns` maps our column -> the file's column.

    Formats: csv, json, parquet; `lines` (one `user item` line per interaction, line order is time
    order, as the SASRec/BERT4Rec benchmark files); `recbole` (RecBole atomic files with a
    `name:type` header; an `item_id_list:token_seq` column is a history in time order, followed by
    the row's own item)."""

    path: Annotated[str, Field(min_length=1)]
    format: Literal["csv", "json", "parquet", "lines", "recbole"] = "csv"
    options: dict[str, str] = {}
    columns: dict[str, str] = {}
    derive: dict[str, str] = {}          # raw column -> Spark SQL over the file's columns (JSON paths too)
    constants: dict[str, str] = {}
    distinct: bool = False

    @model_validator(mode="after")
    def _exists(self) -> FileSourceConf:
        if "://" not in self.path and not Path(self.path).exists():
            raise ValueError(f"no such file {self.path}")
        twice = sorted(set(self.columns) & set(self.derive))
        if twice:
            raise ValueError(f"{twice[0]!r} is both mapped (columns) and derived (derive): keep one")
        return self


class FilesConf(Section):
    events: FileSourceConf | None = None
    items: FileSourceConf | None = None
    users: FileSourceConf | None = None


class SourceConf(Section):
    kind: Literal["synthetic", "files"] = "synthetic"
    batch_id: str = ""
    synthetic: SyntheticConf = SyntheticConf()
    files: FilesConf = FilesConf()

    @model_validator(mode="after")
    def _events_for_files(self) -> SourceConf:
        if self.kind == "files" and self.files.events is None:
            raise ValueError("source.files.events is required when source.kind is files")
        return self


class PrivacyConf(Section):
    hash_user_ids: bool = False
    key_env: str = "RECSYS_SPARK_ID_KEY"


class ExcludeRule(Section):
    column: Annotated[str, Field(min_length=1)]
    regex: Annotated[str, Field(min_length=1)]
    reason: Annotated[str, Field(min_length=1)]


class QualityConf(Section):
    event_types: NonEmpty = ["view", "click", "add_to_cart", "purchase", "rating", "search"]
    event_key: NonEmpty = ["user_id", "item_id", "event_type", "ts", "session_id"]
    timestamp_formats: NonEmpty = ["yyyy-MM-dd HH:mm:ss"]
    min_timestamp: str = "2000-01-01 00:00:00"
    max_future_days: Annotated[int, Field(ge=0, description="whole days after now that a timestamp may lie")] = 1
    rating_min: float = 1.0
    rating_max: float = 5.0
    max_quantity: Positive = 10000
    require_known_items: bool = True
    require_known_users: bool = False
    exclude: list[ExcludeRule] = []


class SplitConf(Section):
    """temporal: the last `test_days` are test, the `validation_days` before them validation;
    leave_last_out: per user the last item is test, the one before validation; stratified: per
    item a seeded shuffle of its users holds out `test_share` as test, and the same share of the
    rest as validation (the MovieLens protocol of Microsoft Recommenders); none: everything is
    training (a production run: the final cut is all the data)."""

    kind: Literal["temporal", "leave_last_out", "stratified", "none"] = "temporal"
    test_days: Annotated[float, Field(ge=0.0)] = 14.0
    validation_days: Annotated[float, Field(ge=0.0)] = 14.0
    test_share: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.25
    seed: int = 42


class FeaturesConf(Section):
    event_weights: dict[str, Annotated[float, Field(ge=0.0)]] = {}
    half_life_days: Annotated[float, Field(gt=0.0)] = 60.0
    sequence_length: Annotated[int, Field(ge=2)] = 50
    sequence_event_types: NonEmpty = ["click", "add_to_cart", "purchase", "rating"]
    price_levels: Positive = 5
    split: SplitConf = SplitConf()
    holidays: list[Annotated[str, Field(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]] = []   # MM-DD


class ALSConf(Section):
    rank: Positive = 64
    reg_param: Annotated[float, Field(ge=0.0)] = 0.05
    alpha: Annotated[float, Field(ge=0.0)] = 10.0
    max_iter: Positive = 15
    implicit: bool = True
    seed: int = 42
    checkpoint_interval: Positive = 5
    # user blocks and item blocks; 0: one per core of the session (Spark's own default, 10, makes
    # 100 small block pairs per half-iteration on a laptop)
    blocks: Annotated[int, Field(ge=0)] = 0


class TuningConf(Section):
    """The ALS search space, tried in full on the tuning cut (validation NDCG@k decides)."""

    rank: list[Positive] = Field([64], min_length=1)
    reg_param: list[Annotated[float, Field(ge=0.0)]] = Field([0.05], min_length=1)
    alpha: list[Annotated[float, Field(ge=0.0)]] = Field([10.0], min_length=1)
    max_iter: list[Positive] = Field([15], min_length=1)


class NeighboursConf(Section):
    n: Positive = 20
    measure: Literal["jaccard", "lift"] = "jaccard"
    min_count: Positive = 2
    max_items_per_user: Positive = 200
    max_pairs: Positive = 500_000_000   # co-occurrence pairs in total; above it heavy users are sampled


class EASEConf(Section):
    """EASE over the most popular items: its driver matrices are max_items^2 floats."""
    l2: Annotated[float, Field(gt=0.0, description="the ridge on X'X's diagonal")] = 500.0
    max_items: Annotated[int, Field(ge=2, le=20_000)] = 5000


class TopKConf(Section):
    """Top-K for all users from factors: exact blocked products, or faiss IVF for huge catalogues."""
    block_mb: Annotated[float, Field(gt=0)] = 8       # one block of scores: users per block = this / (items x 4 B)
    approximate_above: Positive = 1_000_000            # more items than this: the IVF index, not exact
    ivf_lists: Annotated[int, Field(ge=0)] = 0         # IVF cells; 0: sqrt(items)
    ivf_probe: Positive = 32                           # cells searched per user


class CFConf(Section):
    k: Positive = 10
    relevant_event_types: NonEmpty = ["click", "add_to_cart", "purchase", "rating"]
    tune: bool = False
    recent_days: Annotated[float, Field(gt=0.0)] = 30.0
    als: ALSConf = ALSConf()
    tuning: TuningConf = TuningConf()
    topk: TopKConf = TopKConf()
    neighbours: NeighboursConf = NeighboursConf()
    ease: EASEConf = EASEConf()
    category_top: Positive = 3
    cold_user_events: Annotated[int, Field(ge=0)] = 2   # evaluate's cold_users slice: at most this many events
    cold_item_users: Positive = 5                       # evaluate's cold_items slice: fewer users than this


class SASRecConf(Section):
    blocks: Positive = 2
    heads: Positive = 1
    dropout: Probability = 0.2
    inner_size: Annotated[int, Field(ge=0, description="feed-forward width; 0 means deep.dim")] = 0


class GRU4RecConf(Section):
    layers: Positive = 1
    dropout: Probability = 0.1


class NCFConf(Section):
    layers: list[Positive] = Field([64, 32, 16], min_length=2)


SEQUENCE_MODELS = ("gru4rec", "sasrec")


class DeepConf(Section):
    model: Literal["two_tower", "ncf", "gru4rec", "sasrec"] = "sasrec"
    launcher: Literal["horovod_spark", "horovodrun", "databricks", "torch_distributor"] = "horovod_spark"
    num_proc: Positive = 2
    use_gpu: bool = False
    epochs: Positive = 20
    batch_size: Positive = 256
    lr: Annotated[float, Field(gt=0.0)] = 0.001
    dim: Positive = 64
    max_len: Positive = 50
    loss: Literal["ce", "bce", "sampled"] = "ce"
    negatives: Positive = 4
    sampled_negatives: Positive = 256
    negative_sampling: Literal["uniform", "popularity"] = "uniform"
    patience: Positive = 3
    max_minutes: Annotated[float, Field(ge=0.0, description="training time budget; 0: none")] = 0.0
    workers: Positive = 1
    mixed_precision: bool = False
    files_per_proc: Positive = 4
    block_rows: Positive = 1024
    cache_dir: str = ""
    seed: int = 42
    sasrec: SASRecConf = SASRecConf()
    gru4rec: GRU4RecConf = GRU4RecConf()
    ncf: NCFConf = NCFConf()

    @property
    def recs_name(self) -> str:
        """The model's name in gold.recs: sequence models trained with sampled negatives say so."""
        return f"{self.model}_{self.loss}" if self.model in SEQUENCE_MODELS and self.loss != "ce" else self.model


PositiveFloat = Annotated[float, Field(gt=0.0)]


class EmbeddingConf(Section):
    batch_size: Positive = 64
    device: Literal["auto", "cpu", "cuda"] = "auto"   # auto: a GPU where the Python worker sees one


class RankerConf(Section):
    candidates: Positive = 100          # hybrid candidates the learned ranker re-orders
    num_leaves: Positive = 15
    n_estimators: Positive = 200
    learning_rate: PositiveFloat = 0.05
    min_queries: Positive = 50          # fewer queries to learn from: no ranker, plain hybrid
    max_queries: Positive = 5000        # a seeded sample of the validation window's queries
    seed: int = 42


def _rising(edges: list[float]) -> list[float]:
    """Band edges out of order would put prices in the wrong facet band."""
    if any(b <= a for a, b in zip(edges[:-1], edges[1:], strict=True)):
        raise ValueError(f"the edges must rise, each above the one before: {edges}")
    return edges


class SearchConf(Section):
    """BM25F over item text fields, sentence embeddings, their fusion and a learned re-ranker."""
    fields: dict[Literal["title", "category", "brand", "description"], PositiveFloat] = {
        "title": 3.0, "category": 1.5, "brand": 1.5, "description": 1.0}
    k1: Annotated[float, Field(ge=0.0)] = 1.2
    b: Annotated[float, Field(ge=0.0, le=1.0)] = 0.75
    mode: Literal["bm25", "vector", "hybrid", "personalised"] = "personalised"
    rrf_k: Positive = 60
    # hybrid: reciprocal-rank fusion, or blend = w * minmax(BM25) + (1 - w) * minmax(cosine); auto:
    # train_ranker picks the fusion (and w) with the best NDCG@10 on the validation window's queries
    fusion: Literal["auto", "rrf", "blend"] = "auto"
    blend: Annotated[float, Field(ge=0.0, le=1.0, description="BM25's weight in the blend")] = 0.5
    candidates: Positive = 200          # each retriever's list that hybrid fuses
    max_query_chars: Positive = 512
    typo_max_edits: Annotated[int, Field(ge=0, le=2)] = 2
    price_bands: Annotated[list[PositiveFloat], AfterValidator(_rising)] = Field([10.0, 25.0, 50.0, 100.0],
                                                                                min_length=1)
    embedding: EmbeddingConf = EmbeddingConf()
    ranker: RankerConf = RankerConf()


class HybridRankerConf(Section):
    num_leaves: Positive = 15
    n_estimators: Positive = 200
    learning_rate: PositiveFloat = 0.05
    seed: int = 42


# The models whose lists recommend and hybrid build from either cut; content needs item text and
# is left out, with a log line, where a data set has none. `deep` is whichever model train_deep
# trains (deep.model), which writes both cuts' lists too.
ListModel = Literal["als", "ease", "item_knn", "user_knn", "transitions", "popularity", "popularity_recent",
                    "popularity_category", "content"]
FusableModel = Literal[ListModel, "deep"]


class HybridConf(Section):
    """Fusion of several models' candidate lists; weights and ranker learn on the tuning cut."""
    models: list[FusableModel] = Field(["als", "ease", "item_knn", "transitions", "popularity_category",
                                        "popularity_recent", "content", "popularity", "deep"], min_length=2)
    candidates: Positive = 50           # each model's list depth
    method: Literal["average", "average_rank", "weighted", "borda", "rrf", "ranker"] = "ranker"  # -> recs_final
    rrf_k: Positive = 60
    weight_steps: list[Annotated[float, Field(ge=0.0)]] = Field([0.0, 0.25, 0.5, 1.0, 2.0, 4.0], min_length=2)
    sweeps: Positive = 2                # coordinate-ascent rounds over the models' weights
    max_users: Positive = 20000         # validation users the weights and the ranker learn from
    cold_item_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1   # of each final list: items nobody has had
    ranker: HybridRankerConf = HybridRankerConf()


class SimulatorConf(Section):
    rounds: list[Positive] = Field([10_000, 100_000], min_length=1)   # checkpoints reported
    batch_size: Positive = 100          # rounds between policy updates
    candidates: Positive = 100          # items retrieval hands the policy per arrival
    position_bias: list[Annotated[float, Field(gt=0.0, le=1.0)]] = Field([1.0, 0.75, 0.5], min_length=1)


class BanditLogsConf(Section):
    """Logged feedback in the Open Bandit Dataset's layout: <root>/<policy>/<campaign>/<campaign>.csv."""
    root: str = ""                      # empty: no logged data set
    campaign: str = "men"
    random_policy: str = "random"       # the uniformly random logs (replay and learning need them)
    other_policies: list[str] = ["bts"]
    block_mb: Annotated[float, Field(gt=0)] = 256   # judge: a block of rows' features (rows x items x features x 8 B)


class TrackingConf(Section):
    """MLflow: off means mlflow is never imported."""
    mlflow: bool = False
    uri: str = ""                       # empty: sqlite under the lakehouse root; the workspace on Databricks
    experiment: str = "recsys-spark"    # on Databricks a workspace path, e.g. /Shared/recsys-spark


class BanditConf(Section):
    """Policies that choose a slate from click feedback, judged online (simulator) and offline (logs)."""
    policies: list[Literal["random", "popularity", "epsilon_greedy", "linucb", "thompson"]] = Field(
        ["random", "popularity", "epsilon_greedy", "linucb", "thompson"], min_length=1)
    slate: Positive = 3
    epsilon: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    alpha: Annotated[float, Field(ge=0.0, description="LinUCB's width multiplier")] = 1.0
    scale: Annotated[float, Field(gt=0.0, description="Thompson's posterior scale v")] = 0.25
    ridge: PositiveFloat = 1.0
    bootstrap: Positive = 1000          # resamples behind each 95% interval
    thompson_draws: Positive = 200      # samples of Thompson's action distribution for off-policy estimates
    seed: int = 42
    simulator: SimulatorConf = SimulatorConf()
    logs: BanditLogsConf = BanditLogsConf()

    @model_validator(mode="after")
    def _slots(self) -> BanditConf:
        if len(self.simulator.position_bias) < self.slate:
            raise ValueError(f"simulator.position_bias has {len(self.simulator.position_bias)} slots "
                             f"but slate is {self.slate}")
        if self.simulator.candidates < self.slate:
            raise ValueError(f"simulator.candidates ({self.simulator.candidates}) is smaller than slate "
                             f"({self.slate})")
        return self

    def params(self) -> dict[str, float]:
        return {"epsilon": self.epsilon, "alpha": self.alpha, "scale": self.scale, "ridge": self.ridge}


class Config(Section):
    app_name: str = "recsys-spark"
    runtime: Literal["local", "cluster", "databricks"] = "local"
    lakehouse: LakehouseConf = LakehouseConf()
    spark: SparkConf = SparkConf()
    source: SourceConf = SourceConf()
    privacy: PrivacyConf = PrivacyConf()
    quality: QualityConf = QualityConf()
    features: FeaturesConf = FeaturesConf()
    cf: CFConf = CFConf()
    deep: DeepConf = DeepConf()
    search: SearchConf = SearchConf()
    hybrid: HybridConf = HybridConf()
    bandit: BanditConf = BanditConf()
    tracking: TrackingConf = TrackingConf()

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        """Rules that join two fields; each names the key to change."""
        for key, types in (("features.event_weights", self.features.event_weights),
                           ("features.sequence_event_types", self.features.sequence_event_types),
                           ("cf.relevant_event_types", self.cf.relevant_event_types)):
            unknown = sorted(set(types) - set(self.quality.event_types))
            if unknown:   # a misspelt type would match no event: empty sequences, or nothing relevant in test
                raise ValueError(f"config key '{key}': '{unknown[0]}' is not in quality.event_types "
                                 f"{self.quality.event_types}")
        if self.deep.max_len > self.features.sequence_length:
            raise ValueError(f"config key 'deep.max_len': {self.deep.max_len} is longer than the sequences "
                             f"features.sequence_length = {self.features.sequence_length} keeps")
        if self.privacy.hash_user_ids and not os.environ.get(self.privacy.key_env):
            raise ValueError(f"config key 'privacy.hash_user_ids' is on but the environment variable "
                             f"{self.privacy.key_env} is empty")
        if (self.tracking.mlflow and not self.tracking.uri and self.runtime != "databricks"
                and "://" in self.lakehouse.root):
            raise ValueError(f"config key 'tracking.uri' is needed: the default sqlite store needs a local "
                             f"lakehouse.root, not {self.lakehouse.root}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _key(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("function-after",) and not str(part).startswith(("function-", "tagged-union")):
            out += f".{part}" if out else str(part)
    return out


def _message(err: ValidationError) -> str:
    """The first error as 'config key a.b: what is wrong', the way a user can find it in YAML."""
    errors = err.errors(include_url=False)
    e = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])  # a misspelt key explains the rest
    key, msg = _key(e["loc"]), e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        return f"unknown config key '{key}'"
    if not key:
        return msg
    return f"config key '{key}': {msg} (got {e['input']!r})" if e["type"] != "value_error" else \
        f"config key '{key}': {msg}"


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _plain(data: Any) -> Any:
    """YAML reads 2025-01-01 as a date; the config keeps dates as the strings that were written."""
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    return data.isoformat() if isinstance(data, (date, datetime)) else data


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


def dataset_path(dataset: str, conf_dir: Path = CONF_DIR) -> Path:
    """A name under conf/datasets, or a path to a YAML file of the same shape."""
    if dataset.endswith((".yaml", ".yml")) or os.sep in dataset:
        return Path(dataset)
    path = conf_dir / "datasets" / f"{dataset}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in (conf_dir / "datasets").glob("*.yaml"))
        raise ConfigError(f"unknown dataset {dataset!r}: not a file, and conf/datasets has {', '.join(names)}")
    return path


def load_config(overlay: str | Path | None = None, dataset: str | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Resolve the layers into one validated Config (base.yaml sits next to the overlay)."""
    overlay_path = Path(overlay) if overlay else CONF_DIR / "local.yaml"
    conf_dir = overlay_path.parent
    data = _read_yaml(conf_dir / "base.yaml") if (conf_dir / "base.yaml").is_file() else {}
    if overlay_path.name != "base.yaml":
        data = _merge(data, _read_yaml(overlay_path))
    if dataset:
        data = _merge(data, _read_yaml(dataset_path(dataset, conf_dir)))
    for item in overrides:
        data = _merge(data, _parse_override(item))
    try:
        return Config.model_validate(_plain(data))
    except ValidationError as e:
        raise ConfigError(_message(e)) from None
