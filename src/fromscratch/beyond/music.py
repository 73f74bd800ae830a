"""Polyphonic music: a causal transformer over piano rolls, with GPT's blocks.

Notation: a piano roll v (T, 88), v_t ∈ {0, 1}^88 the keys sounding at step t; batch B, model
width C. The model is GPT (`gpt.Block`, causal) with the token embedding replaced by a linear
map of the previous step's 88 keys:

    x_t = v_{t-1} W_in + wpe[t]                 v_{-1} = 0: a silent "start" step
    h   = blocks(x)                             causal: h_t depends on v_0..v_{t-1} only
    p(v_t | v_<t) = Π_k σ(a_tk)^v_tk (1 − σ(a_tk))^(1 − v_tk)        a_t = LN_f(h_t) W_out

i.e. the 88 keys of a step are independent Bernoullis given the past. With `within_step=True`
key k also sees the keys below it in the same step, a_tk += Σ_{j<k} v_tj U_kj (U strictly lower
triangular): the chain rule over the keys, low to high, as in a fully visible sigmoid belief
net, so chords can be modelled (a C needs an E and a G more than chance).

With `nade_hidden = H > 0` as well, the keys of a step are chained through a hidden layer, as in
NADE (Larochelle & Murray, 2011) and the RNN-NADE of Boulanger-Lewandowski et al. (2012), whose
biases come from the sequence model:

    g_tk = σ(c_t + Σ_{j<k} v_tj W_j)             (H,)   c_t = LN_f(h_t) W_c, W_j a row of W (88, H)
    a_tk += V_k · g_tk                            V (88, H)

A key's logit is then a nonlinear function of the keys below it. Through U, two sounding keys
move a third key's logit by the sum of what each does alone; through the sigmoid units they can
interact (count only together, or saturate once a chord is already clear).
The running sum over j is one cumulative sum over the keys, so training still scores every key
of every step in one pass; sampling goes key by key.

The metric of Boulanger-Lewandowski et al. (2012) is the negative log-likelihood per time step:
the sum over the 88 keys of the Bernoulli NLL, averaged over all time steps of the test set

    NLL = − (1 / Σ_n T_n) Σ_n Σ_t log p(v_t | v_<t)          (nats per step)
"""

import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.beyond.audio import init_weights
from fromscratch.data.music import N_KEYS, pad_rolls
from fromscratch.errors import UserError
from fromscratch.folders import load_model, save_model
from fromscratch.language.gpt import Block
from fromscratch.modes import evaluating
from fromscratch.training.recipes import Recipe


@dataclass
class MusicConfig:
    block_size: int = 161  # longest sequence: the start step + 160 quarter notes (JSB)
    n_layer: int = 3
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.3  # 229 training chorales: strong regularisation
    bias: bool = True
    layer_norm_eps: float = 1e-5
    within_step: bool = False  # keys of one step: independent (False) or low-to-high chain
    nade_hidden: int = 0  # with within_step: the chain also runs through a NADE layer this wide
    steps_per_quarter: int = 1  # 1 for the quarter-note version, 4 for 16ths (for MIDI files)

    def __post_init__(self):
        for name in ("block_size", "n_layer", "n_head", "n_embd", "steps_per_quarter"):
            if getattr(self, name) < 1:
                raise UserError(f"MusicConfig.{name} must be a positive integer")
        if self.n_embd % self.n_head != 0:
            raise UserError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.nade_hidden < 0 or (self.nade_hidden and not self.within_step):
            raise UserError("nade_hidden chains the keys of a step: give it (≥ 1) together with "
                            "within_step=True, or leave it 0")


class MusicTransformer(nn.Module):
    def __init__(self, config: MusicConfig):
        super().__init__()
        self.config = config
        self.w_in = nn.Linear(N_KEYS, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(Block(config, i) for i in range(config.n_layer))  # GPT's blocks
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.w_out = nn.Linear(config.n_embd, N_KEYS)
        # U[k, j] for j < k: how key j sounding now moves key k's logit (used if within_step)
        self.within = nn.Parameter(torch.zeros(N_KEYS, N_KEYS)) if config.within_step else None
        self.nade_c = self.nade_w = self.nade_v = None
        if config.nade_hidden:  # g_tk = σ(c_t + Σ_{j<k} v_tj W_j), a_tk += V_k · g_tk
            self.nade_c = nn.Linear(config.n_embd, config.nade_hidden)  # c_t from the context
            self.nade_w = nn.Parameter(torch.randn(N_KEYS, config.nade_hidden) * 0.02)  # W
            self.nade_v = nn.Parameter(torch.zeros(N_KEYS, config.nade_hidden))  # V
        init_weights(self)

    def context(self, rolls: torch.Tensor) -> torch.Tensor:
        """LN_f(h) (B, T, C): what step t's logits know of steps < t."""
        B, T, _ = rolls.shape
        if T > self.config.block_size - 1:
            raise UserError(f"{T} steps is more than this model's {self.config.block_size - 1}")
        previous = F.pad(rolls, (0, 0, 1, 0))[:, :-1]  # (B, T, 88): v_{t-1}, zeros at t = 0
        x = self.w_in(previous) + self.wpe(torch.arange(T, device=rolls.device))  # (B, T, C)
        x = self.drop(x)
        for block in self.h:
            x = block(x)  # (B, T, C), causal
        return self.ln_f(x)  # (B, T, C)

    def forward(self, rolls: torch.Tensor) -> torch.Tensor:
        """Logits a (B, T, 88) of p(v_t,k = 1 | v_<t, and v_t,j<k if within_step) for rolls v."""
        states = self.context(rolls)  # (B, T, C)
        logits = self.w_out(states)  # (B, T, 88)
        if self.within is not None:
            lower = torch.tril(self.within, diagonal=-1)  # (88, 88): U_kj, only j < k
            logits = logits + rolls @ lower.T  # a_tk += Σ_j v_tj U_kj
        if self.nade_w is not None:
            each = rolls[..., None] * self.nade_w  # (B, T, 88, H): v_tj W_j
            below = each.cumsum(dim=2) - each  # (B, T, 88, H): Σ_{j<k} v_tj W_j
            hidden = torch.sigmoid(self.nade_c(states)[:, :, None] + below)  # g_tk (B, T, 88, H)
            logits = logits + (hidden * self.nade_v).sum(-1)  # a_tk += V_k · g_tk
        return logits

    def nll(self, rolls: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Σ over keys of the Bernoulli NLL at each step (B, T); 0 where mask is False."""
        bce = F.binary_cross_entropy_with_logits(self(rolls), rolls, reduction="none")
        return bce.sum(-1) * mask  # −log p(v_t | ...) per step

    def loss(self, batch):
        """NLL per time step of a batch (rolls (B, T, 88), mask (B, T)): the training protocol."""
        rolls, mask = batch
        return self.nll(rolls, mask).sum() / mask.sum()

    def sample(self, n_steps: int, *, num_samples: int = 1, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Piano rolls (num_samples, n_steps, 88), one step at a time from p(v_t | v_<t)."""
        if not 0 < n_steps <= self.config.block_size - 1:
            raise UserError(f"n_steps must be 1..{self.config.block_size - 1}, got {n_steps}")
        if temperature <= 0:
            raise UserError(f"temperature must be > 0, got {temperature}")
        device = self.wpe.weight.device
        rolls = torch.zeros(num_samples, n_steps, N_KEYS, device=device)
        with evaluating(self):
            for t in range(n_steps):
                state = self.context(rolls[:, : t + 1])[:, t]  # (B, C); step t not yet used
                base = self.w_out(state)  # (B, 88)
                if self.within is None:
                    probs = torch.sigmoid(base / temperature)
                    rolls[:, t] = torch.bernoulli(probs, generator=generator)
                    continue
                lower = torch.tril(self.within, diagonal=-1)
                if self.nade_w is not None:
                    below = self.nade_c(state)  # (B, H): c_t + Σ_{j<k} v_tj W_j, grown key by key
                for k in range(N_KEYS):  # low to high: key k sees keys 0..k-1 of this step
                    logit = base[:, k] + rolls[:, t] @ lower[k]
                    if self.nade_w is not None:
                        logit = logit + torch.sigmoid(below) @ self.nade_v[k]
                    probs = torch.sigmoid(logit / temperature)
                    rolls[:, t, k] = torch.bernoulli(probs, generator=generator)
                    if self.nade_w is not None:
                        below = below + rolls[:, t, k, None] * self.nade_w[k]
        return rolls

    # -----------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | os.PathLike) -> None:
        """config.json + model.safetensors in `path`, each written atomically."""
        save_model(path, self, "fromscratch-music", asdict(self.config))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "MusicTransformer":
        return load_model(cls, MusicConfig, path, "fromscratch-music")


def evaluate_nll(model: MusicTransformer, rolls: list[torch.Tensor], batch_size: int = 32) -> float:
    """NLL per time step over every step of every chorale (nats; Boulanger-Lewandowski's metric)."""
    device = model.wpe.weight.device
    total, steps = 0.0, 0
    with evaluating(model):
        for first in range(0, len(rolls), batch_size):
            padded, mask = pad_rolls(rolls[first : first + batch_size])
            total += float(model.nll(padded.to(device), mask.to(device)).sum())
            steps += int(mask.sum())
    return total / steps


def plot_piano_roll(roll: torch.Tensor, path=None, title: str = ""):
    """Draw the roll (T, 88), time left to right and pitch bottom to top; save it to `path`
    (a .png) if given. Returns the matplotlib Figure (a notebook shows it)."""
    from matplotlib.figure import Figure  # imported here: only plotting needs matplotlib

    sounding = roll.any(0).nonzero().flatten()
    low, high = (int(sounding.min()), int(sounding.max())) if len(sounding) else (0, N_KEYS - 1)
    low, high = max(0, low - 2), min(N_KEYS - 1, high + 2)
    fig = Figure(figsize=(max(6.0, len(roll) / 10), 3.5))
    ax = fig.subplots()
    ax.imshow(roll[:, low : high + 1].T.cpu().numpy(), origin="lower", aspect="auto", cmap="Greys",
              interpolation="nearest", extent=(0, len(roll), 21 + low - 0.5, 21 + high + 0.5))
    ax.set_xlabel("time step")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


# The settings `fromscratch music train`, the benchmark and the lesson use. The model's config
# follows from the data and the chosen factorisation (MusicConfig's other fields: its defaults);
# extra: ChoraleBatches' random transpositions, in semitones.
RECIPES: dict[str, Recipe] = {
    "default": Recipe(
        description="a causal transformer over JSB chorale piano rolls, whole chorales a batch",
        model={},
        batch_size=16,
        train=dict(max_steps=1000, lr=1e-3, warmup_steps=50, weight_decay=0.1),
        extra=dict(max_transpose=5),
    ),
}


def train_music(rolls: dict[str, list[torch.Tensor]], config: MusicConfig, train_config, *,
                batch_size: int = 16, max_transpose: int = 5, out_dir=None, seed: int = 0,
                **train_args):
    """Train a `MusicTransformer` on rolls["train"] with `fromscratch.train`, tracking the
    NLL per step on rolls["valid"] ("val_loss"). Returns (model, TrainResult)."""
    from fromscratch.data.music import ChoraleBatches
    from fromscratch.training.loop import train

    torch.manual_seed(seed)
    model = MusicTransformer(config)
    batches = ChoraleBatches(rolls["train"], batch_size, seed=seed, max_transpose=max_transpose)
    result = train(
        model, batches, train_config, out_dir=out_dir,
        evaluate=lambda m: {"val_loss": evaluate_nll(m, rolls["valid"])},
        save_model=lambda m, folder: m.save_pretrained(folder), **train_args,
    )
    return model, result
