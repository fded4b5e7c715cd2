"""DistributedDataParallel: a model built with conv_ext.Conv2d trains in 2 processes (gloo, on one host,
loopback only) to exactly the weights of a single process that sees the combined batch."""
import datetime
import os
import socket
import time
from pathlib import Path
from typing import Dict

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import conv_ext

WORLD_SIZE = 2
STEPS = 3
PER_RANK_BATCH = 3
TIMEOUT_S = 120  # a guard against a hung process group, not a timing assertion


def build_model() -> nn.Module:
    """Two conv_ext convolutions (strided, grouped, with and without bias) and a linear head, float64."""
    torch.manual_seed(0)
    return nn.Sequential(
        conv_ext.Conv2d(3, 8, 3, stride=2, padding=1), nn.Tanh(),
        conv_ext.Conv2d(8, 8, (3, 2), padding=(1, 0), groups=2, bias=False), nn.Tanh(),
        nn.Flatten(), nn.Linear(8 * 4 * 3, 5),
    ).double()


def make_data() -> Dict[str, torch.Tensor]:
    """The combined batch of every step: inputs (STEPS, WORLD_SIZE * PER_RANK_BATCH, 3, 8, 8) and targets."""
    generator = torch.Generator().manual_seed(1)
    batch = WORLD_SIZE * PER_RANK_BATCH
    return {"inputs": torch.randn(STEPS, batch, 3, 8, 8, generator=generator, dtype=torch.float64),
            "targets": torch.randn(STEPS, batch, 5, generator=generator, dtype=torch.float64)}


def train(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> None:
    """STEPS of SGD on a mean squared error (the mean makes DDP's gradient average equal the full batch's)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(STEPS):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(inputs[step]), targets[step]).backward()
        optimizer.step()


def _worker(rank: int, port: int, out_dir: str) -> None:
    """One DDP replica: its slice of every combined batch; saves its final state_dict."""
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # loopback only
    torch.set_num_threads(1)  # two processes on a small machine
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE,
                            timeout=datetime.timedelta(seconds=TIMEOUT_S))
    try:
        model = nn.parallel.DistributedDataParallel(build_model())
        data = make_data()
        mine = slice(rank * PER_RANK_BATCH, (rank + 1) * PER_RANK_BATCH)
        train(model, data["inputs"][:, mine], data["targets"][:, mine])
        torch.save(model.module.state_dict(), Path(out_dir) / f"rank{rank}.pt")
        # Rank 0 hosts the TCP store: without this, it could tear the store down while rank 1 still talks to it
        # (about 1 run in 25 had rank 1 abort, "terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_replicas(out_dir: Path) -> None:
    """Runs the WORLD_SIZE workers to the end; raises if one fails or they hang."""
    context = mp.start_processes(_worker, args=(free_port(), str(out_dir)), nprocs=WORLD_SIZE, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        # join() returns when any worker exits (False while others run) and raises if one failed.
        while not context.join(timeout=max(0.0, deadline - time.monotonic())):
            assert time.monotonic() < deadline, f"the DDP workers did not finish within {TIMEOUT_S} s"
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()


def test_ddp_replicas_match_a_single_process_on_the_combined_batch(tmp_path):
    try:
        run_replicas(tmp_path)
    except mp.ProcessExitedException as error:
        # About 1 run in 30, before and after this project's kernels changed, a worker aborts inside the
        # process-group machinery ("terminate called without an active exception", SIGABRT, ~1 s after start).
        # One more try, from scratch: an error of ours would fail again.
        if error.signal_name != "SIGABRT":
            raise
        run_replicas(tmp_path)
    replicas = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]

    single = build_model()
    initial = {name: value.clone() for name, value in single.state_dict().items()}
    data = make_data()
    train(single, data["inputs"], data["targets"])

    expected = single.state_dict()
    assert replicas[0].keys() == expected.keys()
    for name, value in expected.items():
        assert not torch.equal(value, initial[name]), f"{name} did not train"
        assert torch.equal(replicas[0][name], replicas[1][name]), f"{name} differs between the replicas"
        torch.testing.assert_close(replicas[0][name], value, rtol=1e-12, atol=1e-12, msg=lambda m: f"{name}: {m}")
