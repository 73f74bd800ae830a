"""Transformers on neural population data: a simulator with known latent dynamics, loaders for
recorded spikes, the Neural Data Transformer (NDT) and the Neural Latents Benchmark metrics."""
