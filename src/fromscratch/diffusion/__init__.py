"""Diffusion models from their mathematics up.

    sde.py        forward processes: VE / VP / sub-VP SDEs, DDPM / cosine / SD / EDM schedules
    targets.py    score, eps, x0 and v predictions, and conversions between them
    gmm.py        Gaussian mixtures with exact marginals and scores at every t: the ground truth
    losses.py     denoising score matching (its weightings, EDM preconditioning) and flow matching
    toy.py        a time-conditioned MLP score network for 2-D data, and its error against the truth
    likelihood.py exact log-likelihood through the probability flow ODE
    samplers.py   turning noise into data: DDPM, DDIM, Euler–Maruyama, PF-ODE, Heun, DPM-Solver++

Notation shared by every file: x_t = alpha(t) · x0 + sigma(t) · eps, eps ~ N(0, I).
"""
