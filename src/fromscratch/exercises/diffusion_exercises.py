"""The diffusion track's exercises: their test inputs and the mistakes we recognize, by lesson.

Every `_*_cases(gen)` returns fresh random inputs drawn from `gen` plus the edge cases where bugs
hide (t = 0, a single component, tiny noise). Every `Mistake` makes one common error on purpose:
when the learner's output equals it, `check` prints that mistake's hint.
"""

import torch

from fromscratch.exercises import diffusion_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register


def _randn(gen: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=gen) * scale


# ---------------------------------------------------------------------------------------------
# 12 forward diffusion: the VP marginal std
# ---------------------------------------------------------------------------------------------
def _vp_sigma_cases(gen: torch.Generator) -> list[Case]:
    t = torch.rand(6, generator=gen)
    inputs = [
        (t, 0.1, 20.0, "t (6,) in [0, 1], β from 0.1 to 20"),
        (torch.tensor([0.0, 1e-3, 1.0]), 0.1, 20.0, "t = 0, 1e-3 and 1"),
        (torch.rand(4, generator=gen), 1.0, 5.0, "t (4,), β from 1 to 5"),
    ]
    return [Case((t, lo, hi), label) for t, lo, hi, label in inputs]


def _vp_variance(t, beta_min, beta_max):
    return solutions.vp_sigma(t, beta_min, beta_max) ** 2


def _vp_no_half(t, beta_min, beta_max):
    return torch.sqrt(1 - torch.exp(-(beta_min * t + (beta_max - beta_min) * t**2)))


def _vp_beta_not_integral(t, beta_min, beta_max):
    return torch.sqrt(1 - torch.exp(-(beta_min + t * (beta_max - beta_min))))


def _vp_mean_scale(t, beta_min, beta_max):
    return torch.exp(-0.5 * (beta_min * t + 0.5 * (beta_max - beta_min) * t**2))


register(
    Exercise(
        name="vp_sigma",
        lesson="12_forward_diffusion",
        prompt=(
            "vp_sigma(t: Tensor, beta_min: float, beta_max: float) -> Tensor\n"
            "The standard deviation sigma(t) of x_t given x0 under the VP SDE\n"
            "dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw,\n"
            "beta(t) = beta_min + t (beta_max - beta_min)."
        ),
        reference=solutions.vp_sigma,
        make_cases=_vp_sigma_cases,
        mistakes=(
            Mistake("variance", "that is sigma²: take the square root, sigma = √(1 − e^{−B(t)}).",
                    _vp_variance),
            Mistake("no_half", "∫₀ᵗ s ds = t²/2: B(t) = β_min t + ½ (β_max − β_min) t².",
                    _vp_no_half),
            Mistake("beta_not_integral", "the exponent is the integral B(t) = ∫₀ᵗ β(s) ds, not "
                    "β(t) itself.", _vp_beta_not_integral),
            Mistake("alpha", "that is alpha(t) = e^{−B/2}, the mean's scale; sigma² = 1 − alpha².",
                    _vp_mean_scale),
        ),
    )
)


# ---------------------------------------------------------------------------------------------
# 13 the score function: the score of an isotropic Gaussian mixture
# ---------------------------------------------------------------------------------------------
def _mixture_cases(gen: torch.Generator) -> list[Case]:
    def make(B, K, D, var, label, spread=2.0):
        weights = torch.rand(K, generator=gen) + 0.1
        return Case((_randn(gen, B, D, scale=spread), weights / weights.sum(),
                     _randn(gen, K, D, scale=2.0), var), label)

    return [
        make(5, 3, 2, 0.5, "x (5, 2), 3 components, var 0.5"),
        make(4, 4, 3, 0.2, "x (4, 3), 4 components, var 0.2"),
        make(3, 1, 2, 1.0, "a single component: the Gaussian score (μ − x)/var"),
        make(6, 2, 2, 0.01, "narrow components (var 0.01), points far from all of them: every "
             "exp(−‖x − μ‖²/2var) underflows to 0", spread=8.0),
    ]


def _mixture_prior_weights(x, weights, means, var):
    pulls = (means[None] - x[:, None]) / var
    return (weights[None, :, None] * pulls).sum(1)


def _mixture_sign(x, weights, means, var):
    return -solutions.mixture_score(x, weights, means, var)


def _mixture_std(x, weights, means, var):
    return solutions.mixture_score(x, weights, means, var) * var**0.5


def _mixture_no_weights(x, weights, means, var):
    return solutions.mixture_score(x, torch.ones_like(weights) / len(weights), means, var)


register(
    Exercise(
        name="mixture_score",
        lesson="13_score_function",
        prompt=(
            "mixture_score(x: Tensor, weights: Tensor, means: Tensor, var: float) -> Tensor\n"
            "∇ log p(x) for p = Σ_k w_k N(μ_k, var·I); x (B, D), weights (K,), means (K, D).\n"
            "Returns (B, D)."
        ),
        reference=solutions.mixture_score,
        make_cases=_mixture_cases,
        mistakes=(
            Mistake("prior_weights", "weight each component's pull by its posterior r_k(x) = "
                    "w_k N_k(x) / Σ_j w_j N_j(x), not by the prior weight w_k alone.",
                    _mixture_prior_weights),
            Mistake("sign", "the score points toward the data: (μ_k − x)/var, not (x − μ_k)/var.",
                    _mixture_sign),
            Mistake("std", "divide by the variance, not the standard deviation.", _mixture_std),
            Mistake("no_weights", "the responsibilities need the weights too: "
                    "r_k ∝ w_k N_k(x) (add log w_k before the softmax).", _mixture_no_weights),
        ),
        nan_hint="NaN or inf: exp(−‖x − μ‖²/2var) underflows to 0 for narrow components; take the "
                 "softmax of log w_k − ‖x − μ_k‖²/(2 var) instead of dividing exponentials.",
    )
)


# ---------------------------------------------------------------------------------------------
# 15 score matching: the denoising score matching loss
# ---------------------------------------------------------------------------------------------
def _dsm_cases(gen: torch.Generator) -> list[Case]:
    def make(B, D, label, sigma=None):
        s = sigma if sigma is not None else torch.rand(B, generator=gen) * 2 + 0.01
        return Case((_randn(gen, B, D), _randn(gen, B, D), s), label)

    return [
        make(8, 2, "score, eps (8, 2), sigma (8,)"),
        make(3, 5, "score, eps (3, 5)"),
        make(4, 2, "tiny sigma (1e-3)", sigma=torch.full((4,), 1e-3)),
    ]


def _dsm_plus(score, eps, sigma):
    return ((sigma[:, None] * score - eps) ** 2).mean()


def _dsm_unweighted(score, eps, sigma):
    return ((score + eps / sigma[:, None]) ** 2).mean()


def _dsm_sigma_squared(score, eps, sigma):
    return ((sigma[:, None] ** 2 * score + eps) ** 2).mean()


register(
    Exercise(
        name="dsm_loss",
        lesson="15_score_matching",
        prompt=(
            "dsm_loss(score: Tensor, eps: Tensor, sigma: Tensor) -> Tensor\n"
            "Denoising score matching with weight λ = sigma²: the mean over all elements of\n"
            "sigma² ‖score − ∇log p(x_t | x0)‖², where ∇log p(x_t | x0) = −eps/sigma."
        ),
        reference=solutions.dsm_loss,
        make_cases=_dsm_cases,
        mistakes=(
            Mistake("sign", "the conditional score is −eps/sigma (it points back toward x0): "
                    "the residual is sigma·score + eps.", _dsm_plus),
            Mistake("unweighted", "weight by λ = sigma²: without it the small-sigma terms "
                    "(target ~ 1/sigma) swamp the loss.", _dsm_unweighted),
            Mistake("sigma_squared", "∇log p(x_t | x0) = −(x_t − alpha x0)/sigma² = −eps/sigma: "
                    "one power of sigma, not two.", _dsm_sigma_squared),
        ),
    )
)


# ---------------------------------------------------------------------------------------------
# 17 flow matching: the straight path and its velocity
# ---------------------------------------------------------------------------------------------
def _path_cases(gen: torch.Generator) -> list[Case]:
    inputs = [
        (_randn(gen, 6, 2), _randn(gen, 6, 2), torch.rand(6, generator=gen), "(6, 2)"),
        (_randn(gen, 3, 4), _randn(gen, 3, 4), torch.tensor([0.0, 0.5, 1.0]),
         "t = 0, ½ and 1"),
    ]
    return [Case((x0, eps, t), label) for x0, eps, t, label in inputs]


def _path_reversed(x0, eps, t):
    t = t[:, None]
    return t * x0 + (1 - t) * eps, x0 - eps


def _path_velocity_sign(x0, eps, t):
    x_t, v = solutions.straight_path(x0, eps, t)
    return x_t, -v


register(
    Exercise(
        name="straight_path",
        lesson="17_likelihood_flow_matching",
        prompt=(
            "straight_path(x0: Tensor, eps: Tensor, t: Tensor) -> tuple[Tensor, Tensor]\n"
            "The point x_t = (1 − t) x0 + t eps (data at t = 0, noise at t = 1) and the\n"
            "velocity dx_t/dt that flow matching regresses on. x0, eps (B, D), t (B,)."
        ),
        reference=solutions.straight_path,
        make_cases=_path_cases,
        mistakes=(
            Mistake("reversed", "data sits at t = 0 and noise at t = 1: x_t = (1 − t) x0 + t eps.",
                    _path_reversed),
            Mistake("velocity_sign", "d/dt [(1 − t) x0 + t eps] = eps − x0.", _path_velocity_sign),
        ),
    )
)
