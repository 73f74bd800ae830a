"""Training-step cost of the trainer's scale options on this machine: precision and checkpointing.

    python benchmarks/train_scale.py [--layers 4] [--width 256] [--batch 16] [--block 128]

One GPT training step (forward, backward, AdamW) under float32, bfloat16 autocast, float16
autocast with a gradient scaler, and float32 with activation checkpointing. The variants take
turns round after round and each keeps its best time, so a busy moment of a shared machine hits
all alike; the table reports each as a ratio to float32 measured in the same run. (The memory
that activation checkpointing saves is measured exactly in lesson 22.)

On a CPU, bfloat16 helps only where the processor has bfloat16 matrix instructions (AMX,
AVX512-BF16); elsewhere the casts cost more than they save. The GPU is where it pays.
"""

import argparse
import time
from contextlib import nullcontext

import torch

from fromscratch.language.gpt import GPT, GPTConfig


def make_step(config: GPTConfig, batch, dtype: torch.dtype, checkpointing: bool):
    torch.manual_seed(0)
    model = GPT(config)
    model.grad_checkpointing = checkpointing
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cpu", enabled=dtype == torch.float16)
    autocast = (torch.autocast("cpu", dtype=dtype) if dtype != torch.float32 else nullcontext())

    def step():
        with autocast:
            loss = model.loss(batch)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    config = GPTConfig(vocab_size=256, block_size=args.block, n_layer=args.layers,
                       n_head=max(1, args.width // 64), n_embd=args.width, dropout=0.0)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 256, (args.batch, args.block + 1), generator=g)
    batch = (ids[:, :-1], ids[:, 1:])
    variants = {
        "float32": (torch.float32, False),
        "bfloat16 autocast": (torch.bfloat16, False),
        "float16 autocast + scaler": (torch.float16, False),
        "float32 + activation checkpointing": (torch.float32, True),
    }
    steps = {}
    for name, (dtype, checkpointing) in variants.items():
        steps[name] = make_step(config, batch, dtype, checkpointing)
        steps[name]()  # warm up
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            best[name] = min(best[name], time.perf_counter() - start)

    print(f"GPT {args.layers} layers × {args.width} wide, batch {args.batch} × {args.block} "
          f"tokens, {torch.get_num_threads()} threads; best of {args.rounds} steps each\n")
    print("| variant | step (ms) | time vs float32 |")
    print("|---|---|---|")
    for name in steps:
        print(f"| {name} | {best[name] * 1e3:.0f} | {best[name] / best['float32']:.2f}× |")


if __name__ == "__main__":
    main()
