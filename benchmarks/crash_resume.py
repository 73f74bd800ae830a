"""Kill -9 a training run at random moments; every time it must resume exactly.

    python benchmarks/crash_resume.py [--kills 20] [--steps 150] [--seed 0]

A tiny GPT (dropout on, an EMA of the weights) trains in a child process that saves a checkpoint
after *every* step, so most of its time is spent writing checkpoints and many kills land in the
middle of a write. The parent waits until the child has trained a step, sleeps a random moment,
and sends SIGKILL (no clean-up runs: as a power cut would leave it). After each kill it checks:

  - every checkpoint folder on disk is complete (sizes, safetensors headers, JSON), and the
    newest one loads with no "skipping damaged checkpoint" warning;
  - the run can be resumed from it (the next child is started with resume=True).

After the last kill the run is finished without interruption, and its loss trajectory (log.jsonl,
one record per step) must equal, float for float, that of one uninterrupted run (also a child
process with one thread: with more threads a matmul may sum in another order).
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

STEPS_PER_LIFE = 2  # the child must finish this many new steps before a kill is due


def make_run(steps: int):
    """(model, batches, config): the same tiny GPT training in every process."""
    import torch

    from fromscratch.data.text import LMBatches
    from fromscratch.language.gpt import GPT, GPTConfig
    from fromscratch.training.loop import TrainConfig

    torch.manual_seed(0)
    ids = (torch.arange(4000) * 7 + torch.randint(0, 3, (4000,))) % 32
    model = GPT(GPTConfig(vocab_size=32, block_size=16, n_layer=1, n_head=2, n_embd=32,
                          dropout=0.1))
    cfg = TrainConfig(max_steps=steps, lr=3e-3, warmup_steps=5, log_interval=1,
                      checkpoint_interval=1, ema_decay=0.9, progress=False)
    return model, LMBatches(ids, block_size=16, batch_size=4, seed=1), cfg


def child(out_dir: str, steps: int) -> None:
    """The training process that gets killed: resume if there is a checkpoint, else start."""
    import torch

    from fromscratch.training.loop import train

    torch.set_num_threads(1)
    model, batches, cfg = make_run(steps)
    resume = (Path(out_dir) / "checkpoints" / "latest").exists()
    train(model, batches, cfg, out_dir=out_dir, resume=resume, overwrite=not resume)


def read_records(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]


def logged_steps(out_dir: Path) -> int:
    log = out_dir / "log.jsonl"
    return log.read_text().count("\n") if log.exists() else 0


def check_every_checkpoint(out_dir: Path, steps: int) -> int:
    """Assert every checkpoint folder is whole and the newest loads cleanly; return its step."""
    from fromscratch.training.checkpoint import _read_folder, _step_folders, load_training_state
    from fromscratch.training.ema import EMA

    for folder in _step_folders(out_dir / "checkpoints"):
        _read_folder(folder)  # raises on a truncated or damaged file
    model, _, cfg = make_run(steps)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "skipping damaged checkpoint" warning fails the run
        return load_training_state(out_dir, model, ema=EMA(model, cfg.ema_decay))["step"]


def run(kills: int, steps: int, seed: int, workdir: Path) -> dict:
    """Kill the child `kills` times, then finish; returns counts and the two loss trajectories."""
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    uninterrupted = workdir / "uninterrupted"
    subprocess.run([sys.executable, __file__, "--child", str(uninterrupted), "--steps", str(steps)],
                   env=env, check=True)
    reference = [r["loss"] for r in read_records(uninterrupted) if "loss" in r]

    out_dir = workdir / "run"
    command = [sys.executable, __file__, "--child", str(out_dir), "--steps", str(steps)]
    in_write = resumed_steps = 0
    done = 0
    while done < kills:
        start_steps = logged_steps(out_dir)
        process = subprocess.Popen(command, env=env)
        while logged_steps(out_dir) < start_steps + STEPS_PER_LIFE and process.poll() is None:
            time.sleep(0.01)
        if process.poll() is not None:  # finished before a kill was due: start over
            if process.returncode != 0:
                raise RuntimeError(f"the training child failed with code {process.returncode}")
            break
        time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait()
        done += 1
        leftovers = list((out_dir / "checkpoints").glob(".*"))  # temporary names: a cut write
        in_write += bool(leftovers)
        resumed_steps = check_every_checkpoint(out_dir, steps)
    subprocess.run(command, env=env, check=True)  # the last life runs to the end
    resumed = [r["loss"] for r in read_records(out_dir) if "loss" in r]
    return {"kills": done, "kills_inside_a_checkpoint_write": in_write,
            "last_resumed_step": resumed_steps, "reference": reference, "resumed": resumed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps)
        return
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        result = run(args.kills, args.steps, args.seed, Path(workdir))
    same = result["resumed"] == result["reference"]
    print("| kills (SIGKILL) | inside a checkpoint write | corrupt checkpoints | "
          "loss trajectory after resuming | seconds |")
    print("|---|---|---|---|---|")
    print(f"| {result['kills']} | {result['kills_inside_a_checkpoint_write']} | 0 | "
          f"{'identical' if same else 'DIFFERENT'} ({len(result['resumed'])} steps) | "
          f"{time.perf_counter() - began:.0f} |")
    if not same:
        for step, (a, b) in enumerate(zip(result["reference"], result["resumed"], strict=False)):
            print(f"step {step + 1}: uninterrupted {a!r}, resumed {b!r}")
    if not same or result["kills"] < args.kills:
        sys.exit(1)


if __name__ == "__main__":
    main()
