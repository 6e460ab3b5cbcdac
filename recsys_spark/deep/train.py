"""One training function for every deep model and every launcher.

`train(spec)` runs in each worker process: under Horovod (horovod.spark.run, horovodrun,
Databricks' HorovodRunner) or under torch.distributed DDP (TorchDistributor). It pins the GPU by
local rank when there is one, reads its Petastorm shard, averages gradients across ranks,
evaluates NDCG@k on its share of the validation users (summed across ranks), stops early, and
rank 0 writes a checkpoint each epoch from which a new run resumes.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch import nn

from recsys_spark.deep.loader import epoch_batches, shard_rows
from recsys_spark.deep.models import SideFeatures, build_model
from recsys_spark.logs import setup_logging, track

log = logging.getLogger("recsys_spark")


@dataclass
class TrainSpec:
    """Everything a worker needs, picklable: it travels to Spark tasks and through a file."""
    model: str
    n_users: int
    n_items: int
    train_path: str
    fields: list[str]
    validation_path: str
    checkpoint_dir: str
    side: dict[str, Sequence[int]] = field(default_factory=dict)  # lookups by id: arrays travel as one buffer
    max_len: int = 50
    dim: int = 64
    loss: str = "ce"
    negatives: int = 256              # loss "sampled": negatives shared by a batch
    hyper: dict = field(default_factory=dict)  # per-model settings: {"sasrec": {...}, ...}
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    patience: int = 3
    max_minutes: float = 0.0          # training time budget (0: none), checked after each epoch
    seed: int = 42
    k: int = 10
    backend: str = "horovod"          # horovod | ddp
    workers: int = 1                  # Petastorm reader threads; 1 keeps the order reproducible
    mixed_precision: bool = False     # bfloat16 autocast, on GPU only

    def build(self) -> nn.Module:
        side = SideFeatures(**{k: torch.as_tensor(np.asarray(v)) for k, v in self.side.items()}) if self.side else None
        return build_model(self.model, self.n_users, self.n_items, side, self.max_len, self.dim, self.loss,
                           self.negatives, self.hyper)


class Objective(nn.Module):
    """The model's loss as a module, so DDP's forward hooks see the computation."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        return self.model.loss(batch, generator)


class Horovod:
    def __init__(self):
        import horovod.torch as hvd

        hvd.init()
        self.hvd, self.rank, self.size, self.local_rank = hvd, hvd.rank(), hvd.size(), hvd.local_rank()

    def wrap(self, objective: Objective, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """A new optimizer over the same parameters (its state starts empty: load state after this)."""
        return self.hvd.DistributedOptimizer(optimizer, named_parameters=objective.named_parameters())

    def sync(self, objective: Objective, optimizer: torch.optim.Optimizer) -> nn.Module:
        self.hvd.broadcast_parameters(objective.state_dict(), root_rank=0)
        self.hvd.broadcast_optimizer_state(optimizer, root_rank=0)
        return objective

    def average(self, values: torch.Tensor) -> torch.Tensor:
        return self.hvd.allreduce(values, op=self.hvd.Average)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        return self.hvd.allreduce(values, op=self.hvd.Sum)

    def shutdown(self) -> None:
        self.hvd.shutdown()


class TorchDDP:
    """torch.distributed from the environment TorchDistributor (or torchrun) sets."""

    def __init__(self):
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        self.dist, self.rank, self.size = dist, dist.get_rank(), dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))

    def wrap(self, objective: Objective, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        return optimizer

    def sync(self, objective: Objective, optimizer: torch.optim.Optimizer) -> nn.Module:
        """DDP broadcasts rank 0's parameters when it wraps the module."""
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(objective, device_ids=[self.local_rank] if torch.cuda.is_available() else None)

    def average(self, values: torch.Tensor) -> torch.Tensor:
        return self.sum(values) / self.size

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        values = values.clone()
        self.dist.all_reduce(values)
        return values

    def shutdown(self) -> None:
        self.dist.destroy_process_group()


BACKENDS = {"horovod": Horovod, "ddp": TorchDDP}


def validation_rows(path: str, rank: int, size: int) -> dict[str, np.ndarray]:
    """This rank's share of the held-out users: every size-th row from `rank` on."""
    table = pq.read_table(path).to_pydict()
    return {k: v[rank::size] for k, v in table.items()}


@torch.no_grad()
def rank_of_targets(model: nn.Module, rows: dict, device: torch.device, batch: int = 512) -> torch.Tensor:
    """The 0-based rank of each held-out target among all items, seen items and padding removed."""
    model.eval()
    ranks = []
    for start in range(0, len(rows["target"]), batch):
        part = {k: v[start:start + batch] for k, v in rows.items()}
        if model.kind == "sequence":
            scores = model.score_all(torch.tensor(np.array(part["inputs"]), device=device))
        else:
            scores = model.score_all(torch.tensor(part["user_idx"], device=device))
        scores = scores.float()
        scores[:, 0] = float("-inf")
        for i, seen in enumerate(part["seen"]):
            if seen:
                scores[i, torch.tensor(seen, device=device)] = float("-inf")
        target = torch.tensor(part["target"], device=device)
        own = scores.gather(1, target[:, None])
        ranks.append((scores > own).sum(1))
    model.train()
    return torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long)


def hit_and_ndcg(ranks: torch.Tensor, k: int) -> tuple[float, float]:
    hit = (ranks < k).double()
    return float(hit.sum()), float((hit / torch.log2(ranks.double() + 2)).sum())


def _checkpoint(spec: TrainSpec) -> Path:
    return Path(spec.checkpoint_dir) / "last.pt"


def _save(state: dict, path: Path) -> None:
    """Written beside and renamed: a run killed mid-write leaves the previous checkpoint whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def weights_digest(model: nn.Module) -> list[float]:
    """Sum and sum of squares of every parameter: equal across ranks iff training stayed in sync."""
    flat = torch.cat([p.detach().float().cpu().ravel() for p in model.parameters()])
    return [float(flat.double().sum()), float((flat.double() ** 2).sum())]


def train(spec: TrainSpec) -> dict:
    """Train in this worker; returns (and writes as result-<rank>.json) the history and a digest
    of the final weights."""
    setup_logging()  # a worker process: Spark tasks and horovodrun children start without handlers
    dist = BACKENDS[spec.backend]()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(dist.local_rank)
    else:
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // dist.size))
    device = torch.device("cuda", dist.local_rank) if cuda else torch.device("cpu")
    torch.manual_seed(spec.seed)
    model = spec.build().to(device)
    # the learning rate grows with the world size: the effective batch is size x batch_size
    objective = Objective(model)
    optimizer = dist.wrap(objective, torch.optim.Adam(model.parameters(), lr=spec.lr * dist.size))
    state = {"epoch": 0, "best": -1.0, "best_model": None, "bad_epochs": 0, "history": []}
    ckpt = _checkpoint(spec)
    if ckpt.exists():
        saved = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(saved.pop("model"))
        optimizer.load_state_dict(saved.pop("optimizer"))
        state = saved
        if dist.rank == 0:
            log.info("[train_deep] %s: resuming after epoch %d from %s", spec.model, state["epoch"], ckpt)
    objective = dist.sync(objective, optimizer)
    shards = shard_rows(spec.train_path, dist.size)
    steps = min(shards) // spec.batch_size
    if steps == 0:
        raise ValueError(f"{spec.train_path}: the smallest shard has {min(shards)} rows, less than one batch "
                         f"of {spec.batch_size}")
    validation = validation_rows(spec.validation_path, dist.rank, dist.size)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and spec.mixed_precision)
    trained = sum(h["seconds"] for h in state["history"])
    for epoch in range(state["epoch"], spec.epochs):
        if state["bad_epochs"] >= spec.patience:
            break
        if spec.max_minutes and trained > spec.max_minutes * 60:
            if dist.rank == 0:
                log.info("[train_deep] %s: stopping after %.0fs, the budget of %g minutes", spec.model, trained,
                         spec.max_minutes)
            break
        start = time.perf_counter()
        torch.manual_seed(spec.seed * 1000 + epoch * 10 + dist.rank)
        generator = torch.Generator().manual_seed(spec.seed * 7919 + epoch * 10 + dist.rank)
        total = torch.zeros(1, dtype=torch.float64)
        batches = epoch_batches(spec.train_path, spec.fields, spec.batch_size, dist.rank, dist.size,
                                spec.seed + epoch, spec.workers)
        if dist.rank == 0:
            batches = track(batches, f"[train_deep] {spec.model} epoch {epoch + 1}", total=steps)
        for step, batch in enumerate(batches):
            if step >= steps:  # the rest of a larger shard is read (and counted), not trained on
                continue
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with autocast:
                loss = objective(batch, generator)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach().double().cpu()
        seconds = time.perf_counter() - start
        ranks = rank_of_targets(model, validation, device)
        hits, ndcg = hit_and_ndcg(ranks, spec.k)
        sums = dist.sum(torch.tensor([hits, ndcg, float(len(ranks))], dtype=torch.float64))
        mean_loss = float(dist.average(total / steps))
        record = {"epoch": epoch + 1, "loss": round(mean_loss, 5), "val_hr": float(sums[0] / sums[2]),
                  "val_ndcg": float(sums[1] / sums[2]), "seconds": round(seconds, 2),
                  "samples_per_s": round(steps * spec.batch_size * dist.size / seconds, 1)}
        state["history"].append(record)
        trained += float(dist.average(torch.tensor([seconds], dtype=torch.float64))[0])  # one clock for all ranks
        if record["val_ndcg"] > state["best"]:
            state.update(best=record["val_ndcg"], best_model=copy.deepcopy(model.state_dict()), bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        if dist.rank == 0:
            log.info("[train_deep] %s epoch %d: %s", spec.model, epoch + 1, json.dumps(record))
            _save({**state, "model": model.state_dict(), "optimizer": optimizer.state_dict()}, ckpt)
    result = {"rank": dist.rank, "size": dist.size, "history": state["history"], "best_val_ndcg": state["best"],
              "digest": weights_digest(model), "device": str(device)}
    if dist.rank == 0 and state["best_model"] is not None:
        _save(state["best_model"], Path(spec.checkpoint_dir) / "best_model.pt")
    Path(spec.checkpoint_dir, f"result-{dist.rank}.json").write_text(json.dumps(result))
    dist.shutdown()
    return result


def main(argv: list[str]) -> int:
    """`horovodrun -np N python -m recsys_spark.deep.train SPEC.json`: one worker of a run."""
    train(TrainSpec(**json.loads(Path(argv[0]).read_text())))
    return 0


def spec_to_json(spec: TrainSpec) -> str:
    return json.dumps(asdict(spec), default=lambda array: array.tolist())  # side lookups are arrays


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
