"""DistributedDataParallel runs for the tests: 2 processes, gloo on the CPU, forked from the test process the
way a notebook launches them (`torch.multiprocessing.start_processes(..., start_method="fork")`), each rank's
loop under `nbdebug.watch(ddp_model, opt)` and the whole launch under `nbdebug.watch_ranks()`."""

from __future__ import annotations

import contextlib
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

import nbdebug
from tests.watch_loops import digits

BUGS = ("healthy", "duplicate", "sampler_epoch", "bn_unsynced", "bypass", "unused", "straggler")


class Net(nn.Module):
    """The digits MLP with batch norm; `branch`: an extra layer only rank 1's forward uses."""

    def __init__(self, branch: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU())
        self.head = nn.Linear(64, 10)
        self.extra = nn.Linear(64, 64) if branch else None

    def forward(self, x: torch.Tensor, use_extra: bool = False) -> torch.Tensor:
        h = self.body(x)
        if self.extra is not None and use_extra:
            h = torch.relu(self.extra(h))
        return self.head(h)


def train_rank(
    rank: int, world: int, port: int, bug: str, epochs: int, data, watched: bool = True, save: str = ""
) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        x, y = data
        ds = TensorDataset(x, y)
        torch.manual_seed(0)
        net = Net(branch=bug == "unused")
        sync = {"broadcast_buffers": False} if bug == "bn_unsynced" else {}
        model = DDP(net, find_unused_parameters=bug == "unused", **sync)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        if bug == "duplicate":
            sampler, loader = None, DataLoader(ds, batch_size=32, shuffle=False)
        else:
            sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=0)
            loader = DataLoader(ds, batch_size=32, sampler=sampler)
        with nbdebug.watch(model, opt) if watched else contextlib.nullcontext():
            for epoch in range(epochs):
                if sampler is not None and bug != "sampler_epoch":
                    sampler.set_epoch(epoch)
                model.train()
                for xb, yb in loader:
                    if bug == "straggler" and rank == 1:
                        time.sleep(0.03)  # a slow data pipeline on one rank
                    opt.zero_grad()
                    if bug == "bypass":
                        out = model.module(xb)  # the DDP wrapper bypassed: no gradient all-reduce
                    elif bug == "unused":
                        out = model(xb, use_extra=rank == 1)
                    else:
                        out = model(xb)
                    F.cross_entropy(out, yb).backward()
                    opt.step()
        if save and rank == 0:
            torch.save(net.state_dict(), save)
    finally:
        # a gloo worker thread that destroys a finished collective may need the GIL (its thread-local state
        # holds a Python object), while destroy_process_group holds the GIL and joins that thread: a
        # deadlock seen about once in ten runs, with or without nbdebug (gdb: ProcessGroupGloo::runLoop ->
        # ~AsyncAllreduceWork -> gil_scoped_acquire; the class of pytorch/pytorch#56297). Sleeping releases
        # the GIL so the workers finish first.
        time.sleep(0.2)
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ddp(
    bug: str, epochs: int = 2, world: int = 2, watched: bool = True, save: str = ""
) -> nbdebug.DistributedRun:
    """Launch `world` ranks of the digits run with `bug` planted; the notebook-side result (`save`: where
    rank 0 saves its final weights)."""
    import torch.multiprocessing as mp

    x, y = digits()
    data = (x[:640], y[:640])
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    with nbdebug.watch_ranks() as run:
        mp.start_processes(
            train_rank,
            args=(world, free_port(), bug, epochs, data, watched, save),
            nprocs=world,
            start_method="fork",
        )
    return run


def train_accelerate(data, epochs: int = 2) -> None:
    """One rank as accelerate prepares it (its DDP wrapper, its sharded loader, AcceleratedOptimizer)."""
    from accelerate import Accelerator

    torch.set_num_threads(1)
    acc = Accelerator(cpu=True)
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(TensorDataset(*data), batch_size=32, shuffle=True)
    model, opt, loader = acc.prepare(model, opt, loader)
    with nbdebug.watch(model, opt):
        for _ in range(epochs):
            for xb, yb in loader:
                opt.zero_grad()
                acc.backward(F.cross_entropy(model(xb), yb))
                opt.step()
