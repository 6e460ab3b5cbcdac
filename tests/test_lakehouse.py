"""Delta writes are atomic: a job killed mid-write leaves the previous version as the table."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

from pyspark.sql import functions as F

from recsys_spark.lakehouse import Lakehouse
from tests.conftest import tiny_config

WRITER = textwrap.dedent("""
    import sys, time
    from pyspark.sql import functions as F
    from recsys_spark.pipeline.context import Context
    from tests.conftest import tiny_config
    root, marker = sys.argv[1], sys.argv[2]
    ctx = Context.create(tiny_config(root))
    ctx.lake.overwrite(ctx.spark.range(100), "gold", "t")

    @F.udf("long")
    def slow(x):
        open(marker, "w").write("writing")
        time.sleep(0.2)
        return x

    ctx.lake.overwrite(ctx.spark.range(0, 100000, 1, 4).select(slow("id").alias("id")), "gold", "t")
""")


def test_killed_write_keeps_previous_version(spark, tmp_path):
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(marker)],
                            cwd=os.path.dirname(os.path.dirname(__file__)), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert marker.exists(), "the writer never reached its second write"
    time.sleep(2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    lake = Lakehouse(spark, tiny_config(tmp_path))
    assert lake.version("gold", "t") == 0
    assert lake.count("gold", "t") == 100
    # no second commit, and the table reads exactly the files its first commit added
    log = tmp_path / "lakehouse/gold/t/_delta_log"
    assert not (log / "00000000000000000001.json").exists()
    added = {json.loads(line)["add"]["path"] for line in (log / "00000000000000000000.json").read_text().splitlines()
             if '"add"' in line}
    read = {os.path.basename(r[0]) for r in lake.read("gold", "t").select(F.input_file_name()).distinct().collect()}
    assert read == added and added


def test_merge_upserts_and_deletes_missing(spark, tmp_path):
    lake = Lakehouse(spark, tiny_config(tmp_path))
    first = spark.createDataFrame([(1, "a"), (2, "b"), (3, "c")], "k int, v string")
    lake.merge(first, "gold", "m", ["k"], delete_missing=True)
    lake.merge(first, "gold", "m", ["k"], delete_missing=True)
    assert lake.last_commit_metrics("gold", "m").get("numTargetRowsUpdated", 0) == 0
    second = spark.createDataFrame([(1, "a"), (2, "B"), (4, "d")], "k int, v string")
    lake.merge(second, "gold", "m", ["k"], delete_missing=True)
    assert sorted(map(tuple, lake.read("gold", "m").collect())) == [(1, "a"), (2, "B"), (4, "d")]
    assert sorted(map(tuple, lake.read("gold", "m", version=0).collect())) == [(1, "a"), (2, "b"), (3, "c")]


def test_identity_changes_when_a_table_is_rebuilt(spark, tmp_path):
    """Versions restart at 0 in a rebuilt lakehouse; the identity that keys deep-model checkpoints must not."""
    lake = Lakehouse(spark, tiny_config(tmp_path))
    lake.overwrite(spark.range(3), "gold", "t")
    before = lake.identity("gold", "t")
    assert before.endswith("@0") and lake.identity("gold", "t") == before
    shutil.rmtree(tmp_path / "lakehouse")
    lake.overwrite(spark.range(3), "gold", "t")
    assert lake.version("gold", "t") == 0 and lake.identity("gold", "t") != before


def test_writers_of_different_models_commit_at_the_same_time(spark, tmp_path):
    """gold.recs is partitioned by model: two stages replacing their own models' rows both succeed
    (unpartitioned, the second commit fails with ConcurrentAppendException)."""
    from concurrent.futures import ThreadPoolExecutor

    lake = Lakehouse(spark, tiny_config(tmp_path))
    frame = spark.range(200).select(F.col("id").alias("user_idx"))

    def write(models: tuple[str, ...], times: int = 3) -> None:
        rows = frame.crossJoin(spark.createDataFrame([(m,) for m in models], "model string"))
        owned = "model IN ({})".format(", ".join(f"'{m}'" for m in models))
        for _ in range(times):
            lake.overwrite(rows, "gold", "recs", replace_where=owned, partition_by=["model"])

    write(("seed",), 1)
    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(write, ("als", "ease")), pool.submit(write, ("sasrec",))]:
            done.result()
    counts = {r["model"]: r["count"] for r in lake.read("gold", "recs").groupBy("model").count().collect()}
    assert counts == {"seed": 200, "als": 200, "ease": 200, "sasrec": 200}
