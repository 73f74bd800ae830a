"""Learning the score of 2-D data with a small MLP, and measuring it against the exact score.

The network sees the noisy point x_t and the noise level, which enters as Fourier features of

    u = log(sigma(t) / alpha(t))          (minus half the log signal-to-noise ratio)

a single coordinate that orders the noise levels of every process alike (VE, VP, sub-VP, EDM,
discrete schedules, the straight path of flow matching), so one network design serves them all.
The input is divided by √(alpha² + sigma²), the std of x_t for unit-variance data, so the network
always sees numbers of order 1 (a simple form of EDM's c_in).

    model = ToyDiffusion(VPSDE(), prediction="eps")
    train_toy(model, "eight_gaussians", steps=2000)                 # the shared train loop
    errors = score_error_vs_time(model.score, toy_mixture("eight_gaussians"), model.process,
                                 times)                             # against the exact score

Derivations: notebooks/15_score_matching.py (learning the score) and
notebooks/17_likelihood_flow_matching.py (flow matching).
"""

import math
from pathlib import Path

import torch
from torch import nn

from fromscratch.data.toy2d import sample_toy
from fromscratch.diffusion.gmm import GaussianMixture
from fromscratch.diffusion.losses import dsm_loss, flow_matching_loss
from fromscratch.diffusion.sde import expand_like
from fromscratch.diffusion.targets import KINDS, convert
from fromscratch.errors import UserError
from fromscratch.seeds import BATCH, micro_batch_seed
from fromscratch.training.loop import TrainConfig, TrainResult, train


class FourierFeatures(nn.Module):
    """u (B,) → [sin(ω_k u), cos(ω_k u)]_k (B, 2·n): fixed frequencies ω_k, geometric in
    [omega_min, omega_max], so that both slow and fast changes with u can be expressed."""

    def __init__(self, n: int = 16, omega_min: float = 0.1, omega_max: float = 10.0):
        super().__init__()
        omegas = torch.exp(torch.linspace(math.log(omega_min), math.log(omega_max), n))
        self.register_buffer("omegas", omegas, persistent=False)  # (n,)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        angles = u[:, None] * self.omegas  # (B, n)
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # (B, 2n)


class TimeMLP(nn.Module):
    """f(x, u): an MLP on [x, Fourier features of u] with SiLU activations; output like x."""

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, n_freqs: int = 16):
        super().__init__()
        self.features = FourierFeatures(n_freqs)
        layers, width = [], dim + 2 * n_freqs
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, self.features(u)], dim=1))  # (B, D)


class ToyDiffusion(nn.Module):
    """A 2-D diffusion model: `model(x_t, t)` predicts `prediction` (eps, x0, v or score) for
    `process` (an SDE or DiscreteSchedule), trained by denoising score matching (`loss`)."""

    def __init__(self, process, prediction: str = "eps", *, dim: int = 2, hidden: int = 128,
                 depth: int = 3, weighting: str | None = None):
        super().__init__()
        if prediction not in KINDS:
            raise UserError(f"unknown prediction {prediction!r}: use one of {', '.join(KINDS)}")
        self.process = process
        self.prediction = prediction
        self.weighting = weighting
        self.net = TimeMLP(dim, hidden, depth)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = self.process.alpha(t).to(x_t), self.process.sigma(t).to(x_t)
        u = torch.log(sigma / alpha)  # −½ log SNR, (B,)
        c_in = expand_like(torch.rsqrt(alpha**2 + sigma**2), x_t)
        return self.net(c_in * x_t, u)

    def score(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The learned ∇log p_t(x_t), whatever the network predicts."""
        return convert(self(x_t, t), self.prediction, "score", x_t, self.process.alpha(t),
                       self.process.sigma(t))

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        return dsm_loss(self, self.prediction, x0, self.process, weighting=self.weighting)


class ToyFlow(nn.Module):
    """A 2-D flow-matching model: `model(x_t, t)` predicts the velocity eps − x0 on the straight
    path x_t = (1 − t) x0 + t eps, t ∈ [0, 1] (sample it with samplers.flow_euler)."""

    def __init__(self, *, dim: int = 2, hidden: int = 128, depth: int = 3):
        super().__init__()
        self.net = TimeMLP(dim, hidden, depth)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.to(x_t).clamp(1e-5, 1 - 1e-5)  # u = log(t / (1 − t)) is infinite at the ends
        c_in = expand_like(torch.rsqrt((1 - t) ** 2 + t**2), x_t)
        return self.net(c_in * x_t, torch.log(t / (1 - t)))

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        return flow_matching_loss(self, x0)


def train_toy(model: nn.Module, dataset: str = "eight_gaussians", *, steps: int = 2000,
              batch_size: int = 512, lr: float = 5e-3, ema_decay: float | None = 0.995,
              seed: int = 0, out_dir: str | Path | None = None, progress: bool = True,
              max_time: float | None = None) -> TrainResult:
    """Train a ToyDiffusion or ToyFlow on fresh draws of a toy data set with `train`.

    Batch k is drawn from micro_batch_seed(seed, k, 0, BATCH), so a run is reproducible and
    resumable. With `ema_decay`, the averaged weights are copied into `model` at the end (they
    sample better).
    """
    def batches(step: int, micro: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(micro_batch_seed(seed, step, micro, BATCH))
        return sample_toy(dataset, batch_size, gen)

    cfg = TrainConfig(max_steps=steps, lr=lr, warmup_steps=min(100, steps // 10),
                      weight_decay=0.0, grad_clip=1.0, eval_interval=steps,
                      log_interval=max(1, min(50, steps // 20)), checkpoint_interval=steps,
                      seed=seed, progress=progress, ema_decay=ema_decay, ema_warmup=True,
                      max_time=max_time)
    result = train(model, batches, cfg, out_dir=out_dir, overwrite=out_dir is not None)
    if result.ema is not None:
        result.ema.copy_to(model)
    model.eval()
    return result


@torch.no_grad()
def score_error_vs_time(score_fn, mixture: GaussianMixture, process, times, *,
                        n: int = 2000, generator: torch.Generator | None = None
                        ) -> dict[str, torch.Tensor]:
    """How far a score s(x, t) is from the exact mixture score, at each time in `times`.

    At each t, x_t is drawn from the exact marginal p_t (x0 ~ mixture, then the forward process)
    and two errors are averaged over n draws:

        "eps_mse"   E σ² ‖s − ∇log p_t‖² / D    the error in noise units (what the ε-loss sees)
        "relative"  E ‖s − ∇log p_t‖² / E ‖∇log p_t‖²

    Returns {"t", "eps_mse", "relative"}, each (len(times),) float64.
    """
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    times = torch.as_tensor(times)
    eps_mse, relative = [], []
    mixture = mixture.to(torch.float32)
    for t in times.tolist():
        t_batch = torch.full((n,), t, dtype=times.dtype)
        x_t, _ = process.perturb(mixture.sample(n, gen), t_batch, gen)
        exact = mixture.score(x_t, t_batch, process)
        sq = (score_fn(x_t, t_batch) - exact).pow(2).sum(1)  # (n,)
        sigma = float(process.sigma(t_batch[:1])[0])
        eps_mse.append(sigma**2 * sq.mean().item() / mixture.dim)
        relative.append(sq.mean().item() / exact.pow(2).sum(1).mean().item())
    return {"t": times.double(), "eps_mse": torch.tensor(eps_mse, dtype=torch.float64),
            "relative": torch.tensor(relative, dtype=torch.float64)}


def plot_score_error(curves: dict[str, dict[str, torch.Tensor]], path: str | Path | None = None,
                     title: str = "learned score vs the exact score"):
    """Draw `score_error_vs_time` results (one curve per label) on log axes; save a PNG if `path`.

    Returns the matplotlib Figure.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax_eps, ax_rel = fig.subplots(1, 2)
    for label, c in curves.items():
        ax_eps.plot(c["t"], c["eps_mse"], marker="o", ms=3, label=label)
        ax_rel.plot(c["t"], c["relative"], marker="o", ms=3, label=label)
    ax_eps.set(xscale="log", yscale="log", xlabel="t", title="σ(t)² ‖s_θ − ∇log p_t‖² / D")
    ax_rel.set(xscale="log", yscale="log", xlabel="t",
               title="‖s_θ − ∇log p_t‖² / ‖∇log p_t‖²")
    ax_eps.legend(fontsize=8)
    fig.suptitle(title)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_score_field(score_fn, t: float, *, ax, lim: float = 3.0, grid: int = 21,
                     color: str = "C0", label: str | None = None) -> None:
    """Quiver plot of s(x, t) on a grid over [-lim, lim]², arrows scaled to a common length."""
    axis = torch.linspace(-lim, lim, grid)
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    points = torch.stack([xx.flatten(), yy.flatten()], dim=1)  # (grid², 2)
    with torch.no_grad():
        s = score_fn(points, torch.full((len(points),), t))
    ax.quiver(points[:, 0], points[:, 1], s[:, 0], s[:, 1], color=color, label=label,
              angles="xy", scale_units="xy", scale=float(s.norm(dim=1).max()) / (2 * lim / grid))
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
