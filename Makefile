# The two commands: `make demo` and `make test`. Both install what is missing first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
UV_VERSION := 0.9.30
UV := $(VENV)/bin/uv pip
CACHE ?= $(HOME)/.cache/recsys-spark
WHEELS := $(CACHE)/wheels
HOROVOD_VERSION := 0.28.1
HOROVOD_WHEEL := $(WHEELS)/horovod-$(HOROVOD_VERSION)-cp311-cp311-linux_x86_64.whl
STAMP := $(VENV)/.stamp-$(HOROVOD_VERSION)
BLAS := $(VENV)/blas/libblas.so.3
B ?= all
DATASET ?=

.PHONY: install demo test lint bench report clean wheel cluster-test

install: $(STAMP) $(BLAS)

# One stamp per set of inputs: re-running is a no-op until setup.py or the Makefile changes.
# uv installs what pip would (same resolution), from its cache in ~/.cache/uv: 30 s against pip's 175 s.
$(STAMP): setup.py Makefile $(HOROVOD_WHEEL)
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q uv==$(UV_VERSION)
	$(UV) install -q --python $(PY) "pip>=24" "setuptools>=77" wheel -e ".[deep,search,dev,bench,tracking]"
	$(UV) install -q --python $(PY) --no-deps petastorm==0.13.1 $(HOROVOD_WHEEL)
	$(PY) -m recsys_spark.spark --write-defaults
	@touch $@

# OpenBLAS for MLlib's native BLAS (netlib's JNIBLAS), unpacked from Debian packages without root
# into the venv; recsys_spark.spark points the JVM at it. Where apt-get is missing, MLlib keeps its
# Java BLAS and the session's first log line says which one is in use.
$(BLAS):
	@mkdir -p $(VENV)/blas
	@set -e; tmp=$$(mktemp -d); \
	if (cd $$tmp && apt-get download libopenblas0-pthread libgfortran5 libquadmath0) >/dev/null 2>&1; then \
	  for d in $$tmp/*.deb; do dpkg -x $$d $$tmp/x; done; \
	  cp -a $$(dirname $$(find $$tmp/x -name libblas.so.3 | head -1))/. $(VENV)/blas/; \
	  cp -a $$(find $$tmp/x -name 'libgfortran.so.5*' -o -name 'libquadmath.so.0*') $(VENV)/blas/; \
	  echo "OpenBLAS for MLlib in $(VENV)/blas"; \
	else echo "no OpenBLAS (apt-get download failed): MLlib keeps its Java BLAS"; fi; \
	rm -rf $$tmp

# horovod 0.28.1's sdist asks for C++14; torch >= 2.1 headers need C++17. Built once, cached
# outside the checkout.
$(HOROVOD_WHEEL):
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q "pip>=24" "setuptools>=77" wheel cmake "torch==2.13.0" cloudpickle psutil pyyaml packaging
	@set -e; tmp=$$(mktemp -d); \
	$(PIP) download -q --no-deps --no-binary :all: horovod==$(HOROVOD_VERSION) -d $$tmp; \
	tar -xzf $$tmp/horovod-$(HOROVOD_VERSION).tar.gz -C $$tmp; \
	src=$$tmp/horovod-$(HOROVOD_VERSION); \
	sed -i 's/CMAKE_CXX_STANDARD 14/CMAKE_CXX_STANDARD 17/' $$src/CMakeLists.txt $$src/horovod/torch/CMakeLists.txt; \
	mkdir -p $(WHEELS); \
	HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
	HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 MAKEFLAGS=-j2 \
	  $(PIP) wheel -q --no-build-isolation --no-deps $$src -w $(WHEELS); \
	rm -rf $$tmp

# The demo's shop is half the default one (same events per user and items), so that a fresh clone's
# `make demo` stays well within 15 minutes on 2 cores.
DEMO_SHOP := --set source.synthetic.n_events=500000 --set source.synthetic.n_users=10000

demo: install
	$(VENV)/bin/recsys-spark pipeline --conf conf/local.yaml $(DEMO_SHOP)

test: install
	$(PY) -m pytest tests -q -ra --durations=15

# The project as one wheel (conf/ inside): what clusters get on --py-files and Databricks %pip installs.
wheel: install
	rm -rf dist build
	$(PIP) wheel -q --no-deps --no-build-isolation . -w dist
	@ls dist/*.whl

# A real standalone cluster (a master, two one-core workers) from the installed pyspark runs the
# pipeline with the wheel; its tables must equal a local-mode run's.
cluster-test: wheel
	$(PY) -m recsys_spark.cluster --wheel $$(ls dist/recsys_spark-*.whl)

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) -m recsys_spark.bench $(B) $(if $(DATASET),--dataset $(DATASET))

# reports/index.md: every report's table and plot (figures redrawn from the JSON reports).
report: install
	$(PY) -m recsys_spark.bench.plots

clean:
	rm -rf lakehouse reports/*.tmp spark-warehouse metastore_db derby.log
