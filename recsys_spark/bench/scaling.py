"""Training throughput: SASRec samples/second with 1 and 2 Horovod processes (gloo, CPU), and on
a GPU when the machine has one (with the GPU utilisation the Petastorm loader sustains).

Synthetic next-item data: 20,000 sequences of 50 items over 5,000 items. Each run trains 3
epochs under horovodrun; the median epoch after the first (warm-up) counts.
"""
from __future__ import annotations

import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import replace

import torch
from pyspark.sql import functions as F

from recsys_spark.bench.report import row, write_report
from recsys_spark.config import DeepConf, load_config
from recsys_spark.deep.data import materialise
from recsys_spark.deep.launch import launch
from recsys_spark.deep.train import TrainSpec
from recsys_spark.spark import get_spark

USERS, ITEMS, LENGTH, EPOCHS = 20_000, 5_000, 50, 3


def gpu_utilisation(stop: threading.Event, samples: list[float]) -> None:
    while not stop.is_set():
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True)
        if out.returncode == 0:
            samples.append(float(out.stdout.split()[0]))
        time.sleep(0.5)


def throughput(results: list[dict]) -> float:
    return statistics.median(h["samples_per_s"] for h in results[0]["history"][1:])


def run() -> None:
    spark = get_spark(load_config(None))
    rows, timings = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as root:
        walk = F.transform(F.sequence(F.lit(0), F.lit(LENGTH - 1)),
                           lambda i: ((F.col("id") % 97) * 31 + i * (F.col("id") % 7 + 1)) % ITEMS + 1)
        data = spark.range(USERS).select(F.col("id").cast("int").alias("user_idx"), walk.alias("items"))
        seqs = data.select("user_idx", F.slice("items", 1, LENGTH - 1).alias("inputs"),
                           F.slice("items", 2, LENGTH - 1).alias("targets"))
        materialise(seqs, f"{root}/train", 8, DeepConf().block_rows)
        data.limit(1000).select("user_idx", F.slice("items", 1, LENGTH - 1).alias("inputs"),
                                F.element_at("items", LENGTH).alias("target"),
                                F.array().cast("array<int>").alias("seen")).write.parquet(f"{root}/val")
        base = TrainSpec(model="sasrec", n_users=USERS, n_items=ITEMS, train_path=f"{root}/train",
                         fields=["inputs", "targets"], validation_path=f"{root}/val", checkpoint_dir="",
                         max_len=LENGTH - 1, dim=64, epochs=EPOCHS, batch_size=256, patience=EPOCHS)
        rates = {}
        for procs in (1, 2):
            start = time.perf_counter()
            results = launch(replace(base, checkpoint_dir=f"{root}/cpu{procs}"), "horovodrun", procs)
            timings[f"cpu_{procs}_proc"] = round(time.perf_counter() - start, 1)
            rates[procs] = throughput(results)
            rows.append(row("sasrec_cpu", "samples_per_second", round(rates[procs]), processes=procs))
        rows.append(row("sasrec_cpu_2_vs_1", "speedup", round(rates[2] / rates[1], 2)))
        if torch.cuda.is_available():
            stop, samples = threading.Event(), []
            watcher = threading.Thread(target=gpu_utilisation, args=(stop, samples), daemon=True)
            watcher.start()
            results = launch(replace(base, checkpoint_dir=f"{root}/gpu", mixed_precision=True, workers=2),
                             "horovodrun", 1)
            stop.set()
            rows.append(row("sasrec_gpu", "samples_per_second", round(throughput(results)), processes=1))
            rows.append(row("sasrec_gpu", "gpu_utilisation_pct", round(statistics.mean(samples or [0.0]), 1)))
            rows.append(row("sasrec_gpu_vs_cpu_1", "speedup", round(throughput(results) / rates[1], 2)))
    write_report("scaling", f"SASRec (dim 64, {LENGTH - 1} positions, full softmax), batch 256 per process, "
                 f"{EPOCHS} epochs under horovodrun; median samples/s of the epochs after the first",
                 f"synthetic sequences: {USERS:,} users x {ITEMS:,} items", rows, timings,
                 notes=["On CPU each process gets cores / processes torch threads, so 2 processes on a 2-core "
                        "machine measure the cost of gradient exchange more than added compute.",
                        "GPU rows appear only on a machine with a GPU."])
