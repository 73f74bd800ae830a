"""Neural population data: how well each method recovers firing rates from spikes, and how well
generated trials reproduce the statistics of real ones.

    python benchmarks/neural_data.py            # both tables: NDT 1500 steps, diffusion 2000
    python benchmarks/neural_data.py --quick    # the same data, 100 NDT / 300 diffusion steps
    python benchmarks/neural_data.py --only generative --img docs/img   # one table, plots

Rates table. Data: `simulate_lorenz_population` (Lorenz latents, Poisson spikes, 10 ms bins);
the first 800 trials train every method, the last 200 score it (with fewer trials the NDT
overfits the held-out neurons). The last 10 neurons are held out: no method sees them in the
scored trials, and each predicts them from the 40 held-in neurons (co-smoothing).
Columns: co-bps = bits per spike on the held-out neurons of the scored trials (Neural Latents
Benchmark's co-smoothing); R² = inferred vs true rates over all 50 neurons; seconds = CPU time
of fitting. The true rates' co-bps is the ceiling.

Generative table. Data: 1000 trials of 4 conditions (trials of a condition start near one fixed
state), 50 bins of 20 ms, 40 neurons; 800 trials train, the last 200 (50 per condition) are the
held-out real trials. Every method produces 50 trials per condition, which are compared with
the held-out ones (`metrics.compare_statistics`): Pearson r of the per-condition mean rates,
Fano factors and pairwise (noise) correlations of trial spike counts, and R² of the PSTHs.
Rows: other real trials (the ceiling: what sampling noise alone allows), Poisson spikes from each
condition's training PSTH (right PSTHs, no trial-to-trial variability), training trials
shuffled across trials neuron by neuron (right PSTHs and Fano factors, no correlations), and
the diffusion model of `neuro/generative.py` trained on the training trials' rates, with
guidance w = 0 (unconditional), 1 (conditional) and 2.
"""

import argparse
import os
import resource
import time
from pathlib import Path

import torch

from fromscratch.neuro.baselines import (
    fit_factor_analysis,
    fit_poisson_glm,
    gaussian_smooth,
    glm_rates,
    pca_smooth,
)
from fromscratch.neuro.generative import plot_generated_vs_real, train_generative
from fromscratch.neuro.metrics import bits_per_spike, compare_statistics, psths, r_squared
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


def factor_analysis(train, valid, n_in):
    """Smoothed held-in counts through factor analysis (EM); a GLM from the factors."""
    smooth_train = gaussian_smooth(train[:, :, :n_in], WIDTH_BINS).flatten(0, 1)
    smooth_valid = gaussian_smooth(valid[:, :, :n_in], WIDTH_BINS)
    fa = fit_factor_analysis(smooth_train, N_COMPONENTS, max_iter=500, tol=1e-6)
    weights, bias = fit_poisson_glm(fa.factors(smooth_train), train[:, :, n_in:].flatten(0, 1))
    held_out = glm_rates(fa.factors(smooth_valid), weights, bias)
    return torch.cat([fa.reconstruct(smooth_valid).float().clamp_min(1e-4), held_out], -1)


def rates_table(args):
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
               ("FA (3) + smoothing + GLM", factor_analysis), ("NDT (ours)", ndt))
    for name, method in methods:
        start = time.process_time()
        rates = method(train, valid, n_in)
        rows.append((name, rates, time.process_time() - start))
    print(f"{'method':28s} {'co-bps':>8s} {'R² vs true':>11s} {'CPU s':>7s}")
    for name, rates, seconds in rows:
        co_bps = bits_per_spike(rates[:, :, n_in:], valid[:, :, n_in:])
        print(f"{name:28s} {co_bps:8.4f} {r_squared(rates, true_valid):11.4f} {seconds:7.1f}")


def shuffled(spikes, conditions, n_conditions, per_condition, gen):
    """Per condition, `per_condition` trials whose neurons come from independently permuted
    trials: the PSTHs and each neuron's count distribution stay, the correlations go."""
    out, labels = [], []
    for k in range(n_conditions):
        trials = spikes[conditions == k]  # (R_k, T, N)
        R, T, N = trials.shape
        order = torch.stack([torch.randperm(R, generator=gen)[:per_condition] for _ in range(N)])
        out.append(trials[order.T, :, torch.arange(N)].permute(0, 2, 1))  # (per_condition, T, N)
        labels.append(torch.full((per_condition,), k))
    return torch.cat(out), torch.cat(labels)


def generative_table(args):
    K, bin_size = 4, 0.02
    data = simulate_lorenz_population(n_trials=1000, n_neurons=40, n_bins=50, bin_size=bin_size,
                                      steps_per_bin=2, n_conditions=K, seed=1)
    spikes, conditions = data.spikes, data.conditions
    held_out, held_out_c = spikes[N_TRAIN:], conditions[N_TRAIN:]
    train_spikes, train_c = spikes[:N_TRAIN], conditions[:N_TRAIN]
    per_condition = len(held_out) // K
    gen = torch.Generator().manual_seed(0)
    rows = []

    start = time.process_time()
    rows.append(("other real trials (ceiling)", train_spikes[:len(held_out)],
                 train_c[:len(held_out)], time.process_time() - start))
    start = time.process_time()
    psth_rates = psths(train_spikes, train_c, K, bin_size).float() * bin_size  # (K, T, N)
    rows.append(("Poisson from training PSTH", torch.poisson(psth_rates[held_out_c],
                                                             generator=gen),
                 held_out_c, time.process_time() - start))
    start = time.process_time()
    rows.append(("trial-shuffled training trials",
                 *shuffled(train_spikes, train_c, K, per_condition, gen),
                 time.process_time() - start))

    steps = args.gen_steps or (300 if args.quick else 2000)
    start = time.process_time()
    model, _ = train_generative(data.rates[:N_TRAIN], train_c, K, max_steps=steps, seed=0)
    train_seconds = time.process_time() - start
    for w in (0.0, 1.0, 2.0):
        start = time.process_time()
        _, generated = model.generate(held_out_c, guidance=w, steps=50,
                                      generator=torch.Generator().manual_seed(1))
        name = f"diffusion (ours), w = {w:g}"
        rows.append((name, generated, held_out_c, time.process_time() - start + train_seconds))
        if args.img and w == 1.0:
            Path(args.img).mkdir(parents=True, exist_ok=True)
            plot_generated_vs_real(held_out, held_out_c, generated, held_out_c, K, bin_size,
                                   Path(args.img) / "neuro_generated_psth.png")

    print(f"\ngenerated vs held-out real trials ({K} conditions × {per_condition} trials, "
          f"diffusion trained {steps} steps; CPU s include its training)")
    print(f"{'method':34s} {'rate r':>7s} {'MAE Hz':>7s} {'Fano':>5s} {'Fano r':>7s} "
          f"{'corr':>6s} {'corr r':>7s} {'PSTH R²':>8s} {'CPU s':>7s}")
    for name, generated, labels, seconds in rows:
        s = compare_statistics(held_out, held_out_c, generated, labels, K, bin_size)
        print(f"{name:34s} {s['rate_r']:7.3f} {s['rate_mae']:7.2f} {s['fano_gen']:5.2f} "
              f"{s['fano_r']:7.3f} {s['corr_gen']:6.3f} {s['corr_r']:7.3f} {s['psth_r2']:8.3f} "
              f"{seconds:7.1f}")
    real = compare_statistics(held_out, held_out_c, held_out, held_out_c, K, bin_size)
    print(f"(held-out real trials: mean Fano factor {real['fano_real']:.2f}, mean pairwise "
          f"correlation {real['corr_real']:.3f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, help="NDT training steps (default 1500, quick 100)")
    parser.add_argument("--gen-steps", type=int,
                        help="diffusion training steps (default 2000, quick 300)")
    parser.add_argument("--only", choices=("rates", "generative"))
    parser.add_argument("--img", help="folder for neuro_generated_psth.png")
    args = parser.parse_args()
    torch.manual_seed(0)
    wall = time.perf_counter()
    if args.only in (None, "rates"):
        rates_table(args)
    if args.only in (None, "generative"):
        generative_table(args)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nwall {time.perf_counter() - wall:.0f} s, CPU {usage.ru_utime + usage.ru_stime:.0f} s,"
          f" load average (1, 5, 15 min) at the end {load}")


if __name__ == "__main__":
    main()
