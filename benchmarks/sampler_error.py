"""How far each sampler's samples are from the truth, against the number of model evaluations.

    python benchmarks/sampler_error.py [--quick] [--samples 10000] [--train-steps 10000]
                                       [--img docs/img]

1. Exact score. Data: the 3-component 2-D Gaussian mixture of `toy_mixture("mixture")`, whose
   score is known in closed form at every t (gmm.py), so every error below is the sampler's own.
   For each sampler and NFE ∈ {5, 10, 20, 50, 100, 200, 1000}: sliced W2 and MMD (fixed Gaussian
   kernel, h = 0.5) between its samples and as many fresh samples of the true distribution at the
   sampler's end time; the Monte Carlo floor (truth vs truth) is printed with them.
2. Order of convergence. Data: one Gaussian, where the probability flow ODE has a closed-form
   solution; the mean per-sample distance to it, and the log-log slope of that error against NFE
   (fitted over NFE ≥ 20), compared with theory (Euler 1, Heun 2, DPM-Solver++(2M) 2) ± 0.3.
3. Learned score. The same table as 1, with a small MLP trained by denoising score matching
   (and one trained by flow matching, for the flow samplers) for --train-steps steps each: a
   fixed number, so the result does not depend on how busy the machine is (10,000 steps take
   about 100 s on one core of an idle machine; the time taken is printed).
4. Loop overhead: our DDPM / DDIM / DPM-Solver++ loops against diffusers' scheduler loops, with a
   model that costs nothing, so the time per step is the sampler's own bookkeeping.

Plots (docs/img/): error vs NFE (log-log), sample trajectories, score fields.
Everything runs in float64 on one CPU thread except the learned models (float32).
"""

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from fromscratch.data.toy2d import toy_mixture
from fromscratch.diffusion import samplers as S
from fromscratch.diffusion.gmm import GaussianMixture, gaussian_pf_ode_solution
from fromscratch.diffusion.metrics import mmd, sliced_wasserstein2
from fromscratch.diffusion.sde import VPSDE, DiscreteSchedule, linear_betas

NFES = [5, 10, 20, 50, 100, 200, 1000]
SDE_SAMPLERS = ["euler_maruyama", "predictor_corrector", "ddpm", "ddim", "ode_euler", "ode_heun",
                "heun_edm", "dpm_solver_2m"]
FLOW_SAMPLERS = ["flow_euler", "flow_heun"]
ORDERS = {"ode_euler": 1, "ode_heun": 2, "ddim": 1, "dpm_solver_2m": 2, "heun_edm": 2,
          "flow_euler": 1, "flow_heun": 2}
RK45_TOLERANCES = [1e-2, 1e-3, 1e-4, 1e-5]


def steps_for(name: str, nfe: int) -> int | None:
    """The number of steps whose NFE is `nfe` (or just below); None if the sampler cannot."""
    if name in ("heun_edm", "flow_heun"):
        steps = (nfe + 1) // 2
    elif name in ("ode_heun", "predictor_corrector"):
        steps = nfe // 2
    else:
        steps = nfe
    return steps if steps >= (2 if name == "heun_edm" else 1) else None


def run_sampler(name: str, model, x_T, sde, steps, generator, **options):
    """One sampler by name: the SDE samplers take (model, x_T, sde, steps), the flow ones none."""
    if name in FLOW_SAMPLERS:
        return getattr(S, name)(model, x_T, steps, **options)
    return S.SAMPLERS[name](model, x_T, sde, steps, generator=generator, **options)


def ends_on_data(name: str) -> bool:
    """Heun (EDM) and the flow samplers end at clean data; the others at sde.t_min."""
    return name in ("heun_edm", *FLOW_SAMPLERS)


def straight_path_x0(mixture: GaussianMixture, x: torch.Tensor, t: float) -> torch.Tensor:
    """E[x0 | x_t] on the straight path x_t = (1 − t) x0 + t eps, written so that it stays finite
    at t = 1 (gmm's Tweedie form divides by alpha = 1 − t):
        Σ_k r_k(x) [μ_k + a Σ_k (a² Σ_k + s² I)⁻¹ (x − a μ_k)],   a = 1 − t, s = t."""
    a, s = 1 - t, t
    r = mixture.responsibilities(x, alpha=a, sigma=s)  # (B, K)
    eye = torch.eye(mixture.dim, dtype=x.dtype)
    gain = torch.linalg.solve(a**2 * mixture.covs + s**2 * eye, a * mixture.covs)  # (K, D, D)
    diff = x[:, None, :] - a * mixture.means  # (B, K, D)
    posterior_means = mixture.means + torch.einsum("bkd,kde->bke", diff, gain)  # C⁻¹ aΣ sym.
    return torch.einsum("bk,bkd->bd", r, posterior_means)


# ---------------------------------------------------------------------------------------------
# 1 and 3: distribution distances
# ---------------------------------------------------------------------------------------------
def distance_table(models, mixture, sde, n, nfes, seed=0):
    """{(sampler, nfe): (sliced W2, MMD, seconds)} for the samplers in `models`."""
    gen = torch.Generator().manual_seed(seed)
    at_t_min = mixture.marginal(sde, sde.t_min)
    truth_end = {True: mixture.sample(n, gen), False: at_t_min.sample(n, gen)}
    results = {}
    for name, (model, prediction, dtype) in models.items():
        for nfe in nfes:
            steps = steps_for(name, nfe)
            if steps is None:
                continue
            x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed + 1), dtype=dtype)
            if name not in FLOW_SAMPLERS:
                x_T = x_T * sde.prior_std()
            start = time.perf_counter()
            with torch.no_grad():
                noise = torch.Generator().manual_seed(seed + 2)
                x0 = run_sampler(name, model, x_T, sde, steps, noise, prediction=prediction)
            seconds = time.perf_counter() - start
            truth = truth_end[ends_on_data(name)]
            x0 = x0.double()
            results[name, nfe] = (sliced_wasserstein2(x0, truth), mmd(x0, truth), seconds)
            print(f"  {name:20s} NFE {nfe:5d}: SW2 {results[name, nfe][0]:.4f}  "
                  f"MMD {results[name, nfe][1]:.4f}  ({seconds:.1f} s)", flush=True)
    return results


def rk45_rows(model, prediction, mixture, sde, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    truth = mixture.marginal(sde, sde.t_min).sample(n, gen)
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    rows, calls = [], []

    def counted(x, t):
        calls.append(1)
        return model(x, t)

    for rtol in RK45_TOLERANCES:
        calls.clear()
        x0 = S.ode_rk45(counted, x_T, sde, rtol, prediction=prediction)
        rows.append((rtol, len(calls), sliced_wasserstein2(x0, truth), mmd(x0, truth)))
        print(f"  RK45 rtol {rtol:g}: NFE {len(calls)}", flush=True)
    return rows


def floor(mixture, n, pairs=3, seed=0):
    """The Monte Carlo floor: (sliced W2, MMD) between two independent samples of the truth,
    each the median over `pairs` pairs (one pair alone varies by ~20%)."""
    values = []
    for k in range(pairs):
        a = mixture.sample(n, torch.Generator().manual_seed(seed + 10 + 2 * k))
        b = mixture.sample(n, torch.Generator().manual_seed(seed + 11 + 2 * k))
        values.append((sliced_wasserstein2(a, b), mmd(a, b)))
    return tuple(float(np.median(column)) for column in zip(*values, strict=True))


def print_distance_table(title, results, names, nfes, floor_values, learned=None):
    print(f"\n### {title}\n")
    print(f"Monte Carlo floor (truth vs truth, same sample size, median of 3): "
          f"sliced W2 {floor_values[0]:.4f}, MMD {floor_values[1]:.4f}.\n")
    for metric, index in (("sliced W2", 0), ("MMD", 1)):
        header = "| sampler | " + " | ".join(f"NFE {nfe}" for nfe in nfes) + " |"
        print(f"{metric}" + (" — exact score / learned score" if learned else "") + ":\n")
        print(header)
        print("|---" * (len(nfes) + 1) + "|")
        for name in names:
            cells = []
            for nfe in nfes:
                if (name, nfe) not in results:
                    cells.append("—")
                    continue
                cell = f"{results[name, nfe][index]:.4f}"
                if learned is not None and (name, nfe) in learned:
                    cell += f" / {learned[name, nfe][index]:.4f}"
                cells.append(cell)
            print(f"| {name} | " + " | ".join(cells) + " |")
        print()


# ---------------------------------------------------------------------------------------------
# 2: order of convergence against the closed-form ODE solution
# ---------------------------------------------------------------------------------------------
MEAN = torch.tensor([1.0, -0.5], dtype=torch.float64)
COV = torch.tensor([[0.6, 0.2], [0.2, 0.3]], dtype=torch.float64)


def convergence(sde, n, nfes):
    """On one Gaussian: {sampler: [mean per-sample error at each nfe]} and {sampler: [the NFE
    each run really used]} (Heun's NFE is odd or even, not both)."""
    gaussian = GaussianMixture(torch.ones(1, dtype=torch.float64), MEAN[None], COV[None])
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def score(x, t):
        return gaussian.score(x, t, sde)

    def x0_straight(x, t):
        return straight_path_x0(gaussian, x, float(t[0]))

    errors, evaluations = {}, {}
    for name in ORDERS:
        flow = name in FLOW_SAMPLERS
        start = x_T if flow else x_T * sde.prior_std()
        end = 0.0 if ends_on_data(name) else sde.t_min
        exact = gaussian_pf_ode_solution(start, 1.0, end, S.StraightPath() if flow else sde, MEAN,
                                         COV)
        errors[name], evaluations[name] = [], []
        for nfe in nfes:
            steps = steps_for(name, nfe)
            evaluations[name].append(S.evaluations(name, steps) if steps else nfe)
            if steps is None:
                errors[name].append(float("nan"))
                continue
            model, prediction = (x0_straight, "x0") if flow else (score, "score")
            x0 = run_sampler(name, model, start, sde, steps, None, prediction=prediction)
            errors[name].append(float((x0 - exact).norm(dim=1).mean()))
    return errors, evaluations


def fitted_order(nfes, errors, min_nfe=20) -> float:
    """−slope of log(error) against log(NFE), over NFE ≥ min_nfe (the asymptotic regime)."""
    pairs = [(n, e) for n, e in zip(nfes, errors, strict=True) if n >= min_nfe and e > 0]
    x, y = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
    return float(-np.polyfit(x, y, 1)[0])


# ---------------------------------------------------------------------------------------------
# 4: loop overhead against diffusers
# ---------------------------------------------------------------------------------------------
def overhead(steps=200, repeats=5):
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    schedule = DiscreteSchedule(linear_betas(1000))
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))

    def model(x, t):  # costs nothing: the loop's own work dominates
        return x

    def ours(sampler, **kw):
        return lambda: sampler(model, x, schedule, steps, generator=torch.Generator(), **kw)

    def theirs(scheduler_class, **kw):
        scheduler = scheduler_class(num_train_timesteps=1000, **kw)

        def loop():
            scheduler.set_timesteps(steps)
            sample, gen = x, torch.Generator()
            stochastic = scheduler_class is not DPMSolverMultistepScheduler
            step_kw = {"generator": gen} if stochastic else {}
            for t in scheduler.timesteps:
                sample = scheduler.step(model(sample, t), t, sample, **step_kw).prev_sample
            return sample
        return loop

    def best(fn):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times) / steps * 1e6  # µs per step

    pairs = [("DDPM", ours(S.ddpm), theirs(DDPMScheduler, clip_sample=False)),
             ("DDIM (η = 0)", ours(S.ddim), theirs(DDIMScheduler, clip_sample=False)),
             ("DPM-Solver++(2M)", ours(S.dpm_solver_2m),
              theirs(DPMSolverMultistepScheduler, timestep_spacing="leading"))]
    rows = []
    for label, our_loop, their_loop in pairs:
        rows.append((label, best(our_loop), best(their_loop)))
    return rows


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------
def plot_error_vs_nfe(exact, learned, nfes, conv, conv_evals, floor_values, path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4), layout="constrained")
    ax_sw, ax_learned, ax_conv = fig.subplots(1, 3)
    panels = ((ax_sw, exact, "exact score"), (ax_learned, learned, "learned score"))
    for ax, results, title in panels:
        for i, name in enumerate(SDE_SAMPLERS + FLOW_SAMPLERS):
            pts = [(nfe, results[name, nfe][0]) for nfe in nfes if (name, nfe) in results]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=name,
                        ls="--" if name in FLOW_SAMPLERS else "-", color=f"C{i % 10}")
        ax.axhline(floor_values[0], color="k", lw=0.8, ls=":", label="MC floor")
        ax.set(xscale="log", yscale="log", xlabel="NFE", ylabel="sliced W2 to the truth",
               title=f"2-D mixture, {title}")
    ax_sw.legend(fontsize=7, ncol=2)
    for i, (name, errors) in enumerate(conv.items()):
        order = fitted_order(conv_evals[name], errors)
        ax_conv.plot(conv_evals[name], errors, marker="o", ms=3, label=f"{name} ({order:.2f})",
                     ls="--" if name in FLOW_SAMPLERS else "-", color=f"C{i % 10}")
    grid = conv_evals["ode_euler"]
    for order, style in ((1, ":"), (2, "-.")):
        ref = [conv["ode_euler"][1] * (grid[1] / n) ** order for n in grid]
        ax_conv.plot(grid, ref, color="gray", ls=style, lw=0.8, label=f"slope −{order}")
    ax_conv.set(xscale="log", yscale="log", xlabel="NFE", ylabel="mean |x − x_exact|",
                title="one Gaussian: error vs exact ODE solution")
    ax_conv.legend(fontsize=7)
    fig.savefig(path, dpi=120)


def plot_trajectories(models, mixture, sde, path, n=400, steps=40):
    from matplotlib.figure import Figure

    names = ["euler_maruyama", "ode_heun", "dpm_solver_2m", "flow_euler"]
    fig = Figure(figsize=(14, 3.8), layout="constrained")
    axes = fig.subplots(1, len(names))
    data = mixture.sample(3000, torch.Generator().manual_seed(5))
    for ax, name in zip(axes, names, strict=True):
        model, prediction, dtype = models[name]
        x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(6), dtype=dtype)
        with torch.no_grad():
            _, trajectory = run_sampler(name, model, x_T, sde, steps, torch.Generator(),
                                        prediction=prediction, return_trajectory=True)
        ax.scatter(data[:, 0], data[:, 1], s=1, color="0.85")
        for i in range(60):
            ax.plot(trajectory[:, i, 0], trajectory[:, i, 1], lw=0.5, alpha=0.7)
        ax.scatter(trajectory[-1, :, 0], trajectory[-1, :, 1], s=2, color="k")
        ax.set(xlim=(-3.5, 3.5), ylim=(-3.5, 3.5), aspect="equal", title=f"{name}, {steps} steps")
    fig.savefig(path, dpi=120)


def plot_score_fields(exact_score, learned_score, path, times=(0.05, 0.2, 0.5)):
    """Exact (top) and learned (bottom) score fields, each panel with its own arrow scale."""
    from matplotlib.figure import Figure

    from fromscratch.diffusion.toy import plot_score_field

    fig = Figure(figsize=(3.6 * len(times), 7.2), layout="constrained")
    axes = fig.subplots(2, len(times))
    for column, t in enumerate(times):
        for row, (score, label, color) in enumerate(((exact_score, "exact", "C0"),
                                                      (learned_score, "learned", "C3"))):
            plot_score_field(score, t, ax=axes[row, column], color=color)
            axes[row, column].set_title(f"{label} score, t = {t}")
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2,000 samples, NFE ≤ 100, 2,000 training steps")
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--train-steps", type=int, default=None)
    parser.add_argument("--img", default=str(Path(__file__).resolve().parents[1] / "docs" / "img"))
    args = parser.parse_args()
    n = args.samples or (2000 if args.quick else 10_000)
    nfes = NFES[:5] if args.quick else NFES
    train_steps = args.train_steps or (2_000 if args.quick else 10_000)
    torch.set_num_threads(1)  # 2-D points: too little work per op to share between threads
    img = Path(args.img)
    img.mkdir(parents=True, exist_ok=True)

    sde = VPSDE()
    mixture = toy_mixture("mixture")  # float64
    print(f"# Samplers against the exact score: {n:,} samples, VP SDE, torch {torch.__version__}, "
          f"1 thread\n")

    def exact_score(x, t):
        return mixture.score(x.double(), t.double(), sde).to(x.dtype)

    def exact_x0_straight(x, t):
        return straight_path_x0(mixture, x, float(t[0]))

    exact_models = {name: (exact_score, "score", torch.float64) for name in SDE_SAMPLERS}
    exact_models.update({name: (exact_x0_straight, "x0", torch.float64) for name in FLOW_SAMPLERS})
    floor_values = floor(mixture, n)
    print("1. exact score")
    exact = distance_table(exact_models, mixture, sde, n, nfes)
    rk45 = rk45_rows(exact_score, "score", mixture, sde, n)

    print("2. convergence order on one Gaussian")
    conv_nfes = nfes if not args.quick else [10, 20, 50, 100, 200]
    conv, conv_evals = convergence(sde, min(n, 2000), conv_nfes)

    print(f"3. learned score ({train_steps:,} training steps each)")
    from fromscratch.diffusion.toy import ToyDiffusion, ToyFlow, train_toy

    torch.manual_seed(0)
    diffusion = ToyDiffusion(sde, prediction="eps")
    start = time.perf_counter()
    train_toy(diffusion, "mixture", steps=train_steps, progress=False)
    diffusion_time = time.perf_counter() - start
    flow = ToyFlow()
    start = time.perf_counter()
    train_toy(flow, "mixture", steps=train_steps, progress=False)
    flow_time = time.perf_counter() - start
    learned_models = {name: (diffusion, "eps", torch.float32) for name in SDE_SAMPLERS}
    learned_models.update({name: (flow, "velocity", torch.float32) for name in FLOW_SAMPLERS})
    learned = distance_table(learned_models, mixture, sde, n, nfes)

    print("4. loop overhead vs diffusers")
    overhead_rows = overhead()

    # ------------------------------------------------------------------ report
    print("\n## Results\n")
    title = (f"Exact score vs learned score ({n:,} samples; learned: MLP trained {train_steps:,} "
             f"steps ({diffusion_time:.0f} s) by DSM, ε-prediction; flow: {train_steps:,} steps "
             f"({flow_time:.0f} s) by flow matching)")
    print_distance_table(title, exact, SDE_SAMPLERS + FLOW_SAMPLERS, nfes, floor_values, learned)
    print("Adaptive RK45 on the probability flow ODE (exact score):\n")
    print("| rtol = atol | NFE | sliced W2 | MMD |\n|---|---|---|---|")
    for rtol, nfe, sw, m in rk45:
        print(f"| {rtol:g} | {nfe} | {sw:.4f} | {m:.4f} |")

    print("\n### Order of convergence (one Gaussian, mean per-sample error vs the exact ODE "
          "solution)\n")
    print("| sampler | " + " | ".join(f"NFE {k}" for k in conv_nfes) +
          " | fitted order (NFE ≥ 20) | theory | within ±0.3 |")
    print("|---" * (len(conv_nfes) + 4) + "|")
    for name, errors in conv.items():
        order = fitted_order(conv_evals[name], errors)
        cells = " | ".join("—" if math.isnan(e) else f"{e:.2e}" for e in errors)
        ok = "yes" if abs(order - ORDERS[name]) <= 0.3 else "NO"
        print(f"| {name} | {cells} | {order:.2f} | {ORDERS[name]} | {ok} |")

    print("\n### Loop overhead (model = identity, 1×4×8×8 tensor, 200 steps; µs per step, "
          "best of 5)\n")
    print("| sampler | ours | diffusers | diffusers / ours |\n|---|---|---|---|")
    for label, ours_us, theirs_us in overhead_rows:
        print(f"| {label} | {ours_us:.0f} | {theirs_us:.0f} | {theirs_us / ours_us:.2f}× |")

    plot_error_vs_nfe(exact, learned, nfes, conv, conv_evals, floor_values,
                      img / "sampler_error_vs_nfe.png")
    plot_trajectories(exact_models, mixture, sde, img / "sampler_trajectories.png")
    plot_score_fields(exact_score, diffusion.score, img / "score_fields.png")
    print(f"\nplots: {img}/sampler_error_vs_nfe.png, sampler_trajectories.png, score_fields.png")


if __name__ == "__main__":
    main()
