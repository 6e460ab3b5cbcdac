"""Reading and writing the Delta tables: the only module that knows where a table lives.

Locally and on clusters a table is the directory `<root>/<layer>/<table>`; on Databricks it is
the Unity Catalog name `<root>.<layer>.<table>`. Every write is one Delta commit, so a job
killed halfway leaves the previous version as the table.

Serving (a shopper's `search`, a user's `recommend`) reads a few tables into pandas, through
`frame`: on a local lakehouse with delta-rs (LocalTables), with no JVM and no Spark session to
start, elsewhere through Spark.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_spark.config import Config

LAYERS = ("bronze", "silver", "quarantine", "gold")
# serving's row filters: (column, "=" | "<=" | "in", value), all of them must hold
Where = list[tuple[str, str, Any]]
HOUSEKEEPING = ("OPTIMIZE", "VACUUM START", "VACUUM END")   # commits that leave the rows as they were


def table_path(root: str, layer: str, table: str) -> str:
    """Where a table lives in a lakehouse of directories."""
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; layers are {LAYERS}")
    return f"{root}/{layer}/{table}"


class Lakehouse:
    def __init__(self, spark: SparkSession, cfg: Config):
        self.spark = spark
        self.root = cfg.lakehouse.root.rstrip("/")
        self.by_name = cfg.runtime == "databricks"
        self.models_dir = (cfg.lakehouse.models_dir or f"{self.root}/_models").rstrip("/")
        self._reads: set[str] | None = None
        self._writes: set[str] = set()

    def start_recording(self) -> None:
        """From now on remember every table read or looked for ('layer.table': what a stage's run
        depends on, wherever the lakehouse lives), and every table written."""
        self._reads, self._writes = set(), set()

    def stop_recording(self) -> tuple[set[str], set[str]]:
        """(tables read, tables written). Writing a table is not reading it: a stage that replaces
        its own rows of gold.recs does not depend on the rows other stages write there."""
        reads, writes, self._reads, self._writes = self._reads or set(), self._writes, None, set()
        return reads, writes

    def _wrote(self, layer: str, table: str) -> None:
        if self._reads is not None and (layer, table) != ("gold", "runs"):
            self._writes.add(f"{layer}.{table}")

    def model_path(self, name: str) -> str:
        """Where a saved model lives (models are files, not tables)."""
        return f"{self.models_dir}/{name}"

    def ref(self, layer: str, table: str) -> str:
        path = table_path(self.root, layer, table)
        return f"{self._schema(layer)}.{table}" if self.by_name else path

    def _schema(self, layer: str) -> str:
        """`<catalog>.<layer>`; in Spark's own session catalog just `<layer>`, since open-source
        Delta's forName takes at most two-part names."""
        return layer if self.root == "spark_catalog" else f"{self.root}.{layer}"

    def _delta(self, layer: str, table: str) -> DeltaTable:
        ref = self.ref(layer, table)
        return DeltaTable.forName(self.spark, ref) if self.by_name else DeltaTable.forPath(self.spark, ref)

    def exists(self, layer: str, table: str) -> bool:
        ref = self.ref(layer, table)
        if self._reads is not None and (layer, table) != ("gold", "runs"):
            self._reads.add(f"{layer}.{table}")
        return self._exists(ref)

    def _exists(self, ref: str) -> bool:
        return self.spark.catalog.tableExists(ref) if self.by_name else DeltaTable.isDeltaTable(self.spark, ref)

    def frame(self, layer: str, table: str, columns: list[str] | None = None, where: Where = ()) -> pd.DataFrame:
        """The rows that pass `where`, as pandas: for tables, or slices of them, that fit in memory."""
        df = self.read(layer, table)
        for column, op, value in where:
            col = F.col(column)
            df = df.where(col.isin(list(value)) if op == "in" else col <= value if op == "<=" else col == value)
        return (df.select(*columns) if columns else df).toPandas()

    def read(self, layer: str, table: str, version: int | None = None, own: bool = False) -> DataFrame:
        """own: the stage reads back rows it has just written, which it does not depend on."""
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        ref = self.ref(layer, table)
        if not (self._exists(ref) if own else self.exists(layer, table)):
            raise FileNotFoundError(f"Delta table {ref} does not exist yet: run the stage that builds it first")
        return reader.table(ref) if self.by_name else reader.load(ref)

    def version(self, layer: str, table: str) -> int | None:
        if not self.exists(layer, table):
            return None
        return self._delta(layer, table).history(1).select("version").first()[0]

    def identity(self, layer: str, table: str) -> str | None:
        """'<table id>@<version>', None if there is no such table: unlike the version alone, it
        changes when a table is dropped and rebuilt, or another lakehouse has one of that name."""
        delta = self._existing(layer, table)
        return f"{delta.detail().first()['id']}@{self._data_version(delta)}" if delta else None

    def table_id(self, layer: str, table: str) -> str | None:
        """The id alone (no history read): what tells a table rebuilt since from the same one written to."""
        delta = self._existing(layer, table)
        return delta.detail().first()["id"] if delta else None

    def _existing(self, layer: str, table: str) -> DeltaTable | None:
        return self._delta(layer, table) if self._exists(self.ref(layer, table)) else None

    @staticmethod
    def _data_version(delta: DeltaTable) -> int:
        """The newest version whose commit changed the data: compaction and vacuum commits leave a
        table's rows as they were, so what read it need not run again. The history's rows are few
        and read on the driver: no Spark job for the maximum."""
        for limit in (20, None):
            history = (delta.history(limit) if limit else delta.history()).select("version", "operation").collect()
            changed = [r["version"] for r in history if r["operation"] not in HOUSEKEEPING]
            if changed:
                return max(changed)
        return max(r["version"] for r in history)

    def maintain(self, layer: str, table: str, vacuum_hours: float) -> dict[str, int]:
        """OPTIMIZE (compact small files) then VACUUM (delete files no version within
        `vacuum_hours` needs); returns files removed and added by the compaction."""
        delta = self._delta(layer, table)
        metrics = delta.optimize().executeCompaction().first()["metrics"]
        delta.vacuum(vacuum_hours)
        return {"files_removed": metrics["numFilesRemoved"], "files_added": metrics["numFilesAdded"]}

    def _writer(self, df: DataFrame, mode: str):
        return df.write.format("delta").mode(mode).option("overwriteSchema", "true" if mode == "overwrite" else "false")

    def _save(self, writer, layer: str, table: str) -> None:
        ref = self.ref(layer, table)
        if self.by_name:
            self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {self._schema(layer)}")
            writer.saveAsTable(ref)
        else:
            writer.save(ref)

    def overwrite(self, df: DataFrame, layer: str, table: str, replace_where: str | None = None,
                  partition_by: list[str] | None = None) -> None:
        """Replace the table, or only the rows matching `replace_where` (the partition a run owns).
        A table created partitioned by the `replace_where` column lets writers of different
        partitions commit at the same time."""
        writer = self._writer(df, "overwrite")
        self._wrote(layer, table)
        if replace_where and self._exists(self.ref(layer, table)):
            writer = writer.option("replaceWhere", replace_where).option("overwriteSchema", "false")
        elif partition_by:
            writer = writer.partitionBy(*partition_by)
        self._save(writer, layer, table)

    def append(self, df: DataFrame, layer: str, table: str) -> None:
        """Appends may add columns (a newer release's metrics); existing rows read them as null."""
        self._wrote(layer, table)
        self._save(self._writer(df, "append").option("mergeSchema", "true"), layer, table)

    def merge(self, df: DataFrame, layer: str, table: str, keys: list[str], update: bool = True,
              delete_missing: bool = False) -> None:
        """Upsert by key; a first run creates the table. Rows whose values are unchanged are not
        rewritten, so re-running on the same input commits nothing new to the data. What it writes
        depends on what the table holds: it counts as read too."""
        self._wrote(layer, table)
        if not self.exists(layer, table):
            self.overwrite(df, layer, table)
            return
        on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        builder = self._delta(layer, table).alias("t").merge(df.alias("s"), on)
        if update:
            changed = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in df.columns if c not in keys)
            if changed:
                builder = builder.whenMatchedUpdateAll(condition=changed)
        builder = builder.whenNotMatchedInsertAll()
        if delete_missing:
            builder = builder.whenNotMatchedBySourceDelete()
        builder.execute()

    def last_commit_metrics(self, layer: str, table: str) -> dict[str, int]:
        """Row counts Delta recorded for the latest commit (numOutputRows, numTargetRowsInserted...)."""
        metrics = self._delta(layer, table).history(1).select("operationMetrics").first()[0] or {}
        return {k: int(v) for k, v in metrics.items() if v.isdigit()}

    def count(self, layer: str, table: str) -> int:
        return self.read(layer, table).count()


class LocalTables:
    """The latest version of a local lakehouse's tables, read with delta-rs: what `frame` gives
    through Spark, in a fraction of a second rather than after a JVM and a session start."""

    def __init__(self, cfg: Config):
        self.root = cfg.lakehouse.root.removeprefix("file://").rstrip("/")
        self.models_dir = (cfg.lakehouse.models_dir or f"{self.root}/_models").rstrip("/")

    @staticmethod
    def usable(cfg: Config) -> bool:
        """A local lakehouse (a directory, not a catalog or an object store) and delta-rs installed."""
        if cfg.runtime != "local" or "://" in cfg.lakehouse.root.removeprefix("file://"):
            return False
        try:
            import deltalake  # noqa: F401
        except ImportError:
            return False
        return True

    def _path(self, layer: str, table: str) -> str:
        return table_path(self.root, layer, table)

    def model_path(self, name: str) -> str:
        return f"{self.models_dir}/{name}"

    def exists(self, layer: str, table: str) -> bool:
        from deltalake import DeltaTable as RustDeltaTable

        return RustDeltaTable.is_deltatable(self._path(layer, table))

    def frame(self, layer: str, table: str, columns: list[str] | None = None, where: Where = ()) -> pd.DataFrame:
        """As Lakehouse.frame; timestamps naive in UTC, as Spark's session (UTC) gives them."""
        from deltalake import DeltaTable as RustDeltaTable

        if not self.exists(layer, table):
            raise FileNotFoundError(f"Delta table {self._path(layer, table)} does not exist yet: run the stage "
                                    "that builds it first")
        filters = [(c, op, list(v) if op == "in" else v) for c, op, v in where] or None
        pdf = RustDeltaTable(self._path(layer, table)).to_pandas(columns=columns, filters=filters)
        for column in pdf.select_dtypes("datetimetz").columns:
            pdf[column] = pdf[column].dt.tz_convert("UTC").dt.tz_localize(None)
        return pdf


# what serving reads through: the same `exists`, `frame` and `model_path` either way
Tables = Lakehouse | LocalTables


def serving_tables(cfg: Config, spark: SparkSession | None = None) -> Tables:
    """What serving reads through: delta-rs on a local lakehouse unless a session is handed in,
    else Spark (clusters, Databricks' catalog)."""
    if spark is None and LocalTables.usable(cfg):
        return LocalTables(cfg)
    from recsys_spark.spark import get_spark

    return Lakehouse(spark or get_spark(cfg), cfg)


def with_ingest_metadata(df: DataFrame, batch_id: str, source: str) -> DataFrame:
    """Bronze rows carry where and when they came in, so every later row can be traced back."""
    return df.withColumns({
        "_batch_id": F.lit(batch_id),
        "_source": F.lit(source),
        "_ingested_at": F.current_timestamp(),
    })
