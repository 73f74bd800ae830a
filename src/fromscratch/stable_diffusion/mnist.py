"""A small Stable Diffusion trained from scratch on MNIST digits and their prompts, on a CPU.

Two models are trained one after the other, both with the shared loop (training/loop.py):

1. The autoencoder (vae.py): a digit x (1, 28, 28) in [-1, 1] ↔ a latent z (4, 7, 7), with
   loss = MSE(x̂, x) + β·KL(q(z | x) ‖ N(0, I)). Afterwards the latents are scaled by
   s = 1 / std(z) so that they have about unit variance, as the noise schedule assumes.
2. The latent UNet (unet.py), ε̂(z_t, t, c), on scaled latents z_0 = s·z. The text c is the
   multi-token output of a frozen MiniLM (text_encoder.BertTextEncoder): one 384-d vector per
   WordPiece token, every token having read the whole prompt. The encoder is frozen and there are
   only a few hundred distinct prompts (data/prompts.py), so their embeddings are computed once
   and cached (`PromptEmbeddings`). The objective is Stable Diffusion's:

       t ~ U{0..N−1},  ε ~ N(0, I),  z_t = √ᾱ_t z_0 + √(1 − ᾱ_t) ε,  loss = ‖ε̂(z_t, t, c) − ε‖²

   on the scaled-linear schedule (sde.scaled_linear_betas), with the prompt replaced by the empty
   prompt's embedding for 10% of examples (classifier-free guidance dropout: the same network
   learns ε̂(z_t, t, ∅), guidance.py), and an EMA of the weights (ema.py) for sampling.

Sampling is the pipeline's (pipeline.StableDiffusion): guided UNet, our DDIM / DPM-Solver++ /
Euler, VAE decoder. A trained model is a diffusers-layout folder (unet/, vae/, text_encoder/,
tokenizer/, scheduler/, model_index.json) read back by `StableDiffusion.from_pretrained`. The same
ConditionalDiffusion trains a UNet on pixels (`PixelSpace` stands in for the autoencoder), for
the comparison of latent and pixel diffusion at equal cost (benchmarks/text2image_mnist.py).
"""

import math
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.attention import padding_mask
from fromscratch.data.prompts import PromptSet
from fromscratch.diffusion.sde import DiscreteSchedule, expand_like
from fromscratch.diffusion.targets import from_x0_and_eps, to_model_range
from fromscratch.errors import UserError
from fromscratch.folders import write_json
from fromscratch.seeds import BATCH, micro_batch_seed
from fromscratch.stable_diffusion.pipeline import (
    SCHEDULE,
    is_pipeline,
    save_pipeline,
    schedule_from_config,
)
from fromscratch.stable_diffusion.text_encoder import BertTextEncoder
from fromscratch.stable_diffusion.unet import UNet, UNetConfig
from fromscratch.stable_diffusion.vae import AutoencoderKL, VAEConfig
from fromscratch.training.recipes import Recipe

SIDE = 28  # MNIST digits are 28 × 28

# What `fromscratch sd train --recipe mnist|tiny` and the benchmark train: sized for a shared
# 2-core CPU. Costs on one core (process time): VAE ≈ 0.4 s a step, latent UNet ≈ 0.3 s a step,
# both at batch 32 (benchmarks/text2image_mnist.py measures them). A recipe's model, batch size
# and train settings are the latent UNet's; extra holds the first stage, the autoencoder (vae,
# kl_weight, vae_batch_size, vae_train), and the conditioning (cfg_dropout, max_length, the
# prediction kind).
RECIPES: dict[str, Recipe] = {
    "mnist": Recipe(
        description="text to MNIST digits: 100% held-out prompt accuracy at w = 7, 2,400 steps",
        model=dict(block_out_channels=(48,), attention_levels=(True,), layers_per_block=1,
                   num_attention_heads=4, norm_num_groups=16),
        batch_size=32,
        train=dict(max_steps=2400, lr=2e-3, warmup_steps=50, weight_decay=0.0,
                   betas=(0.9, 0.99), ema_decay=0.995, ema_warmup=True),
        extra=dict(
            vae=dict(block_out_channels=(16, 32, 32), layers_per_block=1, latent_channels=4,
                     norm_num_groups=8),
            kl_weight=1e-5,
            vae_batch_size=32,
            vae_train=dict(max_steps=300, lr=3e-3, warmup_steps=20, weight_decay=0.0,
                           betas=(0.9, 0.99)),
            cfg_dropout=0.1,
            max_length=16,  # tokens of a prompt, [CLS] and [SEP] included
            prediction="eps",
        ),
    ),
}
RECIPES["tiny"] = replace(
    RECIPES["mnist"],
    description="a model of seconds, to check a set-up (and for tests); its images are noise",
    model=dict(block_out_channels=(16,), attention_levels=(True,), layers_per_block=1,
               num_attention_heads=2, norm_num_groups=4),
    batch_size=16,
    train=dict(max_steps=4, lr=2e-3, warmup_steps=1, weight_decay=0.0, ema_decay=0.9),
    extra=dict(
        RECIPES["mnist"].extra,
        vae=dict(block_out_channels=(8, 8, 8), layers_per_block=1, latent_channels=4,
                 norm_num_groups=4),
        vae_batch_size=16,
        vae_train=dict(max_steps=4, lr=3e-3, warmup_steps=1, weight_decay=0.0),
    ),
)


# ---------------------------------------------------------------------------------------------
# Text: cached prompt embeddings
# ---------------------------------------------------------------------------------------------
@dataclass
class PromptEmbeddings:
    """The text encoder's output for every prompt of a PromptSet, and for the empty prompt.

    embeddings (P, T, D) and masks (P, T) (1 = real token) as `BertTextEncoder.encode` gives
    them, padded to the encoder's max_length; null_embedding (1, T, D) and null_mask (1, T) are
    the empty prompt's, the "no text" of classifier-free guidance.
    """

    prompts: PromptSet
    embeddings: torch.Tensor
    masks: torch.Tensor
    null_embedding: torch.Tensor
    null_mask: torch.Tensor

    @classmethod
    @torch.no_grad()
    def compute(cls, encoder: BertTextEncoder, prompts: PromptSet, batch_size: int = 64
                ) -> "PromptEmbeddings":
        encoder.eval()
        check_prompts(encoder, prompts.prompts)
        chunks = [encoder.encode(prompts.prompts[i : i + batch_size])
                  for i in range(0, len(prompts), batch_size)]
        null_embedding, null_mask = encoder.encode([""])
        return cls(prompts, torch.cat([e for e, _ in chunks]).cpu(),
                   torch.cat([m for _, m in chunks]).cpu(), null_embedding.cpu(), null_mask.cpu())


def check_prompts(encoder: BertTextEncoder, prompts: list[str]) -> None:
    """A UserError for an empty prompt or one longer than the encoder reads (it would be cut)."""
    for prompt in prompts:
        if not prompt.strip():
            raise UserError("the prompt is empty: say which digit to draw, e.g. "
                            "\"a handwritten three\"")
        ids, _ = encoder.tokenizer.encode(prompt)
        if len(ids) > encoder.max_length:
            raise UserError(f"the prompt {prompt[:40]!r} is {len(ids)} tokens long; this model "
                            f"reads at most {encoder.max_length} (with [CLS] and [SEP]): "
                            "shorten it")


# ---------------------------------------------------------------------------------------------
# Training data: (latents or pixels, prompt embeddings) for each step
# ---------------------------------------------------------------------------------------------
class DiffusionBatches:
    """batches(step, micro) → (x0 (B, C, h, w), context (B, T, D), mask (B, T)).

    x0 is a data point: an image in [-1, 1] (`mean` holds images, `logvar` None), or a latent
    drawn from the autoencoder's posterior, x0 = s·(μ + σ ε), from cached (μ, log σ²). Each
    image is paired with a random prompt for its label. All draws depend on (seed, step, micro).
    """

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor | None, labels: torch.Tensor,
                 text: PromptEmbeddings, batch_size: int, *, scale: float = 1.0, seed: int = 0):
        self.mean, self.logvar, self.labels, self.text = mean, logvar, labels, text
        self.batch_size, self.scale, self.seed = batch_size, scale, seed

    def __call__(self, step: int, micro: int = 0):
        generator = torch.Generator().manual_seed(micro_batch_seed(self.seed, step, micro, BATCH))
        idx = torch.randint(0, len(self.labels), (self.batch_size,), generator=generator)
        x0 = self.mean[idx]
        if self.logvar is not None:
            x0 = AutoencoderKL.sample(x0, self.logvar[idx], generator)
        prompt = self.text.prompts.sample(self.labels[idx], generator)  # (B,) prompt indices
        return self.scale * x0, self.text.embeddings[prompt], self.text.masks[prompt]


# ---------------------------------------------------------------------------------------------
# The UNet and its objective
# ---------------------------------------------------------------------------------------------
class ConditionalDiffusion(nn.Module):
    """The UNet and the loss that trains it: ε- (or v-) prediction on a discrete schedule, with
    the text replaced by the empty prompt's embedding for a fraction `cfg_dropout` of examples."""

    def __init__(self, unet: UNet, schedule: DiscreteSchedule, null_embedding: torch.Tensor,
                 null_mask: torch.Tensor, *, prediction: str = "eps", cfg_dropout: float = 0.1):
        super().__init__()
        if prediction not in ("eps", "v"):
            raise UserError(f"prediction must be eps or v, got {prediction!r}")
        self.unet, self.schedule = unet, schedule
        self.prediction, self.cfg_dropout = prediction, cfg_dropout
        # not weights: kept out of checkpoints and the EMA's averaging
        self.register_buffer("null_embedding", null_embedding, persistent=False)  # (1, T, D)
        self.register_buffer("null_mask", null_mask, persistent=False)  # (1, T)

    def loss(self, batch) -> torch.Tensor:
        x0, context, mask = batch  # (B, C, h, w), (B, T, D), (B, T)
        batch_size = x0.shape[0]
        dropped = torch.rand(batch_size, device=x0.device) < self.cfg_dropout  # (B,)
        context = torch.where(dropped[:, None, None], self.null_embedding, context)
        mask = torch.where(dropped[:, None], self.null_mask, mask)
        t = torch.randint(0, self.schedule.num_train_timesteps, (batch_size,), device=x0.device)
        eps = torch.randn_like(x0)
        alpha = self.schedule.alpha(t).to(x0)  # √ᾱ_t, (B,)
        sigma = self.schedule.sigma(t).to(x0)  # √(1 − ᾱ_t)
        x_t = expand_like(alpha, x0) * x0 + expand_like(sigma, x0) * eps
        target = from_x0_and_eps(x0, eps, self.prediction, alpha, sigma)  # ε, or v = αε − σx0
        return F.mse_loss(self.unet(x_t, t, context, padding_mask(mask)), target)

    def to(self, *args, **kwargs):
        module = super().to(*args, **kwargs)
        self.schedule.to(device=self.null_embedding.device)
        return module


class PixelSpace(nn.Module):
    """The autoencoder of diffusion on pixels: the identity (downsampling factor 1), so that the
    pipeline samples a pixel-space UNet unchanged."""

    downsampling_factor = 1

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)  # device and dtype

    def decode_latents(self, x: torch.Tensor) -> torch.Tensor:
        return x


def unet_for(recipe: Recipe, in_channels: int, sample_size: int, context_dim: int) -> UNet:
    return UNet(UNetConfig(in_channels=in_channels, out_channels=in_channels,
                           cross_attention_dim=context_dim, sample_size=sample_size,
                           **recipe.model))


# ---------------------------------------------------------------------------------------------
# Training both models
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def encode_dataset(vae: AutoencoderKL, images: torch.Tensor, batch_size: int = 500
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ, log σ²) of q(z | x) for images (N, 1, H, W) in [0, 1]: each (N, C_latent, h, w)."""
    vae.eval()
    parts = [vae.encode(to_model_range(images[i : i + batch_size]))
             for i in range(0, len(images), batch_size)]
    return torch.cat([m for m, _ in parts]), torch.cat([v for _, v in parts])


@torch.no_grad()
def vae_metrics(vae: AutoencoderKL, images: torch.Tensor) -> dict[str, float]:
    """Reconstruction MSE per pixel (from the posterior mean, in [-1, 1] units) and the KL per
    image, on images (N, 1, H, W) in [0, 1]."""
    vae.eval()
    x = to_model_range(images)
    mean, logvar = vae.encode(x)
    return {"recon_mse": F.mse_loss(vae.decode(mean), x).item(),
            "kl": vae.kl(mean, logvar).mean().item()}


def train_vae(train_images: torch.Tensor, test_images: torch.Tensor, recipe: Recipe, *,
              out_dir: Path | None, seed: int, resume: bool = False, overwrite: bool = False,
              progress: bool = True, max_steps: int | None = None) -> tuple[AutoencoderKL, dict]:
    """Train the autoencoder, then set its scaling factor s = 1 / std of the latents."""
    from fromscratch.training.loop import TrainConfig, train

    torch.manual_seed(seed)
    vae = AutoencoderKL(VAEConfig(in_channels=1, out_channels=1, sample_size=SIDE,
                                  **recipe.extra["vae"]))
    vae.kl_weight = recipe.extra["kl_weight"]
    settings = dict(recipe.extra["vae_train"], seed=seed, progress=progress, log_interval=10)
    if max_steps is not None:
        settings["max_steps"] = max_steps
    settings["eval_interval"] = settings["checkpoint_interval"] = settings["max_steps"]
    batch_size = recipe.extra["vae_batch_size"]

    def batches(step, micro):
        generator = torch.Generator().manual_seed(micro_batch_seed(seed, step, micro, BATCH))
        idx = torch.randint(0, len(train_images), (batch_size,), generator=generator)
        return to_model_range(train_images[idx])

    result = train(vae, batches, TrainConfig(**settings), out_dir=out_dir,
                   evaluate=lambda m: vae_metrics(m, test_images[:500]),
                   resume=resume, overwrite=overwrite)
    mean, _ = encode_dataset(vae, train_images)
    vae.config.scaling_factor = 1.0 / mean.std().item()
    return vae.eval(), {"steps": result.step, **vae_metrics(vae, test_images)}


def train_diffusion(model: ConditionalDiffusion, batches: DiffusionBatches, recipe: Recipe, *,
                    out_dir: Path | None, seed: int, save_model=None, resume: bool = False,
                    overwrite: bool = False, progress: bool = True, max_steps: int | None = None,
                    max_time: float | None = None):
    """Train the UNet of `model`; afterwards the model holds the EMA weights."""
    from fromscratch.training.loop import TrainConfig, train

    settings = dict(recipe.train, seed=seed, progress=progress, log_interval=10,
                    max_time=max_time)
    if max_steps is not None:
        settings["max_steps"] = max_steps
    settings["eval_interval"] = settings["checkpoint_interval"] = max(1, settings["max_steps"]
                                                                      // 3)
    result = train(model, batches, TrainConfig(**settings), out_dir=out_dir,
                   save_model=save_model, resume=resume, overwrite=overwrite)
    if result.ema is not None:
        result.ema.copy_to(model)
    return result


def clear_run(folder: Path) -> None:
    """Delete what `train_mnist` wrote in `folder` (for --overwrite), nothing else."""
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "checkpoints",
                 "vae_training"):
        if (folder / name).is_dir():
            shutil.rmtree(folder / name)
    for name in ("model_index.json", "log.jsonl", "loss.png", "training.json"):
        (folder / name).unlink(missing_ok=True)


def train_mnist(train_set, test_set, encoder: BertTextEncoder, prompts: PromptSet,
                recipe: Recipe, out_dir: str | Path, *, seed: int = 0, resume: bool = False,
                overwrite: bool = False, max_steps: int | None = None,
                max_time: float | None = None, progress: bool = True) -> dict:
    """The autoencoder, then the latent UNet; `out_dir` ends as a pipeline folder (and holds
    the training runs: vae_training/, checkpoints/, log.jsonl). max_steps and max_time limit
    the UNet's training. Returns what was measured (also written to training.json)."""
    import time

    out_dir = Path(out_dir)
    if is_pipeline(out_dir) and not (resume or overwrite):
        raise UserError(f"{out_dir} already holds a trained model: continue it (--resume), "
                        "replace it (--overwrite) or choose another --out")
    if overwrite:
        clear_run(out_dir)
    began, cpu_began = time.perf_counter(), time.process_time()
    vae, report = train_vae(train_set.x, test_set.x, recipe, out_dir=out_dir / "vae_training",
                            seed=seed, resume=resume and (out_dir / "vae_training").is_dir(),
                            progress=progress)
    text = PromptEmbeddings.compute(encoder, prompts)
    mean, logvar = encode_dataset(vae, train_set.x)
    batches = DiffusionBatches(mean, logvar, train_set.y, text, recipe.batch_size,
                               scale=vae.config.scaling_factor, seed=seed)
    torch.manual_seed(seed)
    latent_side = SIDE // vae.downsampling_factor
    unet = unet_for(recipe, vae.config.latent_channels, latent_side, encoder.hidden_size)
    model = ConditionalDiffusion(unet, schedule_from_config(SCHEDULE),
                                 text.null_embedding, text.null_mask,
                                 prediction=recipe.extra["prediction"],
                                 cfg_dropout=recipe.extra["cfg_dropout"])
    save_pipeline(out_dir, unet, vae, encoder, prediction=recipe.extra["prediction"])

    def save_model(m, folder):
        save_pipeline(folder, m.unet, vae, encoder, prediction=recipe.extra["prediction"],
                      write_text_encoder=False)

    result = train_diffusion(model, batches, recipe, out_dir=out_dir, seed=seed,
                             save_model=save_model,
                             resume=resume and (out_dir / "checkpoints").is_dir(),
                             progress=progress, max_steps=max_steps, max_time=max_time)
    save_model(model, out_dir)  # the EMA weights, last
    report.update(unet_steps=result.step, unet_loss=result.last("loss"),
                  stopped_by=result.stopped_by, wall_s=time.perf_counter() - began,
                  cpu_s=time.process_time() - cpu_began)
    write_json(out_dir / "training.json", report)
    return report


# ---------------------------------------------------------------------------------------------
# Looking inside: cross-attention maps
# ---------------------------------------------------------------------------------------------
@contextmanager
def record_cross_attention(unet: UNet):
    """Inside, every cross-attention layer (attn2) of `unet` appends its attention
    probabilities, averaged over heads, to the list yielded: (B, h·w, T) tensors, one per
    layer call, with P[b, n, j] = softmax_j(q_n · k_j / √d) (masked tokens 0): how much pixel n
    reads from token j. The UNet's own output is not changed."""
    records: list[torch.Tensor] = []

    def hook(module, args, kwargs, output):
        x, context = args[0], args[1] if len(args) > 1 else kwargs.get("context")
        mask = args[2] if len(args) > 2 else kwargs.get("mask")
        q = module.split_heads(module.to_q(x))  # (B, H, N, D)
        k = module.split_heads(module.to_k(context))  # (B, H, T, D)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, N, T)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        records.append(scores.softmax(dim=-1).mean(dim=1).detach())  # (B, N, T)

    layers = [m.attn2 for m in unet.modules() if hasattr(m, "attn2")]
    handles = [layer.register_forward_hook(hook, with_kwargs=True) for layer in layers]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()
