"""Lesson 20's exercises (the latent space): the VAE's KL term `gaussian_kl` and the
reparameterised sample `reparameterize`, with q = N(0, I) itself among the cases.
"""

import torch

from fromscratch.exercises import l20_latent_space_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import randn


def _gaussian_cases(gen: torch.Generator) -> list[Case]:
    return [Case((randn(gen, 2, 4, 7, 7), randn(gen, 2, 4, 7, 7)), "latents (2, 4, 7, 7)"),
            Case((randn(gen, 3, 10), 0.5 * randn(gen, 3, 10) - 1.0),
                 "vectors (3, 10), small σ"),
            Case((torch.zeros(2, 5), torch.zeros(2, 5)), "μ = 0, log σ² = 0: q is N(0, I)"),
            Case((randn(gen, 1, 4, 8, 8), torch.full((1, 4, 8, 8), -3.0)),
                 "one latent (1, 4, 8, 8), σ² = e⁻³")]


def _kl_terms(mean, logvar):
    return mean**2 + logvar.exp() - 1.0 - logvar


register(
    Exercise(
        name="gaussian_kl",
        lesson="20_latent_space",
        prompt=(
            "gaussian_kl(mean, logvar) -> (B,)\n"
            "KL(N(μ, diag σ²) ‖ N(0, I)) for each example of the batch, where logvar = log σ²,\n"
            "summed over every axis but the first: ½ Σ (μ² + σ² − 1 − log σ²)."
        ),
        reference=solutions.gaussian_kl,
        make_cases=_gaussian_cases,
        mistakes=(
            Mistake("no_half", "the KL of two Gaussians has a factor ½ in front of the sum.",
                    lambda m, lv: _kl_terms(m, lv).flatten(1).sum(1)),
            Mistake("std_not_logvar", "logvar is log σ², not log σ: σ² = exp(logvar), and the log "
                    "term is logvar itself.",
                    lambda m, lv: 0.5 * (m**2 + (2 * lv).exp() - 1 - 2 * lv).flatten(1).sum(1)),
            Mistake("mean_not_sum", "sum over the latent's elements (the KL of independent "
                    "coordinates adds up), do not average them.",
                    lambda m, lv: 0.5 * _kl_terms(m, lv).flatten(1).mean(1)),
            Mistake("no_minus_one", "with μ = 0 and σ = 1 the KL must be 0: you are missing the "
                    "− 1 in μ² + σ² − 1 − log σ².",
                    lambda m, lv: 0.5 * (m**2 + lv.exp() - lv).flatten(1).sum(1)),
            Mistake("log_sign", "the log term enters with a minus sign: − log σ² (a small σ costs "
                    "a lot).", lambda m, lv: 0.5 * (m**2 + lv.exp() - 1 + lv).flatten(1).sum(1)),
        ),
    )
)


register(
    Exercise(
        name="reparameterize",
        lesson="20_latent_space",
        prompt=(
            "reparameterize(mean, logvar, eps) -> z\n"
            "A draw from N(μ, diag σ²), logvar = log σ², written as a differentiable function\n"
            "of μ and logvar and the given standard normal noise eps (same shape)."
        ),
        reference=solutions.reparameterize,
        make_cases=lambda gen: [Case((*case.args, randn(gen, *case.args[0].shape)),
                                     case.label) for case in _gaussian_cases(gen)],
        mistakes=(
            Mistake("variance", "scale the noise by the standard deviation σ = exp(½ logvar), "
                    "not by the variance exp(logvar).", lambda m, lv, e: m + lv.exp() * e),
            Mistake("logvar_as_scale", "logvar is log σ²: σ = exp(½ logvar) multiplies the noise.",
                    lambda m, lv, e: m + lv * e),
            Mistake("inverted", "multiply the noise by σ = exp(+½ logvar), do not divide by it.",
                    lambda m, lv, e: m + torch.exp(-0.5 * lv) * e),
        ),
    )
)
