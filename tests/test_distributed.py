"""Data parallelism: 2 CPU processes (gloo) train the same model as 1 process, same global batch."""

import json
import os
import shutil
import time
from functools import partial
from unittest.mock import patch

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file
from test_loop import DATA, TinyLM, config, evaluate, train_losses

from fromscratch.errors import UserError
from fromscratch.training.distributed import World, my_micro_batches
from fromscratch.training.loop import train

TOLERANCE = 1e-5
RUN_A = dict(grad_accum=2)  # plain DDP, with dropout: randomness depends on (step, micro) only
RUN_B = dict(grad_accum=4, ema_decay=0.9)  # resumed from step 4, Adam's state sharded (ZeRO)


def worker(rank: int, world_size: int, root: str) -> None:
    """One of the processes torchrun would start: the environment says who it is.

    Run A joins the group from the environment, as under torchrun, meeting at a file rather
    than a TCP port (a port picked in advance could be taken by another test meanwhile). Run B
    finds a group the caller already initialised, and leaves it to the caller.
    """
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.manual_seed(100 + rank)  # another initialisation on each rank: DDP broadcasts rank 0's
    with patch.object(dist, "init_process_group", partial(
            dist.init_process_group, init_method=f"file://{root}/meet_a", rank=rank,
            world_size=world_size)):
        result = train(TinyLM(), DATA, config(**RUN_A), out_dir=f"{root}/dist_a",
                       evaluate=evaluate)
    if rank == 0:
        with open(f"{root}/dist_a/result.json", "w") as f:
            json.dump(result.history, f)
    assert not dist.is_initialized()  # train() left the process group it joined
    dist.init_process_group("gloo", init_method=f"file://{root}/meet_b", rank=rank,
                            world_size=world_size)
    result = train(TinyLM(), DATA, config(**RUN_B, zero=True), out_dir=f"{root}/dist_b",
                   resume=True)
    assert dist.is_initialized()
    dist.destroy_process_group()
    if rank == 0:
        with open(f"{root}/dist_b/result.json", "w") as f:
            json.dump(result.history, f)


def assert_close_files(a, b):
    a, b = load_file(a), load_file(b)
    assert a.keys() == b.keys()
    for key in a:
        if a[key].dtype.is_floating_point:
            assert (a[key] - b[key]).abs().max().item() <= TOLERANCE, key


def test_two_gloo_processes_train_like_one_process(tmp_path):
    torch.manual_seed(100)
    single_a = train(TinyLM(), DATA, config(**RUN_A), out_dir=tmp_path / "single_a",
                     evaluate=evaluate)
    torch.manual_seed(100)
    single_b = train(TinyLM(), DATA, config(**RUN_B), out_dir=tmp_path / "single_b")
    # The 2-process run B continues the 1-process run from its step-4 checkpoint.
    (tmp_path / "dist_b" / "checkpoints").mkdir(parents=True)
    shutil.copytree(tmp_path / "single_b/checkpoints/step-00000004",
                    tmp_path / "dist_b/checkpoints/step-00000004")

    processes = mp.spawn(worker, args=(2, str(tmp_path)), nprocs=2, join=False)
    deadline = time.monotonic() + 600
    while not processes.join(timeout=5):  # raises if a process failed
        assert time.monotonic() < deadline, "the 2-process run hangs"

    dist_a = json.loads((tmp_path / "dist_a/result.json").read_text())
    dist_b = json.loads((tmp_path / "dist_b/result.json").read_text())
    for single, distributed, first in [(single_a, dist_a, 0), (single_b, dist_b, 4)]:
        expected = train_losses(single)[first:]
        got = [(r["step"], r["loss"], r["lr"]) for r in distributed if "loss" in r]
        assert [s for s, _, _ in got] == [s for s, _, _ in expected] == list(range(first + 1, 9))
        for (_, loss, lr), (_, loss1, lr1) in zip(got, expected, strict=True):
            assert abs(loss - loss1) <= TOLERANCE and lr == lr1
    val = [(r["step"], r["val_loss"]) for r in dist_a if "val_loss" in r]
    val1 = [(r["step"], r["val_loss"]) for r in single_a.history if "val_loss" in r]
    assert [s for s, _ in val] == [s for s, _ in val1] == [0, 4, 8]  # rank 0 evaluated, once
    assert all(abs(v - v1) <= TOLERANCE for (_, v), (_, v1) in zip(val, val1, strict=True))
    log = [json.loads(line) for line in (tmp_path / "dist_a/log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [r["step"] for r in dist_a]  # one writer: no duplicates

    for run in ["a", "b"]:  # weights, Adam's m and v (gathered from the ZeRO shards), the EMA
        single = tmp_path / f"single_{run}/checkpoints/step-00000008"
        distributed = tmp_path / f"dist_{run}/checkpoints/step-00000008"
        names = ["model.safetensors", "optimizer.safetensors"] + ["ema.safetensors"] * (run == "b")
        assert sorted(p.name for p in distributed.iterdir()) == sorted([*names, "state.json"])
        for name in names:
            assert_close_files(single / name, distributed / name)


def test_each_process_takes_its_share_of_the_micro_batches():
    shares = [list(my_micro_batches(World(rank, 3), 6)) for rank in range(3)]
    assert shares == [[0, 3], [1, 4], [2, 5]]
    assert sorted(sum(shares, [])) == list(range(6))
    assert list(my_micro_batches(World(), 4)) == [0, 1, 2, 3]
    with pytest.raises(UserError, match="multiple of the number of processes"):
        my_micro_batches(World(0, 2), 3)
