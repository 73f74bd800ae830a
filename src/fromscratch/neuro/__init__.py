"""Transformers and diffusion models on neural population data: a simulator with known latent
dynamics (and trials grouped by condition), loaders for recorded spikes, the Neural Data
Transformer (NDT), a conditional diffusion model that generates trials, classical baselines
(smoothing, PCA, factor analysis, Poisson GLM) and the metrics that score them."""
