"""How well inferred firing rates explain spikes: the Neural Latents Benchmark's measures.

Rates r and counts y are (trials, time, neurons) tensors; rates are expected counts per bin.

    Poisson log-likelihood   LL(r; y) = Σ y log r − r − log y!
    null model               r̄_n = mean over trials and time of y_n: one constant rate per neuron
    bits per spike           bps = (LL(r; y) − LL(r̄; y)) / (n_spikes · ln 2)

Bits per spike is the information the model's rates carry about the spikes, beyond each
neuron's average rate, per spike. The null model scores exactly 0; the true rates score > 0 on
average (how much depends on how strongly the rates vary); a model worse than a flat rate
scores below 0. "Co-smoothing" scores it on held-out neurons, whose rates the model must infer
from the other (held-in) neurons only.

    R²  = 1 − Σ (r − λ)² / Σ (λ − λ̄_n)²   per neuron against the true rates λ, then averaged
"""

import torch

LN2 = 0.6931471805599453


def poisson_log_likelihood(rates: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
    """Σ y log r − r − log y! over all entries (float64; rates clamped at 1e-9 to stay finite)."""
    rates, spikes = rates.double().clamp_min(1e-9), spikes.double()
    return (spikes * rates.log() - rates - torch.lgamma(spikes + 1)).sum()


def null_rates(spikes: torch.Tensor) -> torch.Tensor:
    """Each neuron's mean count per bin, broadcast to the shape of `spikes`."""
    return spikes.double().mean(dim=(0, 1), keepdim=True).expand_as(spikes)


def bits_per_spike(rates: torch.Tensor, spikes: torch.Tensor) -> float:
    """(LL(rates) − LL(null)) / (n_spikes ln 2), over all neurons given."""
    n_spikes = spikes.double().sum()
    gain = poisson_log_likelihood(rates, spikes) - poisson_log_likelihood(null_rates(spikes),
                                                                          spikes)
    return float(gain / (n_spikes * LN2))


def r_squared(predicted: torch.Tensor, true: torch.Tensor) -> float:
    """Mean over neurons of 1 − SSE / SS around the neuron's mean true rate."""
    predicted, true = predicted.double().flatten(0, 1), true.double().flatten(0, 1)  # (R·T, N)
    sse = ((predicted - true) ** 2).sum(0)
    sst = ((true - true.mean(0)) ** 2).sum(0)
    return float((1 - sse / sst).mean())


# ---------------------------------------------------------------------------------------------
# Statistics of trials grouped by condition: what generated trials must reproduce
# ---------------------------------------------------------------------------------------------
# Spikes y (R, T, N) with conditions c (R,) in 0..K−1; each statistic is computed within each
# condition, over that condition's trials, from the trial spike counts Y_rn = Σ_t y_rn(t):
#
#     mean rate      m_kn = mean_r y_rn(t) / Δ                        (K, N) in Hz
#     Fano factor    F_kn = var_r(Y_rn) / mean_r(Y_rn)                (K, N); 1 for Poisson
#                    (var with the n − 1 denominator); above 1: the rate itself varies by trial
#     correlation    ρ_k,ij = corr_r(Y_ri, Y_rj),  i < j              (K, N(N−1)/2)
#                    Pearson over trials: "noise correlations", shared trial-to-trial variability
#     PSTH           P_k,n(t) = mean_r y_rn(t) / Δ                    (K, T, N) in Hz
def _condition_rows(conditions: torch.Tensor, n_conditions: int) -> list[torch.Tensor]:
    rows = [torch.nonzero(conditions == k).flatten() for k in range(n_conditions)]
    if any(len(r) < 2 for r in rows):
        raise ValueError("every condition needs at least 2 trials for its statistics")
    return rows


def mean_rates(spikes, conditions, n_conditions: int, bin_size: float) -> torch.Tensor:
    """m_kn in Hz, (K, N)."""
    return torch.stack([spikes[r].double().mean((0, 1)) / bin_size
                        for r in _condition_rows(conditions, n_conditions)])


def fano_factors(spikes, conditions, n_conditions: int) -> torch.Tensor:
    """F_kn of the trial counts, (K, N); nan where a neuron never fired in a condition."""
    counts = spikes.double().sum(1)  # (R, N)
    return torch.stack([counts[r].var(0) / counts[r].mean(0)
                        for r in _condition_rows(conditions, n_conditions)])


def pairwise_correlations(spikes, conditions, n_conditions: int) -> torch.Tensor:
    """ρ_k,ij of the trial counts for i < j, (K, N(N−1)/2); nan for a neuron without variance."""
    counts = spikes.double().sum(1)  # (R, N)
    N = counts.shape[1]
    upper = torch.triu_indices(N, N, offset=1)
    result = []
    for rows in _condition_rows(conditions, n_conditions):
        centered = counts[rows] - counts[rows].mean(0)  # (R_k, N)
        covariance = centered.T @ centered  # (N, N), up to the 1/(R_k − 1) that cancels
        scale = covariance.diagonal().sqrt()
        result.append((covariance / (scale[:, None] * scale[None, :]))[upper[0], upper[1]])
    return torch.stack(result)


def psths(spikes, conditions, n_conditions: int, bin_size: float,
          smooth_bins: float | None = None) -> torch.Tensor:
    """P_k(t) in Hz, (K, T, N); smoothed by a Gaussian of std `smooth_bins` bins if given."""
    from fromscratch.neuro.baselines import gaussian_smooth

    averages = torch.stack([spikes[r].double().mean(0) / bin_size
                            for r in _condition_rows(conditions, n_conditions)])  # (K, T, N)
    return averages if smooth_bins is None else gaussian_smooth(averages, smooth_bins).double()


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of the entries of a and b, over the entries finite in both."""
    a, b = a.double().flatten(), b.double().flatten()
    finite = a.isfinite() & b.isfinite()
    a, b = a[finite] - a[finite].mean(), b[finite] - b[finite].mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def compare_statistics(real, real_conditions, generated, generated_conditions,
                       n_conditions: int, bin_size: float, smooth_bins: float = 2.0) -> dict:
    """How well generated trials reproduce real ones, condition by condition:

        rate_r, fano_r, corr_r   Pearson r (real vs generated) of mean rates, Fano factors and
                                 pairwise correlations, over all conditions, neurons, pairs
        rate_mae                 mean |m_gen − m_real| in Hz
        fano_real/gen, corr_real/gen   their averages (how variable, how correlated)
        psth_r2                  R² of the generated PSTHs against the real ones (smoothed), the
                                 variance about each real PSTH's time average
    """
    stats = {}
    for name, fn, args in (("rate", mean_rates, (bin_size,)), ("fano", fano_factors, ()),
                           ("corr", pairwise_correlations, ())):
        a = fn(real, real_conditions, n_conditions, *args)
        b = fn(generated, generated_conditions, n_conditions, *args)
        stats[f"{name}_r"] = pearson(a, b)
        if name == "rate":
            stats["rate_mae"] = float((a - b).abs().mean())
        else:
            stats[f"{name}_real"] = float(a.nanmean())
            stats[f"{name}_gen"] = float(b.nanmean())
    a = psths(real, real_conditions, n_conditions, bin_size, smooth_bins)
    b = psths(generated, generated_conditions, n_conditions, bin_size, smooth_bins)
    stats["psth_r2"] = float(1 - ((a - b) ** 2).sum() / ((a - a.mean(1, keepdim=True)) ** 2).sum())
    return stats
