"""Local-mode Spark with real Delta tables; each test that writes gets its own lakehouse."""
from __future__ import annotations

import pytest

from recsys_spark.config import Config, load_config
from recsys_spark.pipeline.context import Context
from recsys_spark.spark import get_spark

TINY = [
    "source.synthetic.n_events=20000",
    "source.synthetic.n_users=400",
    "source.synthetic.n_items=200",
    "source.synthetic.n_categories=8",
    "spark.shuffle_partitions=2",
    "spark.master=local[2]",
    "spark.driver_memory=3g",
    "deep.epochs=3",
    "deep.dim=16",
    "deep.batch_size=64",
    "bandit.simulator.rounds=[3000]",
]


def tiny_config(tmp_path, *overrides: str, dataset: str | None = None) -> Config:
    return load_config(None, dataset, [*TINY, f"lakehouse.root={tmp_path}/lakehouse",
                                       f"lakehouse.checkpoint_dir={tmp_path}/ckpt", *overrides])


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    cfg = tiny_config(tmp_path_factory.mktemp("session"))
    session = get_spark(cfg)
    yield session
    session.stop()


def _factory(root):
    def make(*overrides: str, dataset: str | None = None) -> Context:
        return Context.create(tiny_config(root, *overrides, dataset=dataset))
    return make


@pytest.fixture
def make_ctx(spark, tmp_path):
    """A Context on a fresh lakehouse under tmp_path, with extra `key=value` overrides."""
    return _factory(tmp_path)


@pytest.fixture(scope="module")
def make_module_ctx(spark, tmp_path_factory):
    """The same, shared by a module's tests (they run in file order; later ones may add batches)."""
    return _factory(tmp_path_factory.mktemp("module"))


@pytest.fixture(scope="session")
def shop(spark, tmp_path_factory) -> Context:
    """The tiny synthetic shop run through every stage once, shared read-only by the tests."""
    from recsys_spark.pipeline import STAGES, run_stage

    ctx = Context.create(tiny_config(tmp_path_factory.mktemp("shop")))
    for stage in STAGES:
        run_stage(ctx, stage)
    return ctx
