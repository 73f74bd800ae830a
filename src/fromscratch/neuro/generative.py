"""A conditional diffusion model of population activity: new trials for a given condition.

Notation: trials R, time bins T, neurons N, conditions K (a stimulus, a reach target, or the
simulator's starting state), model width C.

What is generated. Spike counts are whole numbers, mostly 0 or 1 per 10 ms bin, while a Gaussian
diffusion model moves continuous values. So the model generates a trial's log firing rates, a
smooth (T, N) array, and the spikes are then drawn the way the data's own spikes arise:

    x = (log r − μ_n) / s_n                  standardized log-rates (T, N), r in counts per bin
    x ~ p_θ(x | c)                           the diffusion model, one condition c per trial
    y_n(t) ~ Poisson(r_n(t))                 spikes from the generated rates

The trial-to-trial variability and the correlations between neurons come from the rates (shared
latent fluctuations), the rest of the spike-count variance from the Poisson draw, as in the
simulator. On simulated data the true rates are known; on a recording they are not, and the
rates an NDT infers (ndt.NDT.infer_rates) take their place.

The diffusion pieces are those of the diffusion track (derived in lessons 12–16 and 21):

    x_t = α_t x0 + σ_t ε,  α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t), t ∈ {0..999}   cosine schedule
    L = E ‖v_θ(x_t, t, c) − v‖²,  v = α_t ε − σ_t x0    losses.dsm_loss, v-prediction
    c replaced by ∅ (the index K) with probability p    one network, conditional + unconditional
    ṽ = v_θ(x_t, t, ∅) + w (v_θ(x_t, t, c) − v_θ(x_t, t, ∅))   guidance.guided; w = 1: p(x | c)
    x0 from DDIM (samplers.ddim): deterministic given x_T, so a seed fixes a trial

Why v and not ε: at the noisiest steps of the cosine schedule α_t ≈ 0, and an ε-network's
x̂0 = (x_t − σ_t ε̂)/α_t multiplies its error by 1/α_t (after a short training its samples
blow up); x̂0 = α_t x_t − σ_t v̂ from a v-network does not. Guidance combines v as it combines ε
(both are affine in ε at fixed x_t, targets.py).

The denoiser is a transformer over time: one token per bin, the NDT's layout with the noise level
and the condition added to every token:

    h = x_t W_in + E_pos + MLP(fourier(log σ_t/α_t)) + E_cond[c]     (B, T, C)
    h = EncoderBlock(h) × L                                           every bin sees every bin
    v̂ = LN(h) W_out                                                   (B, T, N)
"""

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from fromscratch.beyond.vit import EncoderBlock
from fromscratch.diffusion.guidance import guided
from fromscratch.diffusion.losses import dsm_loss
from fromscratch.diffusion.samplers import ddim
from fromscratch.diffusion.sde import DiscreteSchedule, cosine_betas
from fromscratch.diffusion.toy import FourierFeatures
from fromscratch.errors import UserError
from fromscratch.folders import load_model, save_model
from fromscratch.language.gpt import GPTConfig
from fromscratch.modes import evaluating
from fromscratch.neuro.ndt import TrialBatches
from fromscratch.training.recipes import Recipe

MIN_RATE = 1e-4  # counts per bin; rates are clamped here before the log


@dataclass
class GenerativeConfig:
    n_neurons: int = 50  # N
    n_bins: int = 100  # T: the number of learned positions
    n_conditions: int = 4  # K; the index K is the empty condition ∅
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    cond_dropout: float = 0.1  # p: how often training sees ∅ instead of the condition
    num_train_timesteps: int = 1000

    def __post_init__(self):
        for name in ("n_neurons", "n_bins", "n_conditions", "n_layer", "n_head", "n_embd",
                     "num_train_timesteps"):
            if getattr(self, name) < 1:
                raise UserError(f"GenerativeConfig.{name} must be a positive integer")
        if not 0 <= self.cond_dropout < 1:
            raise UserError(f"cond_dropout must be in [0, 1), got {self.cond_dropout}")
        if self.n_embd % self.n_head:
            raise UserError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")

    def block_config(self) -> GPTConfig:
        return GPTConfig(vocab_size=1, block_size=self.n_bins, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, dropout=0.0)


class ConditionalDenoiser(nn.Module):
    """v_θ(x_t, t, c) on standardized log-rates; `loss`, `sample`, `generate` (see module doc)."""

    prediction = "v"

    def __init__(self, config: GenerativeConfig, log_rate_mean: torch.Tensor | None = None,
                 log_rate_std: torch.Tensor | None = None):
        """log_rate_mean, log_rate_std (N,): μ_n and s_n of the training log-rates."""
        super().__init__()
        self.config = config
        C, N = config.n_embd, config.n_neurons
        self.schedule = DiscreteSchedule(cosine_betas(config.num_train_timesteps))
        self.register_buffer("log_rate_mean", torch.zeros(N) if log_rate_mean is None
                             else log_rate_mean.float().clone())
        self.register_buffer("log_rate_std", torch.ones(N) if log_rate_std is None
                             else log_rate_std.float().clone())
        self.embed = nn.Linear(N, C)
        self.pos = nn.Embedding(config.n_bins, C)
        self.noise_features = FourierFeatures(16)
        self.noise_mlp = nn.Sequential(nn.Linear(32, C), nn.SiLU(), nn.Linear(C, C))
        self.cond = nn.Embedding(config.n_conditions + 1, C)  # row K: the empty condition ∅
        self.blocks = nn.ModuleList(EncoderBlock(config.block_config())
                                    for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(C)
        self.head = nn.Linear(C, N)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    @property
    def null_condition(self) -> int:
        return self.config.n_conditions

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor
                ) -> torch.Tensor:
        """v̂ (B, T, N) for noisy trials x_t (B, T, N), timestep indices t (B,), conditions (B,)
        (the index K = n_conditions for ∅)."""
        B, T, N = x_t.shape
        u = torch.log(self.schedule.sigma(t) / self.schedule.alpha(t)).to(x_t)  # (B,)
        h = self.embed(x_t) + self.pos(torch.arange(T, device=x_t.device))  # (B, T, C)
        h = h + (self.noise_mlp(self.noise_features(u)) + self.cond(condition))[:, None, :]
        for block in self.blocks:
            h = block(h)  # (B, T, C)
        return self.head(self.ln_f(h))  # (B, T, N)

    def standardize(self, rates: torch.Tensor) -> torch.Tensor:
        """x = (log r − μ) / s for rates (..., T, N) in counts per bin."""
        return (rates.clamp_min(MIN_RATE).log() - self.log_rate_mean) / self.log_rate_std

    def to_rates(self, x: torch.Tensor) -> torch.Tensor:
        """r = exp(s x + μ): the inverse of `standardize`."""
        return (x * self.log_rate_std + self.log_rate_mean).exp()

    def drop_conditions(self, condition: torch.Tensor, generator: torch.Generator | None = None
                        ) -> torch.Tensor:
        """Each condition replaced by ∅ with probability cond_dropout."""
        dropped = torch.rand(condition.shape, generator=generator) < self.config.cond_dropout
        return condition.masked_fill(dropped.to(condition.device), self.null_condition)

    def loss(self, batch, generator: torch.Generator | None = None) -> torch.Tensor:
        """Denoising score matching (v-MSE) of a batch (x0 (B, T, N) standardized, c (B,))."""
        x0, condition = batch
        condition = self.drop_conditions(condition, generator)
        return dsm_loss(lambda x, t: self(x, t, condition), self.prediction, x0, self.schedule,
                        generator=generator)

    def sample(self, condition: torch.Tensor, guidance: float = 1.0, steps: int = 50,
               generator: torch.Generator | None = None, progress: bool = False
               ) -> torch.Tensor:
        """Standardized log-rates x0 (B, T, N) for conditions (B,), by DDIM with guidance w."""
        if not 1 <= steps <= self.config.num_train_timesteps:
            raise UserError(f"steps must be between 1 and {self.config.num_train_timesteps}")
        condition = torch.as_tensor(condition, dtype=torch.long)
        if condition.numel() and not (0 <= condition.min() and
                                      condition.max() < self.config.n_conditions):
            raise UserError(f"conditions must be in 0..{self.config.n_conditions - 1}, "
                            f"got {condition.unique().tolist()}")
        with evaluating(self):
            shape = (len(condition), self.config.n_bins, self.config.n_neurons)
            x_T = self.schedule.prior_sample(shape, generator)
            model = guided(self, condition, torch.full_like(condition, self.null_condition),
                           guidance)
            return ddim(model, x_T, self.schedule, steps, prediction=self.prediction,
                        progress=progress)

    def generate(self, condition: torch.Tensor, guidance: float = 1.0, steps: int = 50,
                 generator: torch.Generator | None = None, progress: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(rates, spikes), each (B, T, N): generated rates and Poisson spikes drawn from them."""
        rates = self.to_rates(self.sample(condition, guidance, steps, generator, progress))
        return rates, torch.poisson(rates, generator=generator)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        save_model(path, self, "neuro_diffusion", asdict(self.config))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "ConditionalDenoiser":
        return load_model(cls, GenerativeConfig, path, "neuro_diffusion")


# The settings the command line, benchmark and lesson train with (benchmarks/neural_data.py).
RECIPES: dict[str, Recipe] = {
    "default": Recipe(
        description="a 2 × 64 conditional denoiser of log rates, with guidance and an EMA",
        model=dict(n_layer=2, n_head=2, n_embd=64, cond_dropout=0.1),
        batch_size=32,
        train=dict(max_steps=2000, lr=2e-3, warmup_steps=100, weight_decay=0.0, grad_clip=1.0,
                   ema_decay=0.999, ema_warmup=True),
    ),
}


def train_generative(rates: torch.Tensor, conditions: torch.Tensor, n_conditions: int, *,
                     recipe: Recipe = RECIPES["default"], out_dir=None,
                     max_steps: int | None = None, max_time: float | None = None, seed: int = 0,
                     progress: bool = True, resume: bool = False, overwrite: bool = False,
                     model_overrides: dict | None = None, evaluate: Callable | None = None,
                     **train_overrides):
    """Train a ConditionalDenoiser on trials' rates (R, T, N) and conditions (R,) with `recipe`.

    Returns (model, TrainResult); the model holds the EMA weights, which sample better.
    """
    from fromscratch.training.loop import TrainConfig, train

    R, T, N = rates.shape
    conditions = torch.as_tensor(conditions, dtype=torch.long)
    if conditions.shape != (R,):
        raise UserError(f"one condition per trial needed: {R} trials, conditions of shape "
                        f"{tuple(conditions.shape)}")
    if conditions.min() < 0 or conditions.max() >= n_conditions:
        raise UserError(f"conditions must be in 0..{n_conditions - 1}")
    torch.manual_seed(seed)
    log_rates = rates.clamp_min(MIN_RATE).log()
    config = GenerativeConfig(n_neurons=N, n_bins=T, n_conditions=n_conditions,
                              **{**recipe.model, **(model_overrides or {})})
    model = ConditionalDenoiser(config, log_rate_mean=log_rates.mean((0, 1)),
                                log_rate_std=log_rates.std((0, 1)).clamp_min(1e-3))
    x0 = model.standardize(rates)  # (R, T, N)
    settings = dict(recipe.train, seed=seed, progress=progress, **train_overrides)
    if max_steps is not None:
        settings["max_steps"] = max_steps
        settings["warmup_steps"] = min(settings["warmup_steps"], max(1, max_steps // 10))
    steps = settings["max_steps"]
    settings.setdefault("eval_interval", steps)
    settings.setdefault("checkpoint_interval", max(1, steps // 4))
    settings.setdefault("log_interval", max(1, min(25, steps // 10)))
    cfg = TrainConfig(max_time=max_time, **settings)
    result = train(model, TrialBatches((x0, conditions), recipe.batch_size, seed), cfg,
                   out_dir=out_dir, evaluate=evaluate, resume=resume, overwrite=overwrite,
                   save_model=lambda m, folder: m.save_pretrained(folder))
    if result.ema is not None:
        result.ema.copy_to(model)
    if out_dir is not None:
        model.save_pretrained(out_dir)
    return model.eval(), result


def plot_generated_vs_real(real, real_conditions, generated, generated_conditions,
                           n_conditions: int, bin_size: float, path=None, neurons=(0, 1)):
    """PSTHs per condition (real solid, generated dashed) and real-vs-generated scatters of mean
    rates, Fano factors and pairwise correlations, each titled with its Pearson r."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fromscratch.neuro.metrics import (
        fano_factors,
        mean_rates,
        pairwise_correlations,
        pearson,
        psths,
    )

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    real_psth = psths(real, real_conditions, n_conditions, bin_size, smooth_bins=2.0)
    generated_psth = psths(generated, generated_conditions, n_conditions, bin_size, 2.0)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k in range(n_conditions):
        for style, psth in (("-", real_psth), ("--", generated_psth)):
            for neuron in neurons:
                axes[0].plot(psth[k, :, neuron].numpy(), style, color=colors[k % len(colors)],
                             lw=1.2)
    axes[0].set(title=f"PSTHs of neurons {list(neurons)}: real —, generated --",
                xlabel="bin", ylabel="Hz")
    scatters = (("mean rate (Hz)", mean_rates, (bin_size,)), ("Fano factor", fano_factors, ()),
                ("pairwise correlation", pairwise_correlations, ()))
    for ax, (name, fn, args) in zip(axes[1:], scatters, strict=True):
        a = fn(real, real_conditions, n_conditions, *args).flatten()
        b = fn(generated, generated_conditions, n_conditions, *args).flatten()
        ax.scatter(a.numpy(), b.numpy(), s=4, alpha=0.5)
        finite = a.isfinite() & b.isfinite()
        low, high = float(min(a[finite].min(), b[finite].min())), float(max(a[finite].max(),
                                                                              b[finite].max()))
        ax.plot([low, high], [low, high], "k:", lw=1)
        ax.set(title=f"{name}: r = {pearson(a, b):.2f}", xlabel="real (held-out trials)",
               ylabel="generated")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
