"""Plots beside each report (reports/<name>.png) and reports/index.md with every table and plot.

One figure per report, one panel per headline metric: bars per model (published figures hatched),
or, where the models are one pipeline at several sizes (`pipeline_1M`, `pipeline_10M`...), seconds
against data size per stage. `python -m recsys_spark.bench.plots` (make report) redraws every
report's figure and writes the index.
"""
from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

REPORTS = Path("reports")
# Metrics worth a panel, first found first; ratios and checks are one number each and stay in the table.
HEADLINE = ["ndcg", "recall", "hit_rate", "mrr", "cumulative_reward", "seconds", "fit_seconds",
            "rows_per_second", "samples_per_second", "items_per_second", "latency_p99_ms", "peak_rss_gib",
            "peak_pss_gib", "peak_jvm_rss_gib"]
SIZE = re.compile(r"^(?P<base>.+)_(?P<n>\d+(?:\.\d+)?)(?P<unit>[KM])$")
MAX_BARS = 24


def _size(model: str) -> float | None:
    m = SIZE.match(model)
    return float(m["n"]) * (1e3 if m["unit"] == "K" else 1e6) if m else None


def _label(r: dict[str, Any], datasets: int) -> str:
    parts = [str(r["model"])]
    if r.get("stage"):
        parts.append(str(r["stage"]))
    if isinstance(r.get("rows"), int):
        parts.append(f"{r['rows']:,} rows" + (f" / {r['files']} files" if r.get("files") else ""))
    if datasets > 1 and r.get("dataset"):
        parts.append(f"[{r['dataset']}]")
    if r.get("k"):
        parts[0] += f"@{r['k']}"
    return " ".join(parts)


def panels(rows: list[dict[str, Any]]) -> list[str]:
    counts: dict[str, int] = {}
    for r in rows:
        if isinstance(r.get("value"), (int, float)):
            counts[r["metric"]] = counts.get(r["metric"], 0) + 1
    return [m for m in HEADLINE if counts.get(m, 0) >= 2][:4]


def plot_report(doc: dict[str, Any], out: Path) -> Path | None:
    """Draw the report's figure to `out`; None when it has no metric with two or more rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in doc["rows"] if isinstance(r.get("value"), (int, float))]
    chosen = panels(rows)
    if not chosen:
        return None
    datasets = len({r.get("dataset") for r in rows})
    fig, axes = plt.subplots(1, len(chosen), figsize=(5.5 * len(chosen), 4.5), squeeze=False)
    for ax, metric in zip(axes[0], chosen, strict=True):
        these = [r for r in rows if r["metric"] == metric]
        if all(_size(r["model"]) for r in these) and len({_size(r["model"]) for r in these}) > 1:
            by_line: dict[str, list[tuple[float, float]]] = {}
            for r in these:
                by_line.setdefault(str(r.get("stage") or SIZE.match(r["model"])["base"]), []).append(
                    (_size(r["model"]), r["value"]))
            for name, points in by_line.items():
                xs, ys = zip(*sorted(points), strict=True)
                ax.plot(xs, ys, marker="o", label=name)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("data size (events)")
            ax.legend(fontsize=8)
        else:
            these = these[:MAX_BARS]
            labels = [_label(r, datasets) for r in these]
            bars = ax.barh(range(len(these)), [r["value"] for r in these], color="#4878a8")
            for bar, r in zip(bars, these, strict=True):
                if r.get("source") == "published":
                    bar.set_hatch("//")
                    bar.set_facecolor("#c8d4e0")
            ax.set_yticks(range(len(these)), labels, fontsize=7)
            ax.invert_yaxis()
        ax.set_title(metric, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    lines = textwrap.wrap(f"{doc['name']}: {doc.get('dataset', '')}", 65 * len(chosen))  # a panel's width
    fig.suptitle("\n".join(lines[:2]) + (" ..." if len(lines) > 2 else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def write_index(reports: Path = REPORTS) -> Path:
    """reports/index.md: every report's table and plots, redrawing each report's figure."""
    lines = ["# Benchmark reports", "", "Every `make bench` report in this folder: its table, then its plots.", ""]
    for path in sorted(reports.glob("*.json")):
        doc = json.loads(path.read_text())
        doc.setdefault("name", path.stem)
        plot_report(doc, path.with_suffix(".png"))
        lines += [f"## {path.stem}", ""]
        md = path.with_suffix(".md")
        if md.is_file():
            body = md.read_text().splitlines()
            lines += [line for line in body[1:] if not line.startswith("![")]   # its own title is the heading
        lines += [f"![{png.stem}]({png.name})" for png in sorted(reports.glob(f"{path.stem}*.png"))
                  if png.stem == path.stem or not (reports / f"{png.stem}.json").exists()]
        lines.append("")
    out = reports / "index.md"
    out.write_text("\n".join(lines) + "\n")
    return out


if __name__ == "__main__":
    print(f"wrote {write_index()}")
