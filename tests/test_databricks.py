"""Databricks: the bundle's job, the notebooks' widgets and the notebooks themselves, run locally.

The notebooks are run cell by cell as Databricks would (`%run` includes a notebook, `%pip` installs,
`%md` is text) with a small stand-in for dbutils, on the tiny shop, in the databricks runtime mode:
tables by name (`<catalog>.<layer>.<table>`) in the local session's catalog.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recsys_spark.pipeline import STAGES
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BUNDLE = yaml.safe_load((ROOT / "databricks.yml").read_text())
JOB = BUNDLE["resources"]["jobs"]["pipeline"]


class Widgets:
    """dbutils.widgets: values set by the caller (the job's parameters) win over the defaults."""

    def __init__(self, values: dict[str, str]):
        self.values, self.defined = dict(values), set()

    def text(self, name: str, default: str, label: str | None = None) -> None:
        self.defined.add(name)
        self.values.setdefault(name, default)

    def dropdown(self, name: str, default: str, choices: list[str], label: str | None = None) -> None:
        assert default in choices
        self.text(name, default)

    def get(self, name: str) -> str:
        if name not in self.defined:
            raise ValueError(f"widget {name!r} is read but never defined")
        return self.values[name]


class DBUtils:
    def __init__(self, widgets: dict[str, str]):
        self.widgets = Widgets(widgets)


def cells(path: Path) -> list[str]:
    return path.read_text().split("# COMMAND ----------")


def run_notebook(path: Path, namespace: dict, installs: list[str]) -> None:
    """Run a notebook's cells in `namespace`, in the notebook's folder as Databricks does."""
    for cell in cells(path):
        magic = [line[len("# MAGIC "):] for line in cell.splitlines() if line.startswith("# MAGIC")]
        if magic and magic[0].startswith("%run "):
            run_notebook((path.parent / magic[0].split()[1]).with_suffix(".py"), namespace, installs)
        elif magic and magic[0].startswith("%pip "):
            # IPython expands $name from the namespace; record what would be installed
            installs.append(re.sub(r"\$(\w+)", lambda m: str(namespace[m.group(1)]), magic[0]))
        elif not magic:
            exec(compile(cell, str(path), "exec"), namespace)


def test_bundle_job_runs_every_stage_in_pipeline_order():
    tasks = JOB["tasks"]
    assert [t["task_key"] for t in tasks] == list(STAGES)
    for before, task in zip(tasks, tasks[1:], strict=False):
        assert task["depends_on"] == [{"task_key": before["task_key"]}]
    for task in tasks:
        notebook = task["notebook_task"]
        assert (ROOT / notebook["notebook_path"]).is_file(), notebook["notebook_path"]
        assert notebook["base_parameters"]["stage"] == task["task_key"]
        assert task["job_cluster_key"] in {c["job_cluster_key"] for c in JOB["job_clusters"]}
    cluster = JOB["job_clusters"][0]["new_cluster"]
    assert cluster["data_security_mode"] == "SINGLE_USER"
    assert re.match(r"15\.4\.x-.*ml", cluster["spark_version"])   # ML LTS with Spark 3.5, Python 3.11
    assert (ROOT / BUNDLE["artifacts"]["wheel"]["path"] / "setup.py").is_file()


def test_widgets_read_are_defined_and_job_parameters_reach_them():
    setup = (NOTEBOOKS / "_setup.py").read_text()
    defined_in_setup = set(re.findall(r'widgets\.(?:text|dropdown)\("(\w+)"', setup))
    for path in NOTEBOOKS.glob("*.py"):
        text = path.read_text()
        defined = set(re.findall(r'widgets\.(?:text|dropdown)\("(\w+)"', text))
        if "%run ./_setup" in text:
            defined |= defined_in_setup
        read = set(re.findall(r'widgets\.get\("(\w+)"\)', text))
        assert read <= defined, f"{path.name} reads widgets it never defines: {read - defined}"
    run_stage = set(re.findall(r'widgets\.text\("(\w+)"', (NOTEBOOKS / "run_stage.py").read_text()))
    assert {p["name"] for p in JOB["parameters"]} <= defined_in_setup
    assert {k for t in JOB["tasks"] for k in t["notebook_task"]["base_parameters"]} <= run_stage


def test_databricks_requirements_pin_what_the_project_pins():
    pins = (ROOT / "setup.py").read_text() + (ROOT / "Makefile").read_text()
    for line in (NOTEBOOKS / "requirements-databricks.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert line in pins, f"{line} is not pinned the same way in setup.py or the Makefile"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "-w", str(out)], check=True)
    (whl,) = out.glob("recsys_spark-*.whl")
    return whl


# The collaborative-filtering path and the bandits: every kind of stage notebook (Spark, MLlib,
# pandas UDFs, plain Python), in minutes rather than the whole pipeline.
NOTEBOOK_STAGES = ("ingest", "quality", "features", "train_als", "neighbours", "recommend", "evaluate", "bandit")


def test_notebooks_run_the_stages_locally_with_a_dbutils_stand_in(spark, tmp_path, wheel, monkeypatch):
    overrides = [*TINY, "lakehouse.root=spark_catalog", f"lakehouse.checkpoint_dir={tmp_path}/ckpt",
                 f"lakehouse.models_dir={tmp_path}/models", f"deep.cache_dir={tmp_path}/petastorm",
                 "deep.launcher=horovod_spark"]
    job = {"dataset": "", "overrides": " ".join(overrides), "wheel": str(wheel)}
    monkeypatch.chdir(NOTEBOOKS)   # Databricks runs a notebook in its own folder
    installs: list[str] = []
    shown: list = []
    for stage in NOTEBOOK_STAGES:
        namespace = {"spark": spark, "dbutils": DBUtils({**job, "stage": stage}), "display": shown.append}
        run_notebook(NOTEBOOKS / "run_stage.py", namespace, installs)
    namespace = {"spark": spark, "dbutils": DBUtils(job), "display": shown.append}
    run_notebook(NOTEBOOKS / "10_bandit.py", namespace, installs)   # the stage again (skipped), then a display

    # every notebook installs the requirements, then the wheel the job names, without its pins
    assert set(installs) == {"%pip install --quiet -r requirements-databricks.txt",
                             f"%pip install --quiet --no-deps {wheel}"}
    # every stage wrote its tables by name into the catalog
    tables = {r.tableName for r in spark.sql("SHOW TABLES IN gold").collect()}
    assert {"interactions", "recs", "metrics", "bandit_metrics", "runs"} <= tables
    runs = spark.table("gold.runs").select("stage").distinct().collect()
    assert {r.stage for r in runs} == set(NOTEBOOK_STAGES)
    models = {r.model for r in spark.table("gold.metrics").select("model").distinct().collect()}
    assert {"als", "popularity", "item_knn"} <= models
    assert shown and shown[-1].count() > 0   # notebook 10 displayed the bandit metrics
