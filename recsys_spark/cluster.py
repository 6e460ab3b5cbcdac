"""`make cluster-test`: the pipeline on a real Spark standalone cluster, checked against local mode.

A master and two one-core workers start from the installed pyspark on 127.0.0.1 (ports chosen
free), the project's wheel goes to the executors by `--py-files` and Delta by `--packages`, as on
any cluster. The cluster's tables and metrics must equal those of a local-mode run on the same
seed; the cluster is stopped by the ids of the processes this module started.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("recsys_spark")

ROOT = Path(__file__).resolve().parent.parent
# A small shop: every stage runs, in minutes, on two one-core executors. Every setting in which
# conf/local.yaml and conf/cluster.yaml differ is set here, so both runs train the same models.
SHOP = [
    "source.synthetic.n_events=20000",
    "source.synthetic.n_users=400",
    "source.synthetic.n_items=200",
    "source.synthetic.n_categories=8",
    "spark.shuffle_partitions=2",
    "cf.als.blocks=2",              # 0 would follow the cores, and ALS's starting factors follow the blocks
    "deep.epochs=2",
    "deep.max_len=20",
    "deep.dim=16",
    "deep.batch_size=64",
    "bandit.simulator.rounds=[3000]",
]
# Columns that say when or under which run id a row was written: they differ between any two runs.
VOLATILE = ("run_id", "_quality_run", "seconds", "inputs", "config_read", "config", "outputs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@dataclass
class StandaloneCluster:
    """A master and `workers` workers of `cores` cores and `memory` each, all on 127.0.0.1."""

    workdir: Path
    workers: int = 2
    cores: int = 1
    memory: str = "2g"
    port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def _spawn(self, name: str, *args: str) -> None:
        env = {**os.environ, "SPARK_HOME": str(spark_home()), "SPARK_LOCAL_IP": "127.0.0.1",
               "SPARK_WORKER_DIR": str(self.workdir / f"{name}-work")}
        with open(self.workdir / f"{name}.log", "w") as out:   # the child keeps its own handle
            proc = subprocess.Popen([str(spark_home() / "bin" / "spark-class"), *args], stdout=out,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append(proc)
        log.info("[cluster] %s started, pid %d, log %s", name, proc.pid, out.name)

    def alive_workers(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2) as r:
                return int(json.load(r).get("aliveworkers", 0))
        except OSError:
            return 0

    def start(self, timeout: float = 120) -> StandaloneCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._spawn("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                    "--port", str(self.port), "--webui-port", str(self.ui_port))
        for i in range(self.workers):
            self._spawn(f"worker-{i}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                        "--cores", str(self.cores), "--memory", self.memory,
                        "--webui-port", str(free_port()), self.url)
        deadline = time.monotonic() + timeout
        while self.alive_workers() < self.workers:
            dead = [p.pid for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"standalone cluster did not come up (exited: {dead}); logs in {self.workdir}")
            time.sleep(1)
        log.info("[cluster] %s up with %d workers x %d core(s), %s each", self.url, self.workers,
                 self.cores, self.memory)
        return self

    def stop(self) -> None:
        """Stop only what this cluster started: each process group, by the pid it was given."""
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        log.info("[cluster] stopped pids %s", ", ".join(str(p.pid) for p in self.procs))
        self.procs.clear()

    def __enter__(self) -> StandaloneCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def shop_overrides(root: Path, extra: list[str]) -> list[str]:
    sets = [*SHOP, f"lakehouse.root={root}/lakehouse", f"lakehouse.checkpoint_dir={root}/checkpoints",
            f"lakehouse.models_dir={root}/models", *extra]
    return [arg for s in sets for arg in ("--set", s)]


def submit(cluster: StandaloneCluster, package: Path, root: Path, extra: list[str]) -> None:
    """spark-submit the whole pipeline, as a data engineer would on any standalone cluster."""
    cmd = spark_submit(cluster, package, ROOT / "jobs" / "pipeline.py",
                       ["--conf", str(ROOT / "conf" / "cluster.yaml"), *shop_overrides(root, extra)])
    run(cmd, root / "cluster-pipeline.log", "spark-submit on the cluster")


def run_local(root: Path, extra: list[str]) -> None:
    cmd = [sys.executable, "-m", "recsys_spark.cli", "pipeline", "--conf", str(ROOT / "conf" / "local.yaml"),
           "--set", "spark.master=local[2]", *shop_overrides(root, extra)]
    run(cmd, root / "local-pipeline.log", "local mode")


def run(cmd: list[str], logfile: Path, what: str) -> None:
    log.info("[cluster] %s: %s (log %s)", what, " ".join(cmd), logfile)
    start = time.perf_counter()
    # The editable install must not shadow the wheel: the submitted code runs from --py-files only.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with open(logfile, "w") as out:
        rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=logfile.parent)
    if rc != 0:
        tail = logfile.read_text().splitlines()[-30:]
        raise RuntimeError(f"{what} failed (rc={rc}); last lines of {logfile}:\n" + "\n".join(tail))
    log.info("[cluster] %s finished in %.0fs", what, time.perf_counter() - start)


PROBE = '''
import sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
where = spark.sparkContext.parallelize(range(4), 4).map(
    lambda _: __import__("recsys_spark").__file__).distinct().collect()
print("recsys_spark on executors:", where)
sys.exit(0 if all(sys.argv[1] in w for w in where) else 3)
'''


def package_zip(wheel: Path, workdir: Path) -> Path:
    """The wheel under a .zip name: Spark puts .zip/.egg files from --py-files on the executors'
    path, not .whl (a pure-Python wheel is a zip that Python imports from)."""
    target = workdir / (wheel.stem + ".zip")
    target.write_bytes(wheel.read_bytes())
    return target


def probe(cluster: StandaloneCluster, package: Path, workdir: Path) -> None:
    """Fail early, and plainly, if the executors import the package from anywhere but --py-files."""
    script = workdir / "probe.py"
    script.write_text(PROBE)
    run(spark_submit(cluster, package, script, [package.name]), workdir / "probe.log", "executor import probe")


def spark_submit(cluster: StandaloneCluster, package: Path, script: Path, args: list[str]) -> list[str]:
    """The command, with the BLAS settings a cluster needs for the native BLAS local mode has."""
    from recsys_spark.spark import delta_package, native_blas_options

    java = " ".join(native_blas_options())
    return [str(spark_home() / "bin" / "spark-submit"), "--master", cluster.url,
            "--packages", delta_package(), "--py-files", str(package),
            "--conf", f"spark.executor.memory={cluster.memory}",
            "--conf", f"spark.driver.extraJavaOptions={java}", "--conf", f"spark.executor.extraJavaOptions={java}",
            "--conf", f"spark.executorEnv.LD_LIBRARY_PATH={os.environ.get('LD_LIBRARY_PATH', '')}",
            "--conf", f"spark.executorEnv.OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '1')}",
            "--conf", f"spark.pyspark.python={sys.executable}",
            "--conf", f"spark.pyspark.driver.python={sys.executable}",
            str(script), *args]


def table_rows(spark, path: str):
    """A table as comparable rows: what says when or under which run id a row was written dropped,
    and timings (a `seconds` metric row) left out."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampType

    df = spark.read.format("delta").load(path)
    if "metric" in df.columns:
        df = df.where(~F.col("metric").contains("seconds"))
    return df.select([f"`{f.name}`" for f in df.schema.fields if f.name not in VOLATILE
                      and not (isinstance(f.dataType, TimestampType) and f.name.lstrip("_").endswith("_at"))])


def close(x: Any, y: Any, rel: float = 1e-4) -> bool:
    """Equal, floats within `rel` (sums over differently partitioned data differ in the last bits)."""
    if isinstance(x, float) and isinstance(y, float):
        return math.isclose(x, y, rel_tol=rel, abs_tol=1e-9)
    if isinstance(x, (tuple, list)) and isinstance(y, (tuple, list)):
        return len(x) == len(y) and all(close(a, b, rel) for a, b in zip(x, y, strict=True))
    return x == y


def shape(x: Any) -> Any:
    """A row with its floats blanked: rows that can be `close` share a shape."""
    if isinstance(x, float):
        return None
    if isinstance(x, (tuple, list)):
        return tuple(shape(v) for v in x)
    return x


def unmatched(left: list, right: list) -> int:
    """How many of `left` have no `close` partner in `right` (each partner used once)."""
    pool: dict[Any, list] = {}
    for r in right:
        pool.setdefault(shape(tuple(r)), []).append(tuple(r))
    missing = 0
    for r in left:
        candidates = pool.get(shape(tuple(r)), [])
        match = next((i for i, c in enumerate(candidates) if close(tuple(r), c)), None)
        if match is None:
            missing += 1
        else:
            candidates.pop(match)
    return missing


def compare(cluster_root: Path, local_root: Path, near_ties: float = 0.001) -> tuple[list[str], list[str]]:
    """Every table of both lakehouses, row for row, floats within a relative 1e-4. Returns
    (problems, notes): a table with floats may differ in at most a `near_ties` share of rows,
    lists whose order swapped between scores equal to the last bits; that is noted, more fails."""
    from pyspark.sql.types import DoubleType, FloatType

    from recsys_spark.config import load_config
    from recsys_spark.pipeline import TABLES
    from recsys_spark.spark import get_spark

    cfg = load_config(None, None, ["spark.master=local[2]", f"lakehouse.root={local_root}/compare",
                                   f"lakehouse.checkpoint_dir={local_root}/compare-ckpt"])
    spark = get_spark(cfg)
    problems, notes, compared = [], [], 0
    for layer, tables in TABLES.items():
        for table in tables:
            name = f"{layer}.{table}"
            paths = [f"{root}/lakehouse/{layer}/{table}" for root in (cluster_root, local_root)]
            present = [Path(p, "_delta_log").is_dir() for p in paths]
            if present != [True, True]:
                if any(present):
                    problems.append(f"{name}: only in the {'cluster' if present[0] else 'local'} run")
                continue
            a, b = (table_rows(spark, p) for p in paths)
            if a.columns != b.columns:
                problems.append(f"{name}: columns differ: {a.columns} vs {b.columns}")
                continue
            compared += 1
            n_a, n_b = a.count(), b.count()
            only_a, only_b = a.exceptAll(b).collect(), b.exceptAll(a).collect()
            if n_a != n_b:
                problems.append(f"{name}: {n_a} rows on the cluster, {n_b} locally")
                continue
            differ = max(unmatched(only_a, only_b), unmatched(only_b, only_a))
            floats = any(isinstance(f.dataType, (DoubleType, FloatType)) for f in a.schema.fields)
            if differ and floats and differ <= near_ties * n_a:
                notes.append(f"{name}: {differ} of {n_a} rows differ (order of near-equal scores)")
            elif differ:
                problems.append(f"{name}: {differ} of {n_a} rows differ")
    log.info("[cluster] compared %d tables", compared)
    return problems, notes


def main(argv: list[str] | None = None) -> int:
    from recsys_spark.logs import setup_logging

    p = argparse.ArgumentParser(prog="python -m recsys_spark.cluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wheel", type=Path, required=True, help="the project's wheel (make wheel)")
    p.add_argument("--workdir", type=Path, default=None, help="logs and both lakehouses (default: a temp dir)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    setup_logging()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="recsys-cluster-"))
    cluster_root, local_root = workdir / "cluster", workdir / "local"
    for d in (cluster_root, local_root):
        d.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with StandaloneCluster(workdir / "spark") as cluster:
        package = package_zip(args.wheel.resolve(), workdir)
        probe(cluster, package, workdir)
        submit(cluster, package, cluster_root, args.overrides)
    run_local(local_root, args.overrides)
    problems, notes = compare(cluster_root, local_root)
    for line in notes:
        log.info("[cluster] %s", line)
    for line in problems:
        log.error("[cluster] %s", line)
    verdict = "differs from" if problems else "equals"
    print(f"cluster-test: the pipeline on a standalone cluster (2 workers x 1 core) {verdict} local mode "
          f"({len(problems)} tables differ) in {time.perf_counter() - start:.0f}s; logs in {workdir}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
