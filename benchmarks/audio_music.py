"""Audio and music benchmarks: spoken digits (FSDD) and the JSB chorales.

    python benchmarks/audio_music.py                     # every task below
    python benchmarks/audio_music.py --quick             # a fifth of the steps: a smoke run
    python benchmarks/audio_music.py --only jsb          # one task: audio, audio-speakers, jsb

The tasks also appear in `benchmarks/beyond_language.py`'s table. Each returns rows
(task, metric, ours, reference figure, training seconds of ours on this machine's CPU).
"""

import argparse
import os
import sys
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TASKS = {}


def task(name: str):
    def register(fn):
        TASKS[name] = fn
        return fn
    return register


# ---------------------------------------------------------------------------------------------
# Spoken digits
# ---------------------------------------------------------------------------------------------
def fsdd_recordings():
    from fromscratch.data.audio import load_fsdd

    local = SHARED / "free-spoken-digit-dataset"
    return load_fsdd(local if local.is_dir() else None)  # else: download once, then the cache


def train_digits(train_recs, test_recs, quick: bool, steps_factor: float = 1.0):
    """The audio recipe on one split: (test accuracy, training seconds)."""
    from fromscratch.audio import RECIPE, AudioConfig, train_classifier
    from fromscratch.train import TrainConfig

    steps = int(RECIPE["max_steps"] * steps_factor) // (5 if quick else 1)
    cfg = TrainConfig(max_steps=steps, lr=RECIPE["lr"], warmup_steps=min(100, steps // 10),
                      weight_decay=RECIPE["weight_decay"], eval_interval=steps, progress=False)
    _, result = train_classifier(train_recs, test_recs, AudioConfig(), cfg,
                                 batch_size=RECIPE["batch_size"])
    return result.last("test_accuracy"), result.seconds


@task("audio")
def audio_random_split(quick: bool) -> list[tuple]:
    from fromscratch.data.audio import random_split

    accuracy, seconds = train_digits(*random_split(fsdd_recordings(), 0.2, seed=0), quick)
    return [("FSDD spoken digits, random 80/20 split: log-mel + transformer encoder",
             "test accuracy (600 recordings)", f"{accuracy:.1%}",
             "original tutorial 97.1%; target ≥ 98%", seconds)]


@task("audio-speakers")
def audio_held_out_speaker(quick: bool) -> list[tuple]:
    from fromscratch.data.audio import SPEAKERS, speaker_split

    recordings = fsdd_recordings()
    scores, total = {}, 0.0
    for speaker in SPEAKERS:  # train on five speakers, test on the sixth; half the steps each
        scores[speaker], seconds = train_digits(*speaker_split(recordings, speaker), quick, 0.5)
        total += seconds
    mean = sum(scores.values()) / len(scores)
    folds = ", ".join(f"{s} {a:.0%}" for s, a in scores.items())
    return [("FSDD, held-out speaker (6 folds: train 2,500 / test 500)", "mean test accuracy",
             f"{mean:.1%} ({folds})", "the random split above; a new voice is harder", total)]


# ---------------------------------------------------------------------------------------------
# JSB chorales
# ---------------------------------------------------------------------------------------------
PUBLISHED = {  # Boulanger-Lewandowski, Bengio & Vincent (ICML 2012), JSB, NLL per time step
    False: "RNN 8.71, RNN + HF 8.58 (same factorisation)",
    True: "RNN-RBM 7.27, RNN-NADE 5.56 (5.19 with HF)",
}


@task("jsb")
def jsb_chorales(quick: bool) -> list[tuple]:
    from fromscratch.data.music import load_jsb, to_piano_roll
    from fromscratch.music import RECIPE, MusicConfig, evaluate_nll, train_music
    from fromscratch.train import TrainConfig

    local = SHARED / "jsb-chorales"
    chorales = load_jsb("quarter", local if local.is_dir() else None)
    rolls = {split: [to_piano_roll(c) for c in cs] for split, cs in chorales.items()}
    longest = max(len(r) for split in rolls.values() for r in split)
    steps = RECIPE["max_steps"] // (5 if quick else 1)
    rows = []
    for within_step, name in ((False, "keys independent given the past"),
                              (True, "keys chained low to high within a step")):
        cfg = TrainConfig(max_steps=steps, lr=RECIPE["lr"], warmup_steps=min(50, steps // 10),
                          weight_decay=RECIPE["weight_decay"], eval_interval=steps,
                          progress=False)
        config = MusicConfig(block_size=longest + 1, within_step=within_step)
        model, result = train_music(rolls, config, cfg, batch_size=RECIPE["batch_size"],
                                    max_transpose=RECIPE["max_transpose"])
        nll = evaluate_nll(model, rolls["test"])
        rows.append((f"JSB chorales (quarter notes), causal transformer, {name}",
                     "test NLL per time step (nats)", f"{nll:.2f}",
                     f"Boulanger-Lewandowski 2012: {PUBLISHED[within_step]}", result.seconds))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the training steps")
    parser.add_argument("--only", choices=sorted(TASKS), action="append")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rows = [row for name in args.only or list(TASKS) for row in TASKS[name](args.quick)]
    print("| task | metric | ours | reference | CPU time (s) |")
    print("|---|---|---|---|---|")
    for name, metric, ours, reference, seconds in rows:
        print(f"| {name} | {metric} | {ours} | {reference} | {seconds:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
