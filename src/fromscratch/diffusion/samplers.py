"""Samplers: from noise x_T back to data x_0, by solving the reverse-time SDE or the probability
flow ODE step by step.

Notation as in sde.py: x_t = alpha(t)·x0 + sigma(t)·eps, eps ~ N(0, I). A model is a callable
`model(x_t, t)` and the name of what it predicts, `prediction=` one of "score", "eps", "x0", "v"
(targets.py turns one into another). t is a float tensor (B,) for an SDE and an int tensor (B,) of
timestep indices for a DiscreteSchedule, as in diffusers.

Every sampler is called the same way,

    x0 = sampler(model, x_T, process, steps, *, prediction=..., generator=None)
    x0, trajectory = sampler(..., return_trajectory=True)      # trajectory: (steps + 1, B, ...)

where `process` is the SDE or DiscreteSchedule the model was trained on and x_T a draw from its
prior (`process.prior_sample`). Deterministic samplers take `generator` too, and ignore it, so a
benchmark can call every sampler alike. Two exceptions: `ode_rk45` takes a tolerance in place
of `steps`, and the flow samplers, whose path is fixed, take no process. The number of model
evaluations (NFE) per call:

    sampler              solves           NFE          order   derivation
    euler_maruyama       reverse SDE      steps        ½ (1 weak)  notebooks/14_reverse_diffusion.py
    ode_euler            PF-ODE           steps        1       notebooks/14_reverse_diffusion.py
    ode_heun             PF-ODE           2·steps      2       notebooks/16_samplers.py §3
    ode_rk45             PF-ODE           adaptive     5(4)    scipy's solve_ivp
    predictor_corrector  reverse SDE      2·steps              notebooks/16_samplers.py §4
    ddpm                 reverse chain    steps                notebooks/16_samplers.py §1
    ddim                 PF-ODE (η = 0)   steps        1       notebooks/16_samplers.py §2
    heun_edm             PF-ODE in σ      2·steps − 1  2       notebooks/16_samplers.py §5
    dpm_solver_2m        PF-ODE in λ      steps        2       notebooks/16_samplers.py §6
    flow_euler/heun      straight-path ODE  steps / 2·steps − 1   notebooks/16_samplers.py §7

Time grids. On an SDE, samplers go from T down to sde.t_min (the score at t = 0 is undefined)
and x_0 is the sample at t_min: the SDE/ODE integrators in steps evenly spaced in t, DDPM, DDIM
and DPM-Solver++ evenly spaced in log-SNR (`spacing="time"` or `"logsnr"` picks), Heun (EDM) on
Karras' σ levels. On a DiscreteSchedule, `spacing` picks `steps` of the N training timesteps as
diffusers does ("leading", "trailing", "linspace"), and the last step lands on clean data
(ᾱ = 1, diffusers' `set_alpha_to_one`).
"""

import math
from collections.abc import Callable

import torch

from fromscratch.diffusion.sde import SDE, DiscreteSchedule, edm_sigmas
from fromscratch.diffusion.targets import KINDS, convert, x0_and_eps
from fromscratch.errors import UserError

SPACINGS = ("leading", "trailing", "linspace")


# ---------------------------------------------------------------------------------------------
# Time grids
# ---------------------------------------------------------------------------------------------
def discrete_timesteps(num_train_timesteps: int, steps: int, spacing: str = "leading") -> list[int]:
    """`steps` of the timestep indices 0..N−1, largest first, spaced as diffusers spaces them.

        leading   0, r, 2r, ... with r = N // steps           (DDPM and DDIM's default)
        trailing  N − 1, N − 1 − N/steps, ...  rounded        (ends at N/steps − 1; "trailing")
        linspace  round(i (N − 1)/(steps − 1)), i < steps     (both ends included)

    >>> discrete_timesteps(1000, 4)
    [750, 500, 250, 0]
    >>> discrete_timesteps(1000, 4, "trailing")
    [999, 749, 499, 249]
    """
    N = num_train_timesteps
    if not 1 <= steps <= N:
        raise UserError(f"steps must be between 1 and the {N} training timesteps, got {steps}")
    if spacing == "leading":
        ratio = N // steps
        return [i * ratio for i in range(steps)][::-1]
    if spacing == "trailing":
        return [round(N - i * N / steps) - 1 for i in range(steps)]
    if spacing == "linspace":
        if steps == 1:
            return [0]
        delta = (N - 1) / (steps - 1)
        return [round(i * delta) for i in range(steps)][::-1]
    raise UserError(f"unknown spacing {spacing!r}: use one of {', '.join(SPACINGS)}")


def time_grid(process, steps: int, spacing: str | None = None) -> list[tuple]:
    """The `steps + 1` points (t, alpha, sigma) a sampler walks through, noisiest first.

    SDE, spacing "time" (the default): t evenly spaced from T to t_min. Spacing "logsnr": evenly
    spaced in λ = log(alpha/sigma), as Lu et al. (2022) space DPM-Solver's steps; the steps are
    then short in t where the noise level changes fast (near t = 0).
    DiscreteSchedule: the timesteps of `spacing` (default "leading", see `discrete_timesteps`),
    then a last point (None, 1.0, 0.0) for clean data, where the model is never called.
    alpha and sigma are Python floats (float64), so a step costs no tensor bookkeeping.
    """
    if steps < 1:
        raise UserError(f"steps must be >= 1, got {steps}")
    if isinstance(process, DiscreteSchedule):
        alpha_bar = process.alphas_cumprod.double().cpu()
        timesteps = discrete_timesteps(process.num_train_timesteps, steps, spacing or "leading")
        points = [(t, math.sqrt(alpha_bar[t]), math.sqrt(1 - alpha_bar[t])) for t in timesteps]
        return points + [(None, 1.0, 0.0)]
    if spacing in (None, "time"):
        times = torch.linspace(process.T, process.t_min, steps + 1, dtype=torch.float64)
    elif spacing == "logsnr":  # σ/α geometric from its value at T to its value at t_min
        ratio = float(noise_level(process, process.t_min) / noise_level(process, process.T))
        levels = float(noise_level(process, process.T)) * ratio ** (
            torch.arange(steps + 1, dtype=torch.float64) / steps)
        times = time_of_noise_level(process, levels)
        times[0], times[-1] = process.T, process.t_min  # exactly, not to bisection accuracy
    else:
        raise UserError(f"unknown spacing {spacing!r} for an SDE: use 'time' or 'logsnr'")
    alphas, sigmas = process.alpha(times).tolist(), process.sigma(times).tolist()
    return list(zip(times.tolist(), alphas, sigmas, strict=True))


def noise_level(sde: SDE, t) -> torch.Tensor:
    """EDM's noise level at time t: σ_edm = sigma(t)/alpha(t) = e^{−λ}, the noise of x_t/alpha."""
    t = torch.as_tensor(t, dtype=torch.float64)
    return sde.sigma(t) / sde.alpha(t)


def time_of_noise_level(sde: SDE, sigma_edm: torch.Tensor, iterations: int = 60) -> torch.Tensor:
    """The t ∈ [0, T] with sigma(t)/alpha(t) = sigma_edm, by bisection (the map is increasing)."""
    sigma_edm = torch.as_tensor(sigma_edm, dtype=torch.float64)
    low, high = torch.zeros_like(sigma_edm), torch.full_like(sigma_edm, sde.T)
    for _ in range(iterations):  # 60 halvings: far below float64's resolution of [0, 1]
        mid = (low + high) / 2
        below = noise_level(sde, mid) < sigma_edm
        low, high = torch.where(below, mid, low), torch.where(below, high, mid)
    return (low + high) / 2


# ---------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------
def _check_prediction(prediction: str) -> None:
    if prediction not in KINDS:
        raise UserError(f"unknown prediction {prediction!r}: use one of {', '.join(KINDS)}")


def _model_time(process, t, x: torch.Tensor) -> torch.Tensor:
    """t as the model takes it: int indices (B,) for a DiscreteSchedule, float times (B,) else."""
    dtype = torch.long if isinstance(process, DiscreteSchedule) else x.dtype
    return torch.full((x.shape[0],), t, dtype=dtype, device=x.device)


def _predict(model, prediction, want, x, process, t, alpha, sigma) -> torch.Tensor:
    """The model's output at (x, t), converted from `prediction` to the kind `want`."""
    return convert(model(x, _model_time(process, t, x)), prediction, want, x, alpha, sigma)


def _noise_like(x: torch.Tensor, generator) -> torch.Tensor:
    """z ~ N(0, I) shaped like x, drawn as diffusers draws it (one randn call per step)."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _require_sde(process, sampler: str) -> SDE:
    if not isinstance(process, SDE):
        raise TypeError(f"{sampler} integrates a continuous-time SDE; got {type(process).__name__}")
    return process


def _finish(x, trajectory, return_trajectory):
    return (x, torch.stack(trajectory)) if return_trajectory else x


def _progress(items: list, progress: bool, name: str):
    """`items`, behind a progress bar if asked."""
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=name, leave=False)


def _steps(points: list, progress: bool, name: str):
    """Consecutive pairs (current point, next point) of a grid."""
    return _progress(list(zip(points[:-1], points[1:], strict=True)), progress, name)


# ---------------------------------------------------------------------------------------------
# The reverse SDE and the probability flow ODE, integrated directly
# ---------------------------------------------------------------------------------------------
def euler_maruyama(model: Callable, x_T: torch.Tensor, sde: SDE, steps: int, *,
                   prediction: str = "score", generator: torch.Generator | None = None,
                   return_trajectory: bool = False, progress: bool = False):
    """Euler–Maruyama on the reverse-time SDE dx = [f(x,t) − g(t)² ∇log p_t(x)] dt + g(t) dw̄.

    A step of size h = t − t_next > 0 backwards in time (notebooks/14_reverse_diffusion.py):
        x_{t−h} = x_t − [f(x_t, t) − g(t)² s(x_t, t)] h + g(t) √h z,     z ~ N(0, I)
    """
    _check_prediction(prediction)
    sde = _require_sde(sde, "euler_maruyama")
    x, trajectory = x_T, [x_T]
    for point, (t_next, _, _) in _steps(time_grid(sde, steps), progress, "Euler-Maruyama"):
        x = _euler_maruyama_step(model, prediction, x, sde, point, t_next, generator)
        trajectory.append(x)
    return _finish(x, trajectory, return_trajectory)


def _euler_maruyama_step(model, prediction, x, sde, point, t_next, generator) -> torch.Tensor:
    """One Euler–Maruyama step of the reverse SDE from point = (t, alpha, sigma) back to t_next."""
    t, a, s = point
    h = t - t_next
    score = _predict(model, prediction, "score", x, sde, t, a, s)
    g = float(sde.diffusion(t))
    return x - sde.reverse_drift(x, t, score) * h + g * math.sqrt(h) * _noise_like(x, generator)


def _pf_velocity(model, prediction, x, sde, t, a, s) -> torch.Tensor:
    """dx/dt of the probability flow ODE: f(x, t) − ½ g(t)² ∇log p_t(x)."""
    return sde.ode_drift(x, t, _predict(model, prediction, "score", x, sde, t, a, s))


def ode_euler(model: Callable, x_T: torch.Tensor, sde: SDE, steps: int, *,
              prediction: str = "score", generator: torch.Generator | None = None,
              return_trajectory: bool = False, progress: bool = False):
    """Euler's method on the probability flow ODE dx/dt = f(x,t) − ½ g(t)² ∇log p_t(x).

        x_{t_next} = x_t + (t_next − t) · v(x_t, t)                       (first order: error ∝ h)
    """
    _check_prediction(prediction)
    sde = _require_sde(sde, "ode_euler")
    x, trajectory = x_T, [x_T]
    for (t, a, s), (t_next, _, _) in _steps(time_grid(sde, steps), progress, "PF-ODE Euler"):
        x = x + (t_next - t) * _pf_velocity(model, prediction, x, sde, t, a, s)
        trajectory.append(x)
    return _finish(x, trajectory, return_trajectory)


def ode_heun(model: Callable, x_T: torch.Tensor, sde: SDE, steps: int, *,
             prediction: str = "score", generator: torch.Generator | None = None,
             return_trajectory: bool = False, progress: bool = False):
    """Heun's method (explicit trapezoid) on the probability flow ODE; 2 evaluations a step.

        x̃ = x_t + Δt · v(x_t, t)                                          (Euler predictor)
        x_{t_next} = x_t + Δt · ½ [v(x_t, t) + v(x̃, t_next)]              (second order: error ∝ h²)
    """
    _check_prediction(prediction)
    sde = _require_sde(sde, "ode_heun")
    x, trajectory = x_T, [x_T]
    grid = time_grid(sde, steps)
    for (t, a, s), (t_next, a_next, s_next) in _steps(grid, progress, "PF-ODE Heun"):
        dt = t_next - t
        v = _pf_velocity(model, prediction, x, sde, t, a, s)
        x_euler = x + dt * v
        v_next = _pf_velocity(model, prediction, x_euler, sde, t_next, a_next, s_next)
        x = x + dt * 0.5 * (v + v_next)
        trajectory.append(x)
    return _finish(x, trajectory, return_trajectory)


def ode_rk45(model: Callable, x_T: torch.Tensor, sde: SDE, rtol: float = 1e-5, *,
             atol: float | None = None, prediction: str = "score",
             generator: torch.Generator | None = None, return_trajectory: bool = False):
    """The probability flow ODE from T to t_min by SciPy's adaptive Runge–Kutta 4(5) (Dormand–
    Prince), as Song et al. (2021) do for likelihoods and sampling.

    In place of `steps`: the tolerance `rtol` (and `atol`, default rtol). The solver picks its
    own steps so that its local error estimate stays below atol + rtol·|x|; the number of model
    evaluations follows (about 6 per accepted step). The whole batch is one ODE system.
    The trajectory holds x at the solver's accepted steps.
    """
    from scipy.integrate import solve_ivp

    _check_prediction(prediction)
    sde = _require_sde(sde, "ode_rk45")
    shape, dtype, device = x_T.shape, x_T.dtype, x_T.device

    def velocity(t: float, y):  # y: the flattened batch, float64 numpy
        x = torch.from_numpy(y).reshape(shape).to(dtype=dtype, device=device)
        v = _pf_velocity(model, prediction, x, sde, t, float(sde.alpha(t)), float(sde.sigma(t)))
        return v.detach().double().cpu().reshape(-1).numpy()

    y_T = x_T.detach().double().cpu().reshape(-1).numpy()
    solution = solve_ivp(velocity, (sde.T, sde.t_min), y_T, method="RK45", rtol=rtol,
                         atol=rtol if atol is None else atol)
    if not solution.success:
        raise RuntimeError(f"solve_ivp failed: {solution.message}")
    path = torch.from_numpy(solution.y.T.copy()).reshape(-1, *shape).to(dtype=dtype, device=device)
    return (path[-1], path) if return_trajectory else path[-1]


def predictor_corrector(model: Callable, x_T: torch.Tensor, sde: SDE, steps: int, *,
                        snr: float = 0.16, prediction: str = "score",
                        generator: torch.Generator | None = None,
                        return_trajectory: bool = False, progress: bool = False):
    """Predictor–corrector sampling (Song et al. 2021, Alg. 4–5): at each time, one step of
    Langevin dynamics at fixed t (the corrector) pulls x towards p_t, then an Euler–Maruyama
    step on the reverse SDE (the predictor) moves it to the next time. 2 evaluations a step.

    Langevin corrector, with its step size set by a target signal-to-noise ratio `snr`:
        ε = 2 (snr · ‖z‖ / ‖s(x, t)‖)²                   (norms per sample, averaged over the batch)
        x ← x + ε s(x, t) + √(2ε) z                      (notebooks/16_samplers.py §4)
    (Song et al. scale ε by α_i = 1 − β_i/N for VP, within 2% of 1: left out.)
    """
    _check_prediction(prediction)
    sde = _require_sde(sde, "predictor_corrector")
    x, trajectory = x_T, [x_T]
    grid = time_grid(sde, steps)
    for (t, a, s), (t_next, _, _) in _steps(grid, progress, "predictor-corrector"):
        score = _predict(model, prediction, "score", x, sde, t, a, s)
        z = _noise_like(x, generator)
        ratio = z.flatten(1).norm(dim=1).mean() / score.flatten(1).norm(dim=1).mean()
        eps_langevin = 2 * (snr * ratio) ** 2
        x = x + eps_langevin * score + torch.sqrt(2 * eps_langevin) * z  # corrector

        x = _euler_maruyama_step(model, prediction, x, sde, (t, a, s), t_next, generator)
        trajectory.append(x)
    return _finish(x, trajectory, return_trajectory)


# ---------------------------------------------------------------------------------------------
# Samplers written in (alpha, sigma): DDPM, DDIM, DPM-Solver++. They run on a DiscreteSchedule
# (as in diffusers) or on any SDE, since each step only needs alpha and sigma at its two ends.
# A step goes from the point (t, α_t, σ_t) to the less noisy point (s, α_s, σ_s).
# ---------------------------------------------------------------------------------------------
def _alpha_sigma_grid(process, steps: int, spacing: str | None) -> list[tuple]:
    """Their grid: `spacing`, by default "leading" timesteps, or evenly spaced log-SNR on an SDE
    (these samplers step in λ = log α/σ, so even steps in λ suit them; Lu et al. 2022)."""
    if spacing is None:
        spacing = "leading" if isinstance(process, DiscreteSchedule) else "logsnr"
    return time_grid(process, steps, spacing)


def ddpm(model: Callable, x_T: torch.Tensor, process, steps: int, *, prediction: str = "eps",
         spacing: str | None = None, generator: torch.Generator | None = None,
         return_trajectory: bool = False, progress: bool = False):
    """Ancestral sampling (Ho et al. 2020): draw x_s from the posterior q(x_s | x_t, x0) with the
    model's x̂0 in place of x0 (notebooks/16_samplers.py §1). With the forward step s → t,

        α_{t|s} = α_t / α_s,    σ²_{t|s} = σ_t² − α_{t|s}² σ_s²          (β_t in DDPM's notation)
        x_s = α_s σ²_{t|s}/σ_t² · x̂0 + α_{t|s} σ_s²/σ_t² · x_t + σ̃ z,   σ̃² = σ²_{t|s} σ_s²/σ_t²

    (Ho et al. eq. 7, "fixed small" variance). On the last step to clean data σ̃ = 0: no noise.
    """
    _check_prediction(prediction)
    x, trajectory = x_T, [x_T]
    grid = _alpha_sigma_grid(process, steps, spacing)
    for (t, a_t, s_t), (_, a_s, s_s) in _steps(grid, progress, "DDPM"):
        x0 = _predict(model, prediction, "x0", x, process, t, a_t, s_t)
        a_ts = a_t / a_s
        var_ts = s_t**2 - a_ts**2 * s_s**2  # σ²_{t|s}
        mean = (a_s * var_ts / s_t**2) * x0 + (a_ts * s_s**2 / s_t**2) * x
        posterior_var = var_ts * s_s**2 / s_t**2
        x = mean
        if posterior_var > 0:
            x = x + math.sqrt(posterior_var) * _noise_like(x, generator)
        trajectory.append(x)
    return _finish(x, trajectory, return_trajectory)


def ddim(model: Callable, x_T: torch.Tensor, process, steps: int, *, eta: float = 0.0,
         prediction: str = "eps", spacing: str | None = None,
         generator: torch.Generator | None = None, return_trajectory: bool = False,
         progress: bool = False):
    """DDIM (Song, Meng & Ermon 2021, eq. 12): keep x̂0, re-noise with the predicted ε̂,

        x_s = α_s x̂0 + √(σ_s² − c²) ε̂ + c z,     c = η σ̃,  σ̃² = σ_s² (1 − (α_t σ_s / (α_s σ_t))²)

    η = 0: deterministic, a first-order solver of the probability flow ODE (an exponential
    integrator in λ = log α/σ); η = 1: the DDPM posterior's variance (notebooks/16_samplers.py §2).
    """
    _check_prediction(prediction)
    x, trajectory = x_T, [x_T]
    grid = _alpha_sigma_grid(process, steps, spacing)
    for (t, a_t, s_t), (_, a_s, s_s) in _steps(grid, progress, "DDIM"):
        x0, eps = x0_and_eps(model(x, _model_time(process, t, x)), prediction, x, a_t, s_t)
        c = eta * s_s * math.sqrt(max(1 - (a_t * s_s / (a_s * s_t)) ** 2, 0.0))
        x = a_s * x0 + math.sqrt(s_s**2 - c**2) * eps
        if c > 0:
            x = x + c * _noise_like(x, generator)
        trajectory.append(x)
    return _finish(x, trajectory, return_trajectory)


def dpm_solver_2m(model: Callable, x_T: torch.Tensor, process, steps: int, *,
                  prediction: str = "eps", spacing: str | None = None,
                  generator: torch.Generator | None = None, return_trajectory: bool = False,
                  progress: bool = False):
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2): the probability flow ODE in the data-prediction
    form, solved exactly in its linear part and to second order in x̂0, reusing the previous
    step's x̂0 (multistep: 1 evaluation a step). With λ = log(α/σ) and h = λ_s − λ_t,

        first step (and a last step to σ = 0):   x_s = (σ_s/σ_t) x_t − α_s (e^{−h} − 1) x̂0_t
        later steps:   D = (1 + 1/(2r)) x̂0_t − 1/(2r) x̂0_prev,   r = h_prev / h
                       x_s = (σ_s/σ_t) x_t − α_s (e^{−h} − 1) D      (notebooks/16_samplers.py §6)

    The first-order step is DDIM with η = 0.
    """
    _check_prediction(prediction)
    x, trajectory = x_T, [x_T]
    x0_prev, h_prev = None, None
    grid = _alpha_sigma_grid(process, steps, spacing)
    for (t, a_t, s_t), (_, a_s, s_s) in _steps(grid, progress, "DPM-Solver++(2M)"):
        x0 = _predict(model, prediction, "x0", x, process, t, a_t, s_t)
        if s_s == 0:  # λ_s = ∞: the step lands on its own x̂0
            x = x0
        else:
            h = math.log(a_s / s_s) - math.log(a_t / s_t)
            D = x0
            if x0_prev is not None:
                r = h_prev / h
                D = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
            x = (s_s / s_t) * x - a_s * math.expm1(-h) * D
            x0_prev, h_prev = x0, h
        trajectory.append(x)
    return _finish(x, trajectory, return_trajectory)


# ---------------------------------------------------------------------------------------------
# Heun on the EDM noise levels (Karras et al. 2022)
# ---------------------------------------------------------------------------------------------
def heun_edm(model: Callable, x_T: torch.Tensor, sde: SDE, steps: int, *, churn: float = 0.0,
             rho: float = 7.0, prediction: str = "score", generator: torch.Generator | None = None,
             return_trajectory: bool = False, progress: bool = False):
    """Karras et al. (2022) Alg. 2: Heun's method on the ODE in the noise level σ, with optional
    stochastic "churn" (Alg. 2 with S_churn = churn, S_tmin = 0, S_tmax = ∞, S_noise = 1).

    Divide by alpha: y = x_t / alpha(t) = x0 + σ eps with σ = sigma(t)/alpha(t). The probability
    flow ODE becomes dy/dσ = (y − D(y; σ)) / σ, with the denoiser D = x̂0 (notebooks/16_samplers.py
    §5). Levels σ_0 > ... > σ_{steps−1} from `edm_sigmas` (ρ = 7), from the SDE's σ at T down to
    its σ at t_min, then σ = 0:

        churn: σ̂ = σ_i (1 + γ), y ← y + √(σ̂² − σ_i²) z,   γ = min(churn/steps, √2 − 1)
        Euler:  d = (y − D(y; σ̂))/σ̂,   ỹ = y + (σ_{i+1} − σ̂) d
        Heun:   y ← y + (σ_{i+1} − σ̂) · ½ [d + (ỹ − D(ỹ; σ_{i+1}))/σ_{i+1}]   (Euler to σ = 0)

    x_T is a prior draw at time T, as for the other samplers; the trajectory is returned in the
    SDE's own scale, x = alpha · y, ending at clean data (t = 0, alpha = 1).
    """
    _check_prediction(prediction)
    sde = _require_sde(sde, "heun_edm")
    if steps < 2:
        raise UserError(f"heun_edm needs steps >= 2, got {steps}")
    sigma_max, sigma_min = float(noise_level(sde, sde.T)), float(noise_level(sde, sde.t_min))
    sigmas = edm_sigmas(steps, sigma_min, sigma_max, rho).tolist() + [0.0]
    gamma = min(churn / steps, math.sqrt(2) - 1)
    sigmas_hat = [sigma * (1 + gamma) for sigma in sigmas[:-1]]  # σ̂_i, raised by the churn
    levels = torch.tensor(sigmas + sigmas_hat, dtype=torch.float64)
    times = time_of_noise_level(sde, levels).tolist()
    t_of = dict(zip(sigmas + sigmas_hat, times, strict=True))

    def denoise(y, sigma):  # D(y; σ) = x̂0, asking the model at x_t = alpha · y
        t = t_of[sigma]
        a, s = float(sde.alpha(t)), float(sde.sigma(t))
        return _predict(model, prediction, "x0", a * y, sde, t, a, s)

    y = x_T / float(sde.alpha(sde.T))
    trajectory = [x_T]
    for i in _progress(range(steps), progress, "Heun (EDM)"):
        sigma, sigma_next, sigma_hat = sigmas[i], sigmas[i + 1], sigmas_hat[i]
        if sigma_hat > sigma:
            y = y + math.sqrt(sigma_hat**2 - sigma**2) * _noise_like(y, generator)
        d = (y - denoise(y, sigma_hat)) / sigma_hat
        y_euler = y + (sigma_next - sigma_hat) * d
        if sigma_next == 0:
            y = y_euler
        else:
            d_next = (y_euler - denoise(y_euler, sigma_next)) / sigma_next
            y = y + (sigma_next - sigma_hat) * 0.5 * (d + d_next)
        trajectory.append(float(sde.alpha(t_of[sigma_next])) * y)
    return _finish(y, trajectory, return_trajectory)


# ---------------------------------------------------------------------------------------------
# Flow matching / rectified flow: the straight path x_t = (1 − t) x0 + t eps
# ---------------------------------------------------------------------------------------------
FLOW_KINDS = ("velocity",) + KINDS


class StraightPath:
    """The path of flow matching: x_t = (1 − t) x0 + t eps, t ∈ [0, 1] (alpha = 1 − t,
    sigma = t). Only alpha and sigma, which is all the exact mixture (gmm.py) and the closed-form
    Gaussian ODE solution need to treat it like an SDE."""

    T = 1.0

    def alpha(self, t) -> torch.Tensor:
        return 1 - torch.as_tensor(t, dtype=torch.float64)

    def sigma(self, t) -> torch.Tensor:
        return torch.as_tensor(t, dtype=torch.float64)


def flow_velocity(pred: torch.Tensor, prediction: str, x: torch.Tensor, t: float) -> torch.Tensor:
    """The velocity u = dx_t/dt = eps − x0 of the straight path, from a prediction of any kind.

    A "velocity" model predicts u itself; the other kinds go through (x̂0, ε̂) as in targets.py.
    """
    if prediction == "velocity":
        return pred
    x0, eps = x0_and_eps(pred, prediction, x, 1 - t, t)
    return eps - x0


def _flow_steps(model, x_T, steps, prediction, heun, return_trajectory, progress):
    if prediction not in FLOW_KINDS:
        raise UserError(f"unknown prediction {prediction!r}: use one of {', '.join(FLOW_KINDS)}")
    if steps < 1:
        raise UserError(f"steps must be >= 1, got {steps}")
    times = torch.linspace(1, 0, steps + 1, dtype=torch.float64).tolist()

    def u(x, t):
        t_batch = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        return flow_velocity(model(x, t_batch), prediction, x, t)

    x, trajectory = x_T, [x_T]
    for t, t_next in _steps(times, progress, "flow Heun" if heun else "flow Euler"):
        dt = t_next - t
        v = u(x, t)
        x_euler = x + dt * v  # Euler: x_{t+Δt} = x_t + Δt u(x_t, t)
        x = x + dt * 0.5 * (v + u(x_euler, t_next)) if heun and t_next > 0 else x_euler
        trajectory.append(x)
    return _finish(x, trajectory, return_trajectory)


def flow_euler(model: Callable, x_T: torch.Tensor, steps: int, *, prediction: str = "velocity",
               return_trajectory: bool = False, progress: bool = False):
    """Euler on the flow-matching ODE dx/dt = u(x, t) from t = 1 (x_T ~ N(0, I)) to t = 0.

    Straight paths make the ODE nearly straight too: few Euler steps go far
    (Liu et al. 2023; Lipman et al. 2023; notebooks/16_samplers.py §7).
    """
    return _flow_steps(model, x_T, steps, prediction, False, return_trajectory, progress)


def flow_heun(model: Callable, x_T: torch.Tensor, steps: int, *, prediction: str = "velocity",
              return_trajectory: bool = False, progress: bool = False):
    """Heun on the flow-matching ODE; the last step (to t = 0, where a model predicting x0 or eps
    is undefined) is Euler, as in Karras et al. Alg. 1. 2·steps − 1 evaluations."""
    return _flow_steps(model, x_T, steps, prediction, True, return_trajectory, progress)


# ---------------------------------------------------------------------------------------------
# By name, for the command line and the benchmark
# ---------------------------------------------------------------------------------------------
SAMPLERS = {
    "euler_maruyama": euler_maruyama,
    "predictor_corrector": predictor_corrector,
    "ode_euler": ode_euler,
    "ode_heun": ode_heun,
    "ddpm": ddpm,
    "ddim": ddim,
    "heun_edm": heun_edm,
    "dpm_solver_2m": dpm_solver_2m,
}


def evaluations(name: str, steps: int) -> int:
    """The number of model evaluations (NFE) of sampler `name` with `steps` steps."""
    if name in ("heun_edm", "flow_heun"):
        return 2 * steps - 1  # the last step, to σ = 0, is Euler
    if name in ("ode_heun", "predictor_corrector"):
        return 2 * steps
    return steps
