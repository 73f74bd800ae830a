"""`fromscratch diffusion toy`: 2-D diffusion from a learned or an exact score, sampled and drawn.

    fromscratch diffusion toy --data {gmm,eight_gaussians,moons,swissroll,checkerboard}
                              --sampler NAME --steps N [--exact-score] --out DIR

Trains a small score network on the data (or, for the mixtures with --exact-score, uses their
exact score), samples with the chosen sampler, prints the sliced W2 and MMD of the samples to
fresh data (with the floor of data against data), and writes samples.png and trajectories.png.
"""

from pathlib import Path

from fromscratch.commands.common import positive_float, positive_int, whole_number
from fromscratch.errors import UserError

DATA = {"gmm": "mixture", "eight_gaussians": "eight_gaussians", "moons": "moons",
        "swissroll": "swiss_roll", "checkerboard": "checkerboard"}  # CLI name → toy2d name
FLOW_SAMPLERS = ("flow_euler", "flow_heun")
# samplers.SAMPLERS' names and the two kinds called differently (named here, so that building the
# command line does not import torch)
SAMPLER_NAMES = ("euler_maruyama", "predictor_corrector", "ode_euler", "ode_heun", "ddpm", "ddim",
                 "heun_edm", "dpm_solver_2m", "ode_rk45", *FLOW_SAMPLERS)


def _check(args) -> None:
    dataset = DATA[args.data]
    flow = args.sampler in FLOW_SAMPLERS
    if args.exact_score and dataset not in ("mixture", "eight_gaussians"):
        raise UserError(f"--exact-score needs a data set with a known density: gmm or "
                        f"eight_gaussians, not {args.data}")
    if args.exact_score and flow:
        raise UserError(f"{args.sampler} follows a trained flow-matching model: drop "
                        f"--exact-score or pick a diffusion sampler (e.g. ode_heun)")
    if args.sampler == "heun_edm" and args.steps < 2:
        raise UserError("heun_edm needs --steps 2 or more")


def _model(args, out: Path):
    """(model, prediction kind, description): the exact score, or a freshly trained network."""
    import torch

    from fromscratch.data.toy2d import toy_mixture
    from fromscratch.diffusion.toy import ToyDiffusion, ToyFlow, train_toy

    dataset = DATA[args.data]
    if args.exact_score:
        mixture = toy_mixture(dataset, torch.float32)
        return (lambda x, t: mixture.score(x, t, args.sde)), "score", "the exact mixture score"
    torch.manual_seed(args.seed)
    model = ToyFlow() if args.sampler in FLOW_SAMPLERS else ToyDiffusion(args.sde, "eps")
    print(f"training a {type(model).__name__} on {args.data} for up to {args.train_steps} steps "
          f"or {args.max_time:g} s")
    result = train_toy(model, dataset, steps=args.train_steps, max_time=args.max_time,
                       seed=args.seed, out_dir=out / "model")
    kind = "velocity" if args.sampler in FLOW_SAMPLERS else "eps"
    return model, kind, f"a network trained {result.step} steps ({out / 'model'})"


def _plot(samples, trajectory, data, title: str, out: Path) -> None:
    from matplotlib.figure import Figure

    lim = float(data.abs().max()) * 1.3
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax_data, ax_samples = fig.subplots(1, 2, sharex=True, sharey=True)
    for ax, points, name in ((ax_data, data, "data"), (ax_samples, samples, title)):
        ax.scatter(points[:, 0], points[:, 1], s=1, alpha=0.5)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=name)
    fig.savefig(out / "samples.png", dpi=120)

    fig = Figure(figsize=(5, 5), layout="constrained")
    ax = fig.subplots()
    ax.scatter(data[:, 0], data[:, 1], s=1, color="0.85")
    for i in range(min(100, trajectory.shape[1])):
        ax.plot(trajectory[:, i, 0], trajectory[:, i, 1], lw=0.5, alpha=0.7)
    ax.scatter(trajectory[-1, :100, 0], trajectory[-1, :100, 1], s=4, color="k", zorder=3)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=f"trajectories: {title}")
    fig.savefig(out / "trajectories.png", dpi=120)


def cmd_diffusion_toy(args) -> None:
    import torch

    from fromscratch.data.toy2d import sample_toy
    from fromscratch.diffusion import samplers
    from fromscratch.diffusion.metrics import mmd, sliced_wasserstein2
    from fromscratch.diffusion.sde import VPSDE

    _check(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.sde = VPSDE()
    model, prediction, source = _model(args, out)

    x_T = torch.randn(args.samples, 2, generator=torch.Generator().manual_seed(args.seed))
    noise = torch.Generator().manual_seed(args.seed + 1)
    with torch.no_grad():
        if args.sampler in FLOW_SAMPLERS:
            sampler = getattr(samplers, args.sampler)
            samples, trajectory = sampler(model, x_T, args.steps, prediction=prediction,
                                          return_trajectory=True, progress=True)
        elif args.sampler == "ode_rk45":
            samples, trajectory = samplers.ode_rk45(model, x_T, args.sde, 10.0 ** -args.steps,
                                                    prediction=prediction, return_trajectory=True)
        else:
            samples, trajectory = samplers.SAMPLERS[args.sampler](
                model, x_T, args.sde, args.steps, prediction=prediction, generator=noise,
                return_trajectory=True, progress=True)
    if not torch.isfinite(samples).all():
        raise UserError(f"{args.sampler} diverged with {args.steps} steps: try more --steps")

    data = sample_toy(DATA[args.data], args.samples, torch.Generator().manual_seed(args.seed + 2))
    more_data = sample_toy(DATA[args.data], args.samples,
                           torch.Generator().manual_seed(args.seed + 3))
    steps = (f"rtol 1e-{args.steps}" if args.sampler == "ode_rk45"
             else f"{args.steps} steps, NFE {samplers.evaluations(args.sampler, args.steps)}")
    print(f"{args.sampler} ({steps}) with {source}: {args.samples:,} samples")
    print(f"sliced W2 to the data {sliced_wasserstein2(samples, data):.4f} "
          f"(data vs data {sliced_wasserstein2(more_data, data):.4f}); "
          f"MMD {mmd(samples, data):.4f} (data vs data {mmd(more_data, data):.4f})")
    _plot(samples, trajectory, data, f"{args.sampler}, {steps}", out)
    print(f"samples.png and trajectories.png in {out}")


def register(commands) -> None:
    diffusion = commands.add_parser("diffusion", help="diffusion models: 2-D toys and samplers")
    verbs = diffusion.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser(
        "toy", help="train (or use the exact score of) a 2-D diffusion model and sample it")
    p.add_argument("--data", required=True, choices=sorted(DATA))
    p.add_argument("--sampler", default="dpm_solver_2m", choices=SAMPLER_NAMES,
                   help="default dpm_solver_2m; flow_euler and flow_heun train a flow model")
    p.add_argument("--steps", type=positive_int, default=20,
                   help="sampler steps (for ode_rk45: the tolerance 10^-steps)")
    p.add_argument("--exact-score", action="store_true",
                   help="gmm and eight_gaussians only: sample with the exact score, no training")
    p.add_argument("--out", required=True, help="output folder for the plots (and the model)")
    p.add_argument("--samples", type=positive_int, default=2000)
    p.add_argument("--train-steps", type=positive_int, default=3000)
    p.add_argument("--max-time", type=positive_float, default=120.0,
                   help="stop training after this many seconds (default 120)")
    p.add_argument("--seed", type=whole_number, default=0)
    p.set_defaults(func=cmd_diffusion_toy)
