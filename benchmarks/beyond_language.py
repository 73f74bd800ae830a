"""Transformers beyond language: the same GPT blocks on images, digit strings, sound and music.

    python benchmarks/beyond_language.py                 # every task (about 50 minutes, 2 cores)
    python benchmarks/beyond_language.py --quick         # a fifth of the steps: a smoke run
    python benchmarks/beyond_language.py --only vit      # one task (see --help for the names)

Prints one markdown table: task, metric, ours, a reference figure (a peer trained in the same
run where there is one, else a published or target figure), and the training time of ours: wall
clock and the process's CPU time (both threads), with the load average before and after, so that
numbers taken on a busy machine can be read against an idle one. Full runs also draw
docs/img/vit_attention.png and docs/img/imagegpt_samples.png.

To add a task, write a function `quick -> list[Row]` and decorate it with `@task("name")`.
"""

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"


@dataclass
class Row:
    task: str
    metric: str
    ours: str
    reference: str
    seconds: float | None = None  # training time of ours, wall clock
    cpu_seconds: float | None = None  # ... and the CPU time the process used meanwhile


TASKS: dict[str, Callable[[bool], list[Row]]] = {}


def task(name: str):
    """Register a benchmark task under `name` (for --only)."""
    def register(fn):
        TASKS[name] = fn
        return fn
    return register


def timed_train(model, batches, recipe, quick: bool, evaluate=None):
    """Train with the recipe (a fifth of the steps when quick): (TrainResult, CPU seconds)."""
    from fromscratch.training.loop import TrainConfig, train

    settings = dict(recipe.train, progress=False)
    if quick:
        settings["max_steps"] = max(20, settings["max_steps"] // 5)
    settings["eval_interval"] = settings["max_steps"]  # evaluate once, at the end
    cpu = time.process_time()
    result = train(model, batches, TrainConfig(**settings), evaluate=evaluate)
    return result, time.process_time() - cpu


def train_cnn(train_set, test_set, quick: bool, seed: int = 0, steps: int | None = None):
    """The CNN baseline with its recipe (or `steps` steps): (model, test accuracy, wall seconds,
    CPU seconds)."""
    from dataclasses import replace

    from fromscratch.beyond.vit import RECIPES, CNNConfig, SmallCNN, accuracy
    from fromscratch.data.images import ImageBatches

    recipe = RECIPES["cnn"]
    if steps is not None:
        recipe = replace(recipe, train=dict(recipe.train, max_steps=steps))
    torch.manual_seed(seed)
    cnn = SmallCNN(CNNConfig(**recipe.model))
    batches = ImageBatches(train_set, recipe.batch_size, seed=seed, **recipe.extra)
    result, cpu = timed_train(cnn, batches, recipe, quick)
    return cnn, accuracy(cnn, test_set.x, test_set.y), result.seconds, cpu


# ---------------------------------------------------------------------------------------------
# Vision transformer
# ---------------------------------------------------------------------------------------------
def train_vit(train_set, quick: bool, teacher=None):
    """The ViT recipe, alone or distilled from `teacher`: (ViT, wall seconds, CPU seconds)."""
    from fromscratch.beyond.vit import DISTILLATION, RECIPES, Distilled, ViT, ViTConfig
    from fromscratch.data.images import ImageBatches

    recipe = RECIPES["vit"]
    torch.manual_seed(0)
    vit = ViT(ViTConfig(**recipe.model))
    batches = ImageBatches(train_set, recipe.batch_size, seed=0, **recipe.extra)
    trained = vit if teacher is None else Distilled(vit, teacher, **DISTILLATION)
    result, cpu = timed_train(trained, batches, recipe, quick)
    return vit, result.seconds, cpu


def vit_name(vit) -> str:
    config = vit.config
    if not config.stem_channels:
        return f"ViT, patches {config.patch_size}×{config.patch_size}"
    stem = "conv + max-pool" if config.stem_downsample == "maxpool" else "stride-2 conv"
    return (f"ViT, {len(config.stem_channels)}-layer {stem} stem + {config.num_patches} tokens, "
            f"{config.n_layer} × {config.n_embd}, shifts/rotations, "
            f"label smoothing {config.label_smoothing}")


@task("vit")
def vit_mnist(quick: bool) -> list[Row]:
    from sklearn.linear_model import LogisticRegression

    from fromscratch.beyond.vit import accuracy
    from fromscratch.data.images import mnist_5k_split

    train_set, test_set = mnist_5k_split()
    start, cpu = time.perf_counter(), time.process_time()
    logistic = LogisticRegression(max_iter=300).fit(train_set.x.flatten(1), train_set.y)
    logistic_seconds, logistic_cpu = time.perf_counter() - start, time.process_time() - cpu
    logistic_acc = logistic.score(test_set.x.flatten(1), test_set.y)
    _, cnn_acc, cnn_seconds, cnn_cpu = train_cnn(train_set, test_set, quick)
    vit, seconds, cpu = train_vit(train_set, quick)
    vit_acc = accuracy(vit, test_set.x, test_set.y)
    return [
        Row("MNIST 4k/1k: logistic regression", "test accuracy", f"{logistic_acc:.1%}",
            "≈ 89% (target figure)", logistic_seconds, logistic_cpu),
        Row("MNIST 4k/1k: small CNN", "test accuracy", f"{cnn_acc:.1%}", "≈ 98% in ≈ 20 s",
            cnn_seconds, cnn_cpu),
        Row(f"MNIST 4k/1k: {vit_name(vit)}", "test accuracy", f"{vit_acc:.1%}",
            f"CNN in this run: {cnn_acc:.1%}; target ≥ 98% in ≤ 300 s", seconds, cpu),
    ]


@task("vit-distilled")
def vit_distilled(quick: bool) -> list[Row]:
    """The same ViT recipe trained against the CNN's softened outputs as well as the labels."""
    from fromscratch.beyond.vit import DISTILLATION, accuracy, attention_rollout, cls_attention_map
    from fromscratch.data.images import mnist_5k_split, save_image_grid

    train_set, test_set = mnist_5k_split()
    cnn, cnn_acc, cnn_seconds, cnn_cpu = train_cnn(train_set, test_set, quick)
    vit, seconds, cpu = train_vit(train_set, quick, teacher=cnn)
    vit_acc = accuracy(vit, test_set.x, test_set.y)
    if not quick:
        x = test_set.x[test_set.one_per_class(8)]  # one digit of each of 8 classes
        with torch.no_grad():
            _, attentions = vit.eval()(x, return_attentions=True)
        maps = [x]
        for grid in (cls_attention_map(attentions[-1]), attention_rollout(attentions)):
            grid = torch.nn.functional.interpolate(grid[:, None], size=28, mode="nearest")
            low, high = grid.amin((2, 3), keepdim=True), grid.amax((2, 3), keepdim=True)
            maps.append((grid - low) / (high - low).clamp(min=1e-8))  # each map to [0, 1]
        save_image_grid(torch.cat(maps), IMG / "vit_attention.png", rows=3,
                        title="digits; class token → patches, last layer; attention rollout")
    alpha, temperature = DISTILLATION["alpha"], DISTILLATION["temperature"]
    return [
        Row(f"MNIST 4k/1k: the same ViT distilled from the CNN (α {alpha}, T {temperature})",
            "test accuracy", f"{vit_acc:.1%}",
            f"teacher CNN in this run: {cnn_acc:.1%} ({cnn_seconds:.0f} s wall, {cnn_cpu:.0f} s "
            "CPU, not included); target ≥ 98% in ≤ 300 s", seconds, cpu),
    ]


# ---------------------------------------------------------------------------------------------
# Autoregressive image generation
# ---------------------------------------------------------------------------------------------
@task("imagegpt")
def imagegpt_mnist(quick: bool) -> list[Row]:
    from fromscratch.beyond.imagegpt import RECIPES, ImageGPT, ImageGPTConfig
    from fromscratch.beyond.vit import accuracy
    from fromscratch.data.images import ImageBatches, ImageSet, mnist_5k_split, save_image_grid

    recipe = RECIPES["default"]
    train_set, test_set = mnist_5k_split()
    torch.manual_seed(0)
    model = ImageGPT(ImageGPTConfig(**recipe.model))
    batches = ImageBatches(train_set, recipe.batch_size, seed=0, **recipe.extra)
    result, cpu = timed_train(model, batches, recipe, quick)
    bpd = model.bits_per_dim(test_set.x, test_set.y)

    # The judge: a CNN trained on the images as the model sees them (binary 14×14, enlarged).
    tokenizer = model.tokenizer
    as_tokens = [ImageSet(tokenizer.to_full_size(tokenizer.encode(s.x)), s.y)
                 for s in (train_set, test_set)]
    as_bits = [x for s in (train_set, test_set) for x in (tokenizer.binarize(s.x), s.y)]
    # Trained twice the baseline's steps: binarised 14×14 digits are harder to tell apart.
    cnn, cnn_acc, _, _ = train_cnn(*as_tokens, quick, seed=1, steps=1200)
    labels = torch.arange(10).repeat(50)  # 50 samples of each digit
    rows = []
    for temperature in (1.0, 0.8, 0.6):
        samples = tokenizer.to_full_size(model.sample(
            labels, temperature=temperature, generator=torch.Generator().manual_seed(0)))
        rows.append(Row(f"... its class-conditional samples (500), temperature {temperature}",
                        "CNN accuracy on samples", f"{accuracy(cnn, samples, labels):.1%}",
                        f"target ≥ 95%; same CNN on real test digits {cnn_acc:.1%}"))
        if temperature == 1.0 and not quick:
            order = torch.arange(100).view(10, 10).T.flatten()  # one row per digit
            save_image_grid(samples[order], IMG / "imagegpt_samples.png", rows=10,
                            title="image GPT samples: one row per digit 0–9, temperature 1")
    return [
        Row("MNIST 14×14 binary, 2×2 patch tokens: class-conditional GPT",
            "test NLL (bits/dim)", f"{bpd:.3f}",
            f"uniform 1.000; independent pixels given the class {independent_pixels_bpd(*as_bits)}",
            result.seconds, cpu),
        *rows,
    ]


def independent_pixels_bpd(train_bits: torch.Tensor, train_y, test_bits, test_y) -> str:
    """The peer: each binary pixel an independent Bernoulli given the class, its probability
    counted on the training images (add-one smoothing); test NLL in bits per pixel."""
    bits = []
    for digit in range(10):
        ink = train_bits[train_y == digit].flatten(1)  # (n, pixels)
        p = (ink.sum(0) + 1) / (len(ink) + 2)  # (pixels,)
        test = test_bits[test_y == digit].flatten(1)
        bits.append(-(test * p.log2() + (1 - test) * (1 - p).log2()).sum(1))  # per image
    return f"{torch.cat(bits).mean().item() / test_bits[0].numel():.3f}"


# ---------------------------------------------------------------------------------------------
# Arithmetic
# ---------------------------------------------------------------------------------------------
def train_arithmetic(op: str, digits: int, reverse: bool, quick: bool, recipe):
    from fromscratch.beyond import arithmetic as ar

    torch.manual_seed(0)
    arithmetic_task = ar.ArithmeticTask(op=op, n_digits=digits, reverse=reverse)
    model = ar.make_model(arithmetic_task, digits + ar.EXTRA_DIGITS, **recipe.model)
    batches = ar.ArithmeticBatches(arithmetic_task, recipe.batch_size)
    result, cpu = timed_train(model, batches, recipe, quick)
    n = 200 if quick else 1000
    scores = {d: ar.exact_match(model, arithmetic_task, ar.test_pairs(arithmetic_task, d, n))
              for d in range(1, digits + ar.EXTRA_DIGITS + 1)}
    return scores, result.seconds, cpu


def arithmetic_rows(op: str, digits: int, reverse: bool, target: str, quick: bool,
                    recipe_name: str = "addition") -> list[Row]:
    """Train with arithmetic.RECIPES[recipe_name] and score."""
    from fromscratch.beyond import arithmetic as ar

    recipe = ar.RECIPES[recipe_name]
    scores, seconds, cpu = train_arithmetic(op, digits, reverse, quick, recipe)
    name = {"+": "addition", "*": "multiplication"}[op]
    order = "answer reversed" if reverse else "answer in plain order"
    size = recipe.model
    model = (f"{size['n_layer']} × {size['n_embd']}, {recipe.train['max_steps']} steps, "
             f"weight decay {recipe.train['weight_decay']}")
    by_digits = ", ".join(f"{d}: {s:.1%}" for d, s in scores.items())
    return [
        Row(f"{digits}-digit {name}, {order} ({model})", "exact match, held-out",
            f"{scores[digits]:.1%}", target, seconds, cpu),
        Row(f"... by digits per operand (trained on ≤ {digits})", "exact match", by_digits,
            "learned positions: ≈ 0% beyond the trained length"),
    ]


@task("arithmetic")
def arithmetic_addition(quick: bool) -> list[Row]:
    return arithmetic_rows("+", 3, True, "target ≥ 99%", quick)


@task("arithmetic-plain")
def arithmetic_plain_order(quick: bool) -> list[Row]:
    return arithmetic_rows("+", 3, False, "the reversed answer: row above", quick)


@task("arithmetic-multiply")
def arithmetic_multiplication(quick: bool) -> list[Row]:
    return arithmetic_rows("*", 2, True, "a harder operation, same budget", quick)


@task("arithmetic-multiply-recipe")
def arithmetic_multiplication_recipe(quick: bool) -> list[Row]:
    return arithmetic_rows("*", 2, True, "the row above: the addition recipe", quick,
                           "multiplication")


# ---------------------------------------------------------------------------------------------
# Audio (spoken digits) and music (JSB chorales): their tasks live in audio_music.py
# ---------------------------------------------------------------------------------------------
def _add_audio_music_tasks() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import audio_music

    for name, run in audio_music.TASKS.items():
        TASKS[name] = lambda quick, run=run: [Row(*row) for row in run(quick)]


_add_audio_music_tasks()


# ---------------------------------------------------------------------------------------------
def print_table(rows: list[Row]) -> None:
    print("| task | metric | ours | reference | training wall (s) | training CPU (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        wall, cpu = (f"{t:.0f}" if t is not None else "" for t in (r.seconds, r.cpu_seconds))
        print(f"| {r.task} | {r.metric} | {r.ours} | {r.reference} | {wall} | {cpu} |")


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages: how many processes wanted the CPUs."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the training steps")
    parser.add_argument("--only", choices=sorted(TASKS), action="append",
                        help="run only this task (repeatable)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                        help="torch threads (1 on a machine shared with other jobs)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads"
          f"{', quick mode' if args.quick else ''}; load average {load_average()}.\n")
    rows = []
    for name in args.only or list(TASKS):
        rows += TASKS[name](args.quick)
    print_table(rows)
    print(f"\nLoad average at the end: {load_average()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
