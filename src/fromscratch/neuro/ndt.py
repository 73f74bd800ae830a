"""The Neural Data Transformer (NDT): masked modelling of binned spikes with a Poisson likelihood.

Notation: trials B, time bins T, neurons N = N_in held-in + N_out held-out, model width C.
Spikes y (B, T, N) are counts per bin; the model sees only the held-in neurons.

    x = log(1 + y_in) W_in + E_pos                 (B, T, C): one token per time bin, the counts
                                                   compressed by log1p, plus a learned position
    for each of the L blocks (GPT's pre-LN block without the causal mask, `vit.EncoderBlock`):
        x = x + Attention(LN_1(x))                 every bin sees every bin, past and future
        x = x + MLP(LN_2(x))
    log r = LN_f(x) W_out + b                      (B, T, N) log-rates of all neurons

Training (BERT's recipe for spikes). Each step picks a random set of time bins (each with
probability `mask_ratio`) and zeroes the held-in counts there in the input; the loss is the
Poisson negative log-likelihood, averaged over the entries it counts:

    NLL(r; y) = r − y log r + log y!
    counted:  held-in neurons at the masked bins  (predict the hidden counts from the context)
              held-out neurons at every bin       (never seen: inferred from the population)

Counting unmasked held-in bins would let the model copy its input, and a copied spike count is
a terrible estimate of the underlying rate. Masking forces it to explain each bin by the rest of
the trial: the smooth, shared dynamics. At test time nothing is masked and r = exp(log r) are the
inferred firing rates. W_out starts at zero and b at each neuron's log mean count, so at
initialization the model is the null model of `metrics.bits_per_spike` (0 bits per spike).
"""

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from fromscratch.beyond.vit import EncoderBlock
from fromscratch.errors import UserError
from fromscratch.folders import load_model, save_model
from fromscratch.language.gpt import GPTConfig
from fromscratch.modes import evaluating
from fromscratch.seeds import BATCH, micro_batch_seed
from fromscratch.training.recipes import Recipe


@dataclass
class NDTConfig:
    n_neurons: int = 50  # N: held-in + held-out
    n_heldout: int = 10  # N_out: the last N_out neurons are never an input
    n_bins: int = 100  # T: the number of learned positions
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    dropout: float = 0.2
    mask_ratio: float = 0.25  # probability that a time bin is masked in training

    def __post_init__(self):
        for name in ("n_neurons", "n_bins", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise UserError(f"NDTConfig.{name} must be a positive integer")
        if not 0 <= self.n_heldout < self.n_neurons:
            raise UserError(f"n_heldout must be in [0, {self.n_neurons}), got {self.n_heldout}")
        if not 0 < self.mask_ratio < 1:
            raise UserError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.n_embd % self.n_head:
            raise UserError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")

    @property
    def n_heldin(self) -> int:
        return self.n_neurons - self.n_heldout

    def block_config(self) -> GPTConfig:
        return GPTConfig(vocab_size=1, block_size=self.n_bins, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout)


def poisson_nll(log_rates: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
    """Elementwise r − y log r + log y! with r = exp(log_rates)."""
    return log_rates.exp() - spikes * log_rates + torch.lgamma(spikes + 1)


def loss_mask(time_mask: torch.Tensor, n_heldin: int, n_neurons: int) -> torch.Tensor:
    """Which entries (B, T, N) the loss counts: held-in at masked bins, held-out everywhere."""
    B, T = time_mask.shape
    counted = torch.ones(B, T, n_neurons, dtype=torch.bool, device=time_mask.device)
    counted[:, :, :n_heldin] = time_mask[:, :, None]
    return counted


class NDT(nn.Module):
    def __init__(self, config: NDTConfig, mean_counts: torch.Tensor | None = None):
        """mean_counts (N,): each neuron's mean count per bin, the output bias at init."""
        super().__init__()
        self.config = config
        C = config.n_embd
        self.embed = nn.Linear(config.n_heldin, C)
        self.pos = nn.Embedding(config.n_bins, C)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(config.block_config())
                                    for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(C)
        self.head = nn.Linear(C, config.n_neurons)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            if mean_counts is not None:
                self.head.bias.copy_(mean_counts.clamp_min(1e-3).log())

    def forward(self, spikes_in: torch.Tensor, time_mask: torch.Tensor | None = None,
                need_weights: bool = False):
        """Log-rates (B, T, N) from held-in counts (B, T, N_in); masked bins are zeroed first.

        need_weights: also return each layer's attention (B, H, T, T), in a list.
        """
        B, T, n_in = spikes_in.shape
        if n_in != self.config.n_heldin or T > self.config.n_bins:
            raise UserError(f"the model reads (trials, ≤{self.config.n_bins} bins, "
                            f"{self.config.n_heldin} held-in neurons), got {tuple(spikes_in.shape)}"
                            )
        x = torch.log1p(spikes_in)
        if time_mask is not None:
            x = x.masked_fill(time_mask[:, :, None], 0.0)  # the masked bins carry no counts
        x = self.embed(x) + self.pos(torch.arange(T, device=x.device))  # (B, T, C)
        x = self.drop(x)
        attentions = []
        for block in self.blocks:
            if need_weights:
                x, weights = block(x, need_weights=True)
                attentions.append(weights)
            else:
                x = block(x)  # (B, T, C)
        log_rates = self.head(self.ln_f(x))  # (B, T, N)
        return (log_rates, attentions) if need_weights else log_rates

    def random_time_mask(self, B: int, T: int, generator=None, device=None) -> torch.Tensor:
        """(B, T) bool: each bin masked with probability mask_ratio (at least one per trial)."""
        mask = torch.rand(B, T, generator=generator, device=device) < self.config.mask_ratio
        first = torch.zeros_like(mask)
        first[torch.arange(B), torch.randint(0, T, (B,), generator=generator, device=device)] = 1
        return mask | first

    def loss(self, spikes: torch.Tensor, time_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean Poisson NLL over the counted entries of `spikes` (B, T, N) (see module doc)."""
        B, T, N = spikes.shape
        if time_mask is None:
            time_mask = self.random_time_mask(B, T, device=spikes.device)
        n_in = self.config.n_heldin
        log_rates = self(spikes[:, :, :n_in], time_mask)  # (B, T, N)
        counted = loss_mask(time_mask, n_in, N)
        return poisson_nll(log_rates[counted], spikes[counted]).mean()

    def infer_rates(self, spikes: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Expected counts per bin (B, T, N) of all neurons from the held-in ones, no masking."""
        spikes_in = spikes[:, :, : self.config.n_heldin]
        with evaluating(self):
            return torch.cat([self(spikes_in[i : i + batch_size]).exp()
                              for i in range(0, len(spikes), batch_size)])

    def save_pretrained(self, path: str | os.PathLike) -> None:
        save_model(path, self, "ndt", asdict(self.config))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "NDT":
        return load_model(cls, NDTConfig, path, "ndt")


class TrialBatches:
    """batches(step, micro) -> batch_size random trials, fixed by (seed, step, micro).

    trials: a tensor (R, ...) or a tuple of tensors indexed alike (e.g. (rates, conditions)),
    then each batch is the tuple of their rows.
    """

    def __init__(self, trials, batch_size: int, seed: int = 0):
        self.trials, self.seed = trials, seed
        self.n_trials = len(trials[0] if isinstance(trials, tuple) else trials)
        self.batch_size = min(batch_size, self.n_trials)

    def __call__(self, step: int, micro: int):
        gen = torch.Generator().manual_seed(micro_batch_seed(self.seed, step, micro, BATCH))
        rows = torch.randperm(self.n_trials, generator=gen)[: self.batch_size]
        if isinstance(self.trials, tuple):
            return tuple(tensor[rows] for tensor in self.trials)
        return self.trials[rows]


# The settings the command line, benchmark and lesson train with (benchmarks/neural_data.py).
RECIPES: dict[str, Recipe] = {
    "default": Recipe(
        description="a 2 × 64 NDT: 0.209 bits per spike co-smoothing on the Lorenz population",
        model=dict(n_layer=2, n_head=2, n_embd=64, dropout=0.2, mask_ratio=0.25),
        batch_size=32,
        train=dict(max_steps=1500, lr=3e-3, warmup_steps=100, weight_decay=0.05,
                   betas=(0.9, 0.99)),
    ),
}


def train_ndt(spikes: torch.Tensor, n_heldout: int, *, valid: torch.Tensor | None = None,
              recipe: Recipe = RECIPES["default"], out_dir=None, max_steps: int | None = None,
              max_time: float | None = None, seed: int = 0, progress: bool = True,
              model_overrides: dict | None = None, evaluate: Callable | None = None,
              resume: bool = False, overwrite: bool = False, **train_overrides):
    """Train an NDT on trials `spikes` (R, T, N) with `recipe`; returns (model, TrainResult).

    valid: held-out trials; their co-smoothing bits per spike is logged as `valid_co_bps`.
    resume, overwrite: what to do with an earlier run in out_dir (train.train refuses it else).
    """
    from fromscratch.neuro.metrics import bits_per_spike
    from fromscratch.training.loop import TrainConfig, train

    R, T, N = spikes.shape
    torch.manual_seed(seed)
    config = NDTConfig(n_neurons=N, n_heldout=n_heldout, n_bins=T,
                       **{**recipe.model, **(model_overrides or {})})
    model = NDT(config, mean_counts=spikes.mean((0, 1)))
    settings = dict(recipe.train, seed=seed, progress=progress, **train_overrides)
    if max_steps is not None:
        settings["max_steps"] = max_steps
        settings["warmup_steps"] = min(settings["warmup_steps"], max(1, max_steps // 10))
    settings.setdefault("eval_interval", max(1, settings["max_steps"] // 4))
    settings.setdefault("log_interval", max(1, min(10, settings["max_steps"] // 10)))
    cfg = TrainConfig(max_time=max_time, **settings)

    def co_bps(m):
        rates = m.infer_rates(valid)
        return {"valid_co_bps": bits_per_spike(rates[:, :, N - n_heldout:],
                                               valid[:, :, N - n_heldout:])}

    result = train(model, TrialBatches(spikes, recipe.batch_size, seed), cfg, out_dir=out_dir,
                   evaluate=evaluate or (co_bps if valid is not None and n_heldout else None),
                   save_model=lambda m, folder: m.save_pretrained(folder), resume=resume,
                   overwrite=overwrite)
    return model, result


def expected_loss_at_init(spikes: torch.Tensor) -> float:
    """The Poisson NLL per entry of the null model (each neuron's mean rate) on `spikes`:
    what an untrained NDT's loss must be, since it starts as that model."""
    rates = spikes.double().mean((0, 1), keepdim=True).clamp_min(1e-3)
    return float(poisson_nll(rates.log().expand_as(spikes), spikes.double()).mean())

