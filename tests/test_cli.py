"""The commands users type: a bad config stops before Spark starts; spark-submit runs a job."""
import os
import subprocess
import sys
from pathlib import Path

from recsys_spark.lakehouse import Lakehouse
from tests.conftest import TINY, tiny_config

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*args, **kw):
    return subprocess.run([*args], cwd=ROOT, capture_output=True, text=True, timeout=600, **kw)


def test_bad_config_fails_at_start_naming_the_key():
    out = run(str(BIN / "recsys-spark"), "run", "ingest", "--set", "quality.max_quantiy=5")
    assert out.returncode == 2
    assert "bad config: unknown config key 'quality.max_quantiy'" in out.stderr
    out = run(str(BIN / "recsys-spark"), "run", "rank", "--set", "spark.master=local[1]")
    assert out.returncode == 2 and "unknown stage 'rank'" in out.stderr
    out = run(str(BIN / "recsys-spark"), "run", "ingest", "quality", "featurs", "--set", "spark.master=local[1]")
    assert out.returncode == 2 and "unknown stage 'featurs'" in out.stderr     # before any stage ran


def test_resolved_config_is_printable():
    out = run(str(BIN / "recsys-spark"), "config", "--conf", "conf/cluster.yaml", "--set", "cf.k=20")
    assert out.returncode == 0, out.stderr
    assert "runtime: cluster" in out.stdout and "  k: 20" in out.stdout


def test_spark_submit_runs_a_job(spark, tmp_path):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    sets = [a for s in [*TINY, "source.synthetic.n_events=3000", f"lakehouse.root={tmp_path}/lakehouse"]
            for a in ("--set", s)]
    out = run(str(BIN / "spark-submit"), "jobs/ingest.py", "--conf", "conf/local.yaml", *sets, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "[ingest] bronze.events" in out.stdout + out.stderr
    lake = Lakehouse(spark, tiny_config(tmp_path))
    assert lake.count("bronze", "events") > 2500


def test_progress_off_a_terminal_is_log_lines_with_counts_and_rates(caplog, monkeypatch):
    import logging

    from recsys_spark.logs import track

    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    with caplog.at_level(logging.INFO, logger="recsys_spark"):
        assert list(track(range(3), "[train_deep] sasrec epoch 1", total=3, every_s=0.0)) == [0, 1, 2]
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("[train_deep] sasrec epoch 1: 1/3 batches, ")
    assert lines[-1].split(": ")[1].startswith("3/3")
    assert all(line.endswith("batches/s") for line in lines)
