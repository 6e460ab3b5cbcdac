"""Pipeline cost at 1M, 10M and (on request) 30M and 100M synthetic events: wall time and peak
memory of each data stage.

The three stages run in one driver, as `recsys-spark run ingest quality features` and the pipeline
run them, so a stage's seconds are its own work and not a JVM start. A stage's peak memory is the
largest memory while the stage ran: the resident size of the JVM, whose heap `spark.driver_memory`
bounds, every 0.2 s; the JVM's heap in use (jstat, every second), which says how much of that bound
the stage filled and how much of the resident size lies outside the heap; and the whole driver
(driver Python, JVM and Python workers) every 2 s as proportional set size, so that pages the
forked workers share count once.
Scales: `SCALES=1M,10M,100M make bench B=pipeline` (default 1M,10M).
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import psutil

from recsys_spark.bench.report import row, write_report
from recsys_spark.pipeline import DATA_STAGES

# events, users, items; every scale runs on the same config (8 shuffle partitions)
SCALES = {"1M": (1_000_000, 20_000, 5_000), "10M": (10_000_000, 200_000, 10_000),
          "30M": (30_000_000, 600_000, 60_000), "100M": (100_000_000, 2_000_000, 200_000)}
JSTAT_TRIES = 10
STAGE_LINE = re.compile(r"\[(\w+)\] (start|done in ([0-9.]+)s)$")


def _jstat() -> str | None:
    """The JDK's jstat (a JRE has none): beside the java that JAVA_HOME names, or on the PATH."""
    home = os.environ.get("JAVA_HOME")
    beside = os.path.join(home, "bin", "jstat") if home else ""
    return beside if os.access(beside, os.X_OK) else shutil.which("jstat")


def _heap_used(jstat: str, pid: int, record: Callable[[float], None]) -> subprocess.Popen:
    """Streams `jstat -gc` for the JVM `pid` (a line a second) and records each line's heap in use
    in bytes: survivor, eden and old spaces (jstat gives KiB)."""
    proc = subprocess.Popen([jstat, "-gc", str(pid), "1000"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)

    def read() -> None:
        header: list[str] = []
        for line in proc.stdout:
            fields = line.split()
            if "EU" in fields:
                header = fields
            elif header and len(fields) == len(header):
                value = dict(zip(header, map(float, fields), strict=True))
                record(sum(value[c] for c in ("S0U", "S1U", "EU", "OU")) * 1024)

    threading.Thread(target=read, daemon=True).start()
    return proc


def _run_stages(cmd: list[str]) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """Seconds per stage, from the driver's own log lines, and peak GiB per (stage, 'all' | 'jvm' |
    'heap')."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    parent, current, peaks, seconds, tail = psutil.Process(proc.pid), [None], {}, {}, []
    jstat_path, jstat = _jstat(), []

    def record(kind: str, value: float) -> None:
        if current[0]:
            key = (current[0], kind)
            peaks[key] = max(peaks.get(key, 0.0), value / 2**30)

    def sample() -> None:
        tick = 0
        while proc.poll() is None:
            try:
                procs = [parent, *parent.children(recursive=True)]
                java = [p for p in procs if p.name() == "java"]
                if (java and jstat_path and tick % 5 == 0 and len(jstat) < JSTAT_TRIES
                        and (not jstat or jstat[-1].poll() is not None)):
                    # once a second until it attaches (a JVM just started has no performance data
                    # yet), a few times at most: each try starts a JVM, which the stages would share cores with
                    jstat.append(_heap_used(jstat_path, java[0].pid, lambda used: record("heap", used)))
                record("jvm", sum(p.memory_info().rss for p in java))
                if tick % 10 == 0:  # PSS reads every page table: every 2 s, or sampling slows the stages
                    # (Python workers forked from one daemon share its pages, which RSS counts in each)
                    record("all", sum(p.memory_full_info().pss for p in procs))
            except psutil.Error:
                pass
            tick += 1
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for line in proc.stderr:
        tail = (tail + [line])[-40:]
        if "INFO recsys_spark [" in line:
            print("   ", line.rstrip(), flush=True)     # each step's rows and seconds, as the stage logs them
        m = STAGE_LINE.search(line.rstrip())
        if m and m.group(1) in DATA_STAGES:
            if m.group(2) == "start":
                current[0] = m.group(1)
            else:
                seconds[m.group(1)] = float(m.group(3))
                print(f"  peak {peaks.get((m.group(1), 'all'), 0):.2f} GiB, JVM "
                      f"{peaks.get((m.group(1), 'jvm'), 0):.2f} GiB, heap in use "
                      f"{peaks.get((m.group(1), 'heap'), 0):.2f} GiB", flush=True)
    proc.wait()
    sampler.join()
    for j in jstat:
        j.kill()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{''.join(tail)}")
    return seconds, peaks


def run(scales: list[str] | None = None) -> None:
    scales = scales or os.environ.get("SCALES", "1M,10M").split(",")
    unknown = [s for s in scales if s not in SCALES]
    if unknown:
        raise ValueError(f"SCALES: unknown scale {unknown[0]!r}; scales are {', '.join(SCALES)}")
    rows, timings = [], {}
    for scale in scales:
        events, users, items = SCALES[scale]
        print(f"{scale} events ({users:,} users, {items:,} items)", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as root:
            cmd = [sys.executable, "-m", "recsys_spark.cli", "run", *DATA_STAGES,
                   "--set", f"lakehouse.root={root}", "--set", f"source.synthetic.n_events={events}",
                   "--set", f"source.synthetic.n_users={users}", "--set", f"source.synthetic.n_items={items}"]
            start = time.perf_counter()
            seconds, peaks = _run_stages(cmd)
            timings[f"{scale}/total"] = round(time.perf_counter() - start, 1)
        for stage in DATA_STAGES:
            timings[f"{scale}/{stage}"] = round(seconds[stage], 1)
            rows.append(row(f"pipeline_{scale}", "seconds", round(seconds[stage], 1), stage=stage))
            rows.append(row(f"pipeline_{scale}", "peak_pss_gib", round(peaks.get((stage, "all"), 0.0), 2), stage=stage))
            rows.append(row(f"pipeline_{scale}", "peak_jvm_rss_gib", round(peaks.get((stage, "jvm"), 0.0), 2),
                            stage=stage))
            heap = peaks.get((stage, "heap"))  # none without a JDK's jstat
            rows.append(row(f"pipeline_{scale}", "peak_jvm_heap_used_gib", heap and round(heap, 2), stage=stage))
    ordered = [s for s in SCALES if s in scales]
    for small, big in itertools.pairwise(ordered):
        for stage in DATA_STAGES:
            ratio = timings[f"{big}/{stage}"] / timings[f"{small}/{stage}"]
            rows.append(row(f"pipeline_{big}_vs_{small}", "time_ratio", round(ratio, 2), stage=stage))
    write_report("pipeline", "ingest -> quality -> features on the synthetic shop, the three stages in one "
                 "local[*] driver (recsys-spark run ingest quality features); 10x events with 10x users",
                 "synthetic shop (seed 42)", rows, timings,
                 notes=["time_ratio is the larger scale's seconds / the smaller's, per stage: the goal is at "
                        "most 10x for 10x the data.",
                        "<scale>/total includes starting the driver (JVM, Delta jars) once.",
                        "peak_jvm_heap_used_gib: the most of the heap in use at one second (jstat); the JVM's "
                        "resident size beyond it is memory outside the heap (metaspace, code cache, thread stacks, "
                        "native buffers) and heap committed but free."])
