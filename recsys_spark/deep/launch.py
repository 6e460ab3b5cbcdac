"""Launchers: the same `train(spec)` on N workers, started the way the place it runs expects.

- horovod_spark: horovod.spark.run, one worker per Spark task (a Spark cluster, or local[N])
- horovodrun: `horovodrun -np N --gloo` on this machine (bare machines; -H for more hosts)
- databricks: sparkdl.HorovodRunner, what Databricks ML runtimes ship
- torch_distributor: pyspark's TorchDistributor with DDP, the Spark-native alternative
Every worker writes result-<rank>.json in the checkpoint dir; the launcher returns them in rank order.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from recsys_spark.deep.train import TrainSpec, spec_to_json, train

LAUNCHERS = ("horovod_spark", "horovodrun", "databricks", "torch_distributor")


def _results(spec: TrainSpec, num_proc: int) -> list[dict]:
    paths = [Path(spec.checkpoint_dir, f"result-{rank}.json") for rank in range(num_proc)]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise RuntimeError(f"training finished without results from every rank: {', '.join(missing)} missing")
    return [json.loads(p.read_text()) for p in paths]


def launch(spec: TrainSpec, launcher: str, num_proc: int, use_gpu: bool = False) -> list[dict]:
    Path(spec.checkpoint_dir).mkdir(parents=True, exist_ok=True)
    for old in Path(spec.checkpoint_dir).glob("result-*.json"):
        old.unlink()
    if launcher == "horovod_spark":
        import horovod.spark

        horovod.spark.run(train, args=(spec,), num_proc=num_proc, use_gloo=True, verbose=0)
    elif launcher == "horovodrun":
        spec_file = Path(spec.checkpoint_dir, "spec.json")
        spec_file.write_text(spec_to_json(spec))
        runner = shutil.which("horovodrun") or str(Path(sys.executable).with_name("horovodrun"))
        subprocess.run([runner, "-np", str(num_proc), "-H", f"localhost:{num_proc}", "--gloo", sys.executable,
                        "-m", "recsys_spark.deep.train", str(spec_file)], check=True)
    elif launcher == "databricks":
        from sparkdl import HorovodRunner  # Databricks ML runtimes only

        HorovodRunner(np=num_proc).run(train, spec=spec)
    elif launcher == "torch_distributor":
        from pyspark.ml.torch.distributor import TorchDistributor

        TorchDistributor(num_processes=num_proc, local_mode=True, use_gpu=use_gpu).run(
            train, replace(spec, backend="ddp"))
    else:
        raise ValueError(f"unknown launcher {launcher!r}; launchers are {', '.join(LAUNCHERS)}")
    return _results(spec, num_proc)
