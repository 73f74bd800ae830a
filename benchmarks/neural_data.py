"""Neural population data: how well each method recovers firing rates from spikes.

    python benchmarks/neural_data.py            # 1000 trials × 100 bins × 50 neurons, 1500 steps
    python benchmarks/neural_data.py --quick    # the same data, 100 NDT steps: a smoke run

Data: `simulate_lorenz_population` (Lorenz latents, Poisson spikes, 10 ms bins); the first 800
trials train every method, the last 200 score it (with fewer trials the NDT overfits the
held-out neurons). The last 10 neurons are held out: no method
sees them in the scored trials, and each predicts them from the 40 held-in neurons (co-smoothing).

Columns: co-bps = bits per spike on the held-out neurons of the scored trials (Neural Latents
Benchmark's co-smoothing); R² = inferred vs true rates over all 50 neurons; seconds = CPU time
of fitting. The true rates' co-bps is the ceiling.
"""

import argparse
import time

import torch

from fromscratch.neuro.baselines import fit_poisson_glm, gaussian_smooth, glm_rates, pca_smooth
from fromscratch.neuro.metrics import bits_per_spike, r_squared
from fromscratch.neuro.ndt import train_ndt
from fromscratch.neuro.simulate import simulate_lorenz_population

N_TRAIN, N_HELDOUT, WIDTH_BINS, N_COMPONENTS = 800, 10, 4.0, 3


def smoothing(train, valid, n_in):
    """Smoothed held-in counts as their rates; a Poisson GLM from them to the held-out."""
    features_train = gaussian_smooth(train[:, :, :n_in], WIDTH_BINS)
    features_valid = gaussian_smooth(valid[:, :, :n_in], WIDTH_BINS)
    weights, bias = fit_poisson_glm(features_train.flatten(0, 1), train[:, :, n_in:].flatten(0, 1))
    return torch.cat([features_valid, glm_rates(features_valid, weights, bias)], -1)


def pca(train, valid, n_in):
    """Smoothed held-in counts on their top principal components; a GLM from the components."""
    smooth_train = gaussian_smooth(train[:, :, :n_in], WIDTH_BINS)
    smooth_valid = gaussian_smooth(valid[:, :, :n_in], WIDTH_BINS)
    _, scores_train = pca_smooth(smooth_train, N_COMPONENTS)
    reconstruction, scores_valid = pca_smooth(smooth_valid, N_COMPONENTS, fit_on=smooth_train)
    weights, bias = fit_poisson_glm(scores_train.flatten(0, 1), train[:, :, n_in:].flatten(0, 1))
    return torch.cat([reconstruction.clamp_min(1e-4), glm_rates(scores_valid, weights, bias)], -1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, help="NDT training steps (default 1500, quick 100)")
    args = parser.parse_args()
    torch.manual_seed(0)
    data = simulate_lorenz_population(n_trials=1000, n_neurons=50, n_bins=100, seed=0)
    train, valid = data.spikes[:N_TRAIN], data.spikes[N_TRAIN:]
    true_valid = data.rates[N_TRAIN:]
    n_in = 50 - N_HELDOUT

    def ndt(train, valid, n_in):
        steps = args.steps or (100 if args.quick else 1500)
        model, _ = train_ndt(train, N_HELDOUT, max_steps=steps, progress=True, seed=0)
        return model.infer_rates(valid)

    rows = [("true rates (ceiling)", true_valid, 0.0)]
    methods = (("Gaussian smoothing + GLM", smoothing), ("PCA (3) + smoothing + GLM", pca),
               ("NDT (ours)", ndt))
    for name, method in methods:
        start = time.process_time()
        rates = method(train, valid, n_in)
        rows.append((name, rates, time.process_time() - start))
    print(f"{'method':28s} {'co-bps':>8s} {'R² vs true':>11s} {'CPU s':>7s}")
    for name, rates, seconds in rows:
        co_bps = bits_per_spike(rates[:, :, n_in:], valid[:, :, n_in:])
        print(f"{name:28s} {co_bps:8.4f} {r_squared(rates, true_valid):11.4f} {seconds:7.1f}")


if __name__ == "__main__":
    main()
