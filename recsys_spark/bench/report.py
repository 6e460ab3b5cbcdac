"""Benchmark reports: reports/<name>.json (rows of model/metric/k/value/source) and a .md table."""
from __future__ import annotations

import json
import os
import platform
import shutil
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from recsys_spark.bench.plots import plot_report
from recsys_spark.pipeline.progress import format_table

REPORTS = Path("reports")
PACKAGES = ["pyspark", "delta-spark", "numpy", "pandas", "pyarrow", "torch", "petastorm", "horovod"]


def versions() -> dict[str, str]:
    cpus = len(os.sched_getaffinity(0))
    out = {"python": platform.python_version(), "machine": f"{platform.machine()}, {cpus} cpus"}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def row(model: str, metric: str, value: float, k: int | None = None, source: str = "measured",
        **extra: Any) -> dict[str, Any]:
    return {"model": model, "metric": metric, "k": k, "value": value, "source": source, **extra}


def write_report(name: str, protocol: str, dataset: str, rows: list[dict], timings: dict[str, float],
                 notes: list[str] | None = None) -> Path:
    REPORTS.mkdir(exist_ok=True)
    doc = {"name": name, "protocol": protocol, "dataset": dataset, "rows": rows, "timings": timings,
           "versions": versions(), "created": datetime.now(UTC).isoformat(timespec="seconds")}
    path = REPORTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    extra_cols = sorted({k for r in rows for k in r} - {"model", "metric", "k", "value", "source"})
    table = format_table(["model", "metric", "k", "value", "source", *extra_cols],
                         [[r["model"], r["metric"], "-" if r["k"] is None else r["k"], _fmt(r["value"]), r["source"],
                           *[_fmt(r.get(c, "")) for c in extra_cols]] for r in rows])
    md = [f"# {name}", "", f"Protocol: {protocol}", "", f"Dataset: {dataset}", "", "```", table, "```", ""]
    md += [f"- {n}" for n in notes or []]
    md += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()), ""]
    figure = plot_report(doc, REPORTS / f"{name}.png")
    if figure:
        md += [f"![{name}]({figure.name})", ""]
    (REPORTS / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md))
    return path


def keep_per_dataset(path: Path, dataset: str) -> None:
    """reports/<name>.* is the latest run; a copy as <name>-<dataset>.* keeps each data set's table."""
    copy = f"{path.stem}-{dataset}"
    for suffix in (".json", ".png"):
        if path.with_suffix(suffix).exists():
            shutil.copyfile(path.with_suffix(suffix), path.with_name(copy + suffix))
    md = path.with_suffix(".md").read_text().replace(f"]({path.stem}.png)", f"]({copy}.png)")
    path.with_name(copy + ".md").write_text(md)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
