"""`fromscratch neuro ...`: transformers and diffusion models on neural population spiking.

    fromscratch neuro simulate --out data.npz [--trials 250 --neurons 50 --bins 100 --seed 0
                                               --conditions K]
    fromscratch neuro train --data data.npz --out DIR [--heldout 10 --valid-trials 50 ...]
    fromscratch neuro eval  --ckpt DIR --data data.npz [--valid-trials 50]
    fromscratch neuro train-generative --data data.npz --out DIR [--rates-from NDT_DIR ...]
    fromscratch neuro generate --ckpt DIR --condition 0 --trials 50 --out trials.npz
                               [--guidance 1 --plot psth.png --data data.npz]

A data file is an .npz with "spikes" (trials, time bins, neurons) of counts; `simulate` also
stores the true "rates" and "latents", which `eval` scores the inferred rates against, and with
--conditions each trial's "conditions" index. The last `--valid-trials` trials are never trained
on; the last `--heldout` neurons are never an input. `train-generative` learns the rates of the
training trials ("rates" in the file, or those an NDT folder infers) per condition, and
`generate` draws new trials of a condition, optionally plotted against the real held-out trials.
A training run refuses an --out folder that holds an earlier run unless --resume or --overwrite.
"""

from pathlib import Path

from fromscratch.commands.common import (
    add_recipe_argument,
    non_negative_float,
    positive_float,
    positive_int,
    whole_number,
)
from fromscratch.errors import UserError


def _load(path, with_conditions: bool = False):
    """(spikes, true rates or None[, conditions or None]) from an .npz/.npy file."""
    import numpy as np
    import torch

    from fromscratch.neuro.io import load_counts

    spikes = load_counts(path)
    rates = conditions = None
    if Path(path).suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if "rates" in archive.files:
                rates = torch.from_numpy(archive["rates"]).float()
                if rates.shape != spikes.shape:
                    raise UserError(f"{path}: rates {tuple(rates.shape)} and spikes "
                                    f"{tuple(spikes.shape)} differ in shape")
            if "conditions" in archive.files:
                conditions = torch.from_numpy(archive["conditions"])
                if (conditions.shape != (len(spikes),) or conditions.is_floating_point()
                        or conditions.min() < 0):
                    raise UserError(f"{path}: 'conditions' must hold one whole number ≥ 0 per "
                                    f"trial ({len(spikes)}), got shape {tuple(conditions.shape)}")
                conditions = conditions.long()
    return (spikes, rates, conditions) if with_conditions else (spikes, rates)


def _split(spikes, valid_trials: int):
    if not 0 < valid_trials < len(spikes):
        raise UserError(f"--valid-trials must be between 1 and {len(spikes) - 1} "
                        f"(the data has {len(spikes)} trials)")
    return spikes[:-valid_trials], spikes[-valid_trials:]


def cmd_simulate(args) -> None:
    import io

    import numpy as np

    from fromscratch.folders import write_bytes
    from fromscratch.neuro.simulate import simulate_lorenz_population

    data = simulate_lorenz_population(n_trials=args.trials, n_neurons=args.neurons,
                                      n_bins=args.bins, bin_size=args.bin_size, seed=args.seed,
                                      n_conditions=args.conditions)
    arrays = dict(spikes=data.spikes.numpy().astype(np.int32), rates=data.rates.numpy(),
                  latents=data.latents.numpy(), bin_size=np.array(data.bin_size))
    if data.conditions is not None:
        arrays["conditions"] = data.conditions.numpy()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes(args.out, buffer.getvalue())
    conditions = f" in {args.conditions} conditions" if args.conditions else ""
    print(f"{args.trials} trials{conditions} × {args.bins} bins × {args.neurons} neurons, "
          f"{data.spikes.sum():.0f} spikes, mean rate {data.rates_hz().mean():.1f} Hz "
          f"-> {args.out}")


def cmd_train(args) -> None:
    from fromscratch.neuro.metrics import bits_per_spike
    from fromscratch.neuro.ndt import RECIPES, train_ndt
    from fromscratch.training.recipes import get_recipe

    recipe = get_recipe(RECIPES, args.recipe)
    spikes, _ = _load(args.data)
    train_set, valid_set = _split(spikes, args.valid_trials)
    n_neurons = spikes.shape[2]
    if not 0 < args.heldout < n_neurons:
        raise UserError(f"--heldout must be between 1 and {n_neurons - 1} "
                        f"(the data has {n_neurons} neurons)")
    print(f"training an NDT on {len(train_set)} trials ({n_neurons - args.heldout} held-in, "
          f"{args.heldout} held-out neurons); {len(valid_set)} validation trials")
    model, result = train_ndt(train_set, args.heldout, valid=valid_set, recipe=recipe,
                              out_dir=Path(args.out), max_steps=args.max_steps,
                              max_time=args.max_time, seed=args.seed, resume=args.resume,
                              overwrite=args.overwrite)
    model.save_pretrained(args.out)
    rates = model.infer_rates(valid_set)[:, :, -args.heldout:]
    print(f"stopped by {result.stopped_by} at step {result.step}; validation co-smoothing "
          f"{bits_per_spike(rates, valid_set[:, :, -args.heldout:]):.4f} bits/spike")
    print(f"model (config.json, model.safetensors), log.jsonl and loss.png in {args.out}")


def cmd_eval(args) -> None:
    from fromscratch.neuro.metrics import bits_per_spike, r_squared
    from fromscratch.neuro.ndt import NDT

    model = NDT.from_pretrained(args.ckpt)
    spikes, true_rates = _load(args.data)
    if spikes.shape[2] != model.config.n_neurons:
        raise UserError(f"{args.data} has {spikes.shape[2]} neurons; the model was trained on "
                        f"{model.config.n_neurons}")
    _, valid_set = _split(spikes, args.valid_trials)
    rates = model.infer_rates(valid_set)
    n_out = model.config.n_heldout
    print(f"co-smoothing (held-out neurons): "
          f"{bits_per_spike(rates[:, :, -n_out:], valid_set[:, :, -n_out:]):.4f} bits/spike")
    if true_rates is not None:
        print(f"R² of inferred vs true rates: {r_squared(rates, true_rates[-len(valid_set):]):.4f}")


def cmd_train_generative(args) -> None:
    import torch

    from fromscratch.neuro.generative import RECIPES, train_generative
    from fromscratch.training.recipes import get_recipe

    recipe = get_recipe(RECIPES, args.recipe)
    spikes, rates, conditions = _load(args.data, with_conditions=True)
    if args.rates_from:
        from fromscratch.neuro.ndt import NDT

        ndt = NDT.from_pretrained(args.rates_from)
        if ndt.config.n_neurons != spikes.shape[2]:
            raise UserError(f"{args.rates_from} infers {ndt.config.n_neurons} neurons; "
                            f"{args.data} has {spikes.shape[2]}")
        rates = ndt.infer_rates(spikes)
    if rates is None:
        raise UserError(f"{args.data} has no 'rates': give --rates-from an NDT folder "
                        "(`fromscratch neuro train`) to infer them from the spikes")
    if conditions is None:
        print(f"{args.data} has no 'conditions': every trial is condition 0")
        conditions = torch.zeros(len(spikes), dtype=torch.long)
    train_rates, _ = _split(rates, args.valid_trials)
    train_conditions = conditions[: len(train_rates)]
    n_conditions = int(conditions.max()) + 1
    print(f"training a diffusion model on the rates of {len(train_rates)} trials, "
          f"{n_conditions} condition(s); the last {args.valid_trials} trials are held out")
    _, result = train_generative(train_rates, train_conditions, n_conditions,
                                 recipe=recipe, out_dir=Path(args.out),
                                 max_steps=args.max_steps, max_time=args.max_time,
                                 seed=args.seed, resume=args.resume, overwrite=args.overwrite)
    print(f"stopped by {result.stopped_by} at step {result.step}; model in {args.out}")


def cmd_generate(args) -> None:
    import io

    import numpy as np
    import torch

    from fromscratch.folders import write_bytes
    from fromscratch.neuro.generative import ConditionalDenoiser, plot_generated_vs_real

    model = ConditionalDenoiser.from_pretrained(args.ckpt)
    K = model.config.n_conditions
    wanted = range(K) if args.condition is None else [args.condition]
    if args.condition is not None and not 0 <= args.condition < K:
        raise UserError(f"--condition must be between 0 and {K - 1}: the model knows {K}")
    if args.plot and not args.data:
        raise UserError("--plot compares with real trials: give --data (the held-out trials "
                        "are its last --valid-trials)")
    conditions = torch.tensor([k for k in wanted for _ in range(args.trials)])
    rates, spikes = model.generate(conditions, guidance=args.guidance, steps=args.steps,
                                   generator=torch.Generator().manual_seed(args.seed),
                                   progress=True)
    buffer = io.BytesIO()
    np.savez(buffer, spikes=spikes.numpy().astype(np.int32), rates=rates.numpy(),
             conditions=conditions.numpy())
    write_bytes(args.out, buffer.getvalue())
    print(f"{len(conditions)} trials of condition(s) {list(wanted)} × {model.config.n_bins} "
          f"bins × {model.config.n_neurons} neurons (guidance {args.guidance:g}) -> {args.out}")
    if args.plot:
        real, _, real_conditions = _load(args.data, with_conditions=True)
        if real.shape[1:] != spikes.shape[1:]:
            raise UserError(f"{args.data} trials are {tuple(real.shape[1:])}; the model "
                            f"generates {tuple(spikes.shape[1:])}")
        if real_conditions is None:
            real_conditions = torch.zeros(len(real), dtype=torch.long)
        _, held_out = _split(real, args.valid_trials)
        held_out_conditions = real_conditions[-len(held_out):]
        keep = torch.isin(held_out_conditions, torch.tensor(list(wanted)))
        relabel = torch.full((K,), -1, dtype=torch.long)
        relabel[torch.tensor(list(wanted))] = torch.arange(len(wanted))
        try:
            plot_generated_vs_real(held_out[keep], relabel[held_out_conditions[keep]], spikes,
                                   relabel[conditions], len(wanted), _bin_size(args), args.plot)
        except ValueError as err:
            raise UserError(f"{args.data}: {err} among the held-out trials") from err
        print(f"PSTHs and statistics, generated vs held-out real trials -> {args.plot}")


def _bin_size(args) -> float:
    """--bin-size, else the "bin_size" that `simulate` stores in --data, else 10 ms."""
    if args.bin_size is not None:
        return args.bin_size
    import numpy as np

    if Path(args.data).suffix == ".npz":
        with np.load(args.data, allow_pickle=False) as archive:
            if "bin_size" in archive.files:
                return float(archive["bin_size"])
    return 0.01


def _training_options(p) -> None:
    """The options both training verbs take."""
    add_recipe_argument(p, "default")  # neuro/ndt.py and neuro/generative.py: default
    p.add_argument("--valid-trials", type=positive_int, default=50)
    p.add_argument("--max-steps", type=positive_int)
    p.add_argument("--max-time", type=positive_float, help="stop after this many seconds")
    p.add_argument("--seed", type=whole_number, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")


def register(commands) -> None:
    neuro = commands.add_parser("neuro", help="Neural Data Transformer on population spiking")
    verbs = neuro.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("simulate", help="Lorenz-driven Poisson spiking, true rates kept")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--trials", type=positive_int, default=250)
    p.add_argument("--neurons", type=positive_int, default=50)
    p.add_argument("--bins", type=positive_int, default=100)
    p.add_argument("--bin-size", type=positive_float, default=0.01, help="seconds")
    p.add_argument("--conditions", type=positive_int,
                   help="group trials in this many conditions (shared starting states)")
    p.add_argument("--seed", type=whole_number, default=0)
    p.set_defaults(func=cmd_simulate)

    p = verbs.add_parser("train", help="train an NDT; co-smoothing on the validation trials")
    p.add_argument("--data", required=True, help=".npz with 'spikes' (trials, bins, neurons)")
    p.add_argument("--out", required=True, help="output folder (a loadable model folder)")
    p.add_argument("--heldout", type=positive_int, default=10, help="last neurons held out")
    _training_options(p)
    p.set_defaults(func=cmd_train)

    p = verbs.add_parser("eval", help="co-smoothing bits/spike (and R² against true rates)")
    p.add_argument("--ckpt", required=True, help="a folder written by `fromscratch neuro train`")
    p.add_argument("--data", required=True)
    p.add_argument("--valid-trials", type=positive_int, default=50)
    p.set_defaults(func=cmd_eval)

    p = verbs.add_parser("train-generative",
                         help="train a conditional diffusion model of the trials' rates")
    p.add_argument("--data", required=True,
                   help=".npz with 'spikes', and 'rates' unless --rates-from; 'conditions' used")
    p.add_argument("--out", required=True, help="output folder (a loadable model folder)")
    p.add_argument("--rates-from", help="an NDT folder whose inferred rates are learned")
    _training_options(p)
    p.set_defaults(func=cmd_train_generative)

    p = verbs.add_parser("generate", help="new trials of a condition from a diffusion model")
    p.add_argument("--ckpt", required=True, help="a folder written by train-generative")
    p.add_argument("--out", "-o", required=True, help="the .npz to write (spikes, rates, "
                   "conditions)")
    p.add_argument("--condition", type=whole_number, help="which condition (default: every one)")
    p.add_argument("--trials", type=positive_int, default=50, help="trials per condition")
    p.add_argument("--guidance", type=non_negative_float, default=1.0,
                   help="w: 0 unconditional, 1 conditional, > 1 guided")
    p.add_argument("--steps", type=positive_int, default=50, help="DDIM steps")
    p.add_argument("--seed", type=whole_number, default=0)
    p.add_argument("--plot", help="a .png of PSTHs and statistics against --data's held-out trials")
    p.add_argument("--data", help="the real trials, for --plot")
    p.add_argument("--valid-trials", type=positive_int, default=50)
    p.add_argument("--bin-size", type=positive_float,
                   help="seconds, for --plot (default: --data's bin_size, else 0.01)")
    p.set_defaults(func=cmd_generate)
